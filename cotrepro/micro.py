"""The micro world: a student base model and a teacher, trained from scratch on CPU in minutes.

The experiments of Shape of Thought and Setlur et al. need a student that has not yet learned a
task, a stronger teacher whose traces are sometimes right and sometimes wrong, and human traces written in
another style. The micro world builds all three on CPU, from the `arith` task's generator (plus
`countdown` and `stargraph` text, so the models are not single-task):

- Student base (small: 0.45M params by default). It sees the *pieces* of step-by-step solutions
  but never a whole multi-step solution: single-operation lines ("12 + 5 = 17"), problem
  statements of multi-step problems (unsolved), one-step problems solved in the step-by-step
  style (the `render_stepwise` format), and countdown and star-graph statements. So it knows the
  format and has practised single steps, but has not learned to chain them: its multi-step
  accuracy is near zero, and there is something left to learn from traces.
- Teacher (larger: 0.84M params by default). Trained on multi-step problems solved step by step on
  top of the student's corpus, so it is right sometimes and wrong often, and both G (correct
  final answer) and W (wrong final answer) traces come out of it. A share of its training traces
  carry one wrong step whose error then propagates consistently, so its own wrong traces tend to
  be wrong in places and right elsewhere (SoT-6).
- Measured (one thread, AMD EPYC, greedy, 200 held-out arith test problems at the trained
  max_value): at the code defaults (max_value 99, 339 CPU-s for both models) the teacher gets
  16.5% of multi-step problems and the student base 1.5% multi-step, 16% one-step. The micro
  params (`params/micro/base.yaml`: max_value 30, student lr 5e-3 and teacher lr 8e-3, batch 32,
  more solved one-step problems, 1200/2400 steps; 852 CPU-s) give a student at 72% one-step and
  2.5% multi-step, and a teacher at 14.5% multi-step. The intended teacher range, 40-75%, was not
  reached inside a few CPU minutes: its errors are mostly wrong operands copied from the question
  (LOG.md, 2026-11-21).
- Human traces (H) are the task's terse human-annotation style (`arith.render_human`): the
  student never saw that style, so H is far from its distribution (SoT-3), as human solutions
  are for a real pretrained model.

Both models are ordinary transformers checkpoints (Llama or Qwen2 architecture, `save_pretrained`)
with a byte-level BPE tokenizer saved beside them, so everything downstream (`load_model`, PEFT,
`generate`, the trainers) treats them exactly like hub models. `pretrain_micro` caches them under
`out_root/<params hash>/{student,teacher}` with their loss curves and held-out accuracies.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from cotrepro.params import param
from cotrepro.store import stable_hash

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"


# ---------------------------------------------------------------------------------------------
# Tokenizer and model builders


def build_tokenizer(texts: list[str], vocab_size: int, out_dir: str | Path | None = None):
    """A byte-level BPE tokenizer trained offline on `texts`, as a transformers fast tokenizer.

    Digits are split one per token (so column arithmetic is learnable and numbers never merge
    into opaque chunks); every byte is in the vocabulary, so any text round-trips exactly.
    Encoding prepends BOS (as Llama's tokenizer does), so a prompt encoded alone starts the way
    training documents started. Saved in HF format to `out_dir` if given.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)])
    hf_tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS,
                                           pad_token=PAD, padding_side="left")
    if out_dir is not None:
        hf_tokenizer.save_pretrained(out_dir)
    return hf_tokenizer


@dataclass(frozen=True)
class MicroModelParams:
    """The shape of a micro model (a real Llama or Qwen2 architecture, just small)."""

    arch: Literal["llama", "qwen2"] = param("llama", "architecture", choices=("llama", "qwen2"))
    n_layers: int = param(4, "transformer blocks", ge=1)
    d_model: int = param(128, "hidden size", ge=8)
    n_heads: int = param(4, "attention heads", ge=1)
    n_kv_heads: int = param(2, "key/value heads (grouped-query attention)", ge=1)
    d_ff: int = param(384, "MLP inner size", ge=8)
    max_seq_len: int = param(160, "longest sequence (positions)", ge=16)


def _config(arch: str, tokenizer, **sizes):
    from transformers import Gemma2Config, LlamaConfig, Qwen2Config

    special = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                   tie_word_embeddings=True)
    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config, "gemma2": Gemma2Config}[arch]
    return config_class(**special, **sizes)


def build_micro_model(params: MicroModelParams, tokenizer, seed: int = 0):
    """A randomly initialised micro model (a transformers `PreTrainedModel`) for `tokenizer`."""
    from transformers import AutoModelForCausalLM

    if params.d_model % params.n_heads or params.n_heads % params.n_kv_heads:
        raise ValueError(f"d_model ({params.d_model}) must divide by n_heads ({params.n_heads}) "
                         f"and n_heads by n_kv_heads ({params.n_kv_heads})")
    config = _config(params.arch, tokenizer, hidden_size=params.d_model, intermediate_size=params.d_ff,
                     num_hidden_layers=params.n_layers, num_attention_heads=params.n_heads,
                     num_key_value_heads=params.n_kv_heads, max_position_embeddings=params.max_seq_len)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


_TINY_TEXT = ("The quick brown fox jumps over the lazy dog. Problem: 12 + 5 = 17, 3 * 4 = 12, 20 - 7 = 13.\n"
              "Solution: step by step. Final Answer: The final answer is $42$. I hope it is correct.\n"
              "def add(a, b):\n    return a + b\nassert add(1, 2) == 3\n<answer> (1 + 2) / 3 </answer>\n")


def tiny_random_model(arch: Literal["qwen2", "llama", "gemma2"], out_dir: str | Path | None = None):
    """A tiny randomly initialised model of a real architecture, with a small offline tokenizer.

    For tests: the real tokenizers cannot be downloaded here. With `out_dir`, model and tokenizer
    are saved there so `load_model(out_dir)` loads them like a hub checkpoint.
    """
    from transformers import AutoModelForCausalLM

    if arch not in ("qwen2", "llama", "gemma2"):
        raise ValueError(f"unknown architecture {arch!r}; choose qwen2, llama or gemma2")
    tokenizer = build_tokenizer([_TINY_TEXT] * 4, vocab_size=300)
    sizes = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=256)
    if arch == "gemma2":
        sizes.update(head_dim=8, query_pre_attn_scalar=8, sliding_window=64)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(arch, tokenizer, **sizes), dtype=torch.float32)
    if out_dir is not None:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        model.name_or_path = str(out_dir)
    model.eval()
    return model, tokenizer


# ---------------------------------------------------------------------------------------------
# Pretraining the micro world


def _student_shape() -> MicroModelParams:
    return MicroModelParams(arch="llama", n_layers=4, d_model=96, n_heads=4, n_kv_heads=2, d_ff=256)


def _teacher_shape() -> MicroModelParams:
    return MicroModelParams(arch="llama", n_layers=4, d_model=128, n_heads=4, n_kv_heads=2, d_ff=384)


@dataclass(frozen=True)
class PretrainParams:
    """The micro world: corpora, model shapes and training budget of the student and teacher."""

    student: MicroModelParams = param(help="student base model shape", default_factory=_student_shape)
    teacher: MicroModelParams = param(help="teacher model shape (larger than the student)", default_factory=_teacher_shape)
    vocab_size: int = param(512, "BPE vocabulary size (digits are always single tokens)", ge=300)
    template: str = param("arith", "prompt template framing arith problems in the corpora (as in the experiments)")
    max_value: int = param(99, "largest operand or intermediate value of arith problems", ge=20)
    n_step_lines: int = param(3000, "documents of 4-8 single-operation lines ('12 + 5 = 17'), both models", ge=0)
    n_one_step: int = param(3000, "one-step arith problems solved step by step, both models", ge=0)
    n_statements: int = param(2000, "multi-step arith problem statements without solutions, both models", ge=0)
    n_other_tasks: int = param(500, "countdown and star-graph statements each (solved ones for the teacher)", ge=0)
    n_multi_step: int = param(12000, "multi-step (2-4 steps) arith problems solved step by step: teacher only", ge=0)
    wrong_step_share: float = param(0.1, "share of the teacher's multi-step traces with one wrong step, "
                                         "its error carried on consistently (so W traces are partly right)", ge=0.0, le=1.0)
    student_steps: int = param(1000, "optimizer steps for the student", ge=1)
    teacher_steps: int = param(1600, "optimizer steps for the teacher", ge=1)
    batch_size: int = param(16, "documents per optimizer step", ge=1)
    lr: float = param(3e-3, "peak learning rate (AdamW, cosine decay, 5% warmup)", gt=0.0)
    teacher_lr: float | None = param(None, "the teacher's peak learning rate (null = lr): the two models "
                                     "learn best at different rates (LOG.md, 2026-11-21)", gt=0.0)
    n_eval: int = param(200, "held-out arith test problems for the greedy accuracy report", ge=0)
    # One thread: on a 2-core machine shared with other work, 2 OpenMP threads spin-wait and ran
    # 5x slower per step than 1 (measured); with cores to spare, raise it.
    threads: int = param(1, "torch CPU threads during pretraining", ge=1)
    seed: int = param(0, "seed of corpora and initialisation", ge=0)


def _single_step_lines(rng: random.Random, max_value: int) -> str:
    """4-8 random true single-operation lines of the kinds arith problems use."""
    lines = []
    for _ in range(rng.randint(4, 8)):
        op = rng.choice("+-*/")
        if op == "+":
            a = rng.randint(1, max_value - 1)
            b = rng.randint(1, max_value - a)
            c = a + b
        elif op == "-":
            a = rng.randint(2, max_value)
            b = rng.randint(1, a - 1)
            c = a - b
        elif op == "*":
            b = rng.randint(2, 9)
            a = rng.randint(1, max(1, max_value // b))
            c = a * b
        else:
            b = rng.randint(2, 5)
            c = rng.randint(1, max_value // b)
            a = c * b
        lines.append(f"{a} {op} {b} = {c}")
    return "\n".join(lines)


_EVENT_OPS = {"gain": "+", "lose": "-", "times": "*", "share": "/", "gain_groups": "+", "lose_groups": "-"}


def _wrong_step_trace(problem, rng: random.Random) -> str | None:
    """The stepwise trace of an arith `problem` with one result off by 1-3 and every later step
    computed correctly from the wrong value, by replaying the story's events (None if no offset
    keeps the later steps valid: exact division, no negative counts)."""
    n_steps = len(problem.meta["steps"])
    wrong = rng.randrange(n_steps)
    for delta in rng.sample([-3, -2, -1, 1, 2, 3], 6):
        lines, index, count = [], 0, problem.meta["start"]

        def write(a: int, op: str, b: int) -> int | None:
            nonlocal index
            if op == "/" and a % b:
                return None
            result = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op] + (delta if index == wrong else 0)
            index += 1
            lines.append(f"{a} {op} {b} = {result}")
            return result if result >= 0 else None

        for event in problem.meta["events"]:
            numbers = event["numbers"]
            if len(numbers) == 2:  # groups: the product first, then it is added or taken away
                product = write(numbers[0], "*", numbers[1])
                count = None if product is None else write(count, _EVENT_OPS[event["kind"]], product)
            else:
                count = write(count, _EVENT_OPS[event["kind"]], numbers[0])
            if count is None:
                break
        else:
            return "\n".join(lines + [f"#### {count}"])
    return None


def build_corpora(params: PretrainParams) -> dict[str, list[str]]:
    """The student's and the teacher's training documents (see the module docstring)."""
    from cotrepro.tasks import arith, countdown, stargraph

    rng = random.Random(params.seed)
    task = arith.TASK

    def train_split(problems):  # never train the micro world on arith test questions
        return [p for p in problems if arith.split_of(p.question) == "train"]

    def solved(problem, trace):
        return task.prompt(problem, params.template) + trace

    shared = [_single_step_lines(rng, params.max_value) for _ in range(params.n_step_lines)]
    one_step = train_split(arith.generate_problems(2 * params.n_one_step, params.seed + 1, n_steps=(1, 1),
                                                   max_value=params.max_value))[:params.n_one_step]
    shared += [solved(p, arith.render_stepwise(p)) for p in one_step]
    statements = train_split(arith.generate_problems(2 * params.n_statements, params.seed + 2, n_steps=(2, 4),
                                                     max_value=params.max_value))[:params.n_statements]
    shared += [p.question for p in statements]  # no "Answer:" line: the student must not learn to stop there
    puzzles = countdown.generate_problems(params.n_other_tasks, params.seed + 3)
    graphs = stargraph.generate_problems(params.n_other_tasks, params.seed + 4)
    student = shared + [p.question for p in puzzles] + [p.question for p in graphs]

    multi = train_split(arith.generate_problems(2 * params.n_multi_step, params.seed + 5, n_steps=(2, 4),
                                                max_value=params.max_value))[:params.n_multi_step]
    traces = []
    for p in multi:
        wrong = _wrong_step_trace(p, rng) if rng.random() < params.wrong_step_share else None
        traces.append(solved(p, wrong or arith.render_stepwise(p)))
    teacher = (shared + traces + [f"{p.question}\n{p.solution}" for p in puzzles]
               + [f"{p.question}{p.solution}" for p in graphs])
    rng.shuffle(student)
    rng.shuffle(teacher)
    return {"student": student, "teacher": teacher}


def _collate(pad_id: int):
    """Right-padded batches with the loss masked on padding (positions then start at 0 for all)."""
    def collate(features: list[dict]) -> dict:
        longest = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, f in enumerate(features):
            ids[row, :len(f["input_ids"])] = torch.tensor(f["input_ids"])
            mask[row, :len(f["input_ids"])] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}
    return collate


def _train(model, tokenizer, documents: list[str], steps: int, lr: float, params: PretrainParams,
           out_dir: Path) -> list[dict]:
    """Train `model` on `documents` (BOS + text + EOS each) with the transformers Trainer.

    Measured on a 0.8M-param model, batch 32 x 96 tokens, one thread: the Trainer costs about 12%
    per step over a bare torch loop (0.29 vs 0.26 CPU-s), small enough to keep the standard loop.
    """
    from transformers import PrinterCallback, Trainer, TrainingArguments

    max_len = model.config.max_position_embeddings
    encoded = tokenizer(documents)["input_ids"]
    dataset = [{"input_ids": (ids + [tokenizer.eos_token_id])[:max_len]} for ids in encoded]
    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"), max_steps=steps, per_device_train_batch_size=params.batch_size,
        learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.01,
        logging_steps=max(1, steps // 50), save_strategy="no", report_to="none", use_cpu=True,
        seed=params.seed, disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=_collate(tokenizer.pad_token_id))
    trainer.remove_callback(PrinterCallback)  # the loss curve is saved to loss.json instead
    trainer.train()
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)  # nothing is checkpointed there; keep the model dir clean
    return [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h]


def multi_step_accuracy(model, tokenizer, n: int, template: str = "arith", n_steps: tuple[int, int] = (2, 4),
                        max_value: int = 99) -> float:
    """Greedy accuracy on the first `n` arith test problems with `n_steps` steps."""
    from cotrepro.generate import SamplingParams, sample
    from cotrepro.tasks import arith
    from cotrepro.tasks.prompts import get_template

    task = arith.ArithTask(n_steps=n_steps, max_value=max_value)
    problems = task.load("test", limit=n)
    prompts = [task.prompt(p, template) for p in problems]
    sampling = SamplingParams(max_new_tokens=64, stop=get_template("arith", template).stop, batch_size=64)
    completions = sample(model, tokenizer, prompts, sampling, progress=False)
    return sum(task.verify(p, c[0]).correct for p, c in zip(problems, completions)) / max(1, len(problems))


def pretrain_micro(params: PretrainParams = PretrainParams(), out_root: str | Path = "runs/micro") -> dict[str, str]:
    """Train (or reuse) the micro student base and teacher; returns {"student", "teacher", "report"} paths.

    Cached under `out_root/<params hash>`: a second call with the same params returns at once.
    Each model directory holds the checkpoint, its tokenizer and `loss.json`; `report.json` holds
    timings and greedy held-out accuracies (multi-step for both models, one-step for the student).
    """
    root = Path(out_root) / stable_hash(params)
    paths = {"student": str(root / "student"), "teacher": str(root / "teacher"), "report": str(root / "report.json")}
    if Path(paths["report"]).is_file():
        return paths
    threads = torch.get_num_threads()
    torch.set_num_threads(params.threads)
    try:
        corpora = build_corpora(params)
        tokenizer = build_tokenizer(corpora["teacher"], params.vocab_size)
        report: dict = {"params_hash": root.name}
        for role, shape, steps in (("student", params.student, params.student_steps),
                                   ("teacher", params.teacher, params.teacher_steps)):
            out_dir = Path(paths[role])
            started = time.time()
            model = build_micro_model(shape, tokenizer, seed=params.seed)
            lr = params.teacher_lr if role == "teacher" and params.teacher_lr else params.lr
            curve = _train(model, tokenizer, corpora[role], steps, lr, params, out_dir)
            model.eval()
            model.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
            (out_dir / "loss.json").write_text(json.dumps(curve))
            report[role] = {"params": model.num_parameters(), "documents": len(corpora[role]),
                            "train_seconds": round(time.time() - started, 1), "final_loss": curve[-1]["loss"],
                            "multi_step_accuracy": multi_step_accuracy(model, tokenizer, params.n_eval, params.template,
                                                                          max_value=params.max_value)}
            if role == "student":
                report[role]["one_step_accuracy"] = multi_step_accuracy(model, tokenizer, params.n_eval,
                                                                        params.template, n_steps=(1, 1),
                                                                        max_value=params.max_value)
        root.mkdir(parents=True, exist_ok=True)
        (root / "report.json").write_text(json.dumps(report, indent=2))  # written last: marks the cache complete
    finally:
        torch.set_num_threads(threads)
    return paths

"""The micro world: a student base, its teacher and a star-graph model, trained from scratch on CPU.

At paper scale the experiments start from hub checkpoints: a pretrained student that can do the
steps of a task but not yet the task, and a stronger model of the same family whose traces are
sometimes right and sometimes wrong. The micro world plays that part on CPU, on the `arith` task
(multi-step word problems, answers spread evenly over 2..120):

- **Student base** (Llama, 0.45M parameters). Its corpus has the *pieces* of solutions and a
  latent form of the task: single-operation lines ("12 + 5 = 17"), solved one- and two-step
  problems, statements of longer problems, some countdown and star-graph text, and 2-4 step
  problems solved step by step in a *textbook framing* (the question, then its steps, no
  "Question:"/"Answer:"), while in the experiments' framing ("Question: ... Answer:") it has read
  longer problems with only their answer line ("#### 57"), as web text gives answers without
  working. So, like a pretrained model, it can work multi-step problems out when the context calls
  for it, but answers the experiments' prompt directly and mostly wrongly: fine-tuning on traces
  in that framing teaches it to show its work (LOG.md, 2026-12-02, pilot p10). Most solved
  problems are written step by step (its own style); a share of the short ones are in the human
  style (`arith.render_human`: terse lines, merged expressions, `<<a*b=c>>` annotations), so
  every token of the human traces is one it has read, as a pretrained model has read
  human-written solutions.
- **Teacher** (Llama, same tokenizer, 0.84M parameters). The corpus the student shares (not its
  textbook-framed or answer-only documents) plus multi-step problems solved step by step in the
  experiments' framing: larger, and trained on more of the task (for fewer optimizer steps than
  the student, 8,000 against 10,000: LOG.md, pilot p14), as a bigger model of the same family (an
  instruction-tuned one) is. Its wrong traces are its own mistakes: nothing is injected. It has
  also practised rewriting a human solution given as a hint into its own style (the paraphrase
  prompt of SoT-4), as an instruction-tuned model can follow "rewrite this", but too little to
  keep the answer of most rewrites.
- **Paraphraser** (the teacher's shape, tokenizer and budget): the teacher's corpus plus many
  more rewrite documents, so it keeps the answer in most rewrites, as a model tuned for
  rewriting does. The teacher itself cannot be given that many: with 20,000 more it kept 51% of
  its rewrites and its own accuracy left the 55-85% band (LOG.md, pilot p17).
- **Star-graph models** (Bachmann and Nagarajan 2024; Llama, 3 layers, 0.19M parameters, one per
  seed): trained from scratch with teacher forcing on gold paths in their text format, one
  token per node label (a label and the comma after it read as one token, so the later steps
  are a plain lookup). They learn the edge lookup of the later steps and leave the first step,
  which needs planning, near chance: the "Clever Hans" shortcut (ST-8).

`build_world(params, out_dir)` trains them all and writes each as a `save_pretrained` folder
(model and tokenizer) with its loss and accuracy curves, and `world.json`: the params and their
hash, CPU time, and held-out accuracies with 95% intervals. `cotrepro world build` runs it; the
shipped copy under `world/` is what `make reproduce` uses (`cotrepro.world` checks its hashes).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from cotrepro.params import param, to_dict
from cotrepro.pretrain import train_from_scratch
from cotrepro.store import stable_hash
from cotrepro.tiny import MicroModelParams, build_micro_model, build_symbol_tokenizer, build_word_tokenizer


@dataclass(frozen=True)
class ArithWorldParams:
    """The student and teacher: corpora, shapes and training budgets."""

    student: MicroModelParams = param(help="student base shape", default_factory=lambda: MicroModelParams(
        arch="llama", n_layers=4, d_model=96, n_heads=4, n_kv_heads=2, d_ff=256))
    teacher: MicroModelParams = param(help="teacher shape (same architecture, larger)", default_factory=lambda: (
        MicroModelParams(arch="llama", n_layers=4, d_model=128, n_heads=4, n_kv_heads=2, d_ff=384)))
    template: str = param("arith", "prompt template framing the solved problems (as the experiments prompt)")
    max_value: int = param(120, "largest operand, intermediate value or answer", ge=20)
    n_step_lines: int = param(6000, "documents of 4-8 single-operation lines, both models", ge=0)
    n_one_step: int = param(12000, "solved one-step problems, both models", ge=0)
    n_two_step: int = param(5000, "solved two-step problems, both models (the student's bit of the task)", ge=0)
    human_share: float = param(0.25, "share of the solved one- and two-step problems written in the human "
                                     "style (so every human-trace token is one the student has read)", ge=0.0, le=1.0)
    n_statements: int = param(1000, "statements of 2-4 step problems without solutions, both models", ge=0)
    n_other_tasks: int = param(300, "countdown and star-graph statements each (solved for the teacher)", ge=0)
    n_multi_step: int = param(30000, "solved 2-4 step problems, step by step: the teacher only", ge=0)
    n_student_multi_step: int = param(0, "solved 2-4 step problems, step by step, in the student's corpus (a "
                                         "pretrained student has seen some of the task)", ge=0)
    n_student_worked: int = param(20000, "solved 2-4 step problems in a textbook framing (the question, then its "
                                     "steps; no Question:/Answer:), the student only: a skill the experiments' "
                                     "prompt does not yet call up, as a pretrained model's", ge=0)
    n_student_direct: int = param(4000, "2-4 step problems in the experiments' framing with only the answer line "
                                     "(\"#### N\"), the student only: question-answer text without working, "
                                     "as the web has", ge=0)
    n_rewrites: int = param(1500, "2-4 step problems shown with a human solution as a hint and solved step by "
                                  "step (the paraphrase prompt of SoT-4): the teacher only", ge=0)
    paraphraser_rewrites: int = param(200_000, "rewrite documents beyond n_rewrites in the paraphraser's corpus "
                                               "(0: no paraphraser): the teacher's corpus plus these, its shape "
                                               "and budget (LOG.md, pilots p17 and p18)", ge=0)
    student_steps: int = param(10000, "optimizer steps of the student", ge=1)
    teacher_steps: int = param(8000, "optimizer steps of the teacher", ge=1)
    batch_size: int = param(32, "documents per optimizer step", ge=1)
    student_lr: float = param(5e-3, "peak learning rate of the student (AdamW, cosine to 0, 5% warmup)", gt=0.0)
    teacher_lr: float = param(5e-3, "peak learning rate of the teacher", gt=0.0)


@dataclass(frozen=True)
class StarWorldParams:
    """The star-graph model: graphs, shape and budget (Bachmann and Nagarajan 2024)."""

    degree: int = param(2, "arms per star (the shortcut's first-step accuracy is 1/degree)", ge=2)
    path_length: int = param(5, "nodes on a path from the center to a leaf, both included", ge=2)
    n_nodes: int = param(50, "distinct node labels, one token each", ge=3)
    model: MicroModelParams = param(help="model shape", default_factory=lambda: MicroModelParams(
        arch="llama", n_layers=3, d_model=64, n_heads=4, n_kv_heads=2, d_ff=256, max_seq_len=96))
    n_train: int = param(50_000, "training graphs (Bachmann and Nagarajan: 200,000)", ge=1)
    steps: int = param(6000, "optimizer steps (loss on the path only: teacher forcing)", ge=1)
    batch_size: int = param(64, "graphs per optimizer step", ge=1)
    lr: float = param(3e-3, "peak learning rate", gt=0.0)
    seeds: tuple[int, ...] = param((0, 1, 2), "one model per training seed (folders stargraph-s<seed>): the "
                                              "SFT arm of ST-8 has a seed spread like every other arm", ge=0)


@dataclass(frozen=True)
class WorldParams:
    """The whole micro world (`cotrepro world build`)."""

    arith: ArithWorldParams = param(default_factory=ArithWorldParams, help="student and teacher")
    stargraph: StarWorldParams = param(default_factory=StarWorldParams, help="star-graph model")
    n_eval: int = param(1000, "held-out problems behind each reported accuracy", ge=1)
    n_curve: int = param(200, "held-out problems behind each point of the accuracy curves", ge=1)
    curve_every: int = param(500, "optimizer steps between points of the accuracy curves (0: none)", ge=0)
    # One thread: two OpenMP threads on a 2-core machine shared with other work spin-wait and ran
    # 5x slower per step than one (LOG.md, 2026-11-21).
    threads: int = param(1, "torch CPU threads", ge=1)
    seed: int = param(0, "seed of the corpora, initialisation and data order", ge=0)


# ---------------------------------------------------------------------------------------------
# Corpora


def _single_step_lines(rng: random.Random, max_value: int) -> str:
    """4-8 random true single-operation lines of the kinds arith problems use."""
    lines = []
    for _ in range(rng.randint(4, 8)):
        op = rng.choice("+-*/")
        if op == "+":
            a = rng.randint(2, max_value - 2)
            b = rng.randint(2, min(20, max_value - a))
            c = a + b
        elif op == "-":
            a = rng.randint(4, max_value)
            b = rng.randint(2, min(20, a - 2))
            c = a - b
        elif op == "*":
            b = rng.randint(2, 9)
            a = rng.randint(2, max(2, max_value // b))
            c = a * b
        else:
            b = rng.randint(2, 5)
            c = rng.randint(2, max(2, max_value // b))
            a = c * b
        lines.append(f"{a} {op} {b} = {c}")
    return "\n".join(lines)


def build_corpora(params: ArithWorldParams, seed: int = 0) -> dict[str, list[str]]:
    """The student's and the teacher's training documents (see the module docstring)."""
    from cotrepro.tasks import arith, countdown, stargraph
    from cotrepro.tasks.prompts import get_template, render

    rng = random.Random(seed)
    task = arith.ArithTask(max_value=params.max_value)

    def train_split(problems):  # never train the micro world on arith test questions
        return [p for p in problems if arith.split_of(p.question) == "train"]

    def problems(n: int, offset: int, n_steps: tuple[int, int]):
        generated = arith.generate_problems(2 * n, seed + offset, n_steps=n_steps, max_value=params.max_value)
        return train_split(generated)[:n]

    def solved(problem, human: bool = False):
        trace = arith.render_human(problem) if human else arith.render_stepwise(problem)
        return task.prompt(problem, params.template) + trace

    shared = [_single_step_lines(rng, params.max_value) for _ in range(params.n_step_lines)]
    short = problems(params.n_one_step, 1, (1, 1)) + problems(params.n_two_step, 6, (2, 2))
    shared += [solved(p, human=rng.random() < params.human_share) for p in short]
    # no "Answer:" line after a statement: the student must not learn to stop there
    shared += [p.question for p in problems(params.n_statements, 2, (2, 4))]
    puzzles = countdown.generate_problems(params.n_other_tasks, seed + 3)
    graphs = stargraph.generate_problems(params.n_other_tasks, seed + 4)
    student = shared + [p.question for p in puzzles] + [p.question for p in graphs]
    hint = get_template("micro", "paraphrase")

    def rewritten(problem):  # the paraphrase prompt, then the human solution in the teacher's style
        prompt = render(hint, question=problem.question, trace=arith.render_human(problem))
        return prompt + arith.render_stepwise(problem)

    rewrites = [rewritten(p) for p in problems(params.n_rewrites, 7, (2, 4))]
    teacher = (shared + [solved(p) for p in problems(params.n_multi_step, 5, (2, 4))] + rewrites
               + [f"{p.question}\n{p.solution}" for p in puzzles] + [f"{p.question}{p.solution}" for p in graphs])
    rng.shuffle(student)
    rng.shuffle(teacher)
    # After the shuffle: the trainer draws its batches at random, so where a document sits does
    # not matter to training, but the tokenizer numbers pieces by first appearance in the
    # teacher's corpus, and the paraphraser's documents must leave it (and the student) as it is.
    paraphraser = teacher + [rewritten(p) for p in problems(params.paraphraser_rewrites, 31, (2, 4))]
    # placed with their own generator, so the other documents (and the teacher's) keep their order
    mixer = random.Random(seed + 9)
    for doc in [solved(p) for p in problems(params.n_student_multi_step, 8, (2, 4))]:
        student.insert(mixer.randrange(len(student) + 1), doc)
    latent = problems(params.n_student_worked + params.n_student_direct, 20, (2, 4))
    worked = [f"{p.question}\n{arith.render_stepwise(p)}" for p in latent[:params.n_student_worked]]
    direct = [task.prompt(p, params.template) + f"#### {p.answer}" for p in latent[params.n_student_worked:]]
    mixer = random.Random(seed + 29)  # its own generator again: the documents above keep their places
    for doc in worked + direct:
        student.insert(mixer.randrange(len(student) + 1), doc)
    corpora = {"student": student, "teacher": teacher}
    return corpora | ({"paraphraser": paraphraser} if params.paraphraser_rewrites else {})


# ---------------------------------------------------------------------------------------------
# Held-out accuracy


def arith_accuracy(model, tokenizer, problems, template: str = "arith", max_new_tokens: int = 160) -> dict:
    """Greedy accuracy and parse rate on arith `problems` (per-problem outcomes in `correct`)."""
    from cotrepro.generate import SamplingParams, sample
    from cotrepro.tasks import arith
    from cotrepro.tasks.prompts import get_template

    task = arith.ArithTask()
    prompts = [task.prompt(p, template) for p in problems]
    sampling = SamplingParams(max_new_tokens=max_new_tokens, stop=get_template("arith", template).stop,
                              batch_size=64)
    outputs = [c[0] for c in sample(model, tokenizer, prompts, sampling, progress=False)]
    verdicts = [task.verify(p, c) for p, c in zip(problems, outputs)]
    return {"accuracy": sum(v.correct for v in verdicts) / len(problems),
            "parsed": sum(v.extracted is not None for v in verdicts) / len(problems),
            "correct": [v.correct for v in verdicts]}


def next_node_hits(model, tokenizer, problems, prompts, batch_size: int = 64) -> tuple[list[float], list[list[float]]]:
    """Per problem, whether the greedy next node given the gold path so far is right: at the first
    step (after "start,"), and at each later step (the lookup the shortcut does well). A node
    and its comma are one token ("7,"); the last node stands alone ("7")."""
    from cotrepro.generate import SamplingParams, sample

    contexts, owners = [], []
    for i, (p, prompt) in enumerate(zip(problems, prompts)):
        gold = p.answer.split(",")
        for j in range(1, len(gold)):
            contexts.append(prompt + ",".join(gold[:j]) + ",")
            owners.append((i, j))
    nexts = sample(model, tokenizer, contexts, SamplingParams(max_new_tokens=1, batch_size=batch_size), progress=False)
    first = [0.0] * len(problems)
    later: list[list[float]] = [[] for _ in problems]
    for (i, j), out in zip(owners, nexts):
        hit = float(out[0].strip().rstrip(",") == problems[i].answer.split(",")[j])
        if j == 1:
            first[i] = hit
        else:
            later[i].append(hit)
    return first, later


def star_accuracy(model, tokenizer, problems) -> dict:
    """Greedy path accuracy, first-step and later-step accuracy (`next_node_hits`)."""
    from cotrepro.generate import SamplingParams, sample
    from cotrepro.tasks.stargraph import StarGraphTask

    task = StarGraphTask()
    paths = [c[0] for c in sample(model, tokenizer, [p.question for p in problems],
                                  SamplingParams(max_new_tokens=24, stop=("\n",), batch_size=64), progress=False)]
    first, later = next_node_hits(model, tokenizer, problems, [p.question for p in problems])
    later_hits = [h for hits in later for h in hits]
    return {"accuracy": sum(task.verify(p, c).correct for p, c in zip(problems, paths)) / len(problems),
            "first_step": sum(first) / len(first), "later_steps": sum(later_hits) / len(later_hits)}


# ---------------------------------------------------------------------------------------------
# Building the world


def _held_out(params: WorldParams, n: int, n_steps: tuple[int, int]):
    from cotrepro.tasks import arith

    return arith.ArithTask(n_steps=n_steps, max_value=params.arith.max_value).load("test", limit=n)


def _with_interval(result: dict, n: int) -> dict:
    from cotrepro.stats import binomial_ci

    ci = binomial_ci(round(result["accuracy"] * n), n)
    return {k: v for k, v in result.items() if k != "correct"} | {"low": ci.low, "high": ci.high, "n": n}


def build_arith_models(params: WorldParams, out_dir: Path, roles=("teacher", "student")) -> dict:
    """Train the arith models `roles` (teacher, student, paraphraser) into `out_dir/<role>`;
    returns their reports."""
    a = params.arith
    corpora = build_corpora(a, params.seed)
    tokenizer = build_word_tokenizer(corpora["teacher"], max_number=max(a.max_value, 100))
    curve_problems = _held_out(params, params.n_curve, (2, 4))
    reports = {}
    for role in roles:
        if (out_dir / role / "report.json").is_file():  # built by an earlier, interrupted build
            reports[role] = json.loads((out_dir / role / "report.json").read_text())
            continue
        shape, steps, lr = ((a.student, a.student_steps, a.student_lr) if role == "student"
                            else (a.teacher, a.teacher_steps, a.teacher_lr))
        started = time.process_time()
        model = build_micro_model(shape, tokenizer, seed=params.seed)
        curves = train_from_scratch(
            model, tokenizer, [("", doc) for doc in corpora[role]], steps=steps, lr=lr, batch_size=a.batch_size,
            seed=params.seed, out_dir=out_dir / role, curve_every=params.curve_every,
            curve=lambda m: {k: v for k, v in arith_accuracy(m, tokenizer, curve_problems, a.template).items()
                             if k != "correct"})
        cpu_s = time.process_time() - started
        model.save_pretrained(out_dir / role)
        tokenizer.save_pretrained(out_dir / role)
        (out_dir / role / "curves.json").write_text(json.dumps(curves, indent=1))
        report = {"parameters": model.num_parameters(), "documents": len(corpora[role]), "train_cpu_s": round(cpu_s, 1)}
        for label, n_steps in (("multi_step", (2, 4)), ("two_step", (2, 2)), ("one_step", (1, 1))):
            result = arith_accuracy(model, tokenizer, _held_out(params, params.n_eval, n_steps), a.template)
            report[label] = _with_interval(result, params.n_eval)
        report["cpu_s"] = round(time.process_time() - started, 1)
        (out_dir / role / "report.json").write_text(json.dumps(report, indent=1))
        reports[role] = report
    return reports


def build_star_models(params: WorldParams, out_dir: Path) -> dict:
    """Train one star-graph model per seed into `out_dir/stargraph-s<seed>`; returns their reports."""
    from cotrepro.tasks.stargraph import StarGraphTask

    s = params.stargraph
    task = StarGraphTask(degree=s.degree, path_length=s.path_length, n_nodes=s.n_nodes)
    # A label and its comma are one token ("12,"): an edge "12,7" then puts its end right after its
    # start, so the lookup of the later steps is a plain induction (find the current node's
    # "12,", copy what follows). With a separate comma the end is two tokens after the start, the
    # same distance as the next edge's start from this one's end, and the models of LOG.md
    # (2026-12-01, p4 and p5) stayed at 44-50% on the later steps.
    labels = [str(i) for i in range(s.n_nodes)]
    tokenizer = build_symbol_tokenizer(labels + [f"{label}," for label in labels] + list(",|/=\n"), label_comma=True)
    test = task.load("test", limit=params.n_eval, seed=params.seed)
    reports = {}
    for seed in s.seeds:
        folder = out_dir / f"stargraph-s{seed}"
        if (folder / "report.json").is_file():
            reports[folder.name] = json.loads((folder / "report.json").read_text())
            continue
        train = task.load("train", limit=s.n_train, seed=params.seed + seed)
        started = time.process_time()
        model = build_micro_model(s.model, tokenizer, seed=seed)
        curves = train_from_scratch(model, tokenizer, [(p.question, p.answer + "\n") for p in train], steps=s.steps,
                                    lr=s.lr, batch_size=s.batch_size, seed=seed, out_dir=folder,
                                    curve_every=params.curve_every,
                                    curve=lambda m: star_accuracy(m, tokenizer, test[:params.n_curve]))
        cpu_s = time.process_time() - started
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / "curves.json").write_text(json.dumps(curves, indent=1))
        result = star_accuracy(model, tokenizer, test)
        reports[folder.name] = {"parameters": model.num_parameters(), "graphs": len(train),
                                "train_cpu_s": round(cpu_s, 1), **_with_interval(result, params.n_eval),
                                "shortcut_level": 1 / s.degree, "cpu_s": round(time.process_time() - started, 1)}
        (folder / "report.json").write_text(json.dumps(reports[folder.name], indent=1))
    return reports


def build_world(params: WorldParams, out_dir: str | Path, parts=("arith", "paraphraser", "stargraph")) -> dict:
    """Train the micro world into `out_dir` and write `world.json` (see the module docstring)."""
    import torch

    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(params.threads)
    try:
        report: dict = {"params": to_dict(params), "params_hash": stable_hash(params)}
        roles = (["teacher", "student"] if "arith" in parts else []) + \
            (["paraphraser"] if "paraphraser" in parts and params.arith.paraphraser_rewrites else [])
        if roles:  # their corpora and tokenizer are built only when a model needs them
            report.update(build_arith_models(params, out_dir, roles))
        if "stargraph" in parts:
            report.update(build_star_models(params, out_dir))
    finally:
        torch.set_num_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "world.json").write_text(json.dumps(report, indent=2))
    return report

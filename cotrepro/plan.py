"""`cotrepro plan PARAMS.yaml`: what a run will cost before it starts.

Counts the work a step's params ask for (problems, sampled completions, Monte Carlo rollouts,
fine-tuning runs and training tokens) and turns it into hours on the machine at hand using the
throughput measured by the benchmarks (`bench/results/throughput.json`, written by
`bench/bench_*.py`). The counts are upper bounds: every completion is costed at `max_new_tokens`
and every training example at the task's typical length. The estimate is only as good as the
benchmark was for this machine; the output says which measurement it used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cotrepro.config import REPO_ROOT, ExperimentParams, load_experiment

THROUGHPUT = REPO_ROOT / "bench" / "results" / "throughput.json"
# typical prompt + completion tokens of one training example (measured on the tokenizers in use:
# the micro BPE for arith, the Qwen2.5 tokenizer for the benchmarks)
EXAMPLE_TOKENS = {"arith": 90, "stargraph": 60, "gsm8k": 300, "math": 550, "math500": 550,
                  "countdown": 250, "mbpp": 300}


@dataclass
class Cost:
    problems: int = 0
    samples: int = 0  # completions generated (teacher traces, evaluations, RFT samples, paraphrases)
    rollouts: int = 0  # Monte Carlo rollouts for step values
    runs: int = 0  # fine-tuning runs
    train_tokens: int = 0  # tokens seen by the optimiser, summed over runs and epochs
    notes: list[str] = field(default_factory=list)


def step_cost(name: str, p: ExperimentParams) -> Cost:
    """The work of step `name` (the notebook name without its number) under params `p`."""
    t, s, e = p.task, p.sampling, p.eval
    per_example = EXAMPLE_TOKENS.get(t.name, 300)
    eval_samples = t.n_test * (1 + e.k)  # greedy pass@1 plus k samples for pass@k / maj@k
    c = Cost(problems=t.n_train + t.n_test)
    if name in ("verifier_sanity", "pretrain_micro_world", "write_findings"):
        c.problems = 0
    if name == "verifier_sanity":
        c.notes.append("grading only: every gold solution of every local benchmark")
    elif name == "pretrain_micro_world":
        m = p.micro
        c.runs = 2
        c.train_tokens = (m.student_steps + m.teacher_steps) * m.batch_size * m.student.max_seq_len
    elif name == "sample_teacher_traces":
        c.samples = t.n_train * s.k
    elif name == "train_on_traces":
        c.runs = len(p.sot.seeds) * sum(cond != "none" for cond in p.sot.conditions)
        c.samples = eval_samples * len(p.sot.seeds) * len(p.sot.conditions)
        c.train_tokens = int(c.runs * t.n_train * p.train.epochs * per_example)
    elif name == "paraphrase_distance":
        c.samples = t.n_train + eval_samples * len(p.sot.seeds)
        c.runs = len(p.sot.seeds)
        c.train_tokens = int(c.runs * t.n_train * p.train.epochs * per_example)
    elif name == "corrupt_steps":
        c.runs = len(p.sot.seeds) * len(p.sot.operators) * len(p.sot.levels)
        c.samples = eval_samples * c.runs
        c.train_tokens = int(c.runs * t.n_train * p.train.epochs * per_example)
    elif name == "scale_synthetic_data":
        g = p.scaling
        seeds = len(g.seeds)
        sizes = {m: g.method_sizes(m) for m in ("sft", "rft", "dpo_step", "dpo_random", "dpo_edit")}
        c.problems = int(max(g.sizes) * g.pool_factor) + t.n_test
        c.samples = (int(max(g.sizes) * g.pool_factor) * g.teacher_samples
                     + seeds * sum(sizes["rft"]) * g.self_samples
                     + seeds * eval_samples * sum(len(v) for v in sizes.values()))
        negatives = seeds * sum(sizes["dpo_step"]) * min(g.self_samples, p.stepvalues.negatives_per_problem)
        c.rollouts = negatives * 4 * p.stepvalues.rollouts  # ~4 steps per arith/GSM8K trace
        c.runs = seeds * sum(len(v) for v in sizes.values())
        c.train_tokens = int(seeds * per_example * p.train.epochs * (
            sum(sizes["sft"]) + sum(sizes["rft"]) * (1 + g.rft_cap)
            + 2 * sum(sizes["dpo_step"]) * p.stepvalues.negatives_per_problem))
        c.notes.append("DPO runs count chosen and rejected sequences; small sizes may train longer (scaling.min_steps)")
    elif name == "inspect_advantages":
        a = p.advantages
        c.problems = a.n_problems
        c.samples = a.n_problems * a.samples
        c.rollouts = (a.max_correct + a.max_incorrect + a.probes) * 4 * p.stepvalues.rollouts
    elif name == "stargraph_shortcut":
        g = p.stargraph
        c.problems = t.n_train + t.n_test
        c.samples = g.dpo_problems * g.samples + 2 * t.n_test
        c.rollouts = g.dpo_problems * g.samples * g.path_length * p.stepvalues.rollouts
        c.runs = 2
        c.train_tokens = int((t.n_train + 2 * g.dpo_problems) * p.train.epochs * EXAMPLE_TOKENS["stargraph"])
    elif name == "write_findings":
        c.notes.append("reads stored results only")
    return c


def machine_kind() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        return "cpu"


def hours(c: Cost, p: ExperimentParams, kind: str) -> tuple[float | None, str]:
    """Estimated hours for `c` on a machine of `kind`, and which measurement it rests on."""
    if not THROUGHPUT.exists():
        return None, "no benchmark measured yet (run `make bench`)"
    measured = json.loads(THROUGHPUT.read_text()).get(kind)
    if not measured:
        return None, f"no {kind} benchmark measured yet (run `make bench` on this machine)"
    gen_tokens = (c.samples * p.sampling.max_new_tokens + c.rollouts * p.sampling.max_new_tokens // 2)
    seconds = gen_tokens / measured["sample_tokens_per_s"] + c.train_tokens / measured["train_tokens_per_s"]
    return seconds / 3600, f"{kind} throughput measured {measured.get('measured', '?')} ({measured.get('machine', '?')})"


def plan(params_file: str | Path) -> str:
    """A human-readable cost summary of one params file."""
    from cotrepro.report import notebook_name

    params_file = Path(params_file)
    p = load_experiment(params_file)
    name = notebook_name(params_file.stem)
    c = step_cost(name, p)
    kind = machine_kind()
    h, basis = hours(c, p, kind)
    lines = [f"{params_file} ({name}, scale {p.scale})",
             f"  problems            {c.problems:>12,}",
             f"  sampled completions {c.samples:>12,}   (each up to {p.sampling.max_new_tokens} new tokens)",
             f"  Monte Carlo rollouts{c.rollouts:>12,}",
             f"  fine-tuning runs    {c.runs:>12,}",
             f"  training tokens     {c.train_tokens:>12,}"]
    lines.append(f"  estimate            {'unknown' if h is None else f'{h:.2f} h'} on this {kind} machine: {basis}")
    previous = _previous_run_seconds(params_file)
    if previous is not None:
        lines.append(f"  measured            a stored run of these params took {previous / 60:.1f} min")
    lines += [f"  note: {n}" for n in c.notes]
    return "\n".join(lines)


def _previous_run_seconds(params_file: Path) -> float | None:
    """The wall time a finished run of these exact params took (from its DONE.json), if any."""
    from cotrepro.pipeline import DONE, run_root
    from cotrepro.store import stable_hash
    from cotrepro.params import to_dict

    p = load_experiment(params_file)
    done = run_root(None) / p.experiment / stable_hash(to_dict(p)) / DONE
    return json.loads(done.read_text()).get("seconds") if done.exists() else None

"""`cotrepro plan`: what a step, or a whole scale, will cost before it starts.

Each step's module counts the work its params ask for (`cost(P, set_size)`: fine-tunes, examples
seen by the optimisers, generated tokens; upper bounds). Turning counts into time needs a
throughput measured on the same kind of model and machine:

- micro and smoke: the CPU rates `bench/bench_*.py` measured for the micro models on this kind of
  machine (`bench/results/throughput.json`), divided by the parallel jobs; and, when a run of
  exactly these params is stored, the time it took.
- paper: GPU-hours from the models' sizes on one H200, under assumptions stated in the output (a
  training step costs 6 x parameters FLOPs per token at 35% of the bf16 peak; vLLM samples at the
  tokens/s given below). Micro-model throughput says nothing about a 1.5B model and is never used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cotrepro import paths, steps

# typical prompt + completion tokens of one training example (micro: the world's tokenizer;
# benchmarks: the Qwen2.5 tokenizer)
EXAMPLE_TOKENS = {"arith": 90, "stargraph": 45, "gsm8k": 300, "math": 550, "math500": 550, "countdown": 250,
                  "mbpp": 300}
# parameters of the paper-scale checkpoints (billions)
BILLIONS = {"Qwen/Qwen2.5-1.5B": 1.54, "google/gemma-2-2b": 2.61, "meta-llama/Llama-3.1-8B": 8.03,
            "Qwen/Qwen2.5-7B-Instruct": 7.62, "Qwen/Qwen2.5-7B": 7.62, "google/gemma-2-9b-it": 9.24, "google/gemma-2-27b-it": 27.2,
            "meta-llama/Llama-3.1-70B-Instruct": 70.6}
H200_BF16_FLOPS = 989e12
ASSUMED_MFU = 0.35
# vLLM tokens/s on one H200 for a model of B billion parameters, sampling in large batches:
# ASSUMED_VLLM_SCALE / B^0.9 (about 20,000 tokens/s at 1.5B, 4,600 at 8B, 700 at 70B), an
# assumption to be replaced by `bench/bench_gpu.py` on the machine at hand
ASSUMED_VLLM_SCALE = 29_000
SET_SIZE = {"micro": 1000, "smoke": 12, "paper": 600}  # matched H/G/W problems before step 02 ran


MAX_RATE = 100_000  # tokens/s: a micro model is bound by per-step overhead, not by its weights


def _vllm_rate(billions: float) -> float:
    return min(MAX_RATE, ASSUMED_VLLM_SCALE / billions ** 0.9)


def _cost(params_file: Path):
    import importlib

    step, P = steps.load(params_file)
    return step, P, importlib.import_module(step.module).cost(P, SET_SIZE[P.scale])


MICRO_BILLIONS = 0.001  # micro:/tiny: models (under a million parameters): an upper bound


def _billions(spec) -> float | None:
    if spec is None:
        return None
    name = spec if isinstance(spec, str) else spec.name
    return MICRO_BILLIONS if name.startswith(("micro:", "tiny:")) else BILLIONS.get(name)


def _sizes(P, params_file: Path) -> tuple[float | None, float | None]:
    """(student, teacher) sizes in billions: the student trains and samples, the teacher (or the
    paraphraser) samples. Step 07 inspects step 06's student."""
    student = _billions(getattr(P, "student", None))
    if student is None and getattr(P, "scaling_from", None):
        from cotrepro.params import step_params_file

        _, upstream = steps.load(step_params_file(params_file, P.scaling_from, "scaling_from"))
        student = _billions(upstream.student)
    if student is None and getattr(P, "models", None):  # step 08: the star-graph models it fine-tunes
        student = max((_billions(m) or 0.0) for m in P.models) or None
    teacher = _billions(getattr(P, "teacher", None) or getattr(P, "paraphraser", None))
    return student, teacher


def _gpu_hours(P, cost, task: str, params_file: Path) -> tuple[float | None, str]:
    """(hours or None when unknown, the estimate line's text)."""
    if not (cost.train_examples or cost.generated_tokens or cost.teacher_tokens):
        return 0.0, "0 GPU-hours (grading or reading stored results only: CPU work)"
    student, teacher = _sizes(P, params_file)
    needed = [b for b, used in ((student, cost.train_examples or cost.generated_tokens), (teacher, cost.teacher_tokens))
              if used]
    if any(b is None for b in needed):
        return None, "unknown: a model's size is not in cotrepro.plan.BILLIONS (or the step runs micro models); add it"
    tokens = EXAMPLE_TOKENS.get(task, 300)
    train = 6 * (student or 0) * 1e9 * cost.train_examples * tokens / (H200_BF16_FLOPS * ASSUMED_MFU)
    sample = (cost.generated_tokens / _vllm_rate(student) if cost.generated_tokens else 0.0) + (
        cost.teacher_tokens / _vllm_rate(teacher) if cost.teacher_tokens else 0.0)
    return (train + sample) / 3600, (f"{(train + sample) / 3600:.1f} GPU-hours on one H200 (training "
                                     f"{train / 3600:.1f} h, sampling {sample / 3600:.1f} h)")


GPU_ASSUMPTIONS = (f"training at {ASSUMED_MFU:.0%} of the bf16 peak (6 x parameters FLOPs a token); sampling at "
                   f"assumed vLLM rates of {ASSUMED_VLLM_SCALE:,}/B^0.9 tokens/s; measure both with bench/bench_gpu.py")


def _cpu_rates() -> dict | None:
    if not paths.THROUGHPUT.is_file():
        return None
    return json.loads(paths.THROUGHPUT.read_text()).get("cpu") or None


def _cores(workers: int | None) -> int:
    return workers or len(os.sched_getaffinity(0))


def _cpu_seconds(cost, task: str, workers: int | None, rates: dict) -> float:
    """Upper bound on the wall time of a step on this machine's cores, at the measured `rates`."""
    return (cost.train_examples * EXAMPLE_TOKENS.get(task, 90) / rates["train_tokens_per_s"]
            + (cost.generated_tokens + cost.teacher_tokens) / rates["sample_tokens_per_s"]
            ) / max(1, min(_cores(workers), max(1, cost.fine_tunes)))


NO_RATES = "unknown: no CPU throughput measured yet in bench/results/throughput.json (run `make bench`)"


def _provenance(rates: dict) -> str:
    """Where each CPU rate was measured: the benchmarks may have run on different machines."""
    measured_on = rates.get("measured_on", {})
    return "; ".join(f"{label} rate measured {measured_on.get(key, 'on an unrecorded machine')}"
                     for label, key in (("training", "train_tokens_per_s"), ("sampling", "sample_tokens_per_s")))


def _step_plan(params_file: Path, rates: dict | None) -> tuple[list[str], dict]:
    """The lines of one step's plan at the CPU `rates` (`_cpu_rates`), and its totals: `estimate`
    (minutes on the CPU or GPU-hours; None when unknown) and `measured` (seconds of a stored run of
    exactly these params, or None)."""
    step, P, cost = _cost(params_file)
    task = getattr(getattr(P, "task", None), "name", "arith")
    lines = [f"{params_file} ({step.stem}, scale {P.scale})",
             f"  fine-tunes            {cost.fine_tunes:>14,}",
             f"  examples trained on   {cost.train_examples:>14,}   (summed over runs and epochs)",
             f"  generated tokens      {cost.generated_tokens + cost.teacher_tokens:>14,}   (at most; "
             f"{cost.teacher_tokens:,} by the teacher)"]
    totals: dict = {"scale": P.scale, "estimate": None, "measured": None}
    if P.scale == "paper":
        totals["estimate"], text = _gpu_hours(P, cost, task, params_file)
        lines.append(f"  estimate              {text}")
    else:
        compute = getattr(P, "compute", None)
        workers = compute.workers if compute else None
        if rates is None:
            lines.append(f"  estimate              {NO_RATES}")
        else:
            seconds = _cpu_seconds(cost, task, workers, rates)
            totals["estimate"] = seconds / 60
            lines.append(f"  estimate              at most {seconds / 60:.0f} min on {_cores(workers)} core(s) "
                         "(upper bound: every completion at its limit)")
        totals["measured"] = _stored_seconds(params_file)
        if totals["measured"] is not None:
            lines.append(f"  measured              a stored run of exactly these params took "
                         f"{totals['measured'] / 60:.1f} min")
    lines += [f"  note: {n}" for n in cost.notes]
    return lines, totals


def _basis(scale: str, rates: dict | None) -> str:
    """What the estimates rest on, said once."""
    if scale == "paper":
        return f"assumptions: {GPU_ASSUMPTIONS}"
    return f"rates: {_provenance(rates)}" if rates else f"rates: {NO_RATES}"


def plan(params_file: str | Path) -> str:
    """A human-readable cost summary of one params file (the step comes from its `step:` key)."""
    rates = _cpu_rates()
    lines, totals = _step_plan(Path(params_file), rates)
    return "\n".join(lines + [f"  {_basis(totals['scale'], rates)}"])


def plan_scale(scale: str) -> str:
    """`plan` of every step of a scale, and what they cost together."""
    files = steps.params_files(scale)
    if not files:
        raise FileNotFoundError(f"no params files under params/{scale}/")
    rates = _cpu_rates()  # read once for every step
    lines, estimates, measured = [], [], []
    for path in files:
        step_lines, totals = _step_plan(path, rates)
        lines += step_lines
        estimates.append(totals["estimate"])
        measured.append(totals["measured"])
    known = [e for e in estimates if e is not None]
    unknown = len(estimates) - len(known)
    missing = f" ({unknown} of them unknown, left out)" if unknown else ""
    if scale == "paper":
        total = f"{sum(known):.1f} GPU-hours on one H200{missing}"
    else:
        total = f"at most {sum(known):.0f} min, each step on the cores it names (an upper bound){missing}"
    lines.append(f"all {len(files)} params files of scale {scale}: {total}")
    stored = [m for m in measured if m is not None]
    if stored:
        lines.append(f"  measured              stored runs of {len(stored)} of them took {sum(stored) / 60:.1f} min")
    lines.append(f"  {_basis(scale, rates)}")
    return "\n".join(lines)


def _stored_seconds(params_file: Path) -> float | None:
    from cotrepro.pipeline import DONE, locate

    run = locate(params_file)
    return json.loads((run.path / DONE).read_text()).get("seconds") if run.done else None

"""Step 01: the micro world, checked and measured (micro scale), or rebuilt small (smoke scale).

At micro scale the step checks the shipped checkpoints under `world/` against their sha256
(`cotrepro.world`), then measures them the way a user would, through the folders and the test
file `cotrepro world --json` names: greedy accuracy of the student and the teacher on the held-out
problems, with 95% intervals, beside two chance levels (uniform guessing over the answers that
occur, and the best constant answer); the star-graph model's path, first-step and later-step
accuracy; and the per-token NLL under the student of four traces of the same training problems:
the human solution H, the gold in the student's own step-by-step style S (the style control),
and the teacher's correct and wrong samples G and W.

At smoke scale it rebuilds a small world from scratch (`micro.build_world`) into its run folder:
the rebuild path is tested on every `make test`; nothing downstream uses that world.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cotrepro import stats
from cotrepro.micro import WorldParams
from cotrepro.steps import Cost
from cotrepro.params import param
from cotrepro.sections import ComputeSection


@dataclass(frozen=True, kw_only=True)
class Params:
    """Step 01: which world is measured, on how many problems (or which world is rebuilt)."""

    scale: Literal["micro", "smoke", "paper"] = param(help="micro or smoke")
    world_dir: str = param("world", "the shipped world (relative to the repository root)")
    n_eval: int = param(1000, "held-out problems behind each accuracy", ge=1)
    max_new_tokens: int = param(160, "evaluation budget of the models (the experiments' eval.max_new_tokens)", ge=1)
    nll_problems: int = param(300, "training problems whose H, S, G and W traces are scored under the student", ge=1)
    rebuild: WorldParams | None = param(None, "rebuild a world with these settings into the run folder "
                                              "(smoke: the rebuild path under test) instead of measuring world_dir")
    compute: ComputeSection = param(default_factory=ComputeSection, help="threads")


def chance_levels(answers: list[str]) -> dict:
    """Uniform guessing over the answers that occur, and the best constant answer."""
    counts = Counter(answers)
    values = [int(a) for a in counts]
    return {"uniform": 1 / (max(values) - min(values) + 1), "best_constant": counts.most_common(1)[0][1] / len(answers),
            "best_constant_answer": counts.most_common(1)[0][0], "distinct_answers": len(counts)}


def accuracy_row(name: str, correct: list[bool], unparsed: float) -> dict:
    ci = stats.binomial_ci(int(sum(correct)), len(correct))
    return {"model": name, "accuracy": ci.estimate, "low": ci.low, "high": ci.high, "n": len(correct),
            "unparsed": unparsed}


def nll_rows(nll: dict[str, dict[str, float]]) -> list[dict]:
    """Mean per-token NLL of each trace kind with a bootstrap interval over problems."""
    rows = []
    for name, per_problem in nll.items():
        ci = stats.bootstrap_ci(list(per_problem.values()))
        rows.append({"traces": name, "nll": ci.estimate, "low": ci.low, "high": ci.high, "n": len(per_problem)})
    return rows


def matched_traces(problems, samples: list[dict], prompts: dict[str, str]) -> dict[str, list[dict]]:
    """H, S, G and W examples of the problems that have a correct and a wrong teacher sample."""
    by_problem: dict[str, list[dict]] = {}
    for s in samples:
        by_problem.setdefault(s["problem_id"], []).append(s)
    sets: dict[str, list[dict]] = {"H": [], "S": [], "G": [], "W": []}
    for p in problems:
        good = next((s for s in by_problem.get(p.id, []) if s["correct"]), None)
        bad = next((s for s in by_problem.get(p.id, []) if s["parsed"] and not s["correct"]), None)
        if good is None or bad is None:
            continue
        for name, text in (("H", p.solution), ("S", p.meta["stepwise"]), ("G", good["completion"]),
                           ("W", bad["completion"])):
            sets[name].append({"prompt": prompts[p.id], "completion": text, "problem_id": p.id})
    return sets


def mean_or_nan(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def cost(P: Params, set_size: int = 0) -> Cost:
    notes = ("rebuilds a world from scratch first",) if P.rebuild is not None else ()
    return Cost(generated_tokens=(2 * P.n_eval + 4 * P.nll_problems) * 160 + 3 * P.n_eval * 30, notes=notes)


def world_for(run) -> Path:
    """The world this run measures: the shipped one, checked against its hashes, or (with
    `rebuild`) a new one built into the run folder, manifest and test file included."""
    import time

    from cotrepro import paths, world
    from cotrepro.micro import build_world

    P = run.params
    if P.rebuild is None:
        world_dir = paths.resolve(P.world_dir)
        world.check(world_dir)
        return world_dir
    world_dir = Path(run.path) / "world"
    if not (world_dir / world.MANIFEST).is_file():
        started = time.process_time()
        build_world(P.rebuild, world_dir)
        world.export_test(world_dir, P.n_eval, P.rebuild.arith.max_value, P.rebuild.arith.template)
        world.write_manifest(world_dir, f"cotrepro run notebooks/01_micro_world.ipynb -f {paths.shown(run.params_file)}",
                             time.process_time() - started)
    return world_dir


def measure_models(world_dir, n_eval: int, max_new_tokens: int) -> tuple[list[dict], dict, list]:
    """(accuracy rows of the student and teacher, chance levels, the test problems) measured on
    the world's test file, as `cotrepro world --json` names it."""
    import json
    from pathlib import Path

    from cotrepro.generate import SamplingParams, sample
    from cotrepro.grade import grade_problems
    from cotrepro.models import load_model
    from cotrepro.tasks.arith import ArithTask
    from cotrepro.tasks.base import Problem

    tests = [json.loads(line) for line in (Path(world_dir) / "test.jsonl").read_text().splitlines()[:n_eval]]
    problems = [Problem(id=t["id"], question=t["question"], answer=t["answer"]) for t in tests]
    task = ArithTask()
    rows = []
    for role in ("student", "teacher"):
        model, tokenizer = load_model(Path(world_dir) / role)
        outs = sample(model, tokenizer, [t["prompt"] for t in tests],
                      SamplingParams(max_new_tokens=max_new_tokens, stop=("\n\n", "Question:"), batch_size=128), progress=False)
        graded = grade_problems(task, problems, [o[0] for o in outs], progress=False)
        rows.append(accuracy_row(role, [g["correct"] for g in graded],
                                 sum(g["extracted"] is None for g in graded) / len(graded)))
        for steps in (2, 3, 4):
            mine = [g["correct"] for g, t in zip(graded, tests) if t["steps"] == steps]
            rows.append(accuracy_row(f"{role}, {steps}-step problems", mine, float("nan")))
    return rows, chance_levels([t["answer"] for t in tests]), problems


def measure_nll(world_dir, n_problems: int, template: str = "arith") -> list[dict]:
    """Per-token NLL under the student of H, S, G and W traces of the same training problems
    (G and W sampled from the teacher, 4 per problem, the first correct and wrong kept)."""
    from pathlib import Path

    from cotrepro.evaluate import completion_nlls
    from cotrepro.generate import SamplingParams, sample
    from cotrepro.grade import grade_problems
    from cotrepro.models import load_model
    from cotrepro.tasks.arith import ArithTask

    task = ArithTask()
    problems = task.load("train", limit=n_problems, seed=1)
    prompts = {p.id: task.prompt(p, template) for p in problems}
    teacher, tok = load_model(Path(world_dir) / "teacher")
    outs = sample(teacher, tok, list(prompts.values()), SamplingParams(k=4, temperature=0.7, max_new_tokens=160,
                                                                      stop=("\n\n", "Question:"), batch_size=128),
                  progress=False)
    flat = [(p, c) for p, o in zip(problems, outs) for c in o]
    graded = grade_problems(task, [p for p, _ in flat], [c for _, c in flat], progress=False)
    samples = [{"problem_id": p.id, "completion": c, "correct": g["correct"], "parsed": g["extracted"] is not None}
               for (p, c), g in zip(flat, graded)]
    sets = matched_traces(problems, samples, prompts)
    student, stok = load_model(Path(world_dir) / "student")
    nll = {}
    for name, examples in sets.items():
        scores = completion_nlls(student, stok, examples, batch_size=32)
        nll[name] = {e["problem_id"]: total / max(1, n) for e, (total, n) in zip(examples, scores)}
    return nll_rows(nll)


def measure_tokens(world_dir, n_problems: int, max_new_tokens: int) -> list[dict]:
    """Per trace style (H the human solution, S the gold in the student's own style), over the
    first `n_problems` test problems: the share of its tokens (and of its distinct tokens) that never occur in the
    student's pretraining corpus, rebuilt from the world's params, and its longest solution in
    tokens against the evaluation budget. H is fair only if both shares are 0 and it fits."""
    import json

    from cotrepro.micro import build_corpora
    from cotrepro.models import load_tokenizer
    from cotrepro.params import from_dict
    from cotrepro.tasks import arith

    params = from_dict(WorldParams, json.loads((Path(world_dir) / "world.json").read_text())["params"])
    tokenizer = load_tokenizer(Path(world_dir) / "student")
    corpus = build_corpora(params.arith, params.seed)["student"]
    problems = arith.ArithTask(max_value=params.arith.max_value).load("test", limit=n_problems)
    seen = {t for ids in tokenizer(corpus, add_special_tokens=False)["input_ids"] for t in ids}
    rows = []
    for style, render in (("H", arith.render_human), ("S", arith.render_stepwise)):
        traces = tokenizer([render(p) for p in problems], add_special_tokens=False)["input_ids"]
        tokens = [t for ids in traces for t in ids]
        distinct = set(tokens)
        rows.append({"traces": style, "unseen_token_share": sum(t not in seen for t in tokens) / len(tokens),
                     "unseen_distinct_share": len(distinct - seen) / len(distinct),
                     "longest_tokens": max(map(len, traces)), "eval_budget": max_new_tokens,
                     "fits": max(map(len, traces)) <= max_new_tokens})
    return rows


def spread_rows(world_dir) -> list[dict]:
    """The build reports of the world's student and teacher (seed 0, the shipped world) and of the
    worlds made with the same settings and other seeds (`spread/seedN`), side by side."""
    import json

    world_dir = Path(world_dir)
    shipped = [world_dir / role / "report.json" for role in ("student", "teacher")]
    reports = [("0 (shipped)", p) for p in shipped if p.is_file()]
    reports += [(p.parent.parent.name.removeprefix("seed"), p)
                for p in sorted(world_dir.glob("spread/seed*/*/report.json"))]
    rows = []
    for seed, path in reports:
        report = json.loads(path.read_text())
        for label in ("multi_step", "two_step", "one_step", "path"):
            r = report if label == "path" and "accuracy" in report else report.get(label)
            if r is not None:
                rows.append({"seed": seed, "model": path.parent.name, "problems": label, "accuracy": r["accuracy"],
                             "low": r["low"], "high": r["high"], "n": r["n"], "cpu_s": report["cpu_s"]})
    return rows


def training_curves(world_dir) -> dict[str, list[dict]]:
    """{model folder: held-out accuracy curve} of the shipped world's models."""
    import json

    return {path.parent.name: json.loads(path.read_text())["accuracy"]
            for path in sorted(Path(world_dir).glob("*/curves.json"))}


def measure_star(world_dir, n_eval: int) -> list[dict]:
    """Path, first-step and later-step accuracy of every star-graph model of the world."""
    from pathlib import Path

    from cotrepro.micro import star_accuracy
    from cotrepro.models import load_model
    from cotrepro.tasks.stargraph import StarGraphTask

    rows = []
    for folder in sorted(Path(world_dir).glob("stargraph-s*")):
        model, tokenizer = load_model(folder)
        problems = StarGraphTask().load("test", limit=n_eval)
        rows.append({"model": folder.name, "n": len(problems), **star_accuracy(model, tokenizer, problems)})
    return rows

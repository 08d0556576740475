"""The Shape of Thought notebooks (02-05) end to end under papermill: smoke params, and the paper
params on tiny real architectures with real benchmark data.

The smoke micro world and a tiny random model are far too weak to answer anything right, so
their teachers yield no G or W trace; after step 02 has run for real, the tests replace its
(empty) sets with constructed ones (G: the gold step-by-step trace, W: the same with a wrong
final answer, H: the human solution) so that steps 03-05 have something to train on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cotrepro.config import load_experiment
from cotrepro.experiments import traces
from cotrepro.pipeline import step_run_dir
from cotrepro.tasks import arith, get_task
from cotrepro.world import train_problems

from _notebooks import DATA, PAPER, SMOKE, claims_of, run_step

pytestmark = pytest.mark.slow


def wrong_answer(trace: str) -> str:
    """The trace with its final "#### N" (or last number) changed."""
    match = list(re.finditer(r"-?\d+", trace))[-1]
    return trace[:match.start()] + str(int(match.group()) + 1) + trace[match.end():]


def seed_sets(traces_params: Path, run_root: Path, human, synthetic) -> dict[str, list[dict]]:
    """Replace step 02's stored sets with H = human(p), G = synthetic(p), W = G with a wrong answer."""
    params = load_experiment(traces_params)
    task = get_task(params.task.name)
    run = step_run_dir(traces_params, run_root)
    sets: dict[str, list[dict]] = {"H": [], "G": [], "W": []}
    for p in train_problems(params):
        prompt = task.prompt(p, params.task.template)
        for name, text in (("H", human(p)), ("G", synthetic(p)), ("W", wrong_answer(synthetic(p)))):
            sets[name].append({"prompt": prompt, "completion": traces.as_completion(prompt, text),
                               "problem_id": p.id})
    for name, examples in sets.items():
        traces.write_examples(run.path / "sets" / f"{name}.jsonl", examples)
    return sets


def test_smoke_pipeline_02_to_05(tmp_path, monkeypatch):
    figures = tmp_path / "figures"
    monkeypatch.setenv("COTREPRO_FIGURES", str(figures))
    root = tmp_path / "runs"

    run02 = run_step("02_sample_teacher_traces", SMOKE / "02_sample_teacher_traces.yaml", root)
    claims_of(run02, {"SoT-6", "SoT-7"})
    sizes = {n: len(traces.read_examples(run02.path / "sets" / f"{n}.jsonl")) for n in traces.SETS}
    assert len(set(sizes.values())) == 1  # equal sizes, whatever the teacher got right
    graded = run02.read_json("graded.json")
    assert len(graded) == 4 * 12  # k traces per training problem, each graded
    assert (figures / "smoke" / "sot_traces_traces.md").is_file()
    assert (figures / "smoke" / "sot_traces_step_validity.png").is_file()

    sets = seed_sets(SMOKE / "02_sample_teacher_traces.yaml", root, arith.render_human, arith.render_stepwise)

    run03 = run_step("03_train_on_traces", SMOKE / "03_train_on_traces.yaml", root)
    records = list(run03.jsonl("results"))
    assert sorted(r["key"] for r in records) == ["G/s0", "G/s1", "H/s0", "H/s1", "W/s0", "W/s1", "none"]
    assert all(r["n_train"] == len(sets["H"]) for r in records if r["condition"] != "none")
    claims_of(run03, {"SoT-1", "SoT-2"})
    assert (figures / "smoke" / "sot_main_accuracy.png").is_file()

    run04 = run_step("04_paraphrase_distance", SMOKE / "04_paraphrase_distance.yaml", root)
    claims_of(run04, {"SoT-3", "SoT-4"})
    points = {p["set"]: p for p in run04.read_json("points.json")}
    assert {"H", "G", "W"} <= set(points) and all(p["nll"] > 0 for p in points.values())
    # H, G, W and no fine-tuning were adopted from step 03, not retrained
    adopted = {r["key"]: r for r in run04.jsonl("results")}
    assert adopted["H/s0"]["correct"] == next(r for r in records if r["key"] == "H/s0")["correct"]
    assert not (run04.path / "train" / "H_s0").exists()
    assert (figures / "smoke" / "sot_paraphrase_nll_accuracy.png").is_file()

    run05 = run_step("05_corrupt_steps", SMOKE / "05_corrupt_steps.yaml", root)
    claims_of(run05, {"SoT-5"})
    keys = {r["key"] for r in run05.jsonl("results")}
    assert keys == {"none", "G/s0", "number@0.25/s0", "number@1/s0", "delete@0.25/s0", "delete@1/s0"}
    assert (figures / "smoke" / "sot_corrupt_accuracy_by_level.png").is_file()


def write_params(path: Path, base: Path, text: str) -> Path:
    path.write_text(f"include: {base}\n{text}")
    return path


@pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason="no local GSM8K copy in ../shared/data")
def test_paper_params_on_tiny_qwen2_with_gsm8k(tmp_path, monkeypatch):
    monkeypatch.setenv("COTREPRO_FIGURES", str(tmp_path / "figures"))
    root = tmp_path / "runs"
    tiny = "models: {student: 'tiny:qwen2', teacher: 'tiny:qwen2', paraphraser: 'tiny:qwen2', dtype: float32}\n"
    p02 = write_params(tmp_path / "02_sample_teacher_traces.yaml", PAPER / "02_sample_teacher_traces.yaml",
                       tiny + "task: {n_train: 4}\nsampling: {k: 2, max_new_tokens: 12, batch_size: 8}\n"
                              "sot: {threads: 1}\n")
    run02 = run_step("02_sample_teacher_traces", p02, root)
    claims_of(run02, {"SoT-6", "SoT-7"})
    assert len(run02.read_json("graded.json")) == 8

    # H: GSM8K's human solution; "synthetic": the same solution rewritten one sentence per line
    sets = seed_sets(p02, root, lambda p: p.solution, lambda p: p.solution.replace(". ", ".\n"))
    assert all(get_task("gsm8k").verify(p, e["completion"]).correct is False
               for p, e in zip(train_problems(load_experiment(p02)), sets["W"]))
    p03 = write_params(tmp_path / "03_train_on_traces.yaml", PAPER / "03_train_on_traces.yaml",
                       tiny + "task: {n_test: 3}\neval: {max_new_tokens: 12, batch_size: 8}\n"
                              "train: {epochs: 1, batch_size: 2, grad_accum: 1, save_steps: 100, max_length: 512}\n"
                              "sot: {traces_from: 02_sample_teacher_traces.yaml, seeds: [0], n_boot: 200, threads: 1}\n")
    run03 = run_step("03_train_on_traces", p03, root)
    claims = claims_of(run03, {"SoT-1", "SoT-2"})
    assert claims["SoT-1"]["n"] == 3
    record = next(r for r in run03.jsonl("results") if r["key"] == "H/s0")
    assert record["template"] == "sot_zero_shot" and len(record["correct"]) == 3
    assert (run03.path / "train" / "H_s0" / "final" / "adapter_config.json").is_file()  # LoRA on qwen2


@pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason="no local GSM8K copy in ../shared/data")
def test_paper_gemma_variant_trains_lora_on_gemma2(tmp_path, monkeypatch):
    monkeypatch.setenv("COTREPRO_FIGURES", str(tmp_path / "figures"))
    root = tmp_path / "runs"
    tiny = "models: {student: 'tiny:gemma2', teacher: 'tiny:gemma2', paraphraser: 'tiny:gemma2', dtype: float32}\n"
    p02 = write_params(tmp_path / "02_sample_teacher_traces__gemma.yaml",
                       PAPER / "02_sample_teacher_traces__gemma.yaml", tiny + "task: {n_train: 3}\n")
    seed_sets(p02, root, lambda p: p.solution, lambda p: p.solution.replace(". ", ".\n"))  # step 02 not run
    p03 = write_params(tmp_path / "03_train_on_traces__gemma.yaml", PAPER / "03_train_on_traces__gemma.yaml",
                       tiny + "task: {n_test: 2}\neval: {max_new_tokens: 8, batch_size: 8}\n"
                              "train: {epochs: 1, batch_size: 3, grad_accum: 1, save_steps: 100, max_length: 512}\n"
                              "sot: {seeds: [0], n_boot: 200, threads: 1}\n")
    run03 = run_step("03_train_on_traces", p03, root)
    claims_of(run03, {"SoT-1", "SoT-2"})
    assert load_experiment(p03).models.student == "tiny:gemma2"
    assert (run03.path / "train" / "W_s0" / "final" / "adapter_config.json").is_file()

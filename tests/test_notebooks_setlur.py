"""The Setlur et al. notebooks (06-08) end to end under papermill: smoke params, and the paper
params on tiny real architectures with real GSM8K data.

The smoke teacher and the tiny random models never answer right, so step 06 runs with
`positives: gold` (the gold solution as the teacher positive); every other stage (self-samples,
step values, the three DPO pairings, pass@k, the analysis) runs as it does at larger scales.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _notebooks import DATA, PAPER, SMOKE, claims_of, run_step

pytestmark = pytest.mark.slow


def check_scaling_run(run, sizes: list[int], compare: int, k: int, n_test: int) -> None:
    evals = {r["key"]: r for r in run.jsonl("evals")}
    expected = ({f"sft/n{n}/s0/k1" for n in sizes} | {f"rft/n{n}/s0/k1" for n in sizes}
                | {f"{m}/n{compare}/s0/k1" for m in ("dpo_step", "dpo_random", "dpo_edit")}
                | {f"{m}/n{compare}/s0/k{k}" for m in ("sft", "dpo_step")})
    assert set(evals) == expected
    assert all(len(r["scores"]) == n_test for r in evals.values())
    # RFT trains on the SFT data plus self-generated positives: never fewer examples
    assert all(evals[f"rft/n{n}/s0/k1"]["train_examples"] >= evals[f"sft/n{n}/s0/k1"]["train_examples"] == n
               for n in sizes)
    values = list(run.jsonl("stepvalues"))
    assert values and all(0 <= v["critical_step"] < len(v["steps"]) for v in values)
    claims_of(run, {"ST-1", "ST-2", "ST-3", "ST-4", "ST-5", "ST-7"})


def test_smoke_06_and_07(tmp_path, monkeypatch):
    figures = tmp_path / "figures"
    monkeypatch.setenv("COTREPRO_FIGURES", str(figures))
    root = tmp_path / "runs"

    run06 = run_step("06_scale_synthetic_data", SMOKE / "06_scale_synthetic_data.yaml", root)
    check_scaling_run(run06, [4, 8], compare=4, k=2, n_test=8)
    for name in ("error_vs_n.png", "dpo_variants.png", "pass_at_k.png", "errors.md", "multipliers.csv"):
        assert (figures / "smoke" / f"scale_synthetic_data_{name}").is_file()

    run07 = run_step("07_inspect_advantages", SMOKE / "07_inspect_advantages.yaml", root)
    claims_of(run07, {"ST-6"})
    rows = run07.read_json("step_rows.json")
    assert rows and all(r["kind"] in ("correct", "probe", "incorrect") for r in rows)
    # exhaustive values with the bare prompt valued: every step has an advantage
    assert all(r["A"] is not None for r in rows)
    critical = run07.read_json("critical_positions.json")
    assert set(critical) == {"06 negatives", "07 wrong traces"}
    # step 07 read step 06's stored step values: one critical position per valued negative
    assert len(critical["06 negatives"]) == len(list(run06.jsonl("stepvalues"))) > 0
    assert (figures / "smoke" / "inspect_advantages_advantages.png").is_file()
    # step 07 reused step 06's SFT model instead of training another
    assert not (run07.path / "models").exists()


def test_smoke_08(tmp_path, monkeypatch):
    figures = tmp_path / "figures"
    monkeypatch.setenv("COTREPRO_FIGURES", str(figures))
    run = run_step("08_stargraph_shortcut", SMOKE / "08_stargraph_shortcut.yaml", tmp_path / "runs")
    claims = claims_of(run, {"ST-8"})
    assert claims["ST-8"]["n"] == 8
    evals = {r["key"]: r for r in run.jsonl("evals")}
    assert set(evals) == {"sft", "dpo_step"}
    assert all(len(r["first_step"]) == 8 for r in evals.values())
    summary = run.read_json("summary.json")
    assert summary["n_pairs"] > 0 and len(summary["critical_steps"]) == summary["n_pairs"]
    assert (figures / "smoke" / "stargraph_shortcut_accuracy.png").is_file()


def write_params(path: Path, base: Path, text: str) -> Path:
    path.write_text(f"include: {base}\n{text}")
    return path


TINY_06 = """task: {n_test: 3}
scaling: {sizes: [2, 4], seeds: [0], compare_size: 2, dpo_sizes: [], positives: gold, self_samples: 2, rft_cap: 1,
          min_steps: 0, n_boot: 200}
sampling: {max_new_tokens: 12, batch_size: 8}
eval: {max_new_tokens: 12, batch_size: 8, k: 2}
train: {epochs: 1, batch_size: 2, grad_accum: 1, save_steps: 100, max_length: 512}
stepvalues: {rollouts: 2, negatives_per_problem: 2}
"""


@pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason="no local GSM8K copy in ../shared/data")
@pytest.mark.parametrize("variant, arch", [("", "qwen2"), ("__gemma", "gemma2")])
def test_paper_params_on_tiny_models_with_gsm8k(tmp_path, monkeypatch, variant, arch):
    monkeypatch.setenv("COTREPRO_FIGURES", str(tmp_path / "figures"))
    root = tmp_path / "runs"
    tiny = f"models: {{student: 'tiny:{arch}', teacher: 'tiny:{arch}', paraphraser: 'tiny:{arch}', dtype: float32}}\n"
    p06 = write_params(tmp_path / "06_scale_synthetic_data.yaml", PAPER / f"06_scale_synthetic_data{variant}.yaml",
                       tiny + TINY_06)
    run06 = run_step("06_scale_synthetic_data", p06, root)
    check_scaling_run(run06, [2, 4], compare=2, k=2, n_test=3)
    record = next(iter(run06.jsonl("evals")))
    assert record["summary"]["template"] == "sot_zero_shot"
    if variant:
        return
    p07 = write_params(tmp_path / "07_inspect_advantages.yaml", PAPER / "07_inspect_advantages.yaml",
                       tiny + "advantages: {scaling_from: 06_scale_synthetic_data.yaml, size: 2, n_problems: 2, "
                              "samples: 2, max_correct: 2, max_incorrect: 2, probes: 2, n_boot: 200}\n")
    run07 = run_step("07_inspect_advantages", p07, root)
    claims_of(run07, {"ST-6"})

"""Every claim function of the experiment modules can come out each way.

Each claim is fed made-up results in the exact shapes the steps store: a result clearly on the
claimed side ("reproduced"), clearly on the other side ("not reproduced"), a null one
("inconclusive") and each "not askable" condition; plus the traps its rule is written against.

Outcome records are built as `cotrepro.evaluate.outcomes` makes them, from a per-problem
correctness matrix (seeds x problems, fixed numpy seeds). A NULL comparison is built so its
estimate is exactly the null: the other arm's rows with their problems permuted (same mean,
noisy pairing), so its interval straddles the null whatever the resamples.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from cotrepro import claims, steps
from cotrepro.experiments import (corrupt_steps, inspect_advantages, paraphrase_distance, sample_teacher_traces,
                                  scale_synthetic_data, stargraph_shortcut, train_on_traces)

REPO = Path(__file__).resolve().parents[1]
N_BOOT = 300
N_PROBLEMS = 400
SEEDS = 3


# ---------------------------------------------------------------------------------------------
# Builders


def draw(p: float, seed: int, seeds: int = SEEDS, n: int = N_PROBLEMS) -> np.ndarray:
    """(seeds, problems) booleans: each problem right with probability p, seeded."""
    return np.random.default_rng(seed).random((seeds, n)) < p


def permuted(m: np.ndarray, seed: int) -> np.ndarray:
    """The same rows with their problems shuffled: equal means, random pairing (a null)."""
    rng = np.random.default_rng(seed)
    return np.stack([row[rng.permutation(row.size)] for row in m])


def record(correct, unparsed=None, condition: str = "", seed: int | None = 0, ids=None) -> dict:
    """An outcomes record (`evaluate.outcomes`) from one row of per-problem correctness.

    correct: (problems,) booleans (greedy) or (problems, k) (k samples); unparsed: (problems,)
    booleans, whose problems get no extracted answer (and are wrong)."""
    c = np.asarray(correct, dtype=bool)
    if c.ndim == 1:
        c = c[:, None]
    n, k = c.shape
    u = np.zeros(n, dtype=bool) if unparsed is None else np.asarray(unparsed, dtype=bool)
    c = c & ~u[:, None]
    extracted = [[None if u[i] else ("7" if c[i, j] else "3") for j in range(k)] for i in range(n)]
    parsed = (~u).sum() * k
    summary = {"n": n, "n_ungradable": 0, "k": k, "accuracy": float(c.mean()),
               "parse_failure_rate": float(u.mean()),
               "parsed_accuracy": float(c.sum() / parsed) if parsed else float("nan")}
    return {"ids": list(ids) if ids is not None else [f"test/{i}" for i in range(n)], "k": k,
            "correct": [[bool(x) for x in row] for row in c], "extracted": extracted,
            "completions": [["#### x"] * k for _ in range(n)], "ungradable": [False] * n, "summary": summary,
            "condition": condition, "seed": seed}


def records(matrix: np.ndarray, condition: str, unparsed_share: float = 0.0, seed: int = 0) -> list[dict]:
    """One record per seed row; `unparsed_share` of each row's problems unparsable."""
    out = []
    rng = np.random.default_rng(seed + 99)
    for s, row in enumerate(np.asarray(matrix)):
        unparsed = np.zeros(row.shape[0], dtype=bool)
        unparsed[rng.choice(row.shape[0], int(round(unparsed_share * row.shape[0])), replace=False)] = True
        out.append(record(row, unparsed, condition, s))
    return out


def verdict_of(row: dict, claim: str) -> str:
    assert row["claim"] == claim
    assert row["verdict"] in claims.VERDICTS
    return row["verdict"]


def test_the_builder_makes_records_the_library_reads():
    from cotrepro.conditions import matrix, mean_unparsed
    from cotrepro.evaluate import scores, unparsed_rate

    m = draw(0.5, 1)
    recs = records(m, "H", unparsed_share=0.25)
    assert matrix(recs).shape == (SEEDS, N_PROBLEMS)
    assert unparsed_rate(recs[0]) == 0.25 and mean_unparsed(recs) == 0.25
    assert recs[0]["summary"]["accuracy"] == pytest.approx(scores(recs[0]).mean())
    k = record(np.ones((5, 4), dtype=bool))
    assert np.all(scores(k, 2) == 1.0)


# ---------------------------------------------------------------------------------------------
# SoT-1, SoT-2 (step 03)


def sot12(w: float, g: float, h: float, h_unparsed: float = 0.0, null: str | None = None,
          base: float = 0.1) -> dict:
    m = {"none": draw(base, 10, seeds=1), "H": draw(h, 11), "G": draw(g, 12), "W": draw(w, 13)}
    if null == "W=H":
        m["W"] = permuted(m["H"], 14)
    if null == "G=H":
        m["G"] = permuted(m["H"], 15)
    results = {c: records(x, c, unparsed_share=h_unparsed if c == "H" else 0.0) for c, x in m.items()}
    rows = train_on_traces.main_claims(results, chance=0.05, n_boot=N_BOOT)
    assert [r["claim"] for r in rows] == ["SoT-1", "SoT-2"]
    return {r["claim"]: r for r in rows}


@pytest.mark.parametrize("case, w, g, h, expected", [
    ("W clearly above H", 0.6, 0.7, 0.4, "reproduced"),
    ("W clearly below H", 0.3, 0.7, 0.5, "not reproduced"),
])
def test_sot1_each_way(case, w, g, h, expected):
    assert verdict_of(sot12(w, g, h)["SoT-1"], "SoT-1") == expected


def test_sot1_null_is_inconclusive():
    row = sot12(0.45, 0.6, 0.45, null="W=H")["SoT-1"]
    assert verdict_of(row, "SoT-1") == "inconclusive"
    assert row["effect"] == pytest.approx(0.0, abs=1e-12) and row["ci"][0] < 0 < row["ci"][1]


@pytest.mark.parametrize("case, w, g, h, null, expected", [
    ("G above H and above W", 0.6, 0.7, 0.4, None, "reproduced"),
    ("G below H", 0.6, 0.3, 0.5, None, "not reproduced"),
    ("G above H but clearly worse than W", 0.75, 0.55, 0.35, None, "not reproduced"),
    ("G no better than H", 0.5, 0.45, 0.45, "G=H", "inconclusive"),
])
def test_sot2_each_way(case, w, g, h, null, expected):
    assert verdict_of(sot12(w, g, h, null=null)["SoT-2"], "SoT-2") == expected


def test_sot12_not_askable_when_h_did_not_learn_its_format():
    rows = sot12(0.6, 0.7, 0.4, h_unparsed=0.30)
    for claim in ("SoT-1", "SoT-2"):
        assert verdict_of(rows[claim], claim) == "not askable"
        assert "NOT ASKABLE" in rows[claim]["what"] and "30%" in rows[claim]["what"]
        assert rows[claim]["effect"] is not None  # the effect is shown, no verdict given


@pytest.mark.parametrize("base, askable", [(0.75, False), (0.65, True)])
def test_sot12_not_askable_when_fine_tuning_lowers_every_condition_below_the_base(base, askable):
    rows = sot12(0.6, 0.7, 0.4, base=base)  # best condition G at 0.7
    for claim in ("SoT-1", "SoT-2"):
        assert (verdict_of(rows[claim], claim) == "not askable") == (not askable)
    if not askable:
        assert "beats the untuned base" in rows["SoT-1"]["what"]
    else:
        assert verdict_of(rows["SoT-1"], "SoT-1") == "reproduced"


def test_sot12_h_just_under_the_maximum_is_askable():
    rows = sot12(0.6, 0.7, 0.4, h_unparsed=0.05)
    assert verdict_of(rows["SoT-1"], "SoT-1") == "reproduced"


def test_sot12_h_exactly_at_the_maximum_is_askable():
    rows = sot12(0.6, 0.7, 0.4, h_unparsed=0.10)
    assert verdict_of(rows["SoT-1"], "SoT-1") == "reproduced"


# ---------------------------------------------------------------------------------------------
# SoT-3, SoT-4 (step 04)


def nll_sets(h_minus_gw: float, seed: int = 0, n: int = 300, style: bool = False, exact_null: bool = False):
    rng = np.random.default_rng(seed)
    g = rng.normal(1.5, 0.3, n)
    w = rng.normal(1.6, 0.3, n)
    if exact_null:
        h = (g + w) / 2 + np.where(np.arange(n) % 2 == 0, 0.2, -0.2)
    else:
        h = (g + w) / 2 + h_minus_gw + rng.normal(0, 0.3, n)
    ids = [f"train/{i}" for i in range(n)]
    out = {"H": dict(zip(ids, h)), "G": dict(zip(ids, g)), "W": dict(zip(ids, w))}
    out["H"]["train/only-in-H"] = 99.0  # not matched: must be left out
    if style:
        out["S"] = dict(zip(ids, (h + (g + w) / 2) / 2))
    return out


@pytest.mark.parametrize("gap, exact_null, expected", [
    (0.5, False, "reproduced"), (-0.5, False, "not reproduced"), (0.0, True, "inconclusive"),
])
def test_sot3_each_way(gap, exact_null, expected):
    row = paraphrase_distance.distance_claim(nll_sets(gap, exact_null=exact_null), n_boot=N_BOOT)
    assert verdict_of(row, "SoT-3") == expected
    assert row["n_test"] == 300  # matched problems only
    if not exact_null:
        assert row["effect"] == pytest.approx(gap, abs=0.1)


def test_sot3_style_control_is_reported():
    row = paraphrase_distance.distance_claim(nll_sets(0.5, style=True), n_boot=N_BOOT)
    assert verdict_of(row, "SoT-3") == "reproduced"
    assert "style part" in row["note"] and "content part" in row["note"]


def sot4(p: float, h: float, rate: float = 0.9, h_unparsed: float = 0.0, null: bool = False,
         same_as_s: float | None = None) -> dict:
    m = {"P": draw(p, 21), "H@P": draw(h, 22), "none": draw(0.1, 23, seeds=1)}
    if null:
        m["P"] = permuted(m["H@P"], 24)
    results = {c: records(x, c, unparsed_share=h_unparsed if c == "H@P" else 0.0) for c, x in m.items()}
    return paraphrase_distance.paraphrase_claim(results, rate=rate, chance=0.05, n_boot=N_BOOT, same_as_s=same_as_s)


@pytest.mark.parametrize("case, kwargs, expected", [
    ("P clearly above H", dict(p=0.6, h=0.4), "reproduced"),
    ("P clearly below H", dict(p=0.3, h=0.5), "not reproduced"),
    ("P equal to H", dict(p=0.5, h=0.5, null=True), "inconclusive"),
    ("keep rate at the minimum", dict(p=0.6, h=0.4, rate=0.8), "reproduced"),
    ("keep rate 50%", dict(p=0.6, h=0.4, rate=0.5), "not askable"),
    ("H did not learn", dict(p=0.6, h=0.4, h_unparsed=0.3), "not askable"),
])
def test_sot4_each_way(case, kwargs, expected):
    assert verdict_of(sot4(**kwargs), "SoT-4") == expected


def test_sot4_says_how_much_of_p_is_the_style_control():
    p_set = [{"problem_id": "a", "completion": " 1 + 2 = 3\n#### 3"}, {"problem_id": "b", "completion": "2 * 3 = 6\n#### 6"}]
    s_set = [{"problem_id": "a", "completion": "1 + 2 = 3\n#### 3"}, {"problem_id": "b", "completion": "3 * 2 = 6\n#### 6"}]
    assert paraphrase_distance.share_same_as(p_set, s_set) == 0.5
    assert paraphrase_distance.share_same_as([], s_set) is None and paraphrase_distance.share_same_as(p_set, []) is None
    assert "50% of those kept are word for word S" in sot4(p=0.6, h=0.4, same_as_s=0.5)["what"]
    assert "word for word" not in sot4(p=0.6, h=0.4)["what"]


def test_sot4_without_any_kept_rewrite_is_not_measured():
    row = paraphrase_distance.paraphrase_claim({}, rate=0.0, chance=0.05, n_boot=N_BOOT)
    assert verdict_of(row, "SoT-4") == "inconclusive" and row["what"].startswith("not measured")


# ---------------------------------------------------------------------------------------------
# SoT-5 (step 05)


def sot5(acc: dict[float, float], operators=("mixed",), null: bool = False) -> dict:
    results = {}
    base = draw(acc[0.0], 30)
    results["G"] = records(base, "G")
    for i, op in enumerate(operators):
        for j, level in enumerate((0.125, 0.25, 1.0)):
            m = permuted(base, 31 + 10 * i + j) if null else draw(acc[level], 31 + 10 * i + j)
            name = corrupt_steps.condition_name(op, level)
            results[name] = records(m, name)
    return corrupt_steps.gradual_claim(results, operators, chance=0.05, base=0.1, n_boot=N_BOOT)


@pytest.mark.parametrize("case, acc, expected", [
    ("gradual decline", {0.0: 0.7, 0.125: 0.68, 0.25: 0.62, 1.0: 0.3}, "reproduced"),
    ("cliff at a quarter", {0.0: 0.7, 0.125: 0.4, 0.25: 0.3, 1.0: 0.3}, "not reproduced"),
    ("accuracy rising with corruption", {0.0: 0.3, 0.125: 0.4, 0.25: 0.5, 1.0: 0.7}, "not reproduced"),
    ("a little corruption helps", {0.0: 0.5, 0.125: 0.65, 0.25: 0.7, 1.0: 0.3}, "not reproduced"),
])
def test_sot5_each_way(case, acc, expected):
    row = sot5(acc)
    assert verdict_of(row, "SoT-5") == expected
    assert set(row["levels"]) == {"0", "0.125", "0.25", "1"}


def test_sot5_rising_accuracy_is_never_reproduced_even_with_two_operators():
    row = sot5({0.0: 0.3, 0.125: 0.4, 0.25: 0.5, 1.0: 0.7}, operators=("delete", "swap"))
    assert verdict_of(row, "SoT-5") != "reproduced"
    assert row["drop"][0] < 0 and row["rise"][0] > 0


def test_sot5_flat_accuracy_is_inconclusive():
    assert verdict_of(sot5({0.0: 0.5}, null=True), "SoT-5") == "inconclusive"


# ---------------------------------------------------------------------------------------------
# SoT-6, SoT-7 (step 02)


def trace(pid: str, correct: bool, n_claims: int, n_invalid: int, parsed: bool = True,
          ungradable: bool = False) -> dict:
    return {"problem_id": pid, "index": 0, "completion": "", "correct": correct, "parsed": parsed,
            "ungradable": ungradable, "n_claims": n_claims, "n_false": n_invalid, "n_invalid": n_invalid}


def wrong_traces(valid_share: float, seed: int = 0, problems: int = 100, per_problem: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [trace(f"p{p}", False, 4, int(rng.binomial(4, 1 - valid_share)))
            for p in range(problems) for _ in range(per_problem)]


@pytest.mark.parametrize("valid, expected", [(0.85, "reproduced"), (0.2, "not reproduced")])
def test_sot6_each_way(valid, expected):
    graded = wrong_traces(valid) + [trace("p0", True, 4, 0)]
    row = sample_teacher_traces.sot6_claim(graded, n_boot=N_BOOT)
    assert verdict_of(row, "SoT-6") == expected
    assert row["effect"] == pytest.approx(valid, abs=0.05)


def test_sot6_at_the_threshold_is_inconclusive():
    graded = [trace(f"p{p}", False, 4, 4 * ((p + t) % 2)) for p in range(100) for t in range(3)]
    row = sample_teacher_traces.sot6_claim(graded, n_boot=N_BOOT)
    assert row["effect"] == pytest.approx(0.5, abs=0.02)
    assert verdict_of(row, "SoT-6") == "inconclusive"


def test_sot6_reads_only_gradable_parsed_wrong_traces_with_steps():
    graded = wrong_traces(0.85)
    graded += [trace(f"q{i}", False, 4, 4, ungradable=True) for i in range(300)]  # ungradable: left out
    graded += [trace(f"r{i}", False, 4, 4, parsed=False) for i in range(300)]  # no answer: not W
    graded += [trace(f"s{i}", False, 0, 0) for i in range(300)]  # no checkable step
    graded += [trace(f"t{i}", True, 4, 4) for i in range(300)]  # G traces
    row = sample_teacher_traces.sot6_claim(graded, n_boot=N_BOOT)
    assert verdict_of(row, "SoT-6") == "reproduced" and row["n_test"] == 300


def test_sot6_without_wrong_traces_is_not_measured():
    row = sample_teacher_traces.sot6_claim([trace("p0", True, 4, 0)], n_boot=N_BOOT)
    assert verdict_of(row, "SoT-6") == "inconclusive" and row["what"].startswith("not measured")


def g_and_w(g_flawed: float, w_flawed: float, problems: int = 200, seed: int = 0) -> list[dict]:
    """One G and one W trace per problem; exactly round(share * problems) of each flawed."""
    rng = np.random.default_rng(seed)
    g = rng.permutation(problems) < round(g_flawed * problems)
    w = rng.permutation(problems) < round(w_flawed * problems)
    return ([trace(f"p{i}", True, 3, int(g[i])) for i in range(problems)]
            + [trace(f"p{i}", False, 3, 2 * int(w[i])) for i in range(problems)])


@pytest.mark.parametrize("case, g_flawed, w_flawed, landing, expected", [
    ("flawed G share far above chance", 0.3, 0.9, 0.01, "reproduced"),
    ("flawed G share below the chance share", 0.05, 0.9, 0.5, "not reproduced"),
    ("flawed G share at the chance share", 0.2, 0.8, 0.2, "inconclusive"),
])
def test_sot7_each_way(case, g_flawed, w_flawed, landing, expected):
    row = sample_teacher_traces.sot7_claim(g_and_w(g_flawed, w_flawed), chance_landing=landing, n_boot=N_BOOT)
    assert verdict_of(row, "SoT-7") == expected
    # chance share = P(invalid) x landing / P(correct), P(correct) = 1/2 here
    assert row["chance"] == pytest.approx((g_flawed + w_flawed) / 2 * landing / 0.5)
    assert row["effect"] == pytest.approx(g_flawed)


def test_sot7_without_correct_traces_is_not_measured():
    row = sample_teacher_traces.sot7_claim([trace("p0", False, 3, 1)], chance_landing=0.1, n_boot=N_BOOT)
    assert verdict_of(row, "SoT-7") == "inconclusive" and row["what"].startswith("not measured")


# ---------------------------------------------------------------------------------------------
# ST-1 ... ST-7 (step 06)


def st_params():
    _, P = steps.load(REPO / "params" / "micro" / "06_scale_synthetic_data.yaml")
    ladder = dataclasses.replace(P.ladder, sizes=(8, 16, 32, 64, 128), compare_size=8, rft_sizes=(8,),
                                 dpo_sizes=(8,), st3_size=16, st3_samples=(1, 4, 16))
    ladder.check()
    return dataclasses.replace(P, seeds=(0, 1, 2), n_boot=N_BOOT, ladder=ladder)


P6 = st_params()
ST_PROBLEMS = 600


def sft_error(n: float, b: float = 0.5, a: float = 0.7) -> float:
    return a * (n / 8) ** -b


def greedy(evals: dict, name: str, error: float, seed: int, like: np.ndarray | None = None) -> np.ndarray:
    m = permuted(like, seed) if like is not None else draw(1 - error, seed, n=ST_PROBLEMS)
    for s, row in enumerate(m):
        evals[f"{name}/s{s}"] = record(row, condition=name, seed=s)
    return m


def sampled(evals: dict, name: str, p: float, seed: int, samples: int = 10, seeds: int = SEEDS) -> None:
    """pass@k records: per problem `samples` draws, the problem's own rate around p."""
    rng = np.random.default_rng(seed)
    for s in range(seeds):
        rate = np.clip(rng.beta(2, 2, ST_PROBLEMS) * 2 * p, 0, 1)
        evals[f"{name}/s{s}@k" if name != "base" else "base@k"] = record(
            rng.random((ST_PROBLEMS, samples)) < rate[:, None], condition=name, seed=s)
        if name == "base":
            break


def st_evals(sft: dict[int, float] | None = None, rft: float | None = None, step: float | None = None,
             std: float | None = None, edit: float | None = None, first: dict[int, float] | None = None,
             base: float = 0.9, pass_p: dict[str, float] | None = None, like: dict[str, str] | None = None) -> dict:
    """Every evaluation step 06 stores, by its names; errors per model (defaults: a healthy run where
    RFT is worth 2x and per-step DPO 8x; `like` makes a model's rows a permutation of another's)."""
    L = P6.ladder
    n = L.compare_size
    sft = sft or {size: sft_error(size) for size in L.sizes}
    errors = {"rft": sft_error(2 * n) if rft is None else rft, "dpo_step": sft_error(8 * n) if step is None else step,
              "dpo_random": sft[n] + 0.05 if std is None else std, "dpo_edit": sft[n] if edit is None else edit}
    evals: dict = {}
    mats = {}
    for i, size in enumerate(L.sizes):
        mats[f"sft/n{size}"] = greedy(evals, f"sft/n{size}", sft[size], 100 + i)
    like = like or {}
    for i, (method, err) in enumerate(errors.items()):
        name = f"{method}/n{n}"
        mats[name] = greedy(evals, name, err, 200 + i, like=mats.get(like.get(method, ""), None))
    first = first or {1: sft[L.st3_size], 4: sft[L.st3_size] - 0.01, 16: sft[L.st3_size] + 0.02}
    for i, (k, err) in enumerate(first.items()):
        mats[f"rft_first{k}"] = greedy(evals, f"rft_first{k}", err, 300 + i,
                                       like=mats.get(like.get(f"rft_first{k}", ""), None))
    evals["base"] = record(draw(1 - base, 400, seeds=1, n=ST_PROBLEMS)[0], condition="base", seed=None)
    pass_p = pass_p or {"sft/n8": 0.3, "dpo_step/n8": 0.5, "base": 0.05}
    for i, (name, p) in enumerate(pass_p.items()):
        sampled(evals, name, p, 500 + i)
    return evals


def test_the_st_builder_has_every_name_step_06_reads():
    evals = st_evals()
    for claim in (scale_synthetic_data.st1_claim, scale_synthetic_data.st2_claim, scale_synthetic_data.st3_claim,
                  scale_synthetic_data.st4_claim, scale_synthetic_data.st5_claim):
        claim(evals, P6, 0.9)
    scale_synthetic_data.st7_claim(evals, P6, 0.2)
    methods = {name.split("/")[0] for name in evals if not name.endswith("@k")}
    assert methods >= {"sft", "rft", "dpo_step", "dpo_random", "dpo_edit", "base"}


@pytest.mark.parametrize("case, sft, expected", [
    ("shallow power law, b = 0.2", {n: sft_error(n, b=0.2, a=0.6) for n in P6.ladder.sizes}, "reproduced"),
    ("error rising with data", {n: 0.3 * (n / 8) ** 0.15 for n in P6.ladder.sizes}, "not reproduced"),
    ("steep power law, b = 0.9", {n: sft_error(n, b=0.9, a=0.9) for n in P6.ladder.sizes}, "not reproduced"),
    ("flat", {n: 0.5 for n in P6.ladder.sizes}, "inconclusive"),
])
def test_st1_each_way(case, sft, expected):
    row = scale_synthetic_data.st1_claim(st_evals(sft=sft), P6, 0.9)
    assert verdict_of(row, "ST-1") == expected


def st2(**kwargs) -> dict:
    return scale_synthetic_data.st2_claim(st_evals(**kwargs), P6, 0.9)


@pytest.mark.parametrize("claim", ["ST-2", "ST-4"])
@pytest.mark.parametrize("case, sft, askable", [
    ("SFT's error falls", None, True),
    ("SFT's error rises with data", {n: 0.3 * (n / 8) ** 0.15 for n in P6.ladder.sizes}, False),
    ("SFT flat", {n: 0.5 for n in P6.ladder.sizes}, False),
])
def test_multipliers_are_askable_only_off_a_falling_sft_curve(claim, case, sft, askable):
    build = scale_synthetic_data.st2_claim if claim == "ST-2" else scale_synthetic_data.st4_claim
    # a method better than SFT everywhere: read off a curve that does not fall it would be "more than 16x"
    row = build(st_evals(sft=sft, rft=0.05, step=0.04), P6, 0.9)
    assert (verdict_of(row, claim) == "not askable") == (not askable)
    assert "SFT accuracy at n=" in row["what"]


def test_st2_rft_worth_about_2x_is_reproduced():
    row = st2()
    assert verdict_of(row, "ST-2") == "reproduced"
    assert row["contains_2"] and not row["extrapolated"] and 1 < row["ci"][0]


def test_st2_rft_worth_8x_excludes_the_factor_and_is_not_reproduced():
    row = st2(rft=sft_error(64))
    assert verdict_of(row, "ST-2") == "not reproduced"
    assert row["contains_2"] is False and not row["extrapolated"]


@pytest.mark.parametrize("like", [True, False], ids=["identical rows", "same error"])
def test_st2_rft_identical_to_sft_is_not_reproduced_as_2x(like):
    row = st2(rft=sft_error(8), like={"rft": "sft/n8"} if like else None)
    assert verdict_of(row, "ST-2") != "reproduced"
    if like:  # the same mean error as SFT's smallest rung: read off exactly at it
        assert row["effect"] == pytest.approx(1.0)


def test_st2_read_above_the_ladder_is_more_than_2x_and_not_reproduced():
    # better than SFT's best rung: the read-off is censored at inf, which still says "above 16x",
    # so the interval lies above 1 but excludes the claimed 2x
    row = st2(rft=sft_error(128) - 0.12)
    assert row["extrapolated"] and math.isinf(row["ci"][1]) and row["contains_2"] is False
    assert verdict_of(row, "ST-2") == "not reproduced"


def test_st2_straddling_the_ladder_top_with_2x_inside_is_inconclusive_only_if_1_is_inside():
    from cotrepro.claims import multiplier_verdict
    from cotrepro.multipliers import MultiplierInterval

    def m(low, high):
        return MultiplierInterval(estimate=(low + min(high, 16)) / 2, low=low, high=high, range_low=1, range_high=16)

    assert multiplier_verdict(m(1.5, math.inf), 2) == "reproduced"   # above 1, contains 2
    assert multiplier_verdict(m(0.0, math.inf), 2) == "inconclusive"  # [0, inf]: says nothing
    assert multiplier_verdict(m(0.0, 0.8), 2) == "not reproduced"    # below 1
    assert multiplier_verdict(m(3.0, math.inf), 8, 4) == "reproduced"  # contains 8
    assert multiplier_verdict(m(1.2, 3.0), 8, 4) == "not reproduced"   # below the minimum factor


@pytest.mark.parametrize("claim", ["ST-2", "ST-4"])
def test_a_method_clearly_worse_than_sft_at_the_compare_size_is_not_reproduced(claim):
    worse = sft_error(8) + 0.2
    if claim == "ST-2":
        row = st2(rft=worse)
    else:
        row = scale_synthetic_data.st4_claim(st_evals(step=worse), P6, 0.9)
    assert row["ci"][1] == 0.0  # every resample: worse than SFT on the compare size
    assert verdict_of(row, claim) == "not reproduced"


def st4(**kwargs) -> dict:
    return scale_synthetic_data.st4_claim(st_evals(**kwargs), P6, 0.9)


def test_st4_losing_to_an_rft_above_the_ladder_is_not_reproduced():
    row = st4(step=sft_error(64), rft=sft_error(128) - 0.12)
    assert not row["extrapolated"] and row["contains_8"]  # per-step DPO's own multiplier: 8x, inside
    assert verdict_of(row, "ST-4") == "not reproduced"


def test_st4_per_step_dpo_worth_8x_is_reproduced():
    row = st4()
    assert verdict_of(row, "ST-4") == "reproduced"
    assert row["contains_8"] and row["accuracy_over_rft"][1] > 0


@pytest.mark.parametrize("case, kwargs", [
    ("only 2x: below the minimum factor", dict(step=sft_error(16), rft=sft_error(12))),
    ("8x but losing to RFT", dict(step=sft_error(40), rft=sft_error(80))),
])
def test_st4_not_reproduced(case, kwargs):
    row = st4(**kwargs)
    assert verdict_of(row, "ST-4") == "not reproduced", (row["what"], row["ci"], row["accuracy_over_rft"])


def test_st4_identical_to_sft_is_inconclusive():
    assert verdict_of(st4(step=sft_error(8), like={"dpo_step": "sft/n8"}), "ST-4") != "reproduced"


def test_st4_read_above_the_ladder_is_above_the_minimum_factor_and_reproduced():
    row = st4(step=sft_error(128) - 0.12)  # beyond SFT's best rung (above 16x) and beating RFT
    assert row["extrapolated"] and math.isinf(row["ci"][1])
    assert verdict_of(row, "ST-4") == "reproduced"


def st3(first: dict[int, float], sft16: float | None = None, base: float = 0.9, like=None) -> dict:
    sft = {n: sft_error(n) for n in P6.ladder.sizes}
    if sft16 is not None:
        sft[16] = sft16
    return scale_synthetic_data.st3_claim(st_evals(sft=sft, first=first, base=base, like=like), P6, 0.9)


@pytest.mark.parametrize("case, first, like, expected", [
    ("error rises with more self-samples", {1: 0.40, 4: 0.40, 16: 0.50}, None, "reproduced"),
    ("flat: the same rows", {1: 0.40, 4: 0.45, 16: 0.45}, {"rft_first16": "rft_first4"}, "inconclusive"),
    ("error falls with more self-samples", {1: 0.50, 4: 0.50, 16: 0.35}, None, "not reproduced"),
])
def test_st3_each_way(case, first, like, expected):
    row = st3(first, like=like)
    assert verdict_of(row, "ST-3") == expected
    if like:  # exactly flat, but 600 problems x 3 seeds cannot bound the gain below the 0.02 margin
        assert row["effect"] == pytest.approx(0.0, abs=1e-12) and row["ci"][1] > 0.02


def test_st3_not_askable_when_sft_does_not_beat_the_base():
    row = st3({1: 0.5, 4: 0.5, 16: 0.6}, sft16=0.7, base=0.7)
    assert verdict_of(row, "ST-3") == "not askable"


def st5(std: float, step: float | None = None, like=None) -> dict:
    return scale_synthetic_data.st5_claim(st_evals(std=std, step=step, like=like), P6, 0.9)


def test_st5_each_way():
    sft8 = sft_error(8)
    assert verdict_of(st5(std=sft8 + 0.08), "ST-5") == "reproduced"
    assert verdict_of(st5(std=sft8 - 0.2), "ST-5") == "not reproduced"  # standard DPO clearly better than SFT
    assert verdict_of(st5(std=sft8 - 0.03), "ST-5") == "inconclusive"  # a gain of about the margin


def test_st5_not_askable_when_per_step_dpo_does_not_beat_sft():
    row = st5(std=sft_error(8) + 0.08, step=sft_error(8), like={"dpo_step": "sft/n8"})
    assert verdict_of(row, "ST-5") == "not askable"


def st7(pass_p: dict[str, float], step: float | None = None) -> dict:
    return scale_synthetic_data.st7_claim(st_evals(pass_p=pass_p, step=step), P6, 0.2)


@pytest.mark.parametrize("case, pass_p, step, expected", [
    ("both above", {"sft/n8": 0.3, "dpo_step/n8": 0.5, "base": 0.05}, None, "reproduced"),
    ("pass@k below", {"sft/n8": 0.5, "dpo_step/n8": 0.2, "base": 0.05}, None, "not reproduced"),
    ("pass@1 below", {"sft/n8": 0.3, "dpo_step/n8": 0.5, "base": 0.05}, sft_error(8) + 0.15, "not reproduced"),
])
def test_st7_each_way(case, pass_p, step, expected):
    assert verdict_of(st7(pass_p, step), "ST-7") == expected


def test_st7_equal_pass_rates_are_not_reproduced_as_gains():
    evals = st_evals(step=sft_error(8), like={"dpo_step": "sft/n8"})
    for s in range(SEEDS):  # per-step DPO's samples: SFT's, problems shuffled
        rec = evals[f"sft/n8/s{s}@k"]
        order = np.random.default_rng(s).permutation(len(rec["correct"]))
        evals[f"dpo_step/n8/s{s}@k"] = {**rec, "correct": [rec["correct"][i] for i in order]}
    assert verdict_of(scale_synthetic_data.st7_claim(evals, P6, 0.2), "ST-7") == "inconclusive"


# ---------------------------------------------------------------------------------------------
# ST-6 (step 07)


def advantage_rows(idle_low: float, progress_low: float, traces: int = 150, seed: int = 0,
                   kind: str = "correct") -> list[dict]:
    """Per trace 1 idle and 4 progress steps; exactly the given shares have A <= -0.1."""
    rng = np.random.default_rng(seed)
    idle = rng.permutation(traces) < round(idle_low * traces)
    progress = (rng.permutation(4 * traces) < round(progress_low * 4 * traces)).reshape(traces, 4)
    rows = []
    for t in range(traces):
        flags = [bool(idle[t])] + list(progress[t])
        for i, low in enumerate(flags):
            rows.append({"trace": t, "kind": kind if t % 3 else "probe", "step": i, "n_steps": 5,
                         "A": -0.4 if low else 0.05, "idle": i == 0, "inserted": kind == "probe" and i == 0,
                         "critical": False})
    return rows


@pytest.mark.parametrize("idle, progress, expected", [
    (0.6, 0.1, "reproduced"), (0.05, 0.4, "not reproduced"), (0.2, 0.2, "inconclusive"),
])
def test_st6_each_way(idle, progress, expected):
    row = inspect_advantages.st6_claim(advantage_rows(idle, progress), n_boot=N_BOOT)
    assert verdict_of(row, "ST-6") == expected
    assert row["effect"] == pytest.approx(idle - progress, abs=0.01)


def test_st6_ignores_incorrect_traces_and_unflagged_steps():
    rows = advantage_rows(0.1, 0.1, traces=60)  # 60 idle steps: enough
    shifted = advantage_rows(1.0, 0.0, traces=200, seed=1, kind="incorrect")
    for r in shifted:
        r["trace"] += 1000
        r["kind"] = "incorrect"
    noise = [{**r, "trace": r["trace"] + 5000, "idle": None, "A": -1.0} for r in advantage_rows(1.0, 1.0)]
    missing = [{**r, "trace": r["trace"] + 9000, "A": None} for r in advantage_rows(1.0, 0.0)]
    row = inspect_advantages.st6_claim(rows + shifted + noise + missing, n_boot=N_BOOT)
    assert verdict_of(row, "ST-6") == "inconclusive"
    assert row["effect"] == pytest.approx(0.0, abs=1e-9)


def test_st6_pools_seeds_and_its_interval_widens_when_they_disagree():
    """Three SFT seeds: one that flags idle steps and two that do not is not the same evidence as
    three that agree; the interval is seeds-then-traces, and the trace ids of seeds may repeat."""
    agree = [{**r, "seed": s} for s in range(3) for r in advantage_rows(0.5, 0.1, traces=60, seed=s)]
    split = [{**r, "seed": s} for s in range(3)
             for r in advantage_rows(0.9 if s == 0 else 0.2, 0.1, traces=60, seed=s)]
    a = inspect_advantages.st6_claim(agree, n_boot=N_BOOT)
    b = inspect_advantages.st6_claim(split, n_boot=N_BOOT)
    assert a["seeds"] == b["seeds"] == 3 and "seeds, then traces" in a["ci_kind"]
    assert verdict_of(a, "ST-6") == "reproduced" and a["effect"] == pytest.approx(0.4, abs=0.01)
    assert (b["ci"][1] - b["ci"][0]) > 2 * (a["ci"][1] - a["ci"][0])


def test_st6_too_few_idle_steps_is_not_measured():
    row = inspect_advantages.st6_claim(advantage_rows(0.9, 0.0, traces=40), n_boot=N_BOOT)
    assert verdict_of(row, "ST-6") == "inconclusive" and row["what"].startswith("not measured")


# ---------------------------------------------------------------------------------------------
# ST-8 (step 08)


def star(first: float, later: float, dpo: float | None, graphs: int = 400, seed: int = 0, null: bool = False):
    rng = np.random.default_rng(seed)
    sft, out = [], []
    for s in range(SEEDS):
        hits = rng.permutation(graphs) < round(first * graphs)
        later_steps = np.where(rng.random(graphs) < 0.5, later - 0.01, later + 0.01).clip(0, 1)
        correct = hits & (rng.random(graphs) < later_steps ** 3)
        sft.append({"ids": [f"g{i}" for i in range(graphs)], "correct": correct.astype(float).tolist(),
                    "completions": [""] * graphs, "first_step": hits.astype(float).tolist(),
                    "later_steps": later_steps.tolist()})
    for s in range(SEEDS):
        if null:
            correct = np.array(sft[s]["correct"])[rng.permutation(graphs)]
        else:
            correct = rng.random(graphs) < dpo
        out.append({**sft[s], "correct": correct.astype(float).tolist()})
    return {"SFT": sft, "per-step DPO": out}


@pytest.mark.parametrize("case, first, later, dpo, null, expected", [
    ("shortcut, DPO unlearns it", 0.5, 0.98, 0.8, False, "reproduced"),
    ("shortcut, DPO worse", 0.5, 0.98, 0.2, False, "not reproduced"),
    ("shortcut, DPO the same", 0.5, 0.98, None, True, "inconclusive"),
    ("no shortcut: SFT solves the first step", 0.9, 0.98, 0.97, False, "not reproduced"),
    ("SFT did not learn the later steps", 0.5, 0.6, 0.8, False, "not askable"),
    ("SFT fell below the shortcut level", 0.0, 0.4, 0.3, False, "not askable"),
])
def test_st8_each_way(case, first, later, dpo, null, expected):
    results = star(first, later, dpo, null=null)
    row = stargraph_shortcut.st8_claim(results, degree=2, n_pairs=500, n_boot=N_BOOT)
    assert verdict_of(row, "ST-8") == expected
    assert row["chance"] == 0.5
    assert row["sft_at_shortcut"] == (first == 0.5 and later >= 0.9)


# ---------------------------------------------------------------------------------------------
# Coverage: every claim of claims.yaml has a rule fed above


def test_every_claim_is_exercised_here():
    source = Path(__file__).read_text()
    for c in claims.claim_list():
        assert f'"{c["id"]}"' in source, f"{c['id']} is not tested in this file"


def test_multiplier_text_never_says_nan_or_undefinedx():
    from cotrepro.claims import fmt_multiplier
    from cotrepro.multipliers import MultiplierInterval

    def m(estimate):
        return MultiplierInterval(estimate, 1.0, 2.0, range_low=1.0, range_high=16.0)

    assert fmt_multiplier(m(2.345)) == "2.35x"
    assert fmt_multiplier(m(math.inf)) == "more than 16x"
    assert fmt_multiplier(m(0.0)) == "less than 1x"
    assert fmt_multiplier(m(math.nan)) == "undefined"

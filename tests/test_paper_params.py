"""The paper-scale params (`params/paper/`): they load, follow the protocols, plan in GPU-hours,
and run end to end in CI with every checkpoint swapped for a tiny random model of its architecture.

The end-to-end tests write a params file in a temporary folder that `include:`s the real paper file
and overrides only what cannot run on two CPU cores: the model names (`tiny:qwen2`, `tiny:gemma2`,
`tiny:llama`, resolved by `cotrepro.specs`), 3-4 problems of the real benchmarks in ../shared/data,
8-16 new tokens, one short epoch and one seed. Everything else (the prompts, the fine-tune method,
the step's logic, the notebooks) is the paper scale's own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cotrepro import pipeline, plan, specs, steps
from cotrepro.experiments.sample_teacher_traces import as_completion
from cotrepro.params import load_yaml
from cotrepro.store import RunDir, write_jsonl

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "params" / "paper"
DATA = REPO.parent / "shared" / "data"
N_TRAIN, N_TEST = 4, 3
COMPUTE = {"workers": 1, "threads": 1}
# (architecture, step-02 paper file, step-03 paper file): the three SoT model families
FAMILIES = [("qwen2", "02_sample_teacher_traces.yaml", "03_train_on_traces.yaml"),
            ("gemma2", "02_sample_teacher_traces__gemma.yaml", "03_train_on_traces__gemma.yaml"),
            ("llama", "02_sample_teacher_traces__llama.yaml", "03_train_on_traces__llama.yaml")]

needs_data = pytest.mark.skipif(not (DATA / "gsm8k" / "train.jsonl").is_file(), reason="needs ../shared/data")


def paper_files() -> list[Path]:
    return sorted(PAPER.glob("*.yaml"))


# ---------------------------------------------------------------------------------------------
# The files themselves


def test_every_paper_file_loads_against_its_step_schema():
    files = paper_files()
    assert files, "no params under params/paper/"
    fragments = [f for f in files if f.name.startswith("_")]
    included: set[str] = set()
    for f in files:
        include = yaml.safe_load(f.read_text()).get("include", [])
        included.update([include] if isinstance(include, str) else include)
        if f in fragments:
            load_yaml(f)
            continue
        step, params = steps.load(f)
        steps.check_references(f, step, params)
        assert f.stem.split("__")[0] == step.stem, f"{f.name} is for step {step.stem}"
        assert params.scale == "paper", f.name
    assert {f.name for f in fragments} <= included, "a fragment no file includes"
    assert {f.stem for f in files if f not in fragments} >= {
        "00_verifier_sanity", "90_write_findings", "02_sample_teacher_traces__llama", "03_train_on_traces__llama",
        "03_train_on_traces__lora", "02_sample_teacher_traces__mbpp_gemma", "03_train_on_traces__mbpp_gemma"}
    assert not any(f.stem.startswith("01_") for f in files), "step 01 has no paper scale"


def test_every_paper_file_starts_with_the_command_that_runs_it():
    for f in paper_files():
        lines = f.read_text().splitlines()
        if f.name.startswith("_"):
            assert lines[0].startswith(f"# cotrepro validate params/paper/{f.name}   (a fragment"), f.name
        else:
            stem = f.stem.split("__")[0]
            assert lines[0] == f"# cotrepro run notebooks/{stem}.ipynb -f params/paper/{f.name}", f.name
        assert lines[1].startswith("# ") and len(lines[1]) > 10, f"{f.name}: say what it runs on line 2"


def _load(name: str):
    return steps.load(PAPER / name)[1]


def test_shape_of_thought_steps_use_the_release_recipe_and_evaluation():
    limits = {"gsm8k": 2048, "math": 2048, "countdown": 4096, "mbpp": 1024}
    for f in paper_files():
        if not f.stem[:2] in ("03", "04", "05", "06"):
            continue
        P = _load(f.name)
        t = P.finetune.train
        assert (t.lr, t.epochs, t.batch_size * t.grad_accum, t.warmup_ratio, t.weight_decay, t.max_length,
                t.lr_scheduler) == (1e-6 if P.finetune.method == "full" else 1e-4, 10, 64, 0.1, 0.05, 1024,
                                    "linear"), f.name
        assert P.finetune.method == ("lora" if f.stem.endswith("__lora") else "full"), f.name
        assert P.task.template == "sot_zero_shot", f.name
        assert P.eval.max_new_tokens == limits[P.task.name], f.name
        assert P.seeds[0] == 42 and list(P.seeds) == list(range(42, 42 + len(P.seeds))), f.name
        assert P.compute.workers == 1, f"{f.name}: one GPU job at a time"
    assert _load("03_train_on_traces.yaml").task.n_test == 1319
    assert _load("03_train_on_traces__mbpp.yaml").task.n_test == 200
    lora = _load("03_train_on_traces__lora.yaml").finetune.lora
    assert (lora.r, lora.alpha, lora.dropout) == (64, 128, 0.05)


def test_students_and_teachers_are_the_stated_families():
    pairs = {"02_sample_teacher_traces.yaml": "Qwen/Qwen2.5-7B-Instruct",
             "02_sample_teacher_traces__gemma.yaml": "google/gemma-2-9b-it",
             "02_sample_teacher_traces__llama.yaml": "meta-llama/Llama-3.1-70B-Instruct",
             "02_sample_teacher_traces__mbpp_gemma.yaml": "google/gemma-2-27b-it"}
    for name, teacher in pairs.items():
        assert _load(name).teacher.name == teacher, name
    students = {"03_train_on_traces.yaml": "Qwen/Qwen2.5-1.5B", "03_train_on_traces__gemma.yaml": "google/gemma-2-2b",
                "03_train_on_traces__llama.yaml": "meta-llama/Llama-3.1-8B",
                "03_train_on_traces__mbpp_gemma.yaml": "google/gemma-2-2b"}
    for name, student in students.items():
        assert _load(name).student.name == student, name
    assert _load("03_train_on_traces__mbpp_gemma.yaml").traces_from == "02_sample_teacher_traces__mbpp_gemma.yaml"


def test_setlur_ladder_spans_16x_and_fits_the_train_split():
    train_sizes = {"gsm8k": 7473, "math": 7500}
    for name in ("06_scale_synthetic_data.yaml", "06_scale_synthetic_data__gemma.yaml",
                 "06_scale_synthetic_data__math.yaml"):
        P = _load(name)
        L = P.ladder
        assert max(L.sizes) >= 16 * L.compare_size, name
        assert -(-max(L.sizes) * L.pool_factor // 1) <= train_sizes[P.task.name], f"{name}: pool exceeds the split"
        assert L.negatives_per_problem == 8 and L.self_sampling.k >= 32, name
        assert (P.stepvalues.best_of, P.stepvalues.strategy) == (5, "first_success"), name
        assert len(P.seeds) == 3, name


# ---------------------------------------------------------------------------------------------
# cotrepro plan


def _plan_blocks() -> dict[str, str]:
    """{file stem: its block of `plan_scale("paper")`}."""
    blocks: dict[str, str] = {}
    current = None
    for line in plan.plan_scale("paper").splitlines():
        if line.startswith("all "):  # the scale's total, after the last step's block
            break
        if not line.startswith(" "):
            current = Path(line.split(" (")[0]).stem
            blocks[current] = ""
        blocks[current] += line + "\n"
    return blocks


# steps whose params name no student or teacher: `cotrepro.plan` cannot size their model
NO_MODEL_STEPS = ("00", "07", "08", "90")


def test_plan_reports_gpu_hours_for_every_step_with_a_model():
    blocks = _plan_blocks()
    assert set(blocks) == {f.stem for f in steps.params_files("paper")}
    for stem, block in blocks.items():
        assert "core(s)" not in block and "min on" not in block, f"{stem}: a CPU estimate at paper scale\n{block}"
        if stem[:2] not in NO_MODEL_STEPS:
            assert re.search(r"estimate +[\d.]+ GPU-hours on one H200", block), block


def test_plan_reports_gpu_hours_for_steps_without_a_student_or_teacher():
    blocks = _plan_blocks()
    for stem, block in blocks.items():
        if stem[:2] in NO_MODEL_STEPS:
            assert "GPU-hours" in block, block


# ---------------------------------------------------------------------------------------------
# End to end with tiny models


@pytest.fixture(scope="module")
def ci_root(tmp_path_factory):
    """One run root (and job cache) for the module, figures in a temporary folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("COTREPRO_FIGURES", str(tmp_path_factory.mktemp("figures")))
    yield tmp_path_factory.mktemp("paper_ci")
    mp.undo()


def write_params(folder: Path, name: str, paper_file: str, overrides: dict) -> Path:
    """A params file that includes the real paper file and overrides `overrides`."""
    step = steps.step_of(PAPER / paper_file)
    path = folder / name
    path.write_text(yaml.safe_dump({"step": step.name, "include": str(PAPER / paper_file), **overrides},
                                   sort_keys=False))
    return path


def teacher_params(folder: Path, arch: str, paper_file: str) -> Path:
    return write_params(folder, f"02_{arch}.yaml", paper_file, {
        "teacher": {"name": f"tiny:{arch}", "load_in_4bit": False},  # NF4 (the Llama teacher) needs a GPU
        "task": {"n_train": N_TRAIN}, "sampling": {"k": 2, "max_new_tokens": 8, "batch_size": 8},
        "max_sets": N_TRAIN, "min_sets": 1, "compute": COMPUTE, "n_boot": 200})


# The paper's max_length (1024) is kept: the tiny models' byte-level tokenizer needs ~1.25 characters
# per token, so the SoT prompt alone is 400-520 tokens and a 512-token limit would cut off nearly
# every completion (G and W, which differ only in the final answer, would then train identically).
MAX_LENGTH = 1024


def student_overrides(arch: str, traces_from: Path) -> dict:
    return {"student": {"name": f"tiny:{arch}"}, "traces_from": traces_from.name,
            "task": {"n_train": N_TRAIN, "n_test": N_TEST}, "eval": {"max_new_tokens": 16, "batch_size": 8},
            "finetune": {"train": {"epochs": 1, "batch_size": 2, "grad_accum": 1, "max_length": MAX_LENGTH}},
            "seeds": [0], "compute": COMPUTE, "n_boot": 200}


def one_sentence_per_line(solution: str) -> str:
    """A GSM8K solution rewritten with one sentence per line, its `#### N` line last."""
    body, _, final = solution.rpartition("####")
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(body.split()))
    return "\n".join(s for s in sentences if s) + f"\n#### {final.strip()}"


def wrong_answer(trace: str, answer: str) -> str:
    wrong = str(int(answer) + 1) if re.fullmatch(r"-?\d+", answer) else answer + "1"
    return re.sub(r"####.*$", f"#### {wrong}", trace)


def stand_in_for_teacher(p02: Path, root: Path, arch: str) -> None:
    """Step 02's outputs for `p02`, written as `pipeline.run_notebook` would leave them.

    This stands in for a real teacher: a tiny random model solves nothing (step 02 then fails, as
    `test_step_02_with_a_tiny_teacher_fails_as_degenerate` shows), so the matched sets are made
    from the GSM8K training problems themselves: H = the human solution, G = the same solution one
    sentence per line, W = G with its final answer changed; prompts from the task's template.
    """
    run = pipeline.locate(p02, root)
    RunDir.open(run.step.name, run.params, run.root)
    task = specs.get_task(run.params.task)
    sets: dict[str, list[dict]] = {"H": [], "G": [], "W": []}
    for problem in specs.train_problems(run.params.task, run.params.data):
        prompt = task.prompt(problem, run.params.task.template)
        g = one_sentence_per_line(problem.solution)
        for name, trace in (("H", problem.solution), ("G", g), ("W", wrong_answer(g, problem.answer))):
            sets[name].append({"prompt": prompt, "completion": as_completion(prompt, trace), "problem_id": problem.id})
    for name, examples in sets.items():
        write_jsonl(run.path / "sets" / f"{name}.jsonl", examples)
    # every example fits whole under the fine-tune's max_length, so W's changed answer is trained on
    from cotrepro.models import load_tokenizer
    from cotrepro.sections import ModelSpec

    tokenizer = load_tokenizer(specs.model_path(specs.spec_ref(ModelSpec(name=f"tiny:{arch}")), root))
    longest = max(len(tokenizer(e["prompt"] + e["completion"])["input_ids"]) for e in sets["W"])
    assert longest < MAX_LENGTH, f"a W example has {longest} tokens: raise MAX_LENGTH"
    RunDir(run.path).write_json(pipeline.DONE, {"notebook": run.step.notebook.name, "params_file": str(p02),
                                                "seconds": 0.0})
    assert pipeline.locate(p02, root).done


def finetuned_models(root: Path, arch: str, method: str) -> list[Path]:
    """Fine-tuned checkpoints of tiny:ARCH by `method` in the job cache."""
    found = []
    for config in (root / "cache" / "finetune").glob("*/model/config.json"):
        spec = json.loads((config.parents[1] / "spec.json").read_text())["spec"]
        if spec["base"]["spec"]["name"] == f"tiny:{arch}" and spec["finetune"]["method"] == method:
            found.append(config.parent)
    return found


def check_step_results(run, claim_ids: tuple[str, ...], conditions: list[str]) -> None:
    claims = run.dir.read_json("claims.json")
    verdicts = {row["claim"]: row["verdict"] for row in claims}
    for claim in claim_ids:
        assert isinstance(verdicts.get(claim), str) and verdicts[claim], f"{claim}: no verdict in {verdicts}"
    outcomes = run.dir.read_json("outcomes.json")
    assert set(conditions) <= set(outcomes)
    for condition, records in outcomes.items():
        for record in records:
            assert record["summary"]["n"] == N_TEST and len(record["scores"]) == N_TEST, condition


@needs_data
@pytest.mark.slow
def test_step_02_with_a_tiny_teacher_fails_as_degenerate(ci_root, tmp_path):
    p02 = teacher_params(tmp_path, "qwen2", "02_sample_teacher_traces.yaml")
    step = steps.step_of(p02)
    with pytest.raises(pipeline.StepFailed) as failed:
        pipeline.run_notebook(step.notebook, p02, run_root=ci_root)
    assert "Degenerate" in str(failed.value) and "solved 0" in str(failed.value), str(failed.value)
    assert not pipeline.locate(p02, ci_root).done


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("arch,paper_02,paper_03", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_train_on_traces_runs_with_tiny_models(ci_root, tmp_path, arch, paper_02, paper_03):
    p02 = teacher_params(tmp_path, arch, paper_02)
    stand_in_for_teacher(p02, ci_root, arch)
    p03 = write_params(tmp_path, f"03_{arch}.yaml", paper_03, student_overrides(arch, p02))
    step = steps.step_of(p03)
    run, ran = pipeline.run_notebook(step.notebook, p03, run_root=ci_root)
    assert ran and run.done
    check_step_results(run, ("SoT-1", "SoT-2"), ["none", "H", "G", "W"])
    assert len(finetuned_models(ci_root, arch, "full")) >= 3  # H, G and W at seed 0

    if arch != "qwen2":
        return
    # the LoRA variant (its adapter merged into a plain checkpoint) and step 05, on the same sets
    p03_lora = write_params(tmp_path, "03_lora.yaml", "03_train_on_traces__lora.yaml", student_overrides(arch, p02))
    run, _ = pipeline.run_notebook(step.notebook, p03_lora, run_root=ci_root)
    check_step_results(run, ("SoT-1", "SoT-2"), ["none", "H", "G", "W"])
    assert len(finetuned_models(ci_root, arch, "lora")) >= 3
    p05 = write_params(tmp_path, "05_qwen2.yaml", "05_corrupt_steps.yaml",
                       {**student_overrides(arch, p02), "operators": ["mixed"], "levels": [0.0, 0.25, 1.0]})
    run, _ = pipeline.run_notebook(steps.step_of(p05).notebook, p05, run_root=ci_root)
    check_step_results(run, ("SoT-5",), ["none", "G", "mixed@0.25", "mixed@1"])

"""Multi-process training: SFT and DPO with LoRA as two data-parallel CPU processes under
`accelerate launch` (gloo), from the entry point a GPU user's params select
(`compute: {launcher: accelerate, processes: N}` -> `jobs.run_jobs(..., launcher="accelerate")`
-> `accelerate launch --num_processes N --multi_gpu -m cotrepro.jobs TARGET SPEC OUT`).

Each job runs twice on the same spec: in one process with per-device batch B, and on two
processes with per-device batch B/2 (`jobs.per_device_spec`), the same global batch. The loss
curves (loss.json, one record per optimizer step) must agree to float rounding.

Why the tolerance is small (rtol 1e-5): LoRA dropout is 0 and both runs see the same examples in
the same global batches (one seeded sampler; accelerate hands rank r every r-th per-device
batch of it), the SFT loss is normalised by the token count over all ranks (transformers'
`average_tokens_across_devices`) and the DPO loss is a per-pair mean over equal halves, so the
two runs compute the same quantities in another order: fp32 sums over 2 ranks and shorter padded
batches. Measured here: 9e-8 (SFT) and 5e-7 (DPO) relative over the 8 steps; rtol 1e-5 leaves
a 20x margin for other CPUs' kernels. A rank that trained on other examples, a global batch
twice as large (half the steps), or a per-rank loss normalisation (the halves hold different
token counts) moves the curve by far more than float rounding does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotrepro import jobs
from cotrepro.params import to_dict
from cotrepro.sections import DPOParams, DPOSection, FinetuneSection, LoraParams, TrainParams

from _micro import sums

RTOL = 1e-5
TRAIN = TrainParams(lr=1e-3, epochs=2, batch_size=4, grad_accum=2, warmup_ratio=0.0, weight_decay=0.0,
                    max_length=64, lr_scheduler="constant", save_steps=1000)
LORA = LoraParams(r=4, alpha=8, dropout=0.0)


@pytest.fixture(scope="module")
def micro_base(tmp_path_factory) -> Path:
    from cotrepro.tiny import tiny_random_model

    out = tmp_path_factory.mktemp("base") / "llama"
    tiny_random_model("llama", out)
    return out


def sft_job(base: Path) -> jobs.Job:
    examples = [{"prompt": p, "completion": c} for p, c in sums(32, seed=1)]
    spec = {"base": {"spec": {"name": str(base)}}, "examples": examples, "seed": 0,
            "finetune": to_dict(FinetuneSection(method="lora", train=TRAIN, lora=LORA))}
    return jobs.Job("finetune", "cotrepro.train:finetune_job", spec, "sft")


def dpo_job(base: Path) -> jobs.Job:
    pairs = []
    for i, (p, c) in enumerate(sums(32, seed=2)):
        wrong = c.replace("####", "#### 1") if i % 2 else c[: len(c) // 2]
        pairs.append({"prompt": p, "chosen": c, "rejected": wrong, "rejected_is_prefix": i % 2 == 0})
    spec = {"reference": {"spec": {"name": str(base)}}, "pairs": pairs, "seed": 0,
            "dpo": to_dict(DPOSection(method="lora", train=TRAIN, lora=LORA, dpo=DPOParams(beta=0.1)))}
    return jobs.Job("finetune", "cotrepro.dpo:dpo_job", spec, "dpo")


@pytest.fixture(scope="module")
def runs(micro_base, tmp_path_factory, monkeypatch_module):
    """Each job in one process (the default path) and on two processes (accelerate)."""
    monkeypatch_module.setenv("OMP_NUM_THREADS", "1")
    batch = [sft_job(micro_base), dpo_job(micro_base)]
    one, two = tmp_path_factory.mktemp("one_process"), tmp_path_factory.mktemp("two_processes")
    single = jobs.run_jobs(batch, one, workers=1, progress=False)
    double = jobs.run_jobs(batch, two, workers=1, progress=False, launcher="accelerate", processes=2)
    return batch, single, double


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def curve(folder: Path) -> list[dict]:
    return json.loads((folder / "loss.json").read_text())


@pytest.mark.parametrize("index, name", [(0, "sft"), (1, "dpo")])
def test_two_processes_learn_the_one_process_curve(runs, index, name):
    batch, single, double = runs
    one, two = curve(single[index]), curve(double[index])
    assert len(one) == 8, "32 examples / global batch 8 x 2 epochs = 8 optimizer steps"
    assert [r["step"] for r in two] == [r["step"] for r in one]
    worst = max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(one, two))
    assert worst <= RTOL, (f"{name}: loss curves differ by {worst:.2e} relative (one process "
                           f"{[r['loss'] for r in one]}, two {[r['loss'] for r in two]})")
    print(f"\n{name}: largest relative loss difference 1 vs 2 processes: {worst:.2e}")
    assert one[-1]["loss"] < one[0]["loss"]  # it learned


def test_the_launch_ran_two_ranks_and_rank_zero_wrote_the_job(runs):
    batch, single, double = runs
    for job, folder in zip(batch, double):
        assert folder == jobs.job_dir(job, folder.parents[2])  # the same cache key as a 1-process run
        assert jobs.is_done(folder) and (folder / "model" / "config.json").is_file()
        recorded = json.loads((folder / "spec.json").read_text())
        assert recorded["processes"] == 2
        train = recorded["spec"]["finetune" if "finetune" in recorded["spec"] else "dpo"]["train"]
        assert (train["batch_size"], train["grad_accum"]) == (2, 2)  # per device: half the batch
        assert not (folder / "train").exists()
        assert not folder.with_name(folder.name + ".partial").exists()
        assert not folder.with_name(folder.name + ".launch.json").exists()


def test_accelerate_command_is_the_documented_one():
    command = jobs.accelerate_command("cotrepro.train:finetune_job", "spec.json", "out", processes=8)
    text = " ".join(command[1:])
    assert text.startswith("-m accelerate.commands.launch --num_processes 8 ")
    assert "--multi_gpu" in command and "--cpu" not in command  # --cpu would start one process
    assert text.endswith("-m cotrepro.jobs cotrepro.train:finetune_job spec.json out --threads 1")


def test_per_device_spec_keeps_the_global_batch():
    spec = {"finetune": {"train": {"batch_size": 4, "grad_accum": 16}}}
    assert jobs.per_device_spec(spec, 1) is spec
    assert jobs.per_device_spec(spec, 2)["finetune"]["train"] == {"batch_size": 2, "grad_accum": 16}
    assert jobs.per_device_spec(spec, 8)["finetune"]["train"] == {"batch_size": 4, "grad_accum": 2}
    with pytest.raises(ValueError, match="cannot be split"):
        jobs.per_device_spec({"dpo": {"train": {"batch_size": 3, "grad_accum": 5}}}, 2)


def test_one_launched_process_is_the_in_process_run(runs, micro_base, tmp_path):
    """processes 1: `accelerate launch --cpu --num_processes 1 -m cotrepro.jobs` runs the job as
    `_run_one` does in this process: the same curve to the bit."""
    batch, single, _ = runs
    [folder] = jobs.run_jobs([batch[0]], tmp_path, progress=False, launcher="accelerate", processes=1)
    assert curve(folder) == curve(single[0])
    assert json.loads((folder / "spec.json").read_text())["spec"] == batch[0].spec

"""The schema of every params file under `params/`.

One schema serves every notebook: a params file sets the sections its notebook reads and inherits
the rest from its base (`include:`). `load_experiment(path)` is what notebooks, the runner and
`cotrepro validate` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cotrepro.dpo import DPOParams
from cotrepro.generate import SamplingParams
from cotrepro.micro import PretrainParams
from cotrepro.models import LoraParams
from cotrepro.params import load_params, param
from cotrepro.train import TrainParams
from cotrepro.experiments.scaling import ScalingParams
from cotrepro.experiments.advantages import AdvantageParams
from cotrepro.experiments.stargraph import StarGraphParams
from cotrepro.experiments.sot import SotParams

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DataParams:
    data_dir: str = param("../shared/data", "folder of local benchmark copies (relative to the repo root); "
                          "datasets missing there are loaded from the Hugging Face hub")


@dataclass(frozen=True)
class SanityParams:
    datasets: tuple[str, ...] = param(("gsm8k", "math500", "math", "countdown", "mbpp"),
                                      "datasets whose gold solutions are graded",
                                      choices=("gsm8k", "math500", "math", "countdown", "mbpp"))
    limit: int | None = param(None, "items per dataset and split (null = all)", ge=1)
    item_timeout_s: float = param(60.0, "hard per-item time limit of the grader", gt=0)
    program_timeout_s: float = param(30.0, "time limit of one MBPP gold program (the evaluation limit is 5 s, "
                                     "but one gold program needs 2-6 s of CPU: on a loaded machine a 5 s limit "
                                     "would make the table depend on the load)", gt=0)


@dataclass(frozen=True)
class ModelsParams:
    """Which models play which role. A spec is a hub id, a local directory, `micro:student` or
    `micro:teacher` (the micro world's models, pretrained by step 01 and cached), or `tiny:ARCH`
    (a tiny randomly initialised qwen2/llama/gemma2: the paper path exercised in CI)."""

    student: str = param("micro:student", "the base model that is fine-tuned")
    teacher: str = param("micro:teacher", "the more capable model whose traces are the synthetic data")
    paraphraser: str = param("micro:teacher", "the model that rewrites human traces toward the student")
    student_revision: str | None = param(None, "hub revision of the student")
    teacher_revision: str | None = param(None, "hub revision of the teacher")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = param("auto", "weight dtype")
    load_in_4bit: bool = param(False, "QLoRA: the student base in 4-bit (GPU only)")


@dataclass(frozen=True)
class TaskParams:
    """The problems of an experiment."""

    name: str = param("arith", "task: arith, countdown, stargraph (generated) or gsm8k, math, math500, "
                      "countdown, mbpp (real)", choices=("arith", "gsm8k", "math", "math500", "countdown",
                                                         "mbpp", "stargraph"))
    template: str = param("default", "prompt template (versioned data under cotrepro/tasks/prompts)")
    train_split: str = param("train", "split the training problems come from")
    test_split: str = param("test", "split the evaluation problems come from")
    n_train: int = param(512, "training problems", ge=1)
    n_test: int = param(200, "evaluation problems", ge=1)


@dataclass(frozen=True)
class EvalParams:
    """How a fine-tuned model is evaluated."""

    max_new_tokens: int = param(96, "longest completion", ge=1)
    k: int = param(5, "samples per problem for pass@k and maj@k (besides the greedy pass@1)", ge=1)
    temperature: float = param(0.7, "temperature of the k samples", ge=0.0)
    batch_size: int = param(64, "sequences per generate call", ge=1)


@dataclass(frozen=True)
class StepValueParams:
    """Monte Carlo step values (Setlur et al. 2024)."""

    rollouts: int = param(4, "rollouts per step prefix", ge=1)
    best_of: int | None = param(5, "best-of-K transform Q = 1-(1-q)^K (Setlur: K=5); null = plain q", ge=1)
    strategy: Literal["exhaustive", "early_stop", "bisect"] = param(
        "early_stop", "which prefixes get rollouts: early_stop gives exhaustive's answer with fewer (bench/results/stepvalues.md)")
    temperature: float = param(1.0, "rollout temperature", gt=0.0)
    negatives_per_problem: int = param(8, "incorrect responses per problem (Setlur: 8)", ge=1)


@dataclass(frozen=True)
class ExperimentParams:
    experiment: str = param(help="name of the experiment: the run directory is runs/<experiment>/<hash>")
    scale: Literal["micro", "smoke", "paper"] = param("micro", "micro: CPU models from scratch; smoke: "
                                                      "tiny, for tests; paper: real checkpoints on a GPU")
    seed: int = param(0, "base seed; every random choice derives from it", ge=0)
    workers: int | None = param(None, "worker processes for grading (null = every core)", ge=1)
    allow_code_execution: bool = param(False, "run generated code (mbpp) in the contained code runner")
    data: DataParams = param(default_factory=DataParams, help="where the benchmarks are")
    sanity: SanityParams = param(default_factory=SanityParams, help="verifier-sanity notebook")
    models: ModelsParams = param(default_factory=ModelsParams, help="student, teacher, paraphraser")
    micro: PretrainParams = param(default_factory=PretrainParams, help="the micro world (scale micro/smoke)")
    task: TaskParams = param(default_factory=TaskParams, help="problems")
    lora: LoraParams = param(default_factory=LoraParams, help="LoRA adapter of every fine-tune")
    train: TrainParams = param(default_factory=TrainParams, help="optimisation of SFT, RFT and DPO")
    dpo: DPOParams = param(default_factory=DPOParams, help="DPO specifics")
    sampling: SamplingParams = param(default_factory=SamplingParams, help="sampling of synthetic traces")
    eval: EvalParams = param(default_factory=EvalParams, help="evaluation of fine-tuned models")
    stepvalues: StepValueParams = param(default_factory=StepValueParams, help="Monte Carlo step values")
    sot: SotParams = param(default_factory=SotParams, help="Shape of Thought steps 02-05 (SoT-1..7)")
    scaling: ScalingParams = param(default_factory=ScalingParams, help="Setlur et al. step 06: data ladder, SFT/RFT/DPO (ST-1..5, ST-7)")
    advantages: AdvantageParams = param(default_factory=AdvantageParams, help="Setlur et al. step 07: step advantages (ST-6)")
    stargraph: StarGraphParams = param(default_factory=StarGraphParams, help="Setlur et al. step 08: star-graph shortcut (ST-8)")

    def data_dir(self) -> Path:
        """`data.data_dir` resolved against the repository root."""
        path = Path(self.data.data_dir)
        return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def load_experiment(path: str | Path, overrides: dict | None = None) -> ExperimentParams:
    return load_params(path, ExperimentParams, overrides)

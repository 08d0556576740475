"""The shared sections of params files: what a model, a task, a fine-tune or a sampler is.

Each step's schema (`Params` in `cotrepro/experiments/<step>.py`) is built from these sections and
declares only the ones it reads, so a params file can hold nothing its step ignores. This module
is a leaf (it imports only `cotrepro.params`): `cotrepro validate` loads every schema without
importing torch. The engine modules that consume a section re-export it (`generate.SamplingParams`
is this module's `SamplingParams`), TRL-style, so a reader finds each section beside its code.

A section may define `check(self)`, which raises `Invalid(key, message)` for a mistake that spans
fields; the loader turns it into the usual one-line `FILE: key: message`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cotrepro.params import Invalid, param

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
TASKS = ("arith", "gsm8k", "math", "math500", "countdown", "mbpp", "stargraph")


@dataclass(frozen=True)
class DataSection:
    """Where the real benchmarks are."""

    data_dir: str = param("../shared/data", "folder of local benchmark copies (relative to the repository root); "
                          "datasets missing there are loaded from the Hugging Face hub")


@dataclass(frozen=True)
class ModelSpec:
    """One model: a hub id or local folder (paper scale), `micro:student`, `micro:teacher`,
    `micro:paraphraser` or `micro:stargraph-s0` (the shipped micro world, `world/`), or
    `tiny:ARCH` (a tiny random qwen2, llama or gemma2 that stands in for a hub checkpoint when the
    paper params run in CI)."""

    name: str = param(help="model spec (see above)")
    revision: str | None = param(None, "hub revision (commit, branch or tag); null = the default branch")
    dtype: Dtype = param("auto", "weight dtype; auto = float32 on CPU, the checkpoint's dtype on GPU",
                         choices=("auto", "float32", "bfloat16", "float16"))
    load_in_4bit: bool = param(False, "QLoRA: load the base in 4-bit NF4 (GPU only)")


@dataclass(frozen=True)
class TaskSection:
    """The problems of a step."""

    name: str = param("arith", "task", choices=TASKS)
    template: str = param("default", "prompt template (versioned data under cotrepro/tasks/prompts)")
    train_split: str = param("train", "split the training problems come from")
    test_split: str = param("test", "split the evaluation problems come from")
    n_train: int = param(512, "training problems", ge=1)
    n_test: int = param(1000, "evaluation problems (null in a params file is not allowed: say how many)", ge=1)
    allow_code_execution: bool = param(False, "run the generated code of a task that needs it (mbpp), in the contained "
                                              "code runner (cotrepro.sandbox): the opt-in of `cotrepro grade "
                                              "--allow-code-execution`")

    def check(self) -> None:
        if self.name == "mbpp" and not self.allow_code_execution:
            raise Invalid("allow_code_execution", "mbpp grades by running the generated code: set it to true (the "
                                                  "code runs in the contained code runner)")


@dataclass(frozen=True)
class EvalSection:
    """How a trained model is evaluated on the test problems: greedy pass@1, and pass@k from k
    samples where a step asks for it."""

    max_new_tokens: int = param(256, "longest completion; must cover the longest gold solution", ge=1)
    batch_size: int = param(64, "sequences per generate call (does not change the outputs)", ge=1)
    backend: Literal["hf", "vllm", "auto"] = param("hf", "as sampling.backend: hf, vllm or auto (greedy "
                                                         "completions are the same on hf and vllm)",
                                                   choices=("hf", "vllm", "auto"))


@dataclass(frozen=True)
class PassAtK:
    """Sampled evaluation for pass@k."""

    k: int = param(5, "pass@k is reported for this k", ge=1)
    samples: int = param(10, "samples per problem (the unbiased estimator uses n >= k samples)", ge=1)
    temperature: float = param(0.7, "temperature of the samples", gt=0.0)

    def check(self) -> None:
        if self.samples < self.k:
            raise Invalid("samples", f"{self.samples} samples cannot estimate pass@{self.k}")


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: k completions per prompt (`cotrepro.generate.sample`)."""

    k: int = param(1, "completions per prompt", ge=1)
    temperature: float = param(0.0, "softmax temperature; 0 = greedy", ge=0.0)
    top_p: float = param(1.0, "nucleus sampling: keep the smallest token set with this much probability", gt=0.0, le=1.0)
    max_new_tokens: int = param(256, "most tokens generated per completion", ge=1)
    stop: tuple[str, ...] = param((), "stop strings: generation ends at the first and the text is cut before it "
                                      "(the task template's stop strings are always added)")
    seed: int = param(0, "sampling seed (each prompt derives its own from this and its text)", ge=0)
    batch_size: int = param(64, "sequences per forward pass (does not change the outputs)", ge=1)
    backend: Literal["hf", "vllm", "auto"] = param(
        "hf", "hf: the package's decoder over transformers models (CPU and GPU); vllm: vLLM (pip install "
              "'cotrepro[vllm]'); auto: vllm when it is installed and a GPU is present, else hf",
        choices=("hf", "vllm", "auto"))

    def identity(self) -> dict:
        """The fields that can change what is generated (batch size cannot): a cache key's part."""
        return {"k": self.k, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "stop": list(self.stop), "seed": self.seed}


@dataclass(frozen=True)
class LoraParams:
    """LoRA adapter shape (peft `LoraConfig`)."""

    r: int = param(16, "LoRA rank", ge=1)
    alpha: int = param(32, "LoRA alpha (scaling = alpha / r)", ge=1)
    dropout: float = param(0.05, "dropout on the LoRA input", ge=0.0, le=1.0)
    target_modules: str = param("all-linear", "modules to adapt: 'all-linear' or a comma-separated list of names")


@dataclass(frozen=True)
class TrainParams:
    """Optimisation settings of SFT, RFT and DPO (Shape of Thought's release in comments). The
    seed of a run is not here: each step trains over its own list of seeds."""

    lr: float = param(1e-6, "peak learning rate (SoT full fine-tuning: 1e-6; LoRA needs ~1e-4 to 2e-4)", gt=0)
    epochs: float = param(10.0, "passes over the data (SoT: 10)", gt=0)
    batch_size: int = param(4, "examples per device per step (SoT: 4)", ge=1)
    grad_accum: int = param(16, "gradient accumulation steps (SoT: 16, effective batch 64)", ge=1)
    warmup_ratio: float = param(0.1, "share of steps with linear warmup (SoT: 0.1)", ge=0, le=0.9)
    weight_decay: float = param(0.05, "AdamW weight decay (SoT: 0.05)", ge=0)
    max_length: int = param(1024, "longest tokenised prompt+completion; longer ones are truncated (SoT: 1024)", ge=8)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = param(
        "linear", "learning-rate schedule after warmup (SoT: linear decay)")
    save_steps: int = param(50, "write a resumable checkpoint every this many optimiser steps", ge=1)
    precision: Literal["auto", "fp32", "bf16"] = param(
        "auto", "auto = bf16 mixed precision on a GPU that supports it, fp32 otherwise (always fp32 on CPU)")
    gradient_checkpointing: bool = param(False, "recompute activations in the backward pass to save memory")


@dataclass(frozen=True)
class FinetuneSection:
    """How a model is fine-tuned: every weight (the Shape of Thought release), or a LoRA adapter."""

    method: Literal["full", "lora"] = param("full", "full: every weight, embeddings included; lora: an adapter "
                                            "(merged into the weights after training)", choices=("full", "lora"))
    train: TrainParams = param(default_factory=TrainParams, help="optimisation")
    lora: LoraParams | None = param(None, "the adapter (method lora only)")

    def check(self) -> None:
        if self.method == "lora" and self.lora is None:
            raise Invalid("lora", "method lora needs a lora section (r, alpha, dropout)")
        if self.method == "full" and self.lora is not None:
            raise Invalid("lora", "method full trains every weight: a lora section would be ignored; remove it")


@dataclass(frozen=True)
class DPOParams:
    """Settings specific to DPO (the optimisation settings are a TrainParams beside it)."""

    beta: float = param(0.1, "strength of the KL tie to the reference (Setlur et al.: not reported)", gt=0)
    loss_type: Literal["sigmoid", "ipo", "hinge"] = param("sigmoid", "sigmoid = the DPO loss of Rafailov et al.")


@dataclass(frozen=True)
class DPOSection:
    """A DPO fine-tune from a reference model (the reference is the model it starts from)."""

    method: Literal["full", "lora"] = param("lora", "full: every weight (a frozen copy is the reference); lora: an "
                                            "adapter on the reference (adapter off = reference)",
                                            choices=("full", "lora"))
    train: TrainParams = param(default_factory=TrainParams, help="optimisation")
    lora: LoraParams | None = param(None, "the adapter (method lora only)")
    dpo: DPOParams = param(default_factory=DPOParams, help="the DPO loss")

    check = FinetuneSection.check


@dataclass(frozen=True)
class StepValueParams:
    """Monte Carlo step values (Setlur et al. 2024, section 5)."""

    rollouts: int = param(16, "rollouts per step prefix", ge=1)
    best_of: int | None = param(5, "best-of-K transform Q = 1-(1-q)^K (Setlur: K=5); null = plain q", ge=1)
    strategy: Literal["exhaustive", "early_stop", "first_success"] = param(
        "first_success", "exhaustive: every rollout of every prefix; early_stop: stop at the first prefix whose "
                         "Q is 0; first_success: early_stop, and a prefix's rollouts stop at the first success "
                         "when the value is only used as 'Q > 0 or not' (bench/bench_stepvalues.py)",
        choices=("exhaustive", "early_stop", "first_success"))
    temperature: float = param(1.0, "rollout temperature", gt=0.0)
    zero_after: int | None = param(None, "first_success only: a prefix whose first this many rollouts all fail counts as "
                                         "Q = 0 without drawing the rest (null = all `rollouts`, exact); an "
                                         "approximation whose agreement with exhaustive rollouts "
                                         "bench/bench_stepvalues.py measures", ge=1)
    share: bool = param(False, "early_stop and first_success: a rollout that writes the trace's next steps word "
                               "for word also counts for the later prefixes it passes through (fewer tokens; "
                               "an approximation whose agreement bench/bench_stepvalues.py measures)")
    max_new_tokens: int = param(256, "longest rollout", ge=1)
    batch_size: int = param(256, "rollouts per forward pass", ge=1)


@dataclass(frozen=True)
class ComputeSection:
    """How a step uses the machine. Neither setting changes a result: jobs are independent and
    single-threaded, so a parallel run gives the serial run's numbers."""

    workers: int | None = param(None, "processes running independent jobs (fine-tunes, evaluations) at once; "
                                      "null = one per core, or one where a GPU is present", ge=1)
    # One thread per process: two OpenMP threads on a 2-core machine shared with other work
    # spin-wait and ran micro SFT 20x slower per step than one (LOG.md, 2026-11-21).
    threads: int = param(1, "torch CPU threads per process", ge=1)
    launcher: Literal["none", "accelerate"] = param(
        "none", "none: each fine-tune (SFT, RFT, DPO) job runs in one process, as workers says; accelerate: "
                "`accelerate launch --num_processes N -m cotrepro.jobs TARGET SPEC OUT` runs each as N "
                "data-parallel processes (on a GPU node N = the GPUs; without a GPU, N CPU processes over "
                "gloo); other jobs run as with none", choices=("none", "accelerate"))
    processes: int = param(1, "N, the processes of each fine-tune under launcher accelerate; the global "
                              "batch stays train.batch_size x grad_accum (the per-device batch is divided "
                              "by N), so N does not change what is learned beyond float rounding", ge=1)

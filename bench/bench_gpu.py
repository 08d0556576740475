"""GPU throughput at the papers' smallest student size, against the card's roofline.

    python bench/bench_gpu.py [--prompts 256] [--new-tokens 512] [--train-steps 10]

A randomly initialised model with the exact shape of Qwen2.5-1.5B (Qwen2Config with its real sizes,
bf16; no download: weights do not change the speed) is measured twice:

1. Sampling: `prompts` random 64-token prompts, `new_tokens` new tokens each (min_new_tokens pins
   the count), in one batch, through transformers `generate` with cotrepro's `SeededSampler` (the
   logits processor `cotrepro.generate.sample` uses) and, for comparison, with transformers' own
   `do_sample=True`. Decoding is memory-bound: each step reads every weight once plus the KV
   cache, and computes 2N FLOPs per sequence. The roofline is
   tokens/s <= batch / max(bytes read per step / bandwidth, FLOPs per step / peak FLOP/s).
2. LoRA SFT (r=16, all linear layers, bf16, AdamW on the adapter): tokens/s and model FLOP
   utilisation. Two FLOP counts are printed. "6N": the usual 2N forward + 4N backward per token
   (N = all parameters), which overstates LoRA work since frozen weights get no weight gradient.
   "LoRA": 2N forward + 2N backward (gradients w.r.t. activations still flow through every frozen
   matrix) + 6 N_lora for the adapter's own weights. Attention score FLOPs are left out of both.

Peak numbers come from the table below, keyed by a substring of `torch.cuda.get_device_name()`;
the one used is printed. Exits with a message when no CUDA device is present.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

# name substring -> (dense bf16 tensor TFLOP/s, memory bandwidth TB/s), vendor data sheets.
# Checked in this order, so the more specific names come first.
PEAKS = [
    ("H200", 989.0, 4.8),
    ("H100 PCIe", 756.0, 2.0),
    ("H100", 989.0, 3.35),  # SXM
    ("A100-SXM4-80GB", 312.0, 2.039),
    ("A100 80GB PCIe", 312.0, 1.935),
    ("A100", 312.0, 1.555),  # 40 GB
    ("L40S", 362.0, 0.864),
    ("A10G", 70.0, 0.6),
    ("RTX 4090", 165.0, 1.008),
]

# Qwen/Qwen2.5-1.5B config.json
QWEN25_15B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                  num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                  rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)


def peak_for(name: str) -> tuple[str, float, float]:
    for key, tflops, tbps in PEAKS:
        if key in name:
            return key, tflops * 1e12, tbps * 1e12
    sys.exit(f"no peak numbers for {name!r}: add it to PEAKS in {__file__}")


def build_model():
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(**QWEN25_15B, bos_token_id=151643, eos_token_id=151643, pad_token_id=151643)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    return model.eval()


def bench_sampling(model, n_prompts: int, new_tokens: int, prompt_len: int, peak_flops: float, bandwidth: float):
    from transformers import LogitsProcessorList

    from cotrepro.generate_baseline import SeededSampler

    config = model.config
    n_params = model.num_parameters()
    prompts = torch.randint(0, 150000, (n_prompts, prompt_len), device="cuda")
    mask = torch.ones_like(prompts)
    common = dict(input_ids=prompts, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                  pad_token_id=config.pad_token_id, num_beams=1)
    model.generate(**{**common, "max_new_tokens": 8, "min_new_tokens": 8}, do_sample=False)  # warm-up
    results = {}
    for name, kwargs in [
        ("cotrepro SeededSampler", dict(do_sample=False, logits_processor=LogitsProcessorList(
            [SeededSampler(list(range(n_prompts)), 1.0, 1.0, prompt_len)]))),
        ("transformers do_sample", dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)),
    ]:
        torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(**common, **kwargs)
        torch.cuda.synchronize()
        results[name] = n_prompts * new_tokens / (time.perf_counter() - started)

    head_dim = config.hidden_size // config.num_attention_heads
    kv_bytes_per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 2  # K and V, bf16
    mean_context = prompt_len + new_tokens / 2
    bytes_per_step = 2 * n_params + n_prompts * mean_context * kv_bytes_per_token
    flops_per_step = n_prompts * 2 * n_params
    step_seconds = max(bytes_per_step / bandwidth, flops_per_step / peak_flops)
    roofline = n_prompts / step_seconds
    bound = "memory" if bytes_per_step / bandwidth > flops_per_step / peak_flops else "compute"
    print(f"\n## Sampling: {n_prompts} prompts x {new_tokens} new tokens (prompt {prompt_len} tokens), bf16")
    print(f"roofline {roofline:,.0f} tokens/s ({bound}-bound: {bytes_per_step / 1e9:.2f} GB and "
          f"{flops_per_step / 1e12:.2f} TFLOP per step)")
    print("| sampler | tokens/s | % of roofline |\n|---|---:|---:|")
    for name, rate in results.items():
        print(f"| {name} | {rate:,.0f} | {100 * rate / roofline:.1f}% |")


def bench_lora_sft(model, steps: int, batch: int, seq_len: int, peak_flops: float):
    from cotrepro.models import LoraParams, add_lora

    model.train()
    model.config.use_cache = False
    peft_model = add_lora(model, LoraParams(r=16, alpha=32, dropout=0.0))
    n_all = peft_model.num_parameters()
    n_lora = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
    data = torch.randint(0, 150000, (batch, seq_len), device="cuda")

    def step():
        loss = peft_model(input_ids=data, labels=data).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up (allocator, kernels)
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    tokens_per_second = steps * batch * seq_len / (time.perf_counter() - started)
    mfu_6n = tokens_per_second * 6 * n_all / peak_flops
    mfu_lora = tokens_per_second * (4 * n_all + 6 * n_lora) / peak_flops
    print(f"\n## LoRA SFT: r=16 all-linear, batch {batch} x {seq_len} tokens, bf16, "
          f"{n_lora / 1e6:.1f}M trainable of {n_all / 1e9:.2f}B")
    print("| tokens/s | MFU (6N) | MFU (LoRA: 4N + 6N_lora) | peak memory GB |\n|---:|---:|---:|---:|")
    print(f"| {tokens_per_second:,.0f} | {100 * mfu_6n:.1f}% | {100 * mfu_lora:.1f}% | "
          f"{torch.cuda.max_memory_allocated() / 2**30:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-seq-len", type=int, default=1024)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs a CUDA GPU; none found (CPU throughput: bench/bench_sampling.py)")
    name = torch.cuda.get_device_name()
    key, peak_flops, bandwidth = peak_for(name)
    print(f"# GPU benchmark on {name}: peaks of '{key}' used: {peak_flops / 1e12:.0f} TFLOP/s bf16 dense, "
          f"{bandwidth / 1e12:.2f} TB/s; torch {torch.__version__}")
    model = build_model()
    print(f"model: Qwen2.5-1.5B shape, random weights, {model.num_parameters() / 1e9:.2f}B params")
    bench_sampling(model, args.prompts, args.new_tokens, args.prompt_len, peak_flops, bandwidth)
    bench_lora_sft(model, args.train_steps, args.train_batch, args.train_seq_len, peak_flops)


if __name__ == "__main__":
    main()

"""The micro model the engine tests share: a Llama of the package's own builders
(`cotrepro.tiny.build_word_tokenizer` + `build_micro_model`) with head_dim 32, since vLLM's CPU
attention rejects head_dim 8 (the tiny test models'). It is trained for a few hundred steps on
one-step sums, so its greedy completions are peaked (no near-ties for float rounding to flip)
and end in the stop strings and EOS the way a task's completions do.
"""

from __future__ import annotations

import random
from pathlib import Path

from cotrepro.tiny import MicroModelParams

SHAPE = MicroModelParams(arch="llama", n_layers=2, d_model=64, n_heads=2, n_kv_heads=1, d_ff=128, max_seq_len=256)
STOP = ("####", "\n\n")


def sums(n: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, completion) pairs: 'Question: a + b = ?\\nAnswer:' -> ' a + b = c\\n#### c'."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        out.append((f"Question: {a} + {b} = ?\nAnswer:", f" {a} + {b} = {a + b}\n#### {a + b}"))
    return out


def build(out_dir: str | Path, steps: int = 300, seed: int = 0) -> Path:
    """Build, train and save the micro model and its tokenizer at `out_dir`."""
    import torch

    from cotrepro.tiny import build_micro_model, build_word_tokenizer

    out_dir = Path(out_dir)
    pairs = sums(2000, seed)
    texts = [p + c for p, c in pairs]
    tokenizer = build_word_tokenizer(texts, max_number=40)
    model = build_micro_model(SHAPE, tokenizer, seed=seed)
    assert model.config.hidden_size // model.config.num_attention_heads == 32
    eos = tokenizer.eos_token
    tokenizer.padding_side = "right"  # training batches: positions count from each text's start
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    rng = random.Random(seed)
    for _ in range(steps):
        batch = tokenizer([t + eos for t in rng.sample(texts, 32)], return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    tokenizer.padding_side = "left"  # as cotrepro.tiny saves every tokenizer (batched generation)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


PROMPTS = [f"Question: {a} + {b} = ?\nAnswer:" for a, b in
           [(3, 4), (12, 5), (0, 0), (20, 20), (7, 13), (1, 19), (15, 2), (9, 9),
            (6, 11), (18, 3), (4, 16), (10, 10), (2, 8), (14, 6), (5, 17), (11, 1)]]
OTHER_PROMPTS = [f"Question: {a} + {b} = ?\nAnswer:" for a, b in [(8, 8), (19, 0), (13, 7)]]
SAMPLED = dict(k=4, temperature=1.2, top_p=0.95, max_new_tokens=24, seed=7, batch_size=64)

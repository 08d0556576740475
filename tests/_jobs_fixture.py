"""Job functions for tests/test_jobs.py, importable by the spawned pool workers of
`cotrepro.jobs` (the test puts tests/ on PYTHONPATH).

`train_job` does real float work: it trains the tiny Llama of `_tiny.py` for `steps` AdamW steps
on `text`, checkpointing after every step into its (partial) job folder and resuming from there,
then samples greedily; it writes the losses, the completion and the raw bytes of every weight.
`regress_job` is a lighter torch job (a seeded SGD fit, resumable the same way) for the kill and
failure tests, whose pool workers then need not import transformers.
With JOBS_FIXTURE_STALL_AT=k in the environment it stops after step k's checkpoint, writes
`stalled` and sleeps (so a test can kill it mid-run). `fail_job` raises.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

STALL = "JOBS_FIXTURE_STALL_AT"


def train_job(spec: dict, out_dir: Path) -> None:
    import torch

    from _tiny import char_tokenizer, tiny_llama

    out_dir = Path(out_dir)
    tokenizer = char_tokenizer()
    model = tiny_llama(tokenizer, seed=spec["seed"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.get("lr", 3e-3))
    ids = tokenizer(spec["text"], return_tensors="pt")["input_ids"]
    checkpoint = out_dir / "checkpoint.pt"
    start, losses = 0, []
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, losses = state["step"], state["losses"]
        (out_dir / "resumed_from.txt").write_text(str(start))
    torch.manual_seed(spec["seed"] + 1000 * start)
    model.train()
    for step in range(start, spec["steps"]):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.item()))
        tmp = out_dir / "checkpoint.pt.tmp"
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1,
                    "losses": losses}, tmp)
        os.replace(tmp, checkpoint)
        if os.environ.get(STALL) == str(step + 1):
            (out_dir / "stalled").write_text(str(os.getpid()))
            time.sleep(300)
    model.eval()
    with torch.no_grad():
        prompt = ids[:, :4]
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)
        logits = model(input_ids=ids).logits
    completion = tokenizer.decode(out[0, prompt.shape[1]:])
    (out_dir / "result.json").write_text(json.dumps({"losses": [repr(x) for x in losses], "completion": completion,
                                                      "logit_sum": repr(float(logits.double().sum()))}))
    with open(out_dir / "weights.bin", "wb") as f:
        for name, tensor in sorted(model.state_dict().items()):
            f.write(name.encode() + b"\0")
            f.write(tensor.detach().contiguous().numpy().tobytes())
    checkpoint.unlink()


def regress_job(spec: dict, out_dir: Path) -> None:
    """A lighter torch job (no transformers): a seeded least-squares fit by SGD, checkpointed every
    `every` steps and resumed like `train_job` (and stalled the same way)."""
    import torch

    out_dir = Path(out_dir)
    generator = torch.Generator().manual_seed(spec["seed"])
    x = torch.randn(64, 8, generator=generator)
    y = x @ torch.randn(8, 1, generator=generator) + 0.1 * torch.randn(64, 1, generator=generator)
    w = torch.zeros(8, 1)
    checkpoint, start, every = out_dir / "checkpoint.pt", 0, spec.get("every", 10)
    if checkpoint.is_file():
        state = torch.load(checkpoint)
        w, start = state["w"], state["step"]
        (out_dir / "resumed_from.txt").write_text(str(start))
    w.requires_grad_(True)
    for step in range(start, spec["steps"]):
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w -= 0.05 * w.grad
            w.grad.zero_()
        if (step + 1) % every == 0:
            torch.save({"w": w.detach().clone(), "step": step + 1}, out_dir / "checkpoint.pt.tmp")
            os.replace(out_dir / "checkpoint.pt.tmp", checkpoint)
            if os.environ.get(STALL) == str(step + 1):
                (out_dir / "stalled").write_text(str(os.getpid()))
                time.sleep(300)
    time.sleep(spec.get("sleep", 0))
    (out_dir / "weights.bin").write_bytes(w.detach().numpy().tobytes())
    checkpoint.unlink(missing_ok=True)


def fail_job(spec: dict, out_dir: Path) -> None:
    (Path(out_dir) / "started").write_text("1")
    raise ValueError(f"fixture job failed on purpose: {spec['why']}")

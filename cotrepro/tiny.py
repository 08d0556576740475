"""Small models of real architectures and their tokenizers, built offline.

Three users share these builders: the micro world (`cotrepro.micro`, a student and a teacher
trained from scratch), the `tiny:ARCH` model specs that stand in for hub checkpoints when the
paper params run in CI, and the tests. Every model is an ordinary transformers `PreTrainedModel`
and every tokenizer a `PreTrainedTokenizerFast`, saved with `save_pretrained`, so downstream code
loads them exactly as it loads `Qwen/Qwen2.5-1.5B`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cotrepro.params import param

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"


def _wrap(tokenizer, out_dir: str | Path | None):
    """A `tokenizers.Tokenizer` as a transformers fast tokenizer that prepends BOS (as Llama's
    does, so a prompt encoded alone starts the way training documents started) and pads left."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)])
    hf_tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS,
                                           pad_token=PAD, padding_side="left")
    if out_dir is not None:
        hf_tokenizer.save_pretrained(out_dir)
    return hf_tokenizer


def build_tokenizer(texts: list[str], vocab_size: int, out_dir: str | Path | None = None):
    """A byte-level BPE tokenizer trained offline on `texts`.

    Digits are split one per token (so column arithmetic is learnable and numbers never merge
    into opaque chunks); every byte is in the vocabulary, so any text round-trips exactly.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return _wrap(tokenizer, out_dir)


def build_symbol_tokenizer(words: list[str], out_dir: str | Path | None = None, label_comma: bool = False):
    """A tokenizer with exactly one token per word of `words` (and per special token).

    Text is cut into runs of digits and single other characters, so "12,7|33" reads as the five
    tokens 12 , 7 | 33: one token per node label, as Bachmann and Nagarajan's star-graph models
    see their graphs. With `label_comma`, a run of digits and the comma right after it are one
    token ("12," 7 | 33), as a BPE vocabulary often merges them: `words` must then hold "12,"
    too. A piece outside `words` is an error at encoding time, never silently split.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate([PAD, BOS, EOS, *dict.fromkeys(words)])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=PAD))
    pieces = r"\d+,?|\D" if label_comma else r"\d+|\D"
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(pieces), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return _wrap(tokenizer, out_dir)


@dataclass(frozen=True)
class MicroModelParams:
    """The shape of a micro model (a real Llama or Qwen2 architecture, just small)."""

    arch: Literal["llama", "qwen2"] = param("llama", "architecture", choices=("llama", "qwen2"))
    n_layers: int = param(4, "transformer blocks", ge=1)
    d_model: int = param(128, "hidden size", ge=8)
    n_heads: int = param(4, "attention heads", ge=1)
    n_kv_heads: int = param(2, "key/value heads (grouped-query attention)", ge=1)
    d_ff: int = param(384, "MLP inner size", ge=8)
    max_seq_len: int = param(256, "longest sequence (positions)", ge=16)


def _config(arch: str, tokenizer, **sizes):
    from transformers import Gemma2Config, LlamaConfig, Qwen2Config

    special = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                   tie_word_embeddings=True)
    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config, "gemma2": Gemma2Config}[arch]
    return config_class(**special, **sizes)


def build_micro_model(params: MicroModelParams, tokenizer, seed: int = 0):
    """A randomly initialised micro model (a transformers `PreTrainedModel`) for `tokenizer`."""
    import torch
    from transformers import AutoModelForCausalLM

    if params.d_model % params.n_heads or params.n_heads % params.n_kv_heads:
        raise ValueError(f"d_model ({params.d_model}) must divide by n_heads ({params.n_heads}) "
                         f"and n_heads by n_kv_heads ({params.n_kv_heads})")
    config = _config(params.arch, tokenizer, hidden_size=params.d_model, intermediate_size=params.d_ff,
                     num_hidden_layers=params.n_layers, num_attention_heads=params.n_heads,
                     num_key_value_heads=params.n_kv_heads, max_position_embeddings=params.max_seq_len)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


_TINY_TEXT = ("The quick brown fox jumps over the lazy dog. Problem: 12 + 5 = 17, 3 * 4 = 12, 20 - 7 = 13.\n"
              "Solution: step by step. Final Answer: The final answer is $42$. I hope it is correct.\n"
              "def add(a, b):\n    return a + b\nassert add(1, 2) == 3\n<answer> (1 + 2) / 3 </answer>\n")


def tiny_random_model(arch: Literal["qwen2", "llama", "gemma2"], out_dir: str | Path | None = None):
    """A tiny randomly initialised model of a real architecture, with a small offline tokenizer.

    For tests and CI: the real tokenizers cannot be downloaded here. With `out_dir`, model and
    tokenizer are saved there so `load_model(out_dir)` loads them like a hub checkpoint.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if arch not in ("qwen2", "llama", "gemma2"):
        raise ValueError(f"unknown architecture {arch!r}; choose qwen2, llama or gemma2")
    tokenizer = build_tokenizer([_TINY_TEXT] * 4, vocab_size=300)
    sizes = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=256)
    if arch == "gemma2":
        sizes.update(head_dim=8, query_pre_attn_scalar=8, sliding_window=64)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(arch, tokenizer, **sizes), dtype=torch.float32)
    if out_dir is not None:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        model.name_or_path = str(out_dir)
    model.eval()
    return model, tokenizer


_PIECES = r" ?####| ?<<|>>| ?\d+| ?[A-Za-z]+| ?[^\sA-Za-z\d]|\n| +"


def build_word_tokenizer(texts: list[str], max_number: int, out_dir: str | Path | None = None):
    """A tokenizer with one token per word and per integer 0..max_number, each with and without a
    leading space (" 17" and "17"), and one per other character.

    Numbers as single tokens make copying an operand from the question a one-token lookup, as
    Bachmann and Nagarajan's numeral tokenizer does; arithmetic on them is a table the models
    learn from their corpora. The vocabulary is the corpus's pieces plus every number, so any text
    of the micro world round-trips exactly; a piece outside it encodes as the pad token.
    """
    import re as _re

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    pieces: dict[str, None] = {}
    for n in range(max_number + 1):
        pieces[str(n)] = pieces[f" {n}"] = None
    splitter = _re.compile(_PIECES)
    for text in texts:
        for piece in splitter.findall(text):
            pieces.setdefault(piece, None)
    vocab = {token: i for i, token in enumerate([PAD, BOS, EOS, *pieces])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=PAD))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECES), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return _wrap(tokenizer, out_dir)

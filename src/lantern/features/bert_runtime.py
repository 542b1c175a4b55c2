"""Sentence vectors of a saved sentence-transformers BERT encoder, computed with torch and the
``tokenizers`` library alone.

Importing transformers and sentence-transformers costs ``lantern predict`` about two seconds
of its start-up, more than MiniLM's own work on a conversation (benchmarks/NOTES.md). For the
layout sentence-transformers saves for a BERT encoder (a ``Transformer`` module over a
``bert`` model with absolute positions and GELU, mean ``Pooling``, optionally ``Normalize``),
:class:`BertSentenceEncoder` runs the same computation from the same files: the tokenizer
from ``tokenizer.json`` (truncated to ``max_seq_length``), the weights from
``model.safetensors``. tests/test_features.py holds its vectors to sentence-transformers'
within 1e-5. :func:`lean_layout` says whether a directory has that layout; any other goes
through sentence-transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

_OTHER_POOLING = ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                  "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                  "pooling_mode_lasttoken")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def lean_layout(model_dir: str | Path) -> dict | None:
    """``{"config", "max_seq_length", "normalize"}`` when ``model_dir`` is a BERT encoder
    with mean pooling that :class:`BertSentenceEncoder` computes exactly; None otherwise."""
    d = Path(model_dir)
    modules, config = _read_json(d / "modules.json"), _read_json(d / "config.json")
    if not isinstance(modules, list) or not isinstance(config, dict):
        return None
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules if isinstance(m, dict)]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    if modules[0].get("path") not in ("", None):
        return None
    if (config.get("model_type") != "bert" or config.get("hidden_act") != "gelu"
            or config.get("position_embedding_type", "absolute") != "absolute"):
        return None
    pooling = _read_json(d / str(modules[1].get("path", "")) / "config.json")
    if not isinstance(pooling, dict):
        return None
    mean = (pooling.get("pooling_mode") == "mean"   # sentence-transformers >= 6 writes this
            or (pooling.get("pooling_mode_mean_tokens") and not any(pooling.get(k) for k in _OTHER_POOLING)))
    st_config = _read_json(d / "sentence_bert_config.json") or {}
    st_model = _read_json(d / "config_sentence_transformers.json") or {}
    prompted = st_model.get("default_prompt_name") or any((st_model.get("prompts") or {}).values())
    if (not mean or prompted or st_config.get("do_lower_case")
            or not (d / "tokenizer.json").is_file() or not (d / "model.safetensors").is_file()):
        return None
    tokenizer_max = (_read_json(d / "tokenizer_config.json") or {}).get("model_max_length")
    max_len = st_config.get("max_seq_length") or min(
        int(config.get("max_position_embeddings", 512)), int(tokenizer_max or 10**9))
    return {"config": config, "max_seq_length": int(max_len), "normalize": kinds[-1] == "Normalize"}


class BertSentenceEncoder:
    """A BERT sentence encoder of the :func:`lean_layout` kind, with sentence-transformers'
    ``encode`` arguments that lantern uses (``batch_size``, ``normalize_embeddings``)."""

    def __init__(self, model_dir: str | Path, max_seq_length: int | None = None):
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        layout = lean_layout(model_dir)
        if layout is None:
            raise ValueError(f"{model_dir} is not a BERT sentence encoder with mean pooling")
        self.config, self.normalize = layout["config"], layout["normalize"]
        self.max_seq_length = int(max_seq_length or layout["max_seq_length"])
        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        weights = load_file(str(Path(model_dir) / "model.safetensors"))
        self.weights = {k.removeprefix("bert."): v.float() for k, v in weights.items()}
        self.pad_id = int(self.config.get("pad_token_id") or 0)

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.config["hidden_size"])

    def encode(self, texts: Sequence[str], batch_size: int = 64, normalize_embeddings: bool = False,
               **_ignored) -> np.ndarray:
        import torch

        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))  # less padding
        out = np.zeros((len(texts), self.get_sentence_embedding_dimension()), np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                width = max(len(encodings[i].ids) for i in chunk)
                ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    n = len(encodings[i].ids)
                    ids[row, :n] = torch.tensor(encodings[i].ids)
                    mask[row, :n] = 1
                vectors = self._pooled(ids, mask)
                if self.normalize or normalize_embeddings:
                    vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
                out[chunk] = vectors.numpy()
        return out

    def _pooled(self, ids, mask):
        """Mean over the text's tokens of the last layer (sentence-transformers' Pooling)."""
        import torch

        hidden = self._encoder(ids, mask)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)

    def _encoder(self, ids, mask):
        """BERT's last hidden states (post-LayerNorm blocks, as ``BertModel``)."""
        import torch
        from torch.nn import functional as F

        w, cfg = self.weights, self.config
        size, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
        n, length = ids.shape

        def norm(x, name):
            return F.layer_norm(x, (size,), w[name + ".weight"], w[name + ".bias"], eps)

        def dense(x, name):
            return F.linear(x, w[name + ".weight"], w[name + ".bias"])

        def split(x):   # (n, length, size) -> (n, heads, length, size / heads)
            return x.view(n, length, heads, size // heads).transpose(1, 2)

        h = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        h = norm(h, "embeddings.LayerNorm")
        padding = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q, k, v = (split(dense(h, p + f"attention.self.{x}")) for x in ("query", "key", "value"))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=padding)
            a = a.transpose(1, 2).reshape(n, length, size)
            h = norm(dense(a, p + "attention.output.dense") + h, p + "attention.output.LayerNorm")
            x = F.gelu(dense(h, p + "intermediate.dense"))
            h = norm(dense(x, p + "output.dense") + h, p + "output.LayerNorm")
        return h

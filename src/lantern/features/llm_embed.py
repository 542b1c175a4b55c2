"""Utterance embeddings from the embedded GGUF language models (llama.cpp embedding mode).

``text:qwen-dialogue`` reads each dialogue in one pass (an instruction line, then one
``"{speaker}: {text}"`` line per turn) and mean-pools the last-layer states over each turn's
tokens: the causal model has read every earlier turn when it reaches a turn, so the vector
carries the dialogue so far at the cost of the dialogue's own tokens (about 18 per IEMOCAP
turn). The vector of a turn depends on the turns before it, which is what its cache key holds.

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

import threading
from concurrent.futures import Future
from typing import Any, Sequence

import numpy as np

from lantern.errors import ConfigError, DataError
from lantern.features.base import FeatureExtractor

POOLING = ("mean", "last")
#: models being loaded ahead of use (:meth:`_GGUFExtractor.prefetch`), by their load settings
_prefetched: dict[tuple, Future] = {}
_prefetch_lock = threading.Lock()


def drop_prefetched() -> None:
    """Close the models prefetched and never used (their inputs were all in the cache)."""
    with _prefetch_lock:
        pending = list(_prefetched.values())
        _prefetched.clear()
    for future in pending:
        if future.exception() is None:
            future.result().close()


class _GGUFExtractor(FeatureExtractor):
    """A :data:`lantern.llm.MODELS` model (or a ``.gguf`` path) loaded lazily in llama.cpp's
    embedding mode; the file's sha256 is part of the cache identity."""

    modality = "text"
    pooling = "mean"

    def __init__(self, model: str | None, n_ctx: int, threads: int, models_dir: str | None,
                 layers: int | None = None):
        from lantern.llm import DEFAULT_MODEL, MODELS

        self.model = model or DEFAULT_MODEL
        if self.model not in MODELS and not self.model.endswith(".gguf"):
            raise ConfigError(f"{self.name}: unknown model {self.model!r}; known: "
                              f"{', '.join(sorted(MODELS))} (or a .gguf path)")
        self.n_ctx, self.threads, self.models_dir = int(n_ctx), int(threads), models_dir
        if layers is not None and int(layers) < 1:
            raise ConfigError(f"{self.name}: layers must be a positive block count, got {layers}")
        self.layers = None if layers is None else int(layers)
        self._llama = None
        self._sha256: str | None = MODELS[self.model]["sha256"] if self.model in MODELS else None
        self.tokens = 0

    def model_sha256(self) -> str:
        if self._sha256 is None:  # a file outside the table: its content names it
            from lantern.llm import sha256_file
            self._sha256 = sha256_file(self.model)
        return self._sha256

    def _load_key(self) -> tuple:
        return (self.pooling, self.model, self.models_dir, self.layers, self.n_ctx, self.threads)

    def prefetch(self) -> None:
        """Start loading the model in a background thread, so that ``lantern predict`` reads
        the GGUF file while it imports torch (llama.cpp releases the GIL while it loads); the
        first :meth:`_load` with the same settings takes the model over (or waits for it)."""
        key = self._load_key()
        with _prefetch_lock:
            if self._llama is not None or key in _prefetched:
                return
            future: Future = Future()
            _prefetched[key] = future

        def load():
            try:
                future.set_result(self._open())
            except BaseException as e:   # raised again where the model is needed
                future.set_exception(e)

        threading.Thread(target=load, name=f"prefetch {self.name}", daemon=True).start()

    def _load(self):
        if self._llama is None:
            with _prefetch_lock:
                future = _prefetched.pop(self._load_key(), None)
            self._llama = future.result() if future is not None else self._open()
            self.dim = int(self._llama.n_embd())
        return self._llama

    def _open(self):
        """A new llama.cpp model in embedding mode with this extractor's settings."""
        from pathlib import Path

        from lantern.llm import MODELS, ensure_model
        from lantern.llm.embedded import import_llama_cpp

        llama_cpp = import_llama_cpp()
        path = ensure_model(self.model, self.models_dir) if self.model in MODELS else Path(self.model)
        if self.layers is not None:
            from lantern.llm.truncate import truncated_model
            path = truncated_model(path, self.layers)
        pooling = {"mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                   "last": llama_cpp.LLAMA_POOLING_TYPE_LAST,
                   "none": llama_cpp.LLAMA_POOLING_TYPE_NONE}[self.pooling]
        return llama_cpp.Llama(model_path=str(path), embedding=True, pooling_type=pooling,
                               n_ctx=self.n_ctx, n_batch=self.n_ctx, n_ubatch=self.n_ctx,
                               n_threads=self.threads, n_threads_batch=self.threads,
                               verbose=False)

    def _identity(self) -> dict[str, Any]:
        """The model's part of the cache identity (``layers`` only when set, so the keys of
        whole-model vectors stay as they were)."""
        out: dict[str, Any] = {"model_sha256": self.model_sha256()}
        if self.layers is not None:
            out["layers"] = self.layers
        return out

    def summarize(self, vectors: np.ndarray) -> dict[str, Any]:
        """Prompt tokens evaluated for the vectors computed now (cached ones cost none)."""
        return {"tokens": self.tokens}

    def close(self) -> None:
        if self._llama is not None:
            self._llama.close()
        self._llama = None


class LlamaEmbeddingExtractor(_GGUFExtractor):
    """Pooled last-layer states of a GGUF model for ``template.format(speaker=, text=)``.

    Options: ``model`` (a :data:`lantern.llm.MODELS` name or a ``.gguf`` path; default
    ``qwen2.5-coder-1.5b``), ``pooling`` (``mean`` | ``last``), ``template``, ``n_ctx`` (512:
    also the tokens per llama.cpp batch; a longer text is truncated), ``threads`` (2),
    ``models_dir``, ``layers`` (read the states after this many blocks, see
    :mod:`lantern.llm.truncate`; default all).
    """

    name = "text:qwen"
    version = 1
    batch_size = 32

    def __init__(self, model: str | None = None, pooling: str = "mean",
                 template: str = "{speaker}: {text}", n_ctx: int = 512, threads: int = 2,
                 models_dir: str | None = None, layers: int | None = None):
        if pooling not in POOLING:
            raise ConfigError(f"{self.name}: pooling must be one of {POOLING}, got {pooling!r}")
        _check_template(self.name, "template", template)
        super().__init__(model, n_ctx, threads, models_dir, layers)
        self.pooling, self.template = pooling, template

    def options(self) -> dict[str, Any]:
        return {**self._identity(), "pooling": self.pooling, "template": self.template}

    def input_key(self, utterance) -> str:
        return self.template.format(speaker=utterance.speaker or "", text=_text(utterance))

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


#: The instruction line a dialogue is read after: it points the states at how people feel
#: (the IEMOCAP probe in benchmarks/NOTES.md used exactly this line).
DIALOGUE_PREFIX = "A conversation. Notice how each speaker feels.\n\n"


class LlamaDialogueExtractor(_GGUFExtractor):
    """Mean-pooled last-layer states of each turn, read in its dialogue (see the module).

    Options: ``model`` (as ``text:qwen``), ``prefix`` (the instruction line,
    :data:`DIALOGUE_PREFIX`), ``line`` (one turn, ``"{speaker}: {text}\\n"``), ``n_ctx`` (4096
    tokens per pass: a longer dialogue is read in passes that restart with the last half
    window of turns as context), ``max_line_tokens`` (256: a longer turn is cut), ``threads``
    (2), ``models_dir``, ``layers`` (as ``text:qwen``). Memory: llama.cpp reserves output
    buffers for every token of a pass (about 3.5 GB resident for the 1.5B model at ``n_ctx``
    4096, measured on IEMOCAP).
    """

    name = "text:qwen-dialogue"
    version = 1
    batch_size = 256        # whole dialogues per call: each is read once
    reads_context = True
    pooling = "none"        # per-token states; pooled here over each turn's span

    def __init__(self, model: str | None = None, prefix: str = DIALOGUE_PREFIX,
                 line: str = "{speaker}: {text}\n", n_ctx: int = 4096, max_line_tokens: int = 256,
                 threads: int = 2, models_dir: str | None = None, layers: int | None = None):
        _check_template(self.name, "line", line)
        if not line.endswith("\n"):
            raise ConfigError(f"{self.name}: line must end with a newline (one turn per line), got {line!r}")
        if int(max_line_tokens) < 1 or int(n_ctx) < 2 * int(max_line_tokens) + 64:
            raise ConfigError(f"{self.name}: n_ctx ({n_ctx}) must hold two turns of max_line_tokens "
                              f"({max_line_tokens}) and the prefix")
        super().__init__(model, n_ctx, threads, models_dir, layers)
        self.prefix, self.line, self.max_line_tokens = prefix, line, int(max_line_tokens)
        self._turns: dict[int, tuple] = {}       # id(utterance) -> (dialogue lines, turn index)
        self._done: dict[int, tuple] = {}        # id(lines) -> (lines, every turn's vector)
        self._prefix: list[int] | None = None    # the prefix's tokens, once the model is loaded

    def options(self) -> dict[str, Any]:
        return {**self._identity(), "prefix": self.prefix, "line": self.line,
                "n_ctx": self.n_ctx, "max_line_tokens": self.max_line_tokens}

    def _line(self, utterance) -> str:
        # A line break inside a turn would read as a turn of its own, and two dialogues could
        # then give the same key (the key is the lines joined): one turn, one line.
        text = " ".join(_text(utterance).splitlines())
        return self.line.format(speaker=" ".join((utterance.speaker or "").splitlines()), text=text)

    def bind_dialogues(self, dialogues) -> None:
        self._turns = {}
        for d in dialogues:
            lines = [self._line(u) for u in d.utterances]
            for i, u in enumerate(d.utterances):
                self._turns[id(u)] = (lines, i)

    def _where(self, utterance) -> tuple[list[str], int]:
        return self._turns.get(id(utterance)) or ([self._line(utterance)], 0)

    def input_key(self, utterance) -> str:
        lines, i = self._where(utterance)
        return self.prefix + "".join(lines[:i + 1])   # what the turn's states have read

    def extract_batch(self, utterances: Sequence) -> np.ndarray:
        if not utterances:
            return np.zeros((0, self.dim or 0), np.float32)
        rows = []
        for u in utterances:
            lines, i = self._where(u)
            known = self._done.get(id(lines))
            if known is None or known[0] is not lines:   # an id can be reused once freed
                if len(self._done) > 8:                   # dialogues come in order: keep a few
                    self._done.pop(next(iter(self._done)))
                known = self._done[id(lines)] = (lines, self._read_dialogue(lines))
            rows.append(known[1][i])
        return np.stack(rows).astype(np.float32)

    def _line_tokens(self, llama, lines: list[str]) -> list[list[int]]:
        tokens = []
        for text in lines:
            t = llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            if len(t) > self.max_line_tokens:     # keep the line's end (the newline) in place
                t = t[:self.max_line_tokens - 1] + t[-1:]
            tokens.append(t)
        return tokens

    def _prefix_tokens(self, llama) -> list[int]:
        """The instruction's tokens, tokenised and checked once."""
        if self._prefix is None:
            prefix = llama.tokenize(self.prefix.encode("utf-8"), add_bos=True, special=False)
            if len(prefix) + self.max_line_tokens > self.n_ctx // 2:
                raise ConfigError(f"{self.name}: the prefix ({len(prefix)} tokens) and one turn "
                                  f"({self.max_line_tokens}) must fit in half of n_ctx ({self.n_ctx})")
            self._prefix = prefix
        return self._prefix

    def _read_dialogue(self, lines: list[str]) -> np.ndarray:
        """Every turn's vector: passes of at most ``n_ctx`` tokens; a pass after the first
        starts with as many earlier turns as fit in half a window, as context."""
        llama = self._load()
        prefix = self._prefix_tokens(llama)
        tokens = self._line_tokens(llama, lines)
        vectors = np.zeros((len(lines), self.dim), np.float32)
        first = 0                                  # the first turn without a vector
        while first < len(lines):
            start, budget = first, self.n_ctx // 2 - len(prefix)
            while start > 0 and len(tokens[start - 1]) <= budget:   # context: earlier turns
                budget -= len(tokens[start - 1])
                start -= 1
            used = len(prefix) + sum(len(t) for t in tokens[start:first])
            end = first
            while end < len(lines) and (end == first or used + len(tokens[end]) <= self.n_ctx):
                used += len(tokens[end])
                end += 1
            ids = list(prefix)
            spans = []
            for t in tokens[start:end]:
                spans.append((len(ids), len(ids) + len(t)))
                ids.extend(t)
            states = self._states(llama, ids)
            for k in range(first, end):
                a, b = spans[k - start]
                vectors[k] = states[a:b].mean(axis=0)
            first = end
        return vectors

    def _states(self, llama, ids: list[int]) -> np.ndarray:
        """Last-layer states of every token of ``ids``, one llama.cpp decode (no KV reuse)."""
        import ctypes

        from lantern.llm.embedded import import_llama_cpp

        llama_cpp = import_llama_cpp()
        batch = llama._batch
        batch.reset()
        batch.add_sequence(ids, 0, True)
        llama._ctx.kv_cache_clear()
        llama._ctx.decode(batch)
        ptr = llama_cpp.llama_get_embeddings(llama._ctx.ctx)
        n = len(ids) * self.dim
        states = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n,))
        out = states.reshape(len(ids), self.dim).copy()
        batch.reset()
        llama._ctx.kv_cache_clear()
        self.tokens += len(ids)
        return out


def _check_template(name: str, option: str, template: str) -> None:
    try:
        template.format(speaker="A", text="b")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"{name}: {option} may use only {{speaker}} and {{text}}, "
                          f"got {template!r} ({exc})") from None


def _text(utterance) -> str:
    if not isinstance(utterance.text, str):
        raise DataError(f"utterance {utterance.id}: text is {type(utterance.text).__name__}, "
                        "not a string", field="text")
    return utterance.text

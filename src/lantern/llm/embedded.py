"""llama.cpp in-process (llama-cpp-python): a GGUF model answering chat requests.

``llama_cpp`` is imported when the model is first used, not when this module is imported,
and the model is loaded on the first :meth:`EmbeddedLLM.chat`: a run answered entirely from
the cache (:class:`lantern.llm.cache.CachedLLM`) never loads it.

JSON-schema answers use llama.cpp's grammar-constrained sampling
(``response_format={"type": "json_object", "schema": ...}``), so the text always parses as
the schema's shape (but may still be cut off by ``max_tokens``).

>>> llm = EmbeddedLLM(model_path=__file__, sha256="0" * 64)   # not loaded until chat()
>>> llm.model_id.endswith("@" + "0" * 64), llm.loaded
(True, False)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from lantern.llm.base import (EMBEDDED, ChatRequest, ChatResponse, LLM, LLMError, LLMNotInstalled,
                              message_text, normalise_logprobs)
from lantern.llm.slots import SlotRequest, SlotResponse, label_distribution, slot_prefix

INSTALL_HINT = ('install it with: CMAKE_ARGS="-DGGML_NATIVE=OFF" python -m pip install '
                '"llama-cpp-python[server]==0.3.36"  (builds from source, ~8 min on 2 cores; '
                'or run bash scripts/setup_llm.sh)')


def import_llama_cpp():
    """The ``llama_cpp`` module, or :class:`LLMNotInstalled` saying how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise LLMNotInstalled(f"the embedded LLM backend needs llama-cpp-python ({exc}); "
                              f"{INSTALL_HINT}") from exc
    return llama_cpp


class EmbeddedLLM(LLM):
    """A GGUF model run by llama.cpp in this process.

    ``model`` is a :data:`lantern.llm.MODELS` name (assembled and verified on demand) or a path
    to a ``.gguf`` file; ``model_path`` (with an optional known ``sha256``) bypasses the table.
    Two threads by default: the target machines are 2-core laptops and more threads than
    cores slows llama.cpp down. One llama.cpp context serves one request at a time, so calls
    are serialised with a lock (and :meth:`LLM.chat_many` runs them one after another).
    """

    backend = EMBEDDED
    max_concurrency = 1

    def __init__(self, model: str | None = None, *, model_path: str | Path | None = None,
                 sha256: str | None = None, n_ctx: int = 4096, n_threads: int = 2,
                 n_threads_batch: int = 2, seed: int = 0, chat_format: str | None = None,
                 logits_all: bool = False, verbose: bool = False, models_dir: str | Path | None = None,
                 **llama_options: Any):
        from lantern.llm import DEFAULT_MODEL, MODELS, ensure_model, sha256_file

        if model_path is not None:
            self.name = model or Path(model_path).stem
            self.model_path = Path(model_path)
            self._sha256 = sha256
            self.chat_format = chat_format
        else:
            model = model or DEFAULT_MODEL
            if model in MODELS:
                self.name = model
                self.model_path = ensure_model(model, models_dir)
                self._sha256 = MODELS[model]["sha256"]
                self.chat_format = chat_format or MODELS[model]["chat_format"]
            elif Path(model).is_file():
                self.name, self.model_path, self._sha256 = Path(model).stem, Path(model), sha256
                self.chat_format = chat_format
            else:
                raise LLMError(f"unknown model {model!r}: not one of {', '.join(sorted(MODELS))} "
                               f"and not a .gguf file")
        if not self.model_path.is_file():
            raise LLMError(f"model file {self.model_path} does not exist")
        self._sha256_file = sha256_file
        self.options = {"n_ctx": int(n_ctx), "n_threads": int(n_threads),
                        "n_threads_batch": int(n_threads_batch), "seed": int(seed),
                        "logits_all": bool(logits_all), "verbose": bool(verbose), **llama_options}
        self._llama = None
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def sha256(self) -> str:
        if self._sha256 is None:  # a file outside the table: hash it once (part of model_id)
            self._sha256 = self._sha256_file(self.model_path)
        return self._sha256

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.sha256}"

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def cache_identity(self) -> dict[str, Any]:
        # The chat template turns messages into tokens, so it changes answers; n_ctx and the
        # thread counts do not (apart from float noise) and are left out.
        return {"chat_format": self.chat_format}

    def load(self):
        """Load the model now (otherwise the first :meth:`chat` does)."""
        if self._llama is None:
            llama_cpp = import_llama_cpp()
            t0 = time.perf_counter()
            try:
                self._llama = llama_cpp.Llama(model_path=str(self.model_path),
                                              chat_format=self.chat_format, **self.options)
            except ValueError as exc:  # llama-cpp-python's way of saying "could not load"
                raise LLMError(f"llama.cpp could not load {self.model_path}: {exc}") from exc
            self.load_seconds = time.perf_counter() - t0
        return self._llama

    def request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        """The ``create_chat_completion`` arguments for ``request`` (tested without a model)."""
        kwargs: dict[str, Any] = {"messages": request.messages, "temperature": request.temperature,
                                  "max_tokens": request.max_tokens}
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        if request.logprobs:
            if not self.options["logits_all"]:
                raise LLMError("log-probabilities need the model loaded with logits_all=True "
                               f"(get_llm({EMBEDDED!r}, ..., logits_all=True))")
            kwargs["logprobs"] = True
            if request.top_logprobs is not None:
                kwargs["top_logprobs"] = request.top_logprobs
        return kwargs

    def chat(self, request: ChatRequest) -> ChatResponse:
        kwargs = self.request_kwargs(request)
        with self._lock:
            llama = self.load()
            t0 = time.perf_counter()
            try:
                out = llama.create_chat_completion(**kwargs)
            except ValueError as exc:  # e.g. the prompt does not fit n_ctx
                raise LLMError(f"llama.cpp rejected the request: {exc}") from exc
            seconds = time.perf_counter() - t0
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return ChatResponse(text=message_text(choice), prompt_tokens=int(usage.get("prompt_tokens", 0)),
                            completion_tokens=int(usage.get("completion_tokens", 0)),
                            seconds=seconds, finish_reason=choice.get("finish_reason"),
                            model_id=self.model_id, top_logprobs=normalise_logprobs(choice))

    # -- log-probability slots ---------------------------------------------------------------
    def render_pieces(self, messages) -> list[tuple[str, bool]]:
        """The chat template applied to ``messages`` as (text, is_template) pieces, ending
        with the assistant's turn opened. Template pieces are tokenised with special tokens
        parsed; message contents never are, so a transcript that contains ``<|im_start|>``
        stays text."""
        llama_cpp = import_llama_cpp()
        from llama_cpp import llama_chat_format as fmt

        sentinels = [f"\x00{k}\x00" for k in range(len(messages))]
        marked = [{"role": m["role"], "content": s} for m, s in zip(messages, sentinels)]
        if self.chat_format is not None:
            formatter = getattr(fmt, f"format_{self.chat_format.replace('-', '_')}", None)
            if formatter is None:
                raise LLMError(f"no chat formatter for chat_format {self.chat_format!r}")
            rendered = formatter(marked).prompt
        else:
            meta = self._llama.metadata
            template = meta.get("tokenizer.chat_template")
            if not template:
                raise LLMError(f"{self.model_path.name} carries no chat template; pass chat_format")
            vocab = self._llama._model
            eos = vocab.token_get_text(vocab.token_eos()) if vocab.token_eos() >= 0 else ""
            bos = vocab.token_get_text(vocab.token_bos()) if vocab.token_bos() >= 0 else ""
            rendered = fmt.Jinja2ChatFormatter(template=template, eos_token=eos,
                                               bos_token=bos)(messages=marked).prompt
        del llama_cpp
        pieces: list[tuple[str, bool]] = []
        rest = rendered
        for m, sentinel in zip(messages, sentinels):
            before, found, rest = rest.partition(sentinel)
            if not found:
                raise LLMError(f"the chat template dropped a {m['role']} message")
            pieces += [(before, True), (m["content"], False)]
        pieces.append((rest, True))
        return [(text, special) for text, special in pieces if text]

    def _tokens(self, text: str, special: bool, add_bos: bool = False) -> list[int]:
        return self._llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def prompt_tokens(self, messages) -> list[int]:
        """Token ids of ``messages`` under the chat template plus the first slot's ``1:``.
        As in llama-cpp-python's chat handlers, llama.cpp adds BOS (where the model wants
        one) unless the GGUF's own template writes it."""
        self.load()
        ids: list[int] = []
        for text, special in self.render_pieces(messages):
            ids += self._tokens(text, special, add_bos=not ids and self.chat_format is not None)
        return ids + self._tokens(slot_prefix(0), False)

    def _last_logprobs(self):
        import numpy as np

        llama = self._llama
        n_vocab = llama.n_vocab()
        logits = np.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(n_vocab,)).astype(np.float64)
        top = logits.max()
        return logits - top - np.log(np.exp(logits - top).sum())

    def read_slots(self, request: SlotRequest, reuse_prefix: bool = True) -> SlotResponse:
        """Per-slot label distributions in one forward pass over the request's new tokens
        (see :mod:`lantern.llm.slots`). With ``reuse_prefix`` the tokens this context holds
        already (the shared instruction prefix of the previous request) are kept in the KV
        cache; without it everything is evaluated cold (the two agree within float noise)."""
        with self._lock:
            llama = self.load()
            t0 = time.perf_counter()
            tokens = self.prompt_tokens(request.messages)
            if len(tokens) + 8 * request.n_slots > llama.n_ctx():
                raise LLMError(f"the slot prompt needs {len(tokens)} tokens plus the answer; "
                               f"n_ctx is {llama.n_ctx()}")
            keep = 0
            if reuse_prefix:
                held = llama.input_ids[:llama.n_tokens].tolist()
                while keep < min(len(held), len(tokens) - 1) and held[keep] == tokens[keep]:
                    keep += 1
            llama.n_tokens = keep            # eval() drops the KV cache from here on
            llama.eval(tokens[keep:])
            id_sets = self._id_sets(request.words)
            probs, mass, filled = [], [], []
            steps = fill_tokens = 0
            for i in range(request.n_slots):
                logprobs = self._last_logprobs()
                dist, m = label_distribution(lambda t: float(logprobs[t]), id_sets)
                probs.append(dist)
                mass.append(m)
                best = max(range(len(dist)), key=dist.__getitem__)
                filled.append(best)
                if i + 1 < request.n_slots:
                    # Fill the slot with the model's own top label, as greedy decoding would.
                    fill = self._tokens(" " + request.words[best] + slot_prefix(i + 1), False)
                    llama.eval(fill)
                    steps += 1
                    fill_tokens += len(fill)
            seconds = time.perf_counter() - t0
        return SlotResponse(probs=probs, mass=mass, filled=filled,
                            prompt_tokens=len(tokens) - keep, reused_tokens=keep,
                            decode_steps=steps, fill_tokens=fill_tokens, seconds=seconds,
                            model_id=self.model_id)

    def _id_sets(self, words: tuple[str, ...]) -> list[set[int]]:
        from lantern.llm.slots import Verbaliser

        cache = self.__dict__.setdefault("_id_set_cache", {})
        if words not in cache:
            cache[words] = Verbaliser(words).first_token_ids(lambda s: self._tokens(s, False))
        return cache[words]

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                close = getattr(self._llama, "close", None)
                if close is not None:
                    close()
                self._llama = None

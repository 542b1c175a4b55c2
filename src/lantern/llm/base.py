"""The :class:`LLM` contract shared by every backend, its request/response records, and the
backend names.

A backend turns one :class:`ChatRequest` into one :class:`ChatResponse`. Everything that can
change the answer lives in the request (messages, sampling parameters, schema) or in the
backend's :meth:`LLM.cache_identity`, so :mod:`lantern.llm.cache` can key answers on them.
:meth:`LLM.chat_many` answers a batch at most :attr:`LLM.max_concurrency` at a time
(:func:`bounded_map`); a backend with one model context (the embedded one) keeps 1.

>>> req = ChatRequest([{"role": "user", "content": "hi"}], max_tokens=8)
>>> req.temperature, req.seed, req.json_schema is None
(0.0, 0, True)
>>> class Echo(LLM):
...     backend = "echo"
...     @property
...     def model_id(self):
...         return "echo"
...     def chat(self, request):
...         text = request.messages[-1]["content"]
...         return ChatResponse(text, 1, 1, 0.0, "stop", self.model_id)
>>> with Echo() as llm:
...     [r.text for r in llm.chat_many([req, req])]
['hi', 'hi']
>>> ChatResponse.from_dict(Echo().chat(req).to_dict()).text
'hi'
>>> LLM_CHOICES
('embedded', 'openai', 'off')
"""

from __future__ import annotations

import abc
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from lantern.errors import LanternError

#: the backend names (:data:`lantern.llm.BACKENDS` registers one class under each)
EMBEDDED = "embedded"
OPENAI = "openai"
BACKEND_NAMES = (EMBEDDED, OPENAI)
#: where a user picks the LLM (``--llm``, predict and serve settings), this one means "none"
LLM_OFF = "off"
LLM_CHOICES = (*BACKEND_NAMES, LLM_OFF)

T = TypeVar("T")
R = TypeVar("R")


class LLMError(LanternError, RuntimeError):
    """An LLM backend failed (not installed, model missing, server unreachable, bad reply)."""


class LLMNotInstalled(LLMError, ImportError):
    """The runtime of a backend (llama-cpp-python) is not installed."""


class ModelNotAvailable(LLMError):
    """A model's packages are not installed, or its assembled file fails verification."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request. ``temperature`` defaults to 0 (greedy) because the
    answers feed an evaluation that must be reproducible and cacheable."""

    messages: Sequence[dict[str, str]]
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = 0
    #: a JSON schema the answer must follow (grammar-constrained where the backend can)
    json_schema: dict | None = None
    #: the name OpenAI-style ``json_schema`` response formats require
    schema_name: str = "answer"
    #: return the log-probability of each generated token ...
    logprobs: bool = False
    #: ... and of this many alternatives per position (implies ``logprobs``)
    top_logprobs: int | None = None
    #: a GBNF grammar the answer must follow, for backends that take one (llama.cpp)
    grammar: str | None = None

    def __post_init__(self):
        # Normalise so that equal requests have equal cache keys (0 vs 0.0, tuples vs lists).
        object.__setattr__(self, "messages", [dict(m) for m in self.messages])
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "max_tokens", int(self.max_tokens))
        if self.top_logprobs is not None:
            object.__setattr__(self, "logprobs", True)
        for m in self.messages:
            if "role" not in m or "content" not in m:
                raise ValueError(f"every message needs 'role' and 'content', got {sorted(m)}")

    def sampling(self) -> dict[str, Any]:
        """The sampling parameters (part of the cache key)."""
        out = {"temperature": self.temperature, "max_tokens": self.max_tokens,
               "seed": self.seed, "logprobs": self.logprobs, "top_logprobs": self.top_logprobs}
        if self.grammar is not None:   # only when set: older cache keys stay valid
            out["grammar"] = self.grammar
        return out


@dataclass
class ChatResponse:
    """One answer. ``seconds`` is the wall time of the call that produced it (for a cache
    hit: of the original call), so cost figures survive resumed runs."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str | None
    model_id: str
    cached: bool = False
    #: per generated token: ``{"token", "logprob", "top": {token: logprob}}`` when asked for.
    #: llama.cpp reports the model's distribution before any JSON grammar, and its top-k
    #: also holds the sampled token (k + 1 entries when that was not among the k).
    top_logprobs: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ChatResponse":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class LLM(abc.ABC):
    """A chat model. Subclasses set ``backend`` and implement :attr:`model_id` and :meth:`chat`."""

    backend: str = ""
    #: how many requests :meth:`chat_many` runs at once (HTTP backends raise it)
    max_concurrency: int = 1

    @property
    @abc.abstractmethod
    def model_id(self) -> str:
        """Identifies the weights that answer (part of the cache key): for a local model its
        name and the sha256 of its file, for a server its base URL and model name."""

    @abc.abstractmethod
    def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request; raise :class:`LLMError` when no answer can be had."""

    def chat_many(self, requests: Iterable[ChatRequest]) -> list[ChatResponse]:
        """Answers in request order, :attr:`max_concurrency` at a time (one: in this thread,
        one after another). The first error is raised once the requests in flight finish;
        requests not yet started are then dropped rather than sent for nothing."""
        return list(bounded_map(self.chat, requests, self.max_concurrency))

    def cache_identity(self) -> dict[str, Any]:
        """Backend options that change answers without being in the request (chat template,
        structured-output mode). Part of the cache key."""
        return {}

    def close(self) -> None:
        """Release the model or connections. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r})"


def bounded_map(fn: Callable[[T], R], items: Iterable[T], width: int, *, in_order: bool = True,
                thread_name_prefix: str = "lantern-llm") -> Iterator[R]:
    """``fn(item)`` for every item, at most ``width`` running at once in worker threads (a
    width of 1, or a single item, runs in the calling thread). Results come in item order,
    or as they complete with ``in_order=False`` (to store each as soon as it arrives). On an
    error, or when the consumer stops early, items not yet started are cancelled and the
    running ones awaited before the error propagates.

    >>> list(bounded_map(lambda x: x * x, range(5), 3))
    [0, 1, 4, 9, 16]
    >>> sorted(bounded_map(str, [1, 2], 2, in_order=False))
    ['1', '2']
    """
    items = list(items)
    width = max(1, int(width or 1))
    if width == 1 or len(items) <= 1:
        for item in items:
            yield fn(item)
        return
    pool = ThreadPoolExecutor(max_workers=min(width, len(items)), thread_name_prefix=thread_name_prefix)
    futures = [pool.submit(fn, item) for item in items]
    try:
        for future in (futures if in_order else as_completed(futures)):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def normalise_logprobs(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    """OpenAI-style ``choice["logprobs"]["content"]`` (llama.cpp uses the same shape) as
    ``[{"token", "logprob", "top": {token: logprob}}]``; None when the reply has none.

    >>> normalise_logprobs({"logprobs": {"content": [{"token": "a", "logprob": -0.1,
    ...     "top_logprobs": [{"token": "a", "logprob": -0.1}, {"token": "b", "logprob": -2.5}]}]}})
    [{'token': 'a', 'logprob': -0.1, 'top': {'a': -0.1, 'b': -2.5}}]
    """
    lp = choice.get("logprobs")
    if not lp or not isinstance(lp, dict) or lp.get("content") is None:
        return None
    out = []
    for item in lp["content"]:
        top = {t["token"]: float(t["logprob"]) for t in item.get("top_logprobs") or []}
        out.append({"token": item.get("token"), "logprob": float(item.get("logprob", 0.0)),
                    "top": top})
    return out


def message_text(choice: dict[str, Any]) -> str:
    """The assistant text of a chat-completion choice ('' when the model said nothing)."""
    message = choice.get("message") or {}
    return message.get("content") or ""


__all__ = ["BACKEND_NAMES", "EMBEDDED", "LLM_CHOICES", "LLM_OFF", "OPENAI", "ChatRequest",
           "ChatResponse", "LLM", "LLMError", "LLMNotInstalled", "ModelNotAvailable", "bounded_map",
           "normalise_logprobs", "message_text"]

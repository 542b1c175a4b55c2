"""One client for every OpenAI-compatible chat server, driven by ``base_url``.

vLLM, Ollama (``http://127.0.0.1:11434/v1``), the llama.cpp server
(``python -m llama_cpp.server``) and OpenAI itself all answer ``POST {base_url}/chat/completions``.
Standard library only (``urllib.request`` + a thread pool), so the backend adds no dependency.

* **Structured output** (``schema_mode``): ``"json_schema"`` sends the OpenAI form
  ``{"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}`` (OpenAI, vLLM,
  Ollama); ``"json_object"`` sends ``{"type": "json_object", "schema": ...}``, the form
  llama-cpp-python's server understands; ``"none"`` sends no response format (the schema is
  then only a promise the prompt must make).
* **Retries**: 429, 5xx, connection errors and timeouts are retried with exponential backoff
  and jitter (a server's ``Retry-After`` is honoured), at most ``max_attempts`` tries; other
  4xx are errors at once (retrying a bad request only wastes quota).
* **Concurrency**: at most ``max_concurrency`` requests in flight, also across threads that
  call :meth:`chat` themselves; :meth:`LLM.chat_many` (inherited) fills that many workers.
* **API key**: read from the environment variable named by ``api_key_env`` (optional: local
  servers need none). It goes only into the ``Authorization`` header, and only to the origin
  (scheme, host, port) of ``base_url``: a redirect to another origin is refused, not followed
  (urllib would copy the header along). It is never logged, never in an error message, never
  in :func:`repr`; a secret written into ``base_url`` itself (``user:pass@``, ``?key=``) is
  shown as ``***`` wherever the URL is (messages, ``model_id``).
* **Fail fast**: :meth:`check_available` asks ``{base_url}/models`` once, so a run can stop
  before its expensive stages when the server is down.

>>> llm = OpenAICompatibleLLM("m", base_url="http://127.0.0.1:9/v1", api_key_env="NO_SUCH_VAR")
>>> llm.model_id
'http://127.0.0.1:9/v1|m'
>>> redact_url("https://u:sk-123@api.example/v1?api_key=sk-456&v=2")
'https://***@api.example/v1?api_key=***&v=2'
>>> llm.payload(ChatRequest([{"role": "user", "content": "hi"}], max_tokens=5, seed=None))
{'model': 'm', 'messages': [{'role': 'user', 'content': 'hi'}], 'temperature': 0.0, 'max_tokens': 5}
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from lantern.errors import ConfigError
from lantern.llm.base import (OPENAI, ChatRequest, ChatResponse, LLM, LLMError, message_text,
                              normalise_logprobs)

log = logging.getLogger(__name__)

#: where a server is expected when none is named (llama.cpp's server on this machine)
DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
SCHEMA_MODES = ("json_schema", "json_object", "none")
DEFAULT_SCHEMA_MODE = "json_schema"
GRAMMAR_MODES = ("none", "gbnf")
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class TransportError(LLMError):
    """No HTTP answer at all (connection refused or reset, DNS, timeout): worth a retry."""


class HTTPStatusError(LLMError):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


@dataclass
class HTTPReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


#: ``transport(method, url, headers, body, timeout) -> HTTPReply``; raises TransportError when
#: no reply came. Tests pass a fake one; the default speaks HTTP through urllib.
Transport = Callable[[str, str, Mapping[str, str], "bytes | None", float], HTTPReply]


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: query parameters whose values are secrets (matched as parts of the lower-case name)
_SECRET_PARAMS = ("key", "token", "secret", "password", "auth", "sig")


def redact_url(url: str) -> str:
    """``url`` with its user-info and secret-looking query values replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{k}=***" if any(s in k.lower() for s in _SECRET_PARAMS) else
                         urllib.parse.urlencode({k: v}) for k, v in pairs)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port if parts.port is not None else {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only within the origin it came from. urllib copies every header,
    ``Authorization`` included, to wherever a redirect points; refusing the others leaves the
    3xx answer for :meth:`OpenAICompatibleLLM.request_json` to report."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if origin_of(newurl) != origin_of(req.full_url):
            return None   # urllib then raises HTTPError(code): the transport returns it
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}), _SameOriginRedirects)
_DEFAULT = urllib.request.build_opener(_SameOriginRedirects)


def urllib_transport(method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                     timeout: float) -> HTTPReply:
    """HTTP through urllib. A local server is reached directly even when a proxy is set in
    the environment (a proxy cannot reach this machine's 127.0.0.1). Redirects are followed
    only within the same origin."""
    req = urllib.request.Request(url, data=body, headers=dict(headers), method=method)
    opener = _DIRECT if _is_loopback(url) else _DEFAULT
    try:
        with opener.open(req, timeout=timeout) as resp:
            return HTTPReply(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as exc:
        try:
            body_bytes = exc.read()
        except OSError:
            body_bytes = b""
        return HTTPReply(exc.code, dict(exc.headers.items()) if exc.headers else {}, body_bytes)
    except (urllib.error.URLError, http.client.HTTPException, socket.timeout, TimeoutError,
            ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransportError(f"{method} {redact_url(url)}: no answer "
                             f"({type(reason).__name__}: {reason})") from exc


class OpenAICompatibleLLM(LLM):
    """Chat completions from an OpenAI-compatible server (see the module docstring)."""

    backend = OPENAI

    def __init__(self, model: str | None = None, *, base_url: str = DEFAULT_BASE_URL,
                 api_key_env: str | None = DEFAULT_API_KEY_ENV, max_concurrency: int = 4,
                 timeout: float = 120.0, max_attempts: int = 5, backoff_base: float = 1.0,
                 backoff_max: float = 30.0, schema_mode: str = DEFAULT_SCHEMA_MODE,
                 grammar_mode: str = "none",
                 extra_body: Mapping[str, Any] | None = None, transport: Transport | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None):
        if schema_mode not in SCHEMA_MODES:
            raise ConfigError(f"schema_mode {schema_mode!r}: expected one of {', '.join(SCHEMA_MODES)}")
        if max_attempts < 1 or max_concurrency < 1:
            raise ConfigError("max_attempts and max_concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)   # for messages, ids and repr
        self._model = model
        self.api_key_env = api_key_env
        # Kept private and out of repr/errors; None when the variable is unset (local servers).
        self._api_key = os.environ.get(api_key_env) if api_key_env else None
        self.max_concurrency = int(max_concurrency)
        self.timeout = float(timeout)
        self.max_attempts = int(max_attempts)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.schema_mode = schema_mode
        if grammar_mode not in GRAMMAR_MODES:
            raise ConfigError(f"grammar_mode {grammar_mode!r}: expected one of {', '.join(GRAMMAR_MODES)}")
        # "gbnf": send a request's grammar as the llama.cpp servers' "grammar" field (OpenAI
        # itself rejects unknown fields, so it is off by default)
        self.grammar_mode = grammar_mode
        self.extra_body = dict(extra_body or {})
        self._transport = transport or urllib_transport
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._model_lock = threading.Lock()

    # -- identity --------------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The model name; when none was given, the first one the server lists."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    names = self.list_models()
                    if not names:
                        raise LLMError(f"{self.shown_url}/models lists no model; pass model=")
                    self._model = names[0]
        return self._model

    @property
    def model_id(self) -> str:
        return f"{self.shown_url}|{self.model}"

    def cache_identity(self) -> dict[str, Any]:
        return {"schema_mode": self.schema_mode, "extra_body": self.extra_body,
                **({"grammar_mode": self.grammar_mode} if self.grammar_mode != "none" else {})}

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return (f"OpenAICompatibleLLM(base_url={self.shown_url!r}, model={self._model!r}, "
                f"api_key_env={self.api_key_env!r} ({key}))")

    # -- HTTP ------------------------------------------------------------------------------
    def _headers(self, with_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if with_body:
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def url(self, path: str) -> str:
        """``base_url`` + ``/path``, keeping a query of ``base_url`` at the end (where it works).

        >>> OpenAICompatibleLLM("m", base_url="http://h/v1?api-version=2").url("models")
        'http://h/v1/models?api-version=2'
        """
        parts = urllib.parse.urlsplit(self.base_url)
        return urllib.parse.urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{path.lstrip('/')}"))

    def backoff(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1):
        ``base * 2**(attempt-1)`` capped at ``backoff_max``, half of it fixed and half random
        ("equal jitter": parallel clients do not retry in lockstep). A server's numeric
        ``Retry-After`` wins when larger (still capped)."""
        cap = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        delay = cap / 2 + self._rng.uniform(0, cap / 2)
        if retry_after:
            try:
                delay = max(delay, min(self.backoff_max, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: ignore, the exponential delay is a fine substitute
        return delay

    def request_json(self, method: str, path: str, payload: dict | None = None, *,
                     max_attempts: int | None = None, timeout: float | None = None) -> dict:
        """One JSON call with the retry policy; the parsed reply, or :class:`LLMError`."""
        url, shown = self.url(path), redact_url(self.url(path))
        body = json.dumps(payload).encode("utf-8") if payload is not None else None
        last: Exception | None = None
        attempts = max_attempts or self.max_attempts
        for attempt in range(1, attempts + 1):
            retry_after = None
            try:
                reply = self._transport(method, url, self._headers(body is not None), body,
                                        timeout or self.timeout)
            except TransportError as exc:
                last = exc
            else:
                if 200 <= reply.status < 300:
                    try:
                        return json.loads(reply.body)
                    except ValueError as exc:
                        raise LLMError(f"{method} {shown}: reply is not JSON: {reply.body[:200]!r}") from exc
                if 300 <= reply.status < 400:   # only a cross-origin one gets here (see transport)
                    where = {k.lower(): v for k, v in reply.headers.items()}.get("location", "?")
                    raise HTTPStatusError(
                        reply.status, f"{method} {shown}: HTTP {reply.status} redirect to "
                        f"{redact_url(urllib.parse.urljoin(url, where))}, another origin: not "
                        "followed, so that the API key stays with the server it is meant for; "
                        "set base_url to the address that answers")
                detail = reply.body[:300].decode("utf-8", "replace")
                last = HTTPStatusError(reply.status, f"{method} {shown}: HTTP {reply.status}: {detail}")
                if reply.status not in RETRY_STATUS and reply.status < 500:
                    raise last
                retry_after = {k.lower(): v for k, v in reply.headers.items()}.get("retry-after")
            if attempt < attempts:
                delay = self.backoff(attempt, retry_after)
                log.warning("%s; retry %d/%d in %.1fs", last, attempt, attempts - 1, delay)
                self._sleep(delay)
        raise LLMError(f"gave up after {attempts} attempts: {last}") from last

    def list_models(self, **options) -> list[str]:
        """The model names the server offers (``GET {base_url}/models``); ``options`` go to
        :meth:`request_json`."""
        data = self.request_json("GET", "models", **options)
        return [m.get("id") for m in data.get("data", []) if m.get("id")]

    def check_available(self, timeout: float = 10.0) -> None:
        """Raise :class:`LLMError` now unless the server answers ``GET {base_url}/models``
        (one try, ``timeout`` seconds). A run calls this before its expensive stages. The
        model name is not matched against the list: servers accept names they do not list
        (Ollama's ``name`` for ``name:latest``)."""
        try:
            names = self.list_models(max_attempts=1, timeout=min(timeout, self.timeout))
        except HTTPStatusError as exc:
            if exc.status in (404, 405) and self._model is not None:
                return   # it answers, it just has no model list; chat needs none
            raise LLMError(f"the LLM server at {self.shown_url} refused the check ({exc}); "
                           "correct the base URL or API key, or switch refinement off "
                           "(--llm off)") from None
        except LLMError as exc:
            raise LLMError(f"the LLM server at {self.shown_url} does not answer ({exc}); start "
                           "it, correct the base URL, or switch refinement off (--llm off)") from None
        if self._model is None and not names:
            raise LLMError(f"{self.shown_url}/models lists no model; pass model=")

    # -- chat ------------------------------------------------------------------------------
    def response_format(self, request: ChatRequest) -> dict | None:
        if request.json_schema is None or self.schema_mode == "none":
            return None
        if self.schema_mode == "json_object":
            return {"type": "json_object", "schema": request.json_schema}
        return {"type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.json_schema,
                                "strict": True}}

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        """The exact JSON body sent for ``request``."""
        body: dict[str, Any] = {"model": self.model, "messages": request.messages,
                                "temperature": request.temperature, "max_tokens": request.max_tokens}
        if request.seed is not None:
            body["seed"] = request.seed
        fmt = self.response_format(request)
        if fmt is not None:
            body["response_format"] = fmt
        if request.logprobs:
            body["logprobs"] = True
            if request.top_logprobs is not None:
                body["top_logprobs"] = request.top_logprobs
        if request.grammar is not None and self.grammar_mode == "gbnf":
            body["grammar"] = request.grammar
        body.update(self.extra_body)
        return body

    def chat(self, request: ChatRequest) -> ChatResponse:
        body = self.payload(request)
        with self._slots:
            t0 = time.perf_counter()
            out = self.request_json("POST", "chat/completions", body)
            seconds = time.perf_counter() - t0
        try:
            choice = out["choices"][0]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"{self.shown_url}: reply has no choices: {str(out)[:200]}") from exc
        usage = out.get("usage") or {}
        return ChatResponse(text=message_text(choice),
                            prompt_tokens=int(usage.get("prompt_tokens") or 0),
                            completion_tokens=int(usage.get("completion_tokens") or 0),
                            seconds=seconds, finish_reason=choice.get("finish_reason"),
                            model_id=self.model_id, top_logprobs=normalise_logprobs(choice))

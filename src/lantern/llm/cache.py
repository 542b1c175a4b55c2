"""Content-addressed, persistent cache of LLM answers: SQLite (WAL) under
``cache_dir()/llm.sqlite``.

The key is the sha256 of the canonical JSON of everything that decides an answer: backend,
model id (which, for a local model, includes the sha256 of its file), backend options that
change answers (chat template, structured-output mode), the messages, the sampling
parameters (temperature, max_tokens, seed, logprobs), the JSON schema and the prompt
template's hash. Change any of them and the old answer is not reused.

Every :meth:`LLMCache.put` commits, so an interrupted run keeps every answer it got, and
:class:`CachedLLM` replays them: a rerun repeats no call. An answer its reader could not use
(:func:`lantern.llm.structured.structured_chat`: not JSON, or invalid) is taken out again with
:meth:`CachedLLM.forget`, so a failure is never replayed as if it were an answer.

>>> import tempfile
>>> from lantern.llm.base import ChatRequest, ChatResponse
>>> cache = LLMCache(tempfile.mkdtemp() + "/llm.sqlite")
>>> req = ChatRequest([{"role": "user", "content": "hi"}])
>>> key = cache_key("embedded", "m@abc", req, template_hash="t1")
>>> cache.get(key) is None
True
>>> cache.put(key, ChatResponse("hello", 3, 1, 0.5, "stop", "m@abc"))
>>> hit = cache.get(key)
>>> hit.text, hit.cached, hit.seconds
('hello', True, 0.5)
>>> key == cache_key("embedded", "m@abc", req, template_hash="t2")
False
>>> cache.close()
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from lantern.llm.base import ChatRequest, ChatResponse, LLM

FILENAME = "llm.sqlite"
#: bump when the key recipe or the stored record changes, so old rows are not misread
KEY_VERSION = 1


def default_cache_path() -> Path:
    from lantern.paths import cache_dir

    return cache_dir() / FILENAME


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: equal objects give equal strings.

    >>> canonical_json({"b": 1, "a": [1.0, "é"]})
    '{"a":[1.0,"é"],"b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def cache_key(backend: str, model_id: str, request: ChatRequest, *, template_hash: str = "",
              backend_options: dict[str, Any] | None = None) -> str:
    """The sha256 (hex) naming the answer to ``request`` from this backend and model."""
    material = {
        "v": KEY_VERSION,
        "backend": backend,
        "model_id": model_id,
        "backend_options": backend_options or {},
        "messages": request.messages,
        "sampling": request.sampling(),
        "schema": request.json_schema,
        "schema_name": request.schema_name if request.json_schema is not None else None,
        "template_hash": template_hash,
    }
    return hashlib.sha256(canonical_json(material).encode("utf-8")).hexdigest()


class LLMCache:
    """Key -> :class:`ChatResponse` store, safe to share between threads (one connection
    behind a lock) and between processes (SQLite WAL with a busy timeout)."""

    def __init__(self, path: str | Path | None = None, timeout: float = 60.0):
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=timeout, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers ("
            " key TEXT PRIMARY KEY, model_id TEXT NOT NULL, response TEXT NOT NULL,"
            " prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,"
            " seconds REAL NOT NULL, created REAL NOT NULL)")
        self._db.commit()

    def get(self, key: str) -> ChatResponse | None:
        """The stored answer (``cached=True``), or None. A damaged row counts as a miss."""
        record = self.get_json(key)
        if record is None:
            return None
        try:
            response = ChatResponse.from_dict(record)
        except (ValueError, TypeError):
            return None
        return replace(response, cached=True)

    def put(self, key: str, response: ChatResponse) -> None:
        """Store one answer and commit at once (an interrupted run loses nothing it got)."""
        record = replace(response, cached=False).to_dict()
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (key, response.model_id, canonical_json(record),
                              int(response.prompt_tokens), int(response.completion_tokens),
                              float(response.seconds), time.time()))

    def delete(self, key: str) -> None:
        """Remove one answer (if stored) and commit."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM answers WHERE key = ?", (key,))

    def get_json(self, key: str) -> dict | None:
        """A stored non-chat record (e.g. a log-probability slot answer), or None."""
        with self._lock:
            row = self._db.execute("SELECT response FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            record = json.loads(row[0])
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def put_json(self, key: str, model_id: str, record: dict) -> None:
        """Store a non-chat record under ``key`` (its keys never collide with chat keys:
        they hash other material)."""
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (key, model_id, canonical_json(record),
                              int(record.get("prompt_tokens", 0)), int(record.get("completion_tokens", 0)),
                              float(record.get("seconds", 0.0)), time.time()))

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM answers WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CachedLLM(LLM):
    """Answers from ``cache`` when it has them (``cached=True``), else from ``llm`` (then
    stored). ``template_hash`` identifies the prompt template that built the messages.

    ``hits`` and ``misses`` count this wrapper's lookups; a resumed run whose answers are all
    cached makes no backend call (and, for the embedded backend, never loads the model).
    :meth:`LLM.chat_many` (inherited, as wide as the wrapped backend) stores each answer as
    soon as it arrives, so an interruption loses only the requests in flight.
    """

    def __init__(self, llm: LLM, cache: LLMCache | None = None, template_hash: str = ""):
        self.llm = llm
        self.cache = cache if cache is not None else LLMCache()
        self.template_hash = template_hash
        self.backend = llm.backend
        self.max_concurrency = getattr(llm, "max_concurrency", 1)
        self.hits = 0
        self.misses = 0
        self._count_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.llm.model_id

    def cache_identity(self) -> dict[str, Any]:
        return self.llm.cache_identity()

    def key(self, request: ChatRequest) -> str:
        return cache_key(self.llm.backend, self.llm.model_id, request,
                         template_hash=self.template_hash,
                         backend_options=self.llm.cache_identity())

    def chat(self, request: ChatRequest) -> ChatResponse:
        key = self.key(request)
        hit = self.cache.get(key)
        if hit is not None:
            with self._count_lock:
                self.hits += 1
            return hit
        with self._count_lock:
            self.misses += 1
        response = self.llm.chat(request)
        self.cache.put(key, response)
        return response

    def forget(self, request: ChatRequest) -> None:
        """Drop the stored answer to ``request``: it turned out unusable, and replaying it
        would pass a failure off as an answer (the next run asks the backend again)."""
        self.cache.delete(self.key(request))

    def close(self) -> None:
        self.llm.close()

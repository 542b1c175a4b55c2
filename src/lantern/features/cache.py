"""On-disk feature cache: SQLite (WAL) under ``cache_dir()/features.sqlite``.

Rows map a sha256 key (extractor identity + version + input key, see
:meth:`FeatureExtractor.cache_key`) to a float32 vector stored as raw bytes. Every
:meth:`FeatureCache.put_many` is one transaction, so an interrupted run keeps every batch
it finished; WAL mode lets several processes read while one writes.

>>> import tempfile, numpy as np
>>> with FeatureCache(tempfile.mkdtemp() + "/f.sqlite") as cache:
...     cache.put_many([("k1", "demo", np.arange(3, dtype=np.float32))])
...     hit = cache.get_many(["k1", "k2"])
>>> sorted(hit), hit["k1"].tolist()
(['k1'], [0.0, 1.0, 2.0])
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from lantern.paths import cache_dir

FILENAME = "features.sqlite"
_CHUNK = 500  # keys per SELECT (below SQLite's variable limit)


def default_cache_path() -> Path:
    """``cache_dir()/features.sqlite`` (``$LANTERN_CACHE_DIR`` or ``~/.cache/lantern``)."""
    return cache_dir() / FILENAME


class FeatureCache:
    """Key -> float32 vector store. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path | None = None, timeout: float = 60.0):
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=timeout)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors ("
            " key TEXT PRIMARY KEY, extractor TEXT NOT NULL, dim INTEGER NOT NULL,"
            " data BLOB NOT NULL, created REAL NOT NULL)")
        self._db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (missing or damaged rows are left out)."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, dim, data in self._db.execute(
                    f"SELECT key, dim, data FROM vectors WHERE key IN ({marks})", chunk):
                if len(data) != 4 * dim:
                    continue  # damaged row: recompute and overwrite
                out[key] = np.frombuffer(data, dtype="<f4").astype(np.float32)
        return out

    def put_many(self, items: Iterable[tuple[str, str, np.ndarray]]) -> None:
        """Store ``(key, extractor_name, vector)`` triples in one transaction."""
        now = time.time()
        rows = []
        for key, extractor, vec in items:
            vec = np.ascontiguousarray(vec, dtype="<f4").reshape(-1)
            rows.append((key, extractor, int(vec.size), vec.tobytes(), now))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?)", rows)

    def count(self, extractor: str | None = None) -> int:
        if extractor is None:
            return self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM vectors WHERE extractor = ?",
                                (extractor,)).fetchone()[0]

    def clear(self, extractor: str | None = None) -> int:
        """Delete every row (of one extractor); returns how many were deleted."""
        with self._db:
            if extractor is None:
                cur = self._db.execute("DELETE FROM vectors")
            else:
                cur = self._db.execute("DELETE FROM vectors WHERE extractor = ?", (extractor,))
        return cur.rowcount

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "FeatureCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

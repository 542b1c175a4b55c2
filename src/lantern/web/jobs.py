"""The job store: one folder per upload under the jobs root, which jobs are running, pruning,
and the counters ``/healthz`` shows.

Only :meth:`JobStore.new` creates a folder and only :meth:`JobStore.path` maps an id to one,
after checking it against :data:`JOB_ID_RE`: no client string ever becomes part of a path, and
only the :data:`SERVED_FILES` are ever served.

>>> bool(JOB_ID_RE.fullmatch("0" * 32)), bool(JOB_ID_RE.fullmatch("../../etc/passwd"))
(True, False)
>>> counters = JobCounters(uploading=1, waiting=2)
>>> counters.queued(), counters.snapshot()["waiting"]
(3, 2)
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from lantern.predict.outputs import MANIFEST

#: Job ids are exactly what ``secrets.token_hex(16)`` makes; nothing else touches the disk.
JOB_ID_RE = re.compile(r"[0-9a-f]{32}")

#: The only files served from a job folder, with their media types.
SERVED_FILES = {
    "report.html": "text/html; charset=utf-8",
    "predictions.json": "application/json",
    "predictions.csv": "text/csv; charset=utf-8",
}


@dataclass(frozen=True)
class Job:
    """One upload's job: its random id and its folder (``<jobs root>/<id>``)."""

    id: str
    dir: Path


@dataclass
class JobCounters:
    """How many uploads are arriving, waiting for a worker, running, done and failed. Changed
    only on the event loop, so they need no lock."""

    uploading: int = 0
    waiting: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0

    def queued(self) -> int:
        """Uploads still arriving hold a job folder too: they count like waiting jobs."""
        return self.uploading + self.waiting

    @contextlib.contextmanager
    def counting(self, name: str):
        """Count one more in ``name`` ("uploading" or "running") while the block runs."""
        setattr(self, name, getattr(self, name) + 1)
        try:
            yield
        finally:
            setattr(self, name, getattr(self, name) - 1)

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


class JobStore:
    """The job folders under one root, which of them are running, and pruning (the newest
    ``keep`` finished jobs stay)."""

    def __init__(self, root: Path, keep: int):
        self.root, self.keep = root, keep
        self._lock = threading.Lock()
        self._active: set[str] = set()

    def new(self) -> Job:
        """A fresh job folder (owner only), marked running until :meth:`finish`."""
        while True:
            job_id = secrets.token_hex(16)
            path = self.root / job_id
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:   # pragma: no cover - 128 random bits
                continue
            with self._lock:
                self._active.add(job_id)
            return Job(job_id, path)

    def path(self, job_id: str) -> Path | None:
        """The folder of a finished job (its outputs complete: a manifest), or None."""
        if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
            return None
        with self._lock:
            if job_id in self._active:
                return None
        path = self.root / job_id
        if path.parent != self.root or path.is_symlink() or not path.is_dir() \
                or not (path / MANIFEST).is_file():
            return None
        return path

    def file(self, job_id: str, name: str) -> Path | None:
        """One of the :data:`SERVED_FILES` of a finished job, or None."""
        if name not in SERVED_FILES:
            return None
        job = self.path(job_id)
        if job is None:
            return None
        path = job / name
        if path.is_symlink() or not path.is_file():
            return None
        return path

    def finish(self, job: Job, ok: bool) -> None:
        """A job is done: keep it (ok) or remove it, then prune old ones."""
        if not ok:
            shutil.rmtree(job.dir, ignore_errors=True)
        with self._lock:
            self._active.discard(job.id)
        self.prune()

    def prune(self, *, incomplete: bool = False) -> list[str]:
        """Remove all but the newest ``keep`` finished jobs (and, at start-up, jobs a crash left
        without a complete set of outputs). Running jobs are never touched."""
        with self._lock:
            active = set(self._active)
        done = []
        for p in self.root.iterdir():
            if not (JOB_ID_RE.fullmatch(p.name) and p.name not in active) or p.is_symlink() \
                    or not p.is_dir():
                continue
            if incomplete and not (p / MANIFEST).is_file():
                shutil.rmtree(p, ignore_errors=True)
                continue
            try:
                done.append((p.stat().st_mtime, p))
            except FileNotFoundError:   # pragma: no cover - removed meanwhile
                pass
        done.sort(reverse=True)
        removed = []
        for _, p in done[self.keep:]:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
        return removed

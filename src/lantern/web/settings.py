"""What ``lantern serve`` allows: :class:`ServeSettings`, checked when it is made.

>>> ServeSettings(max_upload_mb=1).max_upload_bytes
1048576
>>> sorted(ServeSettings(allowed_hosts=("LocalHost", "[::1]")).host_allow_list())
['::1', 'localhost']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lantern.errors import LanternError
from lantern.llm.base import EMBEDDED, LLM_CHOICES
from lantern.predict.inputs import DEFAULT_MAX_DURATION_S


@dataclass
class ServeSettings:
    """What the server allows. ``llm`` is the backend that the upload form may switch on
    ("embedded" | "openai" | "off": with "off" the form offers no refinement)."""

    jobs_dir: str | Path | None = None      # default: <cache dir>/serve-jobs
    max_upload_mb: float = 50.0
    llm: str = EMBEDDED
    workers: int = 1
    keep_jobs: int = 100
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    max_queue: int = 32                     # uploads in progress + jobs waiting, before 503
    upload_idle_s: float = 30.0             # an upload that sends no byte this long gets 408 ...
    upload_timeout_s: float = 600.0         # ... and so does one that takes longer than this
    allowed_hosts: tuple[str, ...] | None = None   # Host header names accepted; None = any
    predict_options: dict[str, Any] = field(default_factory=dict)   # more PredictSettings fields

    def __post_init__(self):
        if self.llm not in LLM_CHOICES:
            raise LanternError(f"--llm must be embedded, openai or off, not {self.llm!r}")
        if not (self.max_upload_mb > 0 and math.isfinite(self.max_upload_mb)):
            raise LanternError(f"--max-upload-mb must be positive, not {self.max_upload_mb}")
        if int(self.workers) < 1:
            raise LanternError(f"--workers must be at least 1, not {self.workers}")
        if int(self.keep_jobs) < 1:
            raise LanternError(f"keep_jobs must be at least 1, not {self.keep_jobs}")
        for name in ("upload_idle_s", "upload_timeout_s"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise LanternError(f"{name} must be positive, not {getattr(self, name)}")
        self.workers = int(self.workers)
        self.keep_jobs = int(self.keep_jobs)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def host_allow_list(self) -> frozenset[str] | None:
        """The accepted Host names, lower case and without IPv6 brackets; None: any."""
        if self.allowed_hosts is None:
            return None
        return frozenset(h.lower().strip("[]") for h in self.allowed_hosts)

    def resolved_jobs_dir(self) -> Path:
        """The jobs folder, created (owner only) if missing."""
        if self.jobs_dir is not None:
            root = Path(self.jobs_dir)
        else:
            from lantern.paths import cache_dir
            root = cache_dir() / "serve-jobs"
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return root.resolve()

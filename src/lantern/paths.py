"""Where data and caches live. Everything is overridable; nothing is absolute in configs."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_ROOT = "../shared/data"


def data_root(explicit: str | Path | None = None) -> Path:
    """The data root: explicit argument, else ``$LANTERN_DATA_ROOT``, else ``../shared/data``."""
    return Path(explicit or os.environ.get("LANTERN_DATA_ROOT") or DEFAULT_DATA_ROOT)


def cache_dir(explicit: str | Path | None = None) -> Path:
    """Cache root for features and LLM answers: ``$LANTERN_CACHE_DIR`` or ``~/.cache/lantern``."""
    root = Path(explicit or os.environ.get("LANTERN_CACHE_DIR")
                or Path.home() / ".cache" / "lantern")
    root.mkdir(parents=True, exist_ok=True)
    return root


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:   # an error or Ctrl-C mid-write leaves no temporary file behind
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))

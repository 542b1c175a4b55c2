"""Reading annotation files that training uses: MERR-style reasons (``lantern annotate``'s
``merr.json``) for Emotion-LLaMA's ``[reason]`` task."""

from __future__ import annotations

import json
from pathlib import Path

from lantern.errors import DataError


def annotated_reasons(path: str | Path, field_name: str = "smp_reason_caption") -> dict[str, str]:
    """Clip name -> reason from a ``merr.json`` (for training the ``[reason]`` task); the
    coarse ``caption`` stands in where no fine-grained reason passed the filters."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the MERR annotation file ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise DataError("not a MERR annotation file (an object keyed by clip name)", path=path)
    bad = next((name for name, a in data.items() if not isinstance(a, dict)), None)
    if bad is not None:
        raise DataError("each clip's annotation must be an object", path=path, field=bad)
    return {name: (a.get(field_name) or a.get("caption") or "") for name, a in data.items()}


__all__ = ["annotated_reasons"]

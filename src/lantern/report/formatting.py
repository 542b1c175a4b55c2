"""Text for the page: HTML escaping and the formats of numbers, shares, durations and times.

Every value may come from a hand-edited document, so each formatter accepts anything and
shows a dash for what is missing, not a number or not finite.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

#: C0 controls other than tab, line feed, form feed and carriage return, and DEL: HTML does
#: not allow them in text (a NUL from a file name or a transcript would reach the page raw).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def esc(value: Any) -> str:
    """Escape anything for HTML text and attribute values; control characters HTML does not
    allow become U+FFFD.

    >>> esc("a\\x00<b>")
    'a\ufffd&lt;b&gt;'
    """
    text = _CONTROL_RE.sub("\ufffd", "" if value is None else str(value))
    return html.escape(text, quote=True)


def finite(value: Any) -> float | None:
    """``value`` as a finite float, else None (booleans are not numbers here)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A share as a percentage: ``0.123`` -> ``12.3%``."""
    f = finite(value)
    return "—" if f is None else f"{100 * f:.{digits}f}%"


def fmt_fixed(value: Any, digits: int = 2) -> str:
    f = finite(value)
    return "—" if f is None else f"{f:.{digits}f}"


def fmt_secs(value: Any) -> str:
    """A duration with its unit: ``12.3 s``, ``0.067 s``, ``0.04 ms``."""
    f = finite(value)
    if f is None:
        return "—"
    if f == 0:
        return "0 s"
    if abs(f) >= 100:
        return f"{f:.0f} s"
    if abs(f) >= 0.1:
        return f"{f:.2f} s"
    if abs(f) >= 0.001:
        return f"{f:.3f} s"
    return f"{f * 1000:.2g} ms"


def fmt_clock(value: Any) -> str:
    """A time as ``m:ss.s`` or ``h:mm:ss``; empty when missing."""
    t = finite(value)
    if t is None:
        return ""
    sign = "-" if t < 0 else ""
    t = abs(t)
    if t >= 3600:
        h, rest = divmod(int(t), 3600)
        return f"{sign}{h}:{rest // 60:02d}:{rest % 60:02d}"
    m, s = divmod(t, 60)
    return f"{sign}{int(m)}:{s:04.1f}"


def fmt_int(value: Any) -> str:
    """A count with thousands separators: ``1,234``."""
    f = finite(value)
    return "—" if f is None else f"{int(f):,}"


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"

"""Valence and arousal through the conversation: one line each on the model's VAD scale,
over a faint band of each utterance's final emotion.

Short conversations get a marker per utterance; long ones get the raw values faint and a
moving average in bold instead. A missing value breaks its line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lantern.report.chart_frame import (CHART_WIDTH, PLOT_LEFT, PLOT_WIDTH, cell_overlap, dialogue_lines,
                                        x_axis, x_of)
from lantern.report.colors import AROUSAL_COLOR, UNKNOWN_COLOR, VALENCE_COLOR
from lantern.report.document import PageDocument
from lantern.report.formatting import esc

_LEGEND_Y = 4
_PLOT_TOP, _PLOT_HEIGHT = _LEGEND_Y + 28, 210
_SERIES = (("valence", VALENCE_COLOR, ""), ("arousal", AROUSAL_COLOR, ' stroke-dasharray="6 4"'))


@dataclass(frozen=True)
class _ValueAxis:
    """Maps a score on the scale ``lo``..``hi`` to its y (clamped to the plot)."""

    lo: float
    hi: float
    top: float = _PLOT_TOP
    height: float = _PLOT_HEIGHT

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def y(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)
        return self.bottom - (v - self.lo) / (self.hi - self.lo) * self.height


def _nice_step(span: float) -> float:
    """A round grid step giving about five lines over ``span``."""
    raw = span / 5
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _moving_average(seg: list[tuple[int, float]], window: int) -> list[tuple[int, float]]:
    half = window // 2
    vals = [v for _, v in seg]
    out = []
    for k, (i, _) in enumerate(seg):
        chunk = vals[max(0, k - half): k + half + 1]
        out.append((i, sum(chunk) / len(chunk)))
    return out


def _legend(page: PageDocument) -> str:
    """Line samples for valence and arousal, and three class swatches for the background."""
    x, y = PLOT_LEFT, _LEGEND_Y
    swatches = "".join(f'<rect x="{x + 222 + 5 * k}" y="{y + 1}" width="5" height="12" fill="{col}" '
                       f'opacity=".35"/>' for k, col in enumerate(list(page.colors.values())[:3]))
    return (f'<line x1="{x}" y1="{y + 7}" x2="{x + 26}" y2="{y + 7}" stroke="{VALENCE_COLOR}" '
            f'stroke-width="2.5"/><circle cx="{x + 13}" cy="{y + 7}" r="3.5" fill="{VALENCE_COLOR}"/>'
            f'<text x="{x + 32}" y="{y + 11}">valence</text>'
            f'<line x1="{x + 110}" y1="{y + 7}" x2="{x + 136}" y2="{y + 7}" '
            f'stroke="{AROUSAL_COLOR}" stroke-width="2.5" stroke-dasharray="6 4"/>'
            f'<rect x="{x + 119.5}" y="{y + 3.5}" width="7" height="7" fill="{AROUSAL_COLOR}"/>'
            f'<text x="{x + 142}" y="{y + 11}">arousal</text>'
            + swatches
            + f'<text x="{x + 242}" y="{y + 11}">background: final emotion</text>')


def _emotion_band(page: PageDocument, axis: _ValueAxis) -> str:
    """A faint cell of each utterance's final emotion behind the lines."""
    n = page.n
    cell = PLOT_WIDTH / max(n, 1)
    out = []
    for i, u in enumerate(page.utts):
        lab = page.final(u)
        if lab is None:
            continue
        out.append(f'<rect x="{PLOT_LEFT + i * cell:.2f}" y="{axis.top}" width="{cell + cell_overlap(n):.2f}" '
                   f'height="{axis.height}" fill="{page.colors.get(lab, UNKNOWN_COLOR)}" opacity=".18"/>')
    return "".join(out)


def _value_grid(axis: _ValueAxis) -> str:
    """Horizontal grid lines at round values (the middle of the scale a little bolder), the
    y axis and its title."""
    lo, hi = axis.lo, axis.hi
    step = _nice_step(hi - lo)
    v = math.ceil(lo / step - 1e-9) * step
    mid = (lo + hi) / 2
    out = []
    while v <= hi + 1e-9:
        y = axis.y(v)
        out.append(f'<line x1="{PLOT_LEFT}" y1="{y:.1f}" x2="{PLOT_LEFT + PLOT_WIDTH}" y2="{y:.1f}" stroke="#d1d5db" '
                   f'stroke-width="{1.2 if abs(v - mid) < 1e-9 else 0.8}"/>'
                   f'<text x="{PLOT_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step
    out.append(f'<line x1="{PLOT_LEFT}" y1="{axis.top}" x2="{PLOT_LEFT}" y2="{axis.bottom}" stroke="#9ca3af"/>')
    out.append(f'<text transform="translate({PLOT_LEFT - 46},{axis.top + axis.height / 2}) rotate(-90)" '
               f'text-anchor="middle" class="ttl">score ({lo:g}–{hi:g})</text>')
    return "".join(out)


def _segments(page: PageDocument, key: str) -> list[list[tuple[int, float]]]:
    """Runs of consecutive utterances that have a ``key`` score, as (index, value) pairs."""
    segments, cur = [], []
    for i, u in enumerate(page.utts):
        val = page.vad(u, key)
        if val is None:
            if cur:
                segments.append(cur)
            cur = []
            continue
        cur.append((i, val))
    if cur:
        segments.append(cur)
    return segments


def _markers(page: PageDocument, axis: _ValueAxis, key: str, color: str, seg: list[tuple[int, float]]) -> str:
    """A marker with a tooltip per value: circles for valence, squares for arousal."""
    n, out = page.n, []
    for i, val in seg:
        x, y = x_of(i, n), axis.y(val)
        tip = f"turn {page.turn(page.utts[i], i)}: {key} {val:.2f}"
        if key == "valence":
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.6" fill="{color}" stroke="#fff" '
                       f'stroke-width="1"><title>{esc(tip)}</title></circle>')
        else:
            out.append(f'<rect x="{x - 3.3:.1f}" y="{y - 3.3:.1f}" width="6.6" height="6.6" '
                       f'fill="{color}" stroke="#fff" stroke-width="1"><title>{esc(tip)}</title></rect>')
    return "".join(out)


def _series(page: PageDocument, axis: _ValueAxis, key: str, color: str, dash: str,
            smooth: int, markers: bool) -> str:
    """The line (or its faint raw values and bold moving average) and markers of one score."""
    n, out = page.n, []

    def points(seg: list[tuple[int, float]]) -> str:
        return " ".join(f"{x_of(i, n):.1f},{axis.y(v):.1f}" for i, v in seg)

    for seg in _segments(page, key):
        if len(seg) > 1:
            pts = points(seg)
            if smooth:
                out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1" '
                           f'stroke-opacity=".28" stroke-linejoin="round"/>')
                pts = points(_moving_average(seg, smooth))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2.2" '
                       f'stroke-linejoin="round"{dash}/>')
        if markers or len(seg) == 1:
            out.append(_markers(page, axis, key, color, seg))
    return "".join(out)


def vad_svg(page: PageDocument) -> str:
    n = page.n
    axis = _ValueAxis(page.vad_lo, page.vad_hi)
    out = [_legend(page), _emotion_band(page, axis), _value_grid(axis), dialogue_lines(page, axis.top, axis.bottom)]
    markers = n <= 60
    smooth = 0 if markers else max(3, (n // 40) | 1)     # odd window for long conversations
    if smooth:
        out.append(f'<text x="{PLOT_LEFT + PLOT_WIDTH}" y="{_LEGEND_Y + 11}" text-anchor="end">bold lines: '
                   f'moving average over {smooth} utterances</text>')
    out += [_series(page, axis, key, color, dash, smooth, markers) for key, color, dash in _SERIES]
    x_ticks, ah = x_axis(page, axis.bottom)
    out.append(x_ticks)
    height = axis.bottom + ah + 4
    return (f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {height:.0f}" role="img" '
            f'aria-label="Valence and arousal through the conversation">{"".join(out)}</svg>')

"""What the page's two charts share: inline SVG geometry, the turn/time x axis, and the
dashed lines between dialogues. One utterance is one slot of the plot's width."""

from __future__ import annotations

from lantern.report.document import PageDocument
from lantern.report.formatting import esc, finite, fmt_clock

# Coordinates are in viewBox units; the SVG scales to the card's width.
CHART_WIDTH, PLOT_LEFT, _MARGIN_RIGHT = 1000, 78, 14
PLOT_WIDTH = CHART_WIDTH - PLOT_LEFT - _MARGIN_RIGHT


def cell_overlap(n: int) -> float:
    """How far each utterance's cell overlaps the next: none while cells are wide, a little
    once they are narrow, which avoids hairline gaps between them."""
    return 0.0 if n <= 80 else 0.35


def _ticks(page: PageDocument) -> list[int]:
    """The utterances that get a tick: about a dozen at a round step, and the last one."""
    n = page.n
    step = 1
    for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        step = s
        if n / s <= 12:
            break
    idx = list(range(0, n, step))
    if n > 1 and (n - 1) - idx[-1] >= step * 0.6:
        idx.append(n - 1)
    return idx


def x_of(i: float, n: int) -> float:
    """The x of the middle of utterance ``i``'s slot."""
    return PLOT_LEFT + (i + 0.5) * PLOT_WIDTH / max(n, 1)


def x_axis(page: PageDocument, y: float) -> tuple[str, float]:
    """Ticks with turn numbers (and start times when given); returns svg and its height."""
    n = page.n
    out = [f'<line x1="{PLOT_LEFT}" y1="{y}" x2="{PLOT_LEFT + PLOT_WIDTH}" y2="{y}" stroke="#9ca3af"/>']
    has_time = any(finite(u.get("start")) is not None for u in page.utts)
    for i in _ticks(page):
        x = x_of(i, n)
        u = page.utts[i]
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 5}" stroke="#9ca3af"/>')
        anchor = "start" if x - PLOT_LEFT < 18 else "end" if PLOT_LEFT + PLOT_WIDTH - x < 18 else "middle"
        tx = x - 3 if anchor == "start" else x + 3 if anchor == "end" else x
        out.append(f'<text x="{tx:.1f}" y="{y + 18}" text-anchor="{anchor}">{esc(page.turn(u, i))}</text>')
        if has_time and finite(u.get("start")) is not None:
            out.append(f'<text x="{tx:.1f}" y="{y + 32}" text-anchor="{anchor}" '
                       f'style="font-size:10.5px">{esc(fmt_clock(u.get("start")))}</text>')
    out.append(f'<text x="{PLOT_LEFT - 10}" y="{y + 18}" text-anchor="end" class="ttl">turn</text>')
    if has_time:
        out.append(f'<text x="{PLOT_LEFT - 10}" y="{y + 32}" text-anchor="end" class="ttl" '
                   f'style="font-size:10.5px">start</text>')
    return "".join(out), (38 if has_time else 24)


def dialogue_lines(page: PageDocument, y0: float, y1: float) -> str:
    """A dashed vertical line where each new dialogue starts (none for a single dialogue)."""
    if len(page.dialogues) <= 1:
        return ""
    out = []
    prev = page.utts[0].get("dialogue_id") if page.utts else None
    for i, u in enumerate(page.utts):
        if i and u.get("dialogue_id") != prev:
            x = PLOT_LEFT + i * PLOT_WIDTH / page.n
            out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="#111" '
                       f'stroke-width="1.5" stroke-dasharray="3 2"><title>dialogue {esc(u.get("dialogue_id"))}'
                       f'</title></line>')
        prev = u.get("dialogue_id")
    return "".join(out)


def _svg_class_legend(page: PageDocument, labels: Sequence[str], y: float) -> tuple[str, float]:
    """Swatches + names wrapped over the chart width; returns svg and its height."""

"""The emotion timeline: one coloured cell per utterance for the final label, and rows for
the vanilla model's and the gold label when the document has them."""

from __future__ import annotations

from typing import Sequence

from lantern.report.chart_frame import (CHART_WIDTH, PLOT_LEFT, PLOT_WIDTH, cell_overlap, dialogue_lines,
                                        x_axis)
from lantern.report.colors import UNKNOWN_COLOR
from lantern.report.document import PageDocument
from lantern.report.formatting import esc


def _class_legend(page: PageDocument, labels: Sequence[str], y: float) -> tuple[str, float]:
    """Swatches + names wrapped over the chart width; returns svg and its height."""
    out, x, row = [], float(PLOT_LEFT), 0
    for c in labels:
        text = page.name(c)
        w = 16 + 7.2 * len(text) + 22
        if x + w > PLOT_LEFT + PLOT_WIDTH and x > PLOT_LEFT:
            x, row = float(PLOT_LEFT), row + 1
        yy = y + row * 20
        out.append(f'<rect x="{x:.1f}" y="{yy}" width="12" height="12" rx="3" fill="{page.colors[c]}" '
                   f'stroke="rgba(0,0,0,.25)"/><text x="{x + 17:.1f}" y="{yy + 10.5}">{esc(text)}</text>')
        x += w
    return "".join(out), (row + 1) * 20


_ROW_HEIGHT, _ROW_GAP = 28, 8


def _label_rows(page: PageDocument) -> list[tuple[str, list[str | None]]]:
    """(row name, label per utterance): final always, vanilla and gold when present."""
    rows: list[tuple[str, list[str | None]]] = [("final", [page.final(u) for u in page.utts])]
    if page.any_refined:
        rows.append(("vanilla", [page.vanilla_label(u) for u in page.utts]))
    if page.any_gold:
        rows.append(("gold", [None if u.get("label") is None else str(u.get("label")) for u in page.utts]))
    return rows


def _label_row(page: PageDocument, name: str, labels: list[str | None], y: float) -> str:
    """One row: its name, a grey track and one cell per labelled utterance."""
    n, rh = page.n, _ROW_HEIGHT
    cell = PLOT_WIDTH / max(n, 1)
    out = [f'<text x="{PLOT_LEFT - 10}" y="{y + rh / 2 + 4}" text-anchor="end" class="ttl">{name}</text>',
           f'<rect x="{PLOT_LEFT}" y="{y}" width="{PLOT_WIDTH}" height="{rh}" fill="#f3f4f6"/>']
    pad = cell_overlap(n)
    sep = ' stroke="#fff" stroke-width="1"' if n <= 80 else ""     # white gaps only while cells are wide
    for i, lab in enumerate(labels):
        if lab is None:
            continue
        u = page.utts[i]
        tip = f"turn {page.turn(u, i)}: {page.name(lab)}"
        if u.get("speaker") is not None:
            tip += f" ({u.get('speaker')})"
        out.append(f'<rect x="{PLOT_LEFT + i * cell:.2f}" y="{y}" width="{cell + pad:.2f}" height="{rh}" '
                   f'fill="{page.colors.get(lab, UNKNOWN_COLOR)}"{sep}><title>{esc(tip)}</title></rect>')
    return "".join(out)


def timeline_svg(page: PageDocument) -> str:
    rows = _label_rows(page)
    used = [c for c in page.classes if any(c in labs for _, labs in rows)]
    legend, lh = _class_legend(page, used, 4)
    top = 4 + lh + 8
    out = [legend]
    for r, (name, labs) in enumerate(rows):
        out.append(_label_row(page, name, labs, top + r * (_ROW_HEIGHT + _ROW_GAP)))
    bottom = top + len(rows) * (_ROW_HEIGHT + _ROW_GAP) - _ROW_GAP
    out.append(dialogue_lines(page, top - 3, bottom + 3))
    axis, ah = x_axis(page, bottom + 6)
    out.append(axis)
    height = bottom + 6 + ah + 4
    return (f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {height:.0f}" role="img" '
            f'aria-label="Emotion per utterance through the conversation">{"".join(out)}</svg>')

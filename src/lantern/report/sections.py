"""The summary cards between the header and the transcript: the overview (distribution,
timeline and VAD charts), vanilla vs refined (what the LLM changed, or an "LLM off" note)
and, when the input had gold labels, the scores with their confusion matrices."""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

from lantern.report.colors import HEAT_RGB
from lantern.report.document import PageDocument
from lantern.report.formatting import esc, finite, fmt_int, fmt_pct, fmt_secs, shorten
from lantern.report.timeline_chart import timeline_svg
from lantern.report.vad_chart import vad_svg

_LLM_DETAILS = (("requests", "requests"), ("cache_hits", "cache hits"),
                ("validation_failures", "validation failures"), ("parse_failures", "parse failures"),
                ("fallbacks", "fallbacks"))


def _stat_cards(stats: list[tuple[str, str]]) -> str:
    """A row of big numbers, each (value HTML, caption)."""
    cards = "".join(f'<div class="stat"><b>{v}</b><span>{k}</span></div>' for v, k in stats)
    return f'<div class="stats">{cards}</div>'


# ------------------------------------------------------------------------------ overview

def _overview_stats(page: PageDocument, counts: Counter, order: list[str]) -> list[tuple[str, str]]:
    stats = [(f"{page.n:,}", "utterances")]
    if order:
        top = max(order, key=lambda c: counts[c])
        stats.append((esc(page.name(top)), "most frequent"))
    vals = [v for v in (page.vad(u, "valence") for u in page.utts) if v is not None]
    aros = [v for v in (page.vad(u, "arousal") for u in page.utts) if v is not None]
    if vals:
        stats.append((f"{sum(vals) / len(vals):.2f}", f"mean valence ({page.vad_lo:g}–{page.vad_hi:g})"))
    if aros:
        stats.append((f"{sum(aros) / len(aros):.2f}", "mean arousal"))
    if page.any_refined:
        ch = sum(page.changed(u) for u in page.utts)
        stats.append((f"{ch:,}", "changed by the LLM"))
    return stats


def overview(page: PageDocument) -> str:
    if page.n == 0:
        return ('<section class="card keep" id="overview"><h2>Overview</h2>'
                '<p class="note">The document has no utterances.</p></section>')
    counts = Counter(page.final(u) for u in page.utts)
    order = [c for c in page.classes if counts.get(c)]
    dist = "".join(f'<i class="{page.css(c)}" style="width:{100 * counts[c] / page.n:.2f}%" '
                   f'title="{esc(page.name(c))}: {counts[c]}"></i>' for c in order)
    legend = "".join(f"<li>{page.badge(c)} {counts[c]} <small>({100 * counts[c] / page.n:.0f}%)</small></li>"
                     for c in sorted(order, key=lambda c: -counts[c]))
    timeline_note = ("Each cell is one utterance, coloured by its final emotion"
                     + ("; the rows below show the vanilla model's label" if page.any_refined else "")
                     + (" and the gold label" if page.any_gold else "") + ". Hover a cell for details.")
    return (f'<section class="card" id="overview"><h2>Overview</h2>{_stat_cards(_overview_stats(page, counts, order))}'
            f'<h3>Final emotions</h3><div class="dist" role="img" aria-label="distribution of final emotions">'
            f'{dist}</div><ul class="legend">{legend}</ul>'
            f'<figure id="timeline"><h3>Emotion timeline</h3>{timeline_svg(page)}'
            f"<figcaption>{timeline_note}</figcaption></figure>"
            f'<figure id="vad"><h3>Valence and arousal</h3>{vad_svg(page)}'
            f"<figcaption>Valence (negative → positive) and arousal (calm → excited) per utterance, "
            f"on the model's scale {page.vad_lo:g}–{page.vad_hi:g}.</figcaption></figure></section>")


# ---------------------------------------------------------------------- vanilla vs refined

def _refinement_stats(llm: Mapping[str, Any], n_changed: int, n_refined: int) -> list[tuple[str, str]]:
    stats = [(f"{n_changed:,} / {n_refined:,}", "utterances changed"),
             (fmt_pct(n_changed / n_refined if n_refined else None), "change rate")]
    if llm.get("calls") is not None:
        stats.append((fmt_int(llm.get("calls")), "LLM calls"))
    if llm.get("prompt_tokens") is not None or llm.get("completion_tokens") is not None:
        stats.append((f"{fmt_int(llm.get('prompt_tokens'))} + {fmt_int(llm.get('completion_tokens'))}",
                      "prompt + completion tokens"))
    if llm.get("seconds") is not None:
        stats.append((fmt_secs(llm.get('seconds')), "LLM time"))
    return stats


def _change_row(page: PageDocument, i: int, u: Mapping[str, Any]) -> str:
    """One changed utterance: its turn (a link to its transcript row), text and both labels."""
    v, r = page.vanilla(u), page.refined(u) or {}
    pv = page.prob_of(page.probs(v), page.vanilla_label(u))
    pr = page.prob_of(page.probs(r), page.refined_label(u))
    fields = ""
    if r.get("fields") is not None:
        fields = f"{esc(r.get('valid_fields', '?'))}/{esc(r.get('fields'))}"
    return (f'<tr><td class="turn"><a href="#u{i}">{esc(page.turn(u, i))}</a></td>'
            f"<td class=\"spk\">{esc(u.get('speaker') or '—')}</td>"
            f'<td class="txt">{esc(shorten(str(u.get("text") or ""), 160))}</td>'
            f'<td class="vr" data-k="vanilla">{page.badge(page.vanilla_label(u), True)} '
            f"<small>{fmt_pct(pv, 0)}</small></td>"
            f'<td class="vr" data-k="refined">{page.badge(page.refined_label(u), True)} '
            f"<small>{fmt_pct(pr, 0)}</small></td>"
            f'<td class="num" data-k="fields">{fields}</td></tr>')


def _changes(page: PageDocument, changed: list[tuple[int, Mapping[str, Any]]]) -> str:
    """The most common (vanilla -> refined) pairs, then a table of every changed utterance."""
    if not changed:
        return '<p class="note">The LLM agreed with the vanilla model on every utterance.</p>'
    pairs = Counter((page.vanilla_label(u), page.refined_label(u)) for _, u in changed)
    pair_html = "".join(f"<li>{page.badge(a, True)}<span class=\"arrow\">→</span>{page.badge(b, True)} "
                        f"× {k}</li>" for (a, b), k in pairs.most_common(12))
    rows = "".join(_change_row(page, i, u) for i, u in changed)
    return (f'<h3>Most common changes</h3><ul class="legend">{pair_html}</ul>'
            f'<h3>Changed utterances</h3><div class="cmwrap"><table class="tx changes"><thead><tr>'
            f'<th>turn</th><th>speaker</th><th>text</th><th>vanilla</th><th>refined</th>'
            f'<th class="num" title="valid / all receptive fields">fields</th></tr></thead>'
            f'<tbody>{rows}</tbody></table></div>')


def refinement(page: PageDocument) -> str:
    if page.llm is None and not page.any_refined:
        return ('<section class="card keep" id="refinement"><h2>Vanilla vs refined</h2>'
                '<p class="note"><strong>LLM off</strong> — LLM refinement was not run '
                '(<code>--llm off</code>), so every label is the vanilla model\'s.</p></section>')
    llm = page.llm or {}
    n_refined = sum(1 for u in page.utts if page.refined(u) is not None)
    changed = [(i, u) for i, u in enumerate(page.utts) if page.changed(u)]
    details = [f"{label}: {fmt_int(llm.get(key))}" for key, label in _LLM_DETAILS if llm.get(key) is not None]
    detail = f'<p class="note">{" · ".join(details)}</p>' if details else ""
    return (f'<section class="card" id="refinement"><h2>Vanilla vs refined</h2>'
            f'{_stat_cards(_refinement_stats(llm, len(changed), n_refined))}{detail}{_changes(page, changed)}'
            f'</section>')


# -------------------------------------------------------------------------------- scores

def _confusion(page: PageDocument, cm: Any, title: str) -> str:
    if not isinstance(cm, Sequence) or not cm or not all(isinstance(r, Sequence) for r in cm):
        return ""
    k = len(cm)
    labels = [page.classes[j] if j < len(page.classes) else str(j) for j in range(k)]
    counts = [[finite(x) or 0.0 for x in row] for row in cm]
    peak = max((x for row in counts for x in row), default=0.0) or 1.0
    head = "".join(f"<th>{page.badge(c, True)}</th>" for c in labels[: max(len(r) for r in counts)])
    rows = []
    for i, row in enumerate(counts):
        cells = []
        for j, x in enumerate(row):
            a = x / peak
            bg = f"rgba({HEAT_RGB[0]},{HEAT_RGB[1]},{HEAT_RGB[2]},{0.06 + 0.94 * a:.3f})" if x else "#f9fafb"
            fg = "#fff" if a > 0.5 else "#111"
            cls = ' class="diag"' if i == j else ""
            tip = f"gold {page.name(labels[i])}, predicted {page.name(labels[j] if j < k else j)}: {x:g}"
            cells.append(f'<td{cls} style="background:{bg};color:{fg}" title="{esc(tip)}">{x:g}</td>')
        rows.append(f'<tr><th>{page.badge(labels[i], True)}</th>{"".join(cells)}'
                    f'<td class="tot">{sum(row):g}</td></tr>')
    return (f'<table class="cm"><caption>{esc(title)}</caption><thead><tr>'
            f'<th class="corner">gold ↓ predicted →</th>{head}<th class="tot">total</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _delta(before: Any, after: Any) -> str:
    """The change in percentage points, green when up and red when down."""
    fa, fb = finite(before), finite(after)
    if fa is None or fb is None:
        return ""
    d = 100 * (fb - fa)
    cls = "up" if d > 0.05 else "down" if d < -0.05 else ""
    return f' <span class="d {cls}">{d:+.1f} pt</span>'


def scores(page: PageDocument) -> str:
    sc = page.doc.get("scores")
    if not isinstance(sc, Mapping):
        return ""
    has_ref = finite(sc.get("refined_accuracy")) is not None or finite(sc.get("refined_weighted_f1")) is not None
    stats = [(fmt_int(sc.get("n_labelled")), "labelled utterances"),
             (fmt_pct(sc.get("accuracy")), "accuracy · vanilla"),
             (fmt_pct(sc.get("weighted_f1")), "weighted F1 · vanilla")]
    if has_ref:
        stats += [(fmt_pct(sc.get("refined_accuracy")) + _delta(sc.get("accuracy"), sc.get("refined_accuracy")),
                   "accuracy · refined"),
                  (fmt_pct(sc.get("refined_weighted_f1"))
                   + _delta(sc.get("weighted_f1"), sc.get("refined_weighted_f1")), "weighted F1 · refined")]
    tables = _confusion(page, sc.get("confusion"), "Vanilla")
    if has_ref or sc.get("refined_confusion"):
        tables += _confusion(page, sc.get("refined_confusion"), "Refined")
    if tables:
        tables = (f'<h3>Confusion matrices</h3><div class="cms">{tables}</div>'
                  '<p class="note">Rows are gold classes, columns predicted classes; darker cells hold more '
                  "utterances, the diagonal (outlined) is correct.</p>")
    return (f'<section class="card keep" id="scores"><h2>Scores against the gold labels</h2>'
            f'{_stat_cards(stats)}{tables}</section>')

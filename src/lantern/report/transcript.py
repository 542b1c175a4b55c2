"""The transcript card: one row per utterance with its emotion badge, class probabilities,
VAD and (when known) the gold label, and the filter bar that the page's script reveals."""

from __future__ import annotations

from typing import Any, Mapping

from lantern.report.document import PageDocument
from lantern.report.formatting import esc, fmt_clock, fmt_fixed, fmt_pct


def _prob_bar(page: PageDocument, probs: list[float]) -> str:
    """The class probabilities as one stacked bar, the larger shares named in its tooltip."""
    total = sum(probs)
    if total <= 0:
        return ""
    segs, tips = [], []
    for c, p in zip(page.classes, probs):
        share = p / total
        if share >= 0.0005:
            segs.append(f'<i class="{page.css(c)}" style="width:{100 * share:.1f}%"></i>')
        if share >= 0.005:
            tips.append((share, f"{page.name(c)} {100 * share:.0f}%"))
    tip = " · ".join(t for _, t in sorted(tips, key=lambda s: -s[0]))
    return f'<div class="pb" title="{esc(tip)}">{"".join(segs)}</div>'


def _headings(page: PageDocument) -> list[str]:
    heads = ['<th class="num">turn</th>', "<th>speaker</th>"]
    if page.any_time:
        heads.append("<th>time</th>")
    heads += ["<th>utterance</th>", "<th>emotion</th>", '<th class="num" title="probability of the final label">p</th>',
              '<th class="num" title="valence">V</th>', '<th class="num" title="arousal">A</th>',
              '<th class="num" title="dominance">D</th>']
    if page.any_gold:
        heads.append("<th>gold</th>")
    return heads


def _emotion_cell(page: PageDocument, u: Mapping[str, Any], final: str | None, probs: list[float]) -> str:
    """The final label's badge, what the LLM changed (if it did) and the probability bar."""
    emo = page.badge(final)
    if page.changed(u):
        emo += (f'<div class="chg">vanilla: {esc(page.name(page.vanilla_label(u)))} → '
                f'refined: {esc(page.name(page.refined_label(u)))}</div>')
    return f'<td class="emo">{emo}{_prob_bar(page, probs)}</td>'


def _gold_cell(page: PageDocument, gold: Any, final: str | None) -> str:
    if gold is None:
        return '<td class="gold" data-k="gold">—</td>'
    if str(gold) == final:
        return (f'<td class="gold" data-k="gold"><span class="ok" title="correct">✓</span> '
                f'{esc(page.name(gold))}</td>')
    return (f'<td class="gold" data-k="gold"><span class="bad" title="wrong">✗</span> '
            f'{esc(page.name(gold))}</td>')


def _row(page: PageDocument, i: int, u: Mapping[str, Any]) -> str:
    final = page.final(u)
    probs = page.final_probs(u)
    gold = u.get("label")
    cls = ["utt"]
    if page.changed(u):
        cls.append("changed")
    if gold is not None and str(gold) != final:
        cls.append("wrong")
    cells = [f'<td class="turn">{esc(page.turn(u, i))}</td>',
             f'<td class="spk">{esc(u.get("speaker") if u.get("speaker") is not None else "—")}</td>']
    if page.any_time:
        s, e = fmt_clock(u.get("start")), fmt_clock(u.get("end"))
        cells.append(f'<td class="time">{esc(s)}{"–" if s or e else ""}{esc(e)}</td>')
    reason = u.get("reason")
    why = f'<div class="why">{esc(reason)}</div>' if reason else ""
    cells.append(f'<td class="txt">{esc(u.get("text") or "")}{why}</td>')
    cells.append(_emotion_cell(page, u, final, probs))
    cells.append(f'<td class="num" data-k="p">{fmt_pct(page.prob_of(probs, final), 0)}</td>')
    for key, short in (("valence", "V"), ("arousal", "A"), ("dominance", "D")):
        cells.append(f'<td class="num" data-k="{short}">{fmt_fixed(page.vad(u, key), 1)}</td>')
    if page.any_gold:
        cells.append(_gold_cell(page, gold, final))
    return f'<tr class="{" ".join(cls)}" id="u{i}" data-c="{page.css(final)}">{"".join(cells)}</tr>'


def _filter_bar(page: PageDocument) -> str:
    """Search, emotion and "changed only" filters; hidden until the page's script runs."""
    options = "".join(f'<option value="{page.css(c)}">{esc(page.name(c))}</option>' for c in page.classes)
    changed_box = ('<label><input type="checkbox" id="f-ch"> changed by the LLM only</label>'
                   if page.any_refined else "")
    return (f'<div id="filters" hidden><input type="search" id="f-q" placeholder="Search text or speaker…" '
            f'aria-label="search"><select id="f-c" aria-label="emotion"><option value="">all emotions</option>'
            f'{options}</select>{changed_box}<span id="f-n"></span></div>')


def transcript(page: PageDocument) -> str:
    if page.n == 0:
        return ('<section class="card" id="transcript"><h2>Transcript</h2>'
                '<p class="note">No utterances.</p></section>')
    heads = _headings(page)
    rows = []
    prev_dlg: Any = object()
    multi = len(page.dialogues) > 1
    for i, u in enumerate(page.utts):
        if multi and u.get("dialogue_id") != prev_dlg:      # a heading row where each dialogue starts
            rows.append(f'<tr class="dlg"><th colspan="{len(heads)}">dialogue '
                        f'{esc(u.get("dialogue_id") or "—")}</th></tr>')
            prev_dlg = u.get("dialogue_id")
        rows.append(_row(page, i, u))
    if page.any_refined:
        note = ('<p class="note">Highlighted rows: the LLM changed the vanilla label. '
                'The bar shows the class probabilities of the final answer.</p>')
    else:
        note = '<p class="note">The bar under each label shows the class probabilities.</p>'
    return (f'<section class="card" id="transcript"><h2>Transcript</h2>{note}{_filter_bar(page)}'
            f'<div class="cmwrap"><table class="tx"><thead><tr>{"".join(heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div></section>')

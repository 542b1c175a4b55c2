"""The page's header card: input, model and card line, LLM backend or "LLM refinement off",
transcription language and task, the utterance count, and the time of each stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from lantern.report.document import PageDocument
from lantern.report.formatting import esc, finite, fmt_clock, fmt_int, fmt_pct, fmt_secs


def _mapping(doc: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = doc.get(key)
    return value if isinstance(value, Mapping) else None


def _small_line(parts: list[str]) -> str:
    """The muted second line of a header item; nothing when there are no parts."""
    return f"<br><small>{' · '.join(parts)}</small>" if parts else ""


def _model_item(model: Mapping[str, Any]) -> str:
    s = f"<strong>{esc(model.get('name') or 'unknown model')}</strong>"
    if model.get("card"):
        s += f"<br><small>{esc(model.get('card'))}</small>"
    return s


def _llm_item(llm: Mapping[str, Any] | None) -> str:
    if llm is None:
        return 'LLM refinement off <span class="chip off">vanilla only</span>'
    s = f"<strong>{esc(llm.get('backend') or 'LLM')}</strong>"
    if llm.get("model"):
        s += f" · {esc(llm.get('model'))}"
    parts = []
    if llm.get("t") is not None:
        parts.append(f"t = {esc(llm.get('t'))}")
    if llm.get("window") is not None:
        parts.append(f"window {esc(llm.get('window'))}, stride {esc(llm.get('stride'))}")
    if llm.get("calls") is not None:
        parts.append(f"{fmt_int(llm.get('calls'))} calls")
    return s + _small_line(parts)


def _transcription_item(tr: Mapping[str, Any]) -> str:
    s = f"<strong>{esc(tr.get('language') or 'unknown language')}</strong>"
    if finite(tr.get("language_probability")) is not None:
        s += f" <small>({fmt_pct(tr.get('language_probability'), 0)})</small>"
    if tr.get("task"):
        s += f" · {esc(tr.get('task'))}"
    parts = []
    if tr.get("model"):
        parts.append(esc(tr.get("model")))
    if finite(tr.get("duration")) is not None:
        parts.append(f"{fmt_clock(tr.get('duration'))} audio")
    if tr.get("segments") is not None:
        parts.append(f"{fmt_int(tr.get('segments'))} segments")
    if tr.get("speakers"):
        parts.append(f"speakers: {esc(tr.get('speakers'))}")
    return s + _small_line(parts)


def _utterances_item(page: PageDocument) -> str:
    speakers = {str(u.get("speaker")) for u in page.utts if u.get("speaker") is not None}
    s = f"<strong>{page.n:,}</strong> utterance{'s' if page.n != 1 else ''}"
    parts = []
    if speakers:
        parts.append(f"{len(speakers)} speaker{'s' if len(speakers) != 1 else ''}")
    if len(page.dialogues) > 1:
        parts.append(f"{len(page.dialogues)} dialogues")
    if page.any_gold:
        n_gold = sum(1 for u in page.utts if u.get("label") is not None)
        parts.append(f"{n_gold:,} with gold labels")
    return s + _small_line(parts)


def header(page: PageDocument) -> str:
    doc = page.doc
    inp = _mapping(doc, "input") or {}
    transcription = _mapping(doc, "transcription")
    items = [("Model", _model_item(_mapping(doc, "model") or {})), ("LLM refinement", _llm_item(page.llm))]
    if transcription is not None:
        items.append(("Transcription", _transcription_item(transcription)))
    items.append(("Utterances", _utterances_item(page)))
    cls = ", ".join(esc(page.name(c)) for c in (doc.get("classes") or page.classes))
    items.append(("Classes", f"{len(page.classes)}<br><small>{cls}</small>"))
    meta = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items)

    kind = inp.get("kind")
    chip = f'<span class="chip">{esc(kind)}</span>' if kind else ""
    path = inp.get("path") or "(unknown input)"
    created = f" · {esc(doc.get('created'))}" if doc.get("created") else ""
    return (f'<header class="card keep" id="top"><div class="brand">lantern · emotion report</div>'
            f"<h1>{esc(Path(str(path)).name or path)}{chip}</h1>"
            f'<p class="sub">{esc(path)}{created}</p>'
            f'<div class="cols"><dl class="meta">{meta}</dl>{_timings(page)}</div></header>')


def _timings(page: PageDocument) -> str:
    t = page.doc.get("timings")
    if not isinstance(t, Mapping):
        return '<div><h3 style="margin-top:0">Timing</h3><p class="note">No timings recorded.</p></div>'
    per = t.get("seconds_per_utterance") if isinstance(t.get("seconds_per_utterance"), Mapping) else {}
    n = finite(t.get("utterances")) or page.n
    order = ["transcription", "features", "vanilla", "llm", "report"]
    order += [k for k in t if k not in order and k not in ("total", "utterances", "seconds_per_utterance")
              and finite(t.get(k)) is not None]
    stages = [k for k in order if finite(t.get(k)) is not None]
    total = finite(t.get("total"))
    biggest = max([finite(t.get(k)) or 0.0 for k in stages] + [total or 0.0, 1e-12])
    rows = []
    for k in stages + (["total"] if total is not None else []):
        sec = finite(t.get(k)) or 0.0
        spu = finite(per.get(k)) if per else None
        if spu is None and n:
            spu = sec / n
        width = 100 * sec / biggest
        rows.append(f'<tr class="{"total" if k == "total" else ""}"><td>{esc(k)}</td>'
                    f'<td class="num">{fmt_secs(sec)}</td><td class="num">{fmt_secs(spu)}</td>'
                    f'<td style="width:34%"><span class="tbar" style="width:{width:.1f}%"></span></td></tr>')
    return ('<div><h3 style="margin-top:0">Timing per stage</h3><table class="timings"><thead><tr>'
            '<th>stage</th><th class="num">seconds</th><th class="num">per utt.</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')

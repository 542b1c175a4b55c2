"""The HTML report of ``lantern predict``: one self-contained page per prediction document.

The page needs no network at all: CSS is inline, the charts are inline SVG drawn here in
Python, there are no fonts, images or external scripts, and a Content-Security-Policy meta
tag forbids every fetch. A few lines of inline JavaScript add a filter bar over the
transcript; the page is fully readable without them (the bar stays hidden), and the policy
lets only that exact script run (by its hash), so even text that slipped past escaping could
not execute. Every string taken from the document is escaped with :func:`html.escape`.

The prediction document is described in ``docs/predict-output.md``. The page shows

* a header: input, model and card line, LLM backend or "LLM refinement off", transcription
  language and task, the number of utterances and the time of each stage;
* an overview: the distribution of the final emotions, a timeline of the final (and vanilla
  and gold, when present) label per utterance, and valence and arousal through the
  conversation;
* vanilla vs refined: how many utterances the LLM changed and which (or an "LLM off" note);
* scores, when the input had gold labels: accuracy, weighted F1 and confusion matrices;
* the transcript: one row per utterance with its emotion badge, class probabilities and VAD.

Every class has one fixed colour-blind-friendly colour (Okabe-Ito; see :func:`class_colors`)
that is used everywhere on the page.

>>> doc = {"input": {"path": "talk.jsonl", "kind": "conversation"},
...        "classes": ["neu", "ang"], "class_names": {"neu": "neutral", "ang": "angry"},
...        "utterances": [{"turn": 0, "speaker": "Ana", "text": "Fine. <b>Fine!</b>",
...                        "vanilla": {"label": "ang", "probs": {"neu": 0.3, "ang": 0.7}},
...                        "vad": {"valence": 2.0, "arousal": 4.1, "dominance": 3.5},
...                        "refined": None, "final": "ang", "label": None}],
...        "llm": None, "scores": None}
>>> page = render_report(doc)
>>> page.startswith("<!DOCTYPE html>") and "Fine. &lt;b&gt;Fine!&lt;/b&gt;" in page
True
>>> "http://" in page or "https://" in page
False
>>> import pathlib, tempfile
>>> path = write_report(doc, pathlib.Path(tempfile.mkdtemp()) / "report.html")
>>> path.read_text(encoding="utf-8") == page
True
"""

from __future__ import annotations

import base64
import colorsys
import hashlib
import html
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from lantern.paths import atomic_write_text

__all__ = ["render_report", "write_report", "class_colors"]

# ------------------------------------------------------------------------------- colours

# Okabe & Ito (2008), the colour-blind-safe qualitative palette, plus its grey.
_OKABE_ITO = {"orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
              "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#999999"}
# Paul Tol's muted palette, for label sets with more than eight classes.
_EXTRA = ("#882255", "#44AA99", "#332288", "#999933", "#AA4499", "#117733", "#DDCC77", "#88CCEE")
# Emotions get a colour that suits them where the palette allows (first free one wins).
_PREFERRED = {
    **dict.fromkeys(("hap", "happy", "happiness", "joy", "joyful"), ("orange", "yellow")),
    **dict.fromkeys(("exc", "excited", "excitement"), ("yellow", "orange")),
    **dict.fromkeys(("surprise", "surprised"), ("sky", "yellow")),
    **dict.fromkeys(("sad", "sadness"), ("blue", "sky")),
    **dict.fromkeys(("neu", "neutral"), ("grey",)),
    **dict.fromkeys(("ang", "anger", "angry", "mad"), ("vermillion",)),
    **dict.fromkeys(("fru", "frustrated", "frustration"), ("purple",)),
    **dict.fromkeys(("disgust", "disgusted"), ("purple", "green")),
    **dict.fromkeys(("fear", "scared", "afraid", "fearful"), ("green", "sky")),
    **dict.fromkeys(("peaceful", "calm", "relaxed"), ("green", "sky")),
    **dict.fromkeys(("powerful", "proud"), ("yellow", "sky")),
}
_UNKNOWN_COLOR = "#FFFFFF"          # a label that is not one of `classes`
_VALENCE_COLOR = "#111827"          # line colours: ink, so they never read as a class
_AROUSAL_COLOR = "#6B7280"
_HEAT_RGB = (67, 56, 202)           # confusion-matrix shading (indigo, not a class colour)


def class_colors(classes: Sequence[str]) -> dict[str, str]:
    """One distinct ``#RRGGBB`` colour per class, deterministic for a given class list.

    Known emotions keep a fitting Okabe-Ito colour (neutral grey, sad blue, angry
    vermillion, ...); other classes take the free palette colours in order.

    >>> class_colors(["hap", "sad", "neu", "ang", "exc", "fru"])["neu"]
    '#999999'
    >>> len(set(class_colors([f"class{i}" for i in range(20)]).values()))
    20
    """
    names = [str(c) for c in classes]
    colors: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:                                   # pass 1: fitting colours
        for pref in _PREFERRED.get(name.lower(), ()):
            col = _OKABE_ITO[pref]
            if col not in taken:
                colors[name] = col
                taken.add(col)
                break
    pool = [c for c in (*_OKABE_ITO.values(), *_EXTRA) if c not in taken]
    extra = 0
    for name in names:                                   # pass 2: the rest, in palette order
        if name in colors:
            continue
        if pool:
            col = pool.pop(0)
        else:                                            # beyond 16 classes: golden-angle hues
            while True:
                r, g, b = colorsys.hls_to_rgb((extra * 0.618034) % 1.0, 0.55, 0.55)
                extra += 1
                col = f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"
                if col not in taken:
                    break
        colors[name] = col
        taken.add(col)
    return colors


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _luminance(hex_color: str) -> float:
    def lin(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = _rgb(hex_color)
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def _text_on(hex_color: str) -> str:
    """Black or white text, whichever contrasts more with the background (WCAG ratio)."""
    lum = _luminance(hex_color)
    return "#111111" if (lum + 0.05) / (0.0056 + 0.05) >= 1.05 / (lum + 0.05) else "#FFFFFF"


# ----------------------------------------------------------------------------- formatting

#: C0 controls other than tab, line feed, form feed and carriage return, and DEL: HTML does
#: not allow them in text (a NUL from a file name or a transcript would reach the page raw).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _e(value: Any) -> str:
    """Escape anything for HTML text and attribute values; control characters HTML does not
    allow become U+FFFD.

    >>> _e("a\\x00<b>")
    'a\ufffd&lt;b&gt;'
    """
    text = _CONTROL_RE.sub("\ufffd", "" if value is None else str(value))
    return html.escape(text, quote=True)


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _pct(value: Any, digits: int = 1) -> str:
    f = _num(value)
    return "—" if f is None else f"{100 * f:.{digits}f}%"


def _fixed(value: Any, digits: int = 2) -> str:
    f = _num(value)
    return "—" if f is None else f"{f:.{digits}f}"


def _secs(value: Any) -> str:
    """A duration with its unit: ``12.3 s``, ``0.067 s``, ``0.04 ms``."""
    f = _num(value)
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


def _clock(value: Any) -> str:
    t = _num(value)
    if t is None:
        return ""
    sign = "-" if t < 0 else ""
    t = abs(t)
    if t >= 3600:
        h, rest = divmod(int(t), 3600)
        return f"{sign}{h}:{rest // 60:02d}:{rest % 60:02d}"
    m, s = divmod(t, 60)
    return f"{sign}{int(m)}:{s:04.1f}"


def _int(value: Any) -> str:
    f = _num(value)
    return "—" if f is None else f"{int(f):,}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ------------------------------------------------------------------------------ the model

class _Page:
    """The document, read defensively (any field may be missing or null)."""

    def __init__(self, doc: Mapping[str, Any]):
        if not isinstance(doc, Mapping):
            raise TypeError(f"the prediction document must be a dict, got {type(doc).__name__}")
        self.doc = doc
        utts = doc.get("utterances") or []
        self.utts: list[Mapping[str, Any]] = [u for u in utts if isinstance(u, Mapping)]
        classes = [str(c) for c in (doc.get("classes") or [])]
        for u in self.utts:                  # labels the class list forgot, so nothing breaks
            for lab in (self.final(u), self.vanilla_label(u), self.refined_label(u), u.get("label")):
                if lab is not None and str(lab) not in classes:
                    classes.append(str(lab))
        self.classes = classes
        self.index = {c: i for i, c in enumerate(classes)}
        names = doc.get("class_names") or {}
        self.names = {c: str(names.get(c) or c) for c in classes}
        self.colors = class_colors(classes)
        self.n = len(self.utts)
        scale = doc.get("vad_scale")
        lo, hi = ((_num(scale[0]), _num(scale[1])) if isinstance(scale, (list, tuple)) and len(scale) >= 2
                  else (None, None))
        self.vad_lo, self.vad_hi = (lo, hi) if lo is not None and hi is not None and hi > lo else (1.0, 5.0)
        self.llm = doc.get("llm") if isinstance(doc.get("llm"), Mapping) else None
        self.any_refined = any(self.refined(u) is not None for u in self.utts)
        self.any_gold = any(u.get("label") is not None for u in self.utts)
        self.any_time = any(_num(u.get("start")) is not None or _num(u.get("end")) is not None
                            for u in self.utts)
        dialogues = [u.get("dialogue_id") for u in self.utts]
        self.dialogues = list(dict.fromkeys(str(d) for d in dialogues if d is not None))

    # --- per-utterance accessors
    @staticmethod
    def vanilla(u: Mapping[str, Any]) -> Mapping[str, Any]:
        v = u.get("vanilla")
        return v if isinstance(v, Mapping) else {}

    @staticmethod
    def refined(u: Mapping[str, Any]) -> Mapping[str, Any] | None:
        r = u.get("refined")
        return r if isinstance(r, Mapping) else None

    def vanilla_label(self, u) -> str | None:
        lab = self.vanilla(u).get("label")
        return None if lab is None else str(lab)

    def refined_label(self, u) -> str | None:
        r = self.refined(u)
        return None if r is None or r.get("label") is None else str(r.get("label"))

    def final(self, u) -> str | None:
        lab = u.get("final")
        if lab is None:
            lab = self.refined_label(u) or self.vanilla_label(u)
        return None if lab is None else str(lab)

    def changed(self, u) -> bool:
        r = self.refined_label(u)
        return r is not None and r != self.vanilla_label(u)

    def probs(self, source: Mapping[str, Any] | None) -> list[float]:
        raw = (source or {}).get("probs") or {}
        out = []
        for c in self.classes:
            f = _num(raw.get(c)) if isinstance(raw, Mapping) else None
            out.append(max(f, 0.0) if f is not None else 0.0)
        return out

    def final_probs(self, u) -> list[float]:
        r = self.refined(u)
        return self.probs(r if r is not None and r.get("probs") else self.vanilla(u))

    def turn(self, u, i: int) -> str:
        t = u.get("turn")
        return str(i) if t is None else str(t)

    def vad(self, u, key: str) -> float | None:
        v = u.get("vad")
        return _num(v.get(key)) if isinstance(v, Mapping) else None

    # --- rendering helpers
    def css(self, label: str | None) -> str:
        return f"c{self.index[label]}" if label in self.index else "cx"

    def name(self, label: Any) -> str:
        return "—" if label is None else self.names.get(str(label), str(label))

    def badge(self, label: str | None, small: bool = False) -> str:
        if label is None:
            return '<span class="b cx">—</span>'
        cls = "b s" if small else "b"
        return f'<span class="{cls} {self.css(label)}" title="{_e(label)}">{_e(self.name(label))}</span>'

    def prob_of(self, probs: list[float], label: str | None) -> float | None:
        if label not in self.index or not probs:
            return None
        total = sum(probs)
        return probs[self.index[label]] / total if total > 0 else None


# ----------------------------------------------------------------------------------- CSS

_BASE_CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f3f4f6;--card:#fff;--accent:#4338ca;
--chg:#fff7e0;--chg-line:#e69f00}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);line-height:1.45;
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",
"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif,"Apple Color Emoji","Segoe UI Emoji",
"Noto Color Emoji";-webkit-print-color-adjust:exact;print-color-adjust:exact}
.wrap{max-width:1160px;margin:0 auto;padding:24px 20px 40px}
.card{background:var(--card);border:1px solid var(--line);border-radius:14px;
box-shadow:0 1px 2px rgba(0,0,0,.04),0 4px 14px rgba(0,0,0,.04);padding:20px 24px;margin:0 0 18px}
h1{font-size:1.6rem;margin:0 0 2px;letter-spacing:-.01em}
h2{font-size:1.15rem;margin:0 0 12px;letter-spacing:-.005em}
h3{font-size:.95rem;margin:16px 0 8px;color:var(--muted);font-weight:600}
.brand{font-size:.78rem;font-weight:700;letter-spacing:.12em;text-transform:uppercase;color:var(--accent)}
.sub{color:var(--muted);margin:2px 0 16px;overflow-wrap:anywhere}
.chip{display:inline-block;font-size:.75rem;padding:1px 8px;border-radius:999px;background:#eef2ff;
color:var(--accent);font-weight:600;vertical-align:2px;margin-left:6px}
.chip.off{background:#f3f4f6;color:var(--muted)}
.meta{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:12px 22px;margin:0}
.meta div{min-width:0}
.meta dt{font-size:.72rem;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);font-weight:600}
.meta dd{margin:2px 0 0;overflow-wrap:anywhere}
.meta dd small,.note{color:var(--muted)}
.note{font-size:.88rem}
.cols{display:grid;grid-template-columns:minmax(0,1.15fr) minmax(0,1fr);gap:24px;align-items:start}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;vertical-align:top}
thead th{font-size:.72rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
border-bottom:2px solid var(--line);font-weight:600;white-space:nowrap}
tbody td{border-bottom:1px solid var(--line)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.timings td{padding:3px 8px}
.timings tr.total td{font-weight:700;border-top:2px solid var(--line);border-bottom:0}
.tbar{display:block;height:6px;border-radius:3px;background:#c7d2fe;min-width:1px}
.stats{display:flex;flex-wrap:wrap;gap:12px;margin:0 0 14px}
.stat{flex:1 1 140px;border:1px solid var(--line);border-radius:12px;padding:10px 14px;background:#fafafa}
.stat b{display:block;font-size:1.45rem;font-variant-numeric:tabular-nums;letter-spacing:-.01em}
.stat span{font-size:.75rem;color:var(--muted);text-transform:uppercase;letter-spacing:.05em;font-weight:600}
.stat .d{font-size:.8rem;text-transform:none;letter-spacing:0;font-weight:600}
.up{color:#047857}.down{color:#b91c1c}
.b{display:inline-block;padding:1px 9px;border-radius:999px;font-weight:650;font-size:.8rem;
white-space:nowrap;line-height:1.5;border:1px solid rgba(0,0,0,.12)}
.b.s{font-size:.72rem;padding:0 7px}
.cx{background:#fff;color:#374151;border:1px dashed #9ca3af}
.dist{display:flex;height:16px;border-radius:8px;overflow:hidden;margin:4px 0 10px;background:#eee}
.dist i{display:block;height:100%}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;font-size:.85rem;margin:0;padding:0;list-style:none}
.legend li{white-space:nowrap}
.legend small{color:var(--muted)}
figure{margin:14px 0 0}
figcaption{font-size:.8rem;color:var(--muted);margin-top:4px}
svg.chart{display:block;width:100%;height:auto;overflow:visible}
svg.chart text{font-family:inherit;font-size:12px;fill:#4b5563}
svg.chart .ttl{font-weight:600;fill:#374151}
.tx{font-size:.92rem}
.tx td.txt{overflow-wrap:anywhere;word-break:normal;max-width:440px}
.tx td.turn{color:var(--muted);font-variant-numeric:tabular-nums;white-space:nowrap}
.tx td.spk{font-weight:600;overflow-wrap:anywhere;max-width:140px}
.tx td.time{white-space:nowrap;color:var(--muted);font-variant-numeric:tabular-nums;font-size:.82rem}
.tx td.emo{min-width:150px;width:170px}
.tx tr.changed td{background:var(--chg)}
.tx tr.changed td:first-child{box-shadow:inset 4px 0 0 var(--chg-line)}
.tx tr.dlg th{background:#f9fafb;font-size:.8rem;color:var(--muted);font-weight:600;
border-bottom:1px solid var(--line);padding:8px}
.chg{font-size:.75rem;color:#92400e;margin-top:4px;white-space:normal}
.pb{display:flex;height:7px;border-radius:4px;overflow:hidden;margin-top:6px;background:#eee;max-width:170px}
.pb i{display:block;height:100%}
.ok{color:#047857;font-weight:700}.bad{color:#b91c1c;font-weight:700}
.gold{white-space:nowrap}
.cms{display:flex;flex-wrap:wrap;gap:8px 32px;overflow-x:auto}
.cm{width:auto;margin:0 0 10px;font-variant-numeric:tabular-nums}
.cm th,.cm td{border:1px solid #fff;padding:5px 9px;text-align:center;font-size:.85rem}
.cm thead th{border-bottom:1px solid #fff;text-transform:none;letter-spacing:0}
.cm td.diag{outline:2px solid rgba(17,24,39,.7);outline-offset:-3px}
.cm caption{caption-side:top;text-align:left;font-weight:600;padding:0 0 6px;color:var(--ink)}
.cm th.corner{font-size:.7rem;color:var(--muted);text-align:left;font-weight:500}
.cm td.tot,.cm th.tot{color:var(--muted);background:#f9fafb}
.cmwrap{overflow-x:auto}
.arrow{color:var(--muted);margin:0 4px}
#filters{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:0 0 10px;font-size:.88rem}
#filters input[type=search],#filters select{font:inherit;padding:5px 9px;border:1px solid #d1d5db;
border-radius:8px;background:#fff}
#filters input[type=search]{flex:1 1 220px}
#f-n{color:var(--muted)}
footer{text-align:center;color:var(--muted);font-size:.8rem;margin-top:8px}
a{color:var(--accent)}
@media (max-width:820px){
.cols{grid-template-columns:1fr}
.wrap{padding:12px 10px 28px}
.card{padding:16px 14px;border-radius:12px}
.tx thead{display:none}
.tx,.tx tbody,.tx tr,.tx td,.tx th{display:block;width:auto;max-width:none}
.tx tr.utt{border-bottom:1px solid var(--line);padding:8px 4px}
.tx tr.changed{background:var(--chg);box-shadow:inset 4px 0 0 var(--chg-line);padding-left:10px}
.tx tr.changed td:first-child{box-shadow:none}
.tx tbody td{border:0;padding:2px 4px}
.tx td.turn,.tx td.spk,.tx td.time{display:inline-block}
.tx td.emo{width:auto}
.tx td.num{text-align:left}
.tx td.vr{display:inline-block;margin-right:10px}
.stat{flex:1 1 120px;padding:8px 10px}
.stat b{font-size:1.15rem}
figure{overflow-x:auto}
svg.chart{min-width:700px}
h1{font-size:1.35rem}
.tx td[data-k]{display:inline-block;margin-right:10px}
.tx td[data-k]::before{content:attr(data-k) " ";color:var(--muted);font-size:.75rem}
}
@media print{
body{background:#fff;font-size:11pt}
.wrap{max-width:none;padding:0}
.card{box-shadow:none;border:1px solid #d1d5db;break-inside:auto}
.card.keep{break-inside:avoid}
#filters{display:none!important}
.tx tr{break-inside:avoid}
.tx tr.utt[hidden]{display:table-row!important}
a{color:inherit;text-decoration:none}
}
"""

# Progressive enhancement: reveal and wire the filter bar. The page never depends on it.
_SCRIPT = (
    "(function(){var b=document.getElementById('filters');if(!b)return;"
    "var q=document.getElementById('f-q'),c=document.getElementById('f-c'),"
    "h=document.getElementById('f-ch'),n=document.getElementById('f-n'),"
    "R=[].slice.call(document.querySelectorAll('#transcript tbody tr.utt'));"
    "function f(){var t=q.value.toLowerCase(),k=c.value,o=h&&h.checked,s=0;"
    "R.forEach(function(r){var ok=(!k||r.getAttribute('data-c')===k)&&"
    "(!o||r.classList.contains('changed'))&&(!t||r.textContent.toLowerCase().indexOf(t)>=0);"
    "r.hidden=!ok;if(ok)s++;});n.textContent=s+' of '+R.length+' shown';}"
    "[q,c,h].forEach(function(e){if(e){e.addEventListener('input',f);"
    "e.addEventListener('change',f);}});b.hidden=false;f();})();"
)
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'")


def _class_css(page: _Page) -> str:
    rules = []
    for c in page.classes:
        col = page.colors[c]
        rules.append(f".{page.css(c)}{{background:{col};color:{_text_on(col)}}}")
    return "".join(rules)


# ---------------------------------------------------------------------------- the header

def _header(page: _Page) -> str:
    doc = page.doc
    inp = doc.get("input") if isinstance(doc.get("input"), Mapping) else {}
    model = doc.get("model") if isinstance(doc.get("model"), Mapping) else {}
    tr = doc.get("transcription") if isinstance(doc.get("transcription"), Mapping) else None
    llm = page.llm

    items = []
    m = f"<strong>{_e(model.get('name') or 'unknown model')}</strong>"
    if model.get("card"):
        m += f"<br><small>{_e(model.get('card'))}</small>"
    items.append(("Model", m))
    if llm is not None:
        s = f"<strong>{_e(llm.get('backend') or 'LLM')}</strong>"
        if llm.get("model"):
            s += f" · {_e(llm.get('model'))}"
        parts = []
        if llm.get("t") is not None:
            parts.append(f"t = {_e(llm.get('t'))}")
        if llm.get("window") is not None:
            parts.append(f"window {_e(llm.get('window'))}, stride {_e(llm.get('stride'))}")
        if llm.get("calls") is not None:
            parts.append(f"{_int(llm.get('calls'))} calls")
        if parts:
            s += f"<br><small>{' · '.join(parts)}</small>"
        items.append(("LLM refinement", s))
    else:
        items.append(("LLM refinement", 'LLM refinement off <span class="chip off">vanilla only</span>'))
    if tr is not None:
        lang = tr.get("language")
        s = f"<strong>{_e(lang or 'unknown language')}</strong>"
        if _num(tr.get("language_probability")) is not None:
            s += f" <small>({_pct(tr.get('language_probability'), 0)})</small>"
        if tr.get("task"):
            s += f" · {_e(tr.get('task'))}"
        small = []
        if tr.get("model"):
            small.append(_e(tr.get("model")))
        if _num(tr.get("duration")) is not None:
            small.append(f"{_clock(tr.get('duration'))} audio")
        if tr.get("segments") is not None:
            small.append(f"{_int(tr.get('segments'))} segments")
        if tr.get("speakers"):
            small.append(f"speakers: {_e(tr.get('speakers'))}")
        if small:
            s += f"<br><small>{' · '.join(small)}</small>"
        items.append(("Transcription", s))
    speakers = {str(u.get("speaker")) for u in page.utts if u.get("speaker") is not None}
    s = f"<strong>{page.n:,}</strong> utterance{'s' if page.n != 1 else ''}"
    extra = []
    if speakers:
        extra.append(f"{len(speakers)} speaker{'s' if len(speakers) != 1 else ''}")
    if len(page.dialogues) > 1:
        extra.append(f"{len(page.dialogues)} dialogues")
    if page.any_gold:
        n_gold = sum(1 for u in page.utts if u.get("label") is not None)
        extra.append(f"{n_gold:,} with gold labels")
    if extra:
        s += f"<br><small>{' · '.join(extra)}</small>"
    items.append(("Utterances", s))
    cls = ", ".join(_e(page.name(c)) for c in (doc.get("classes") or page.classes))
    items.append(("Classes", f"{len(page.classes)}<br><small>{cls}</small>"))
    meta = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items)

    kind = inp.get("kind")
    chip = f'<span class="chip">{_e(kind)}</span>' if kind else ""
    path = inp.get("path") or "(unknown input)"
    created = f" · {_e(doc.get('created'))}" if doc.get("created") else ""
    return (f'<header class="card keep" id="top"><div class="brand">lantern · emotion report</div>'
            f"<h1>{_e(Path(str(path)).name or path)}{chip}</h1>"
            f'<p class="sub">{_e(path)}{created}</p>'
            f'<div class="cols"><dl class="meta">{meta}</dl>{_timings(page)}</div></header>')


def _timings(page: _Page) -> str:
    t = page.doc.get("timings")
    if not isinstance(t, Mapping):
        return '<div><h3 style="margin-top:0">Timing</h3><p class="note">No timings recorded.</p></div>'
    per = t.get("seconds_per_utterance") if isinstance(t.get("seconds_per_utterance"), Mapping) else {}
    n = _num(t.get("utterances")) or page.n
    order = ["transcription", "features", "vanilla", "llm", "report"]
    order += [k for k in t if k not in order and k not in ("total", "utterances", "seconds_per_utterance")
              and _num(t.get(k)) is not None]
    stages = [k for k in order if _num(t.get(k)) is not None]
    total = _num(t.get("total"))
    biggest = max([_num(t.get(k)) or 0.0 for k in stages] + [total or 0.0, 1e-12])
    rows = []
    for k in stages + (["total"] if total is not None else []):
        sec = _num(t.get(k)) or 0.0
        spu = _num(per.get(k)) if per else None
        if spu is None and n:
            spu = sec / n
        width = 100 * sec / biggest
        rows.append(f'<tr class="{"total" if k == "total" else ""}"><td>{_e(k)}</td>'
                    f'<td class="num">{_secs(sec)}</td><td class="num">{_secs(spu)}</td>'
                    f'<td style="width:34%"><span class="tbar" style="width:{width:.1f}%"></span></td></tr>')
    return ('<div><h3 style="margin-top:0">Timing per stage</h3><table class="timings"><thead><tr>'
            '<th>stage</th><th class="num">seconds</th><th class="num">per utt.</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


# ---------------------------------------------------------------------------- SVG charts

_W, _ML, _MR = 1000, 78, 14
_PW = _W - _ML - _MR


def _ticks(page: _Page) -> list[int]:
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


def _x(i: float, n: int) -> float:
    return _ML + (i + 0.5) * _PW / max(n, 1)


def _x_axis(page: _Page, y: float) -> tuple[str, float]:
    """Ticks with turn numbers (and start times when given); returns svg and its height."""
    n = page.n
    out = [f'<line x1="{_ML}" y1="{y}" x2="{_ML + _PW}" y2="{y}" stroke="#9ca3af"/>']
    has_time = any(_num(u.get("start")) is not None for u in page.utts)
    for i in _ticks(page):
        x = _x(i, n)
        u = page.utts[i]
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 5}" stroke="#9ca3af"/>')
        anchor = "start" if x - _ML < 18 else "end" if _ML + _PW - x < 18 else "middle"
        tx = x - 3 if anchor == "start" else x + 3 if anchor == "end" else x
        out.append(f'<text x="{tx:.1f}" y="{y + 18}" text-anchor="{anchor}">{_e(page.turn(u, i))}</text>')
        if has_time and _num(u.get("start")) is not None:
            out.append(f'<text x="{tx:.1f}" y="{y + 32}" text-anchor="{anchor}" '
                       f'style="font-size:10.5px">{_e(_clock(u.get("start")))}</text>')
    out.append(f'<text x="{_ML - 10}" y="{y + 18}" text-anchor="end" class="ttl">turn</text>')
    if has_time:
        out.append(f'<text x="{_ML - 10}" y="{y + 32}" text-anchor="end" class="ttl" '
                   f'style="font-size:10.5px">start</text>')
    return "".join(out), (38 if has_time else 24)


def _dialogue_lines(page: _Page, y0: float, y1: float) -> str:
    if len(page.dialogues) <= 1:
        return ""
    out = []
    prev = page.utts[0].get("dialogue_id") if page.utts else None
    for i, u in enumerate(page.utts):
        if i and u.get("dialogue_id") != prev:
            x = _ML + i * _PW / page.n
            out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="#111" '
                       f'stroke-width="1.5" stroke-dasharray="3 2"><title>dialogue {_e(u.get("dialogue_id"))}'
                       f'</title></line>')
        prev = u.get("dialogue_id")
    return "".join(out)


def _svg_class_legend(page: _Page, labels: Sequence[str], y: float) -> tuple[str, float]:
    """Swatches + names wrapped over the chart width; returns svg and its height."""
    out, x, row = [], float(_ML), 0
    for c in labels:
        text = page.name(c)
        w = 16 + 7.2 * len(text) + 22
        if x + w > _ML + _PW and x > _ML:
            x, row = float(_ML), row + 1
        yy = y + row * 20
        out.append(f'<rect x="{x:.1f}" y="{yy}" width="12" height="12" rx="3" fill="{page.colors[c]}" '
                   f'stroke="rgba(0,0,0,.25)"/><text x="{x + 17:.1f}" y="{yy + 10.5}">{_e(text)}</text>')
        x += w
    return "".join(out), (row + 1) * 20


def _timeline_svg(page: _Page) -> str:
    n = page.n
    rows: list[tuple[str, list[str | None]]] = [("final", [page.final(u) for u in page.utts])]
    if page.any_refined:
        rows.append(("vanilla", [page.vanilla_label(u) for u in page.utts]))
    if page.any_gold:
        rows.append(("gold", [None if u.get("label") is None else str(u.get("label")) for u in page.utts]))
    used = [c for c in page.classes if any(c in labs for _, labs in rows)]
    legend, lh = _svg_class_legend(page, used, 4)
    top = 4 + lh + 8
    rh, gap = 28, 8
    cell = _PW / max(n, 1)
    out = [legend]
    for r, (name, labs) in enumerate(rows):
        y = top + r * (rh + gap)
        out.append(f'<text x="{_ML - 10}" y="{y + rh / 2 + 4}" text-anchor="end" class="ttl">{name}</text>')
        out.append(f'<rect x="{_ML}" y="{y}" width="{_PW}" height="{rh}" fill="#f3f4f6"/>')
        # each utterance is one cell; tiny overlap avoids hairline gaps when cells are narrow
        pad = 0.0 if n <= 80 else 0.35
        sep = ' stroke="#fff" stroke-width="1"' if n <= 80 else ""
        for i, lab in enumerate(labs):
            if lab is None:
                continue
            u = page.utts[i]
            tip = f"turn {page.turn(u, i)}: {page.name(lab)}"
            if u.get("speaker") is not None:
                tip += f" ({u.get('speaker')})"
            out.append(f'<rect x="{_ML + i * cell:.2f}" y="{y}" width="{cell + pad:.2f}" height="{rh}" '
                       f'fill="{page.colors.get(lab, _UNKNOWN_COLOR)}"{sep}><title>{_e(tip)}</title></rect>')
    bottom = top + len(rows) * (rh + gap) - gap
    out.append(_dialogue_lines(page, top - 3, bottom + 3))
    axis, ah = _x_axis(page, bottom + 6)
    out.append(axis)
    height = bottom + 6 + ah + 4
    return (f'<svg class="chart" viewBox="0 0 {_W} {height:.0f}" role="img" '
            f'aria-label="Emotion per utterance through the conversation">{"".join(out)}</svg>')


def _nice_step(span: float) -> float:
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


def _vad_svg(page: _Page) -> str:
    n = page.n
    lo, hi = page.vad_lo, page.vad_hi
    leg_y = 4
    legend = (f'<line x1="{_ML}" y1="{leg_y + 7}" x2="{_ML + 26}" y2="{leg_y + 7}" stroke="{_VALENCE_COLOR}" '
              f'stroke-width="2.5"/><circle cx="{_ML + 13}" cy="{leg_y + 7}" r="3.5" fill="{_VALENCE_COLOR}"/>'
              f'<text x="{_ML + 32}" y="{leg_y + 11}">valence</text>'
              f'<line x1="{_ML + 110}" y1="{leg_y + 7}" x2="{_ML + 136}" y2="{leg_y + 7}" '
              f'stroke="{_AROUSAL_COLOR}" stroke-width="2.5" stroke-dasharray="6 4"/>'
              f'<rect x="{_ML + 119.5}" y="{leg_y + 3.5}" width="7" height="7" fill="{_AROUSAL_COLOR}"/>'
              f'<text x="{_ML + 142}" y="{leg_y + 11}">arousal</text>'
              + "".join(f'<rect x="{_ML + 222 + 5 * k}" y="{leg_y + 1}" width="5" height="12" fill="{col}" '
                        f'opacity=".35"/>' for k, col in enumerate(list(page.colors.values())[:3]))
              + f'<text x="{_ML + 242}" y="{leg_y + 11}">background: final emotion</text>')
    top, ph = leg_y + 28, 210
    bottom = top + ph

    def y_of(v: float) -> float:
        v = min(max(v, lo), hi)
        return bottom - (v - lo) / (hi - lo) * ph

    out = [legend]
    cell = _PW / max(n, 1)
    for i, u in enumerate(page.utts):          # faint band of the final emotion behind the lines
        lab = page.final(u)
        if lab is None:
            continue
        out.append(f'<rect x="{_ML + i * cell:.2f}" y="{top}" width="{cell + (0.35 if n > 80 else 0):.2f}" '
                   f'height="{ph}" fill="{page.colors.get(lab, _UNKNOWN_COLOR)}" opacity=".18"/>')
    step = _nice_step(hi - lo)
    v = math.ceil(lo / step - 1e-9) * step
    mid = (lo + hi) / 2
    while v <= hi + 1e-9:
        y = y_of(v)
        out.append(f'<line x1="{_ML}" y1="{y:.1f}" x2="{_ML + _PW}" y2="{y:.1f}" stroke="#d1d5db" '
                   f'stroke-width="{1.2 if abs(v - mid) < 1e-9 else 0.8}"/>'
                   f'<text x="{_ML - 8}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step
    out.append(f'<line x1="{_ML}" y1="{top}" x2="{_ML}" y2="{bottom}" stroke="#9ca3af"/>')
    out.append(f'<text transform="translate({_ML - 46},{top + ph / 2}) rotate(-90)" text-anchor="middle" '
               f'class="ttl">score ({lo:g}–{hi:g})</text>')
    out.append(_dialogue_lines(page, top, bottom))
    markers = n <= 60
    smooth = 0 if markers else max(3, (n // 40) | 1)     # odd window for long conversations
    if smooth:
        out.append(f'<text x="{_ML + _PW}" y="{leg_y + 11}" text-anchor="end">bold lines: moving average '
                   f'over {smooth} utterances</text>')
    for key, color, dash in (("valence", _VALENCE_COLOR, ""), ("arousal", _AROUSAL_COLOR, ' stroke-dasharray="6 4"')):
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
        for seg in segments:
            if len(seg) > 1:
                pts = " ".join(f"{_x(i, n):.1f},{y_of(v):.1f}" for i, v in seg)
                if smooth:      # raw values faint, their moving average on top
                    out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1" '
                               f'stroke-opacity=".28" stroke-linejoin="round"/>')
                    pts = " ".join(f"{_x(i, n):.1f},{y_of(v):.1f}" for i, v in _moving_average(seg, smooth))
                out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2.2" '
                           f'stroke-linejoin="round"{dash}/>')
            if markers or len(seg) == 1:
                for i, val in seg:
                    x, y = _x(i, n), y_of(val)
                    tip = f"turn {page.turn(page.utts[i], i)}: {key} {val:.2f}"
                    if key == "valence":
                        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.6" fill="{color}" stroke="#fff" '
                                   f'stroke-width="1"><title>{_e(tip)}</title></circle>')
                    else:
                        out.append(f'<rect x="{x - 3.3:.1f}" y="{y - 3.3:.1f}" width="6.6" height="6.6" '
                                   f'fill="{color}" stroke="#fff" stroke-width="1"><title>{_e(tip)}</title></rect>')
    axis, ah = _x_axis(page, bottom)
    out.append(axis)
    height = bottom + ah + 4
    return (f'<svg class="chart" viewBox="0 0 {_W} {height:.0f}" role="img" '
            f'aria-label="Valence and arousal through the conversation">{"".join(out)}</svg>')


# -------------------------------------------------------------------------- the sections

def _overview(page: _Page) -> str:
    if page.n == 0:
        return ('<section class="card keep" id="overview"><h2>Overview</h2>'
                '<p class="note">The document has no utterances.</p></section>')
    counts = Counter(page.final(u) for u in page.utts)
    order = [c for c in page.classes if counts.get(c)]
    dist = "".join(f'<i class="{page.css(c)}" style="width:{100 * counts[c] / page.n:.2f}%" '
                   f'title="{_e(page.name(c))}: {counts[c]}"></i>' for c in order)
    legend = "".join(f"<li>{page.badge(c)} {counts[c]} <small>({100 * counts[c] / page.n:.0f}%)</small></li>"
                     for c in sorted(order, key=lambda c: -counts[c]))
    stats = [(f"{page.n:,}", "utterances")]
    if order:
        top = max(order, key=lambda c: counts[c])
        stats.append((_e(page.name(top)), "most frequent"))
    vals = [v for v in (page.vad(u, "valence") for u in page.utts) if v is not None]
    aros = [v for v in (page.vad(u, "arousal") for u in page.utts) if v is not None]
    if vals:
        stats.append((f"{sum(vals) / len(vals):.2f}", f"mean valence ({page.vad_lo:g}–{page.vad_hi:g})"))
    if aros:
        stats.append((f"{sum(aros) / len(aros):.2f}", "mean arousal"))
    if page.any_refined:
        ch = sum(page.changed(u) for u in page.utts)
        stats.append((f"{ch:,}", "changed by the LLM"))
    stat_html = "".join(f'<div class="stat"><b>{v}</b><span>{k}</span></div>' for v, k in stats)
    timeline_note = ("Each cell is one utterance, coloured by its final emotion"
                     + ("; the rows below show the vanilla model's label" if page.any_refined else "")
                     + (" and the gold label" if page.any_gold else "") + ". Hover a cell for details.")
    return (f'<section class="card" id="overview"><h2>Overview</h2><div class="stats">{stat_html}</div>'
            f'<h3>Final emotions</h3><div class="dist" role="img" aria-label="distribution of final emotions">'
            f'{dist}</div><ul class="legend">{legend}</ul>'
            f'<figure id="timeline"><h3>Emotion timeline</h3>{_timeline_svg(page)}'
            f"<figcaption>{timeline_note}</figcaption></figure>"
            f'<figure id="vad"><h3>Valence and arousal</h3>{_vad_svg(page)}'
            f"<figcaption>Valence (negative → positive) and arousal (calm → excited) per utterance, "
            f"on the model's scale {page.vad_lo:g}–{page.vad_hi:g}.</figcaption></figure></section>")


def _refinement(page: _Page) -> str:
    if page.llm is None and not page.any_refined:
        return ('<section class="card keep" id="refinement"><h2>Vanilla vs refined</h2>'
                '<p class="note"><strong>LLM off</strong> — LLM refinement was not run '
                '(<code>--llm off</code>), so every label is the vanilla model\'s.</p></section>')
    llm = page.llm or {}
    refined = [u for u in page.utts if page.refined(u) is not None]
    changed = [(i, u) for i, u in enumerate(page.utts) if page.changed(u)]
    n_ref = len(refined)
    stats = [(f"{len(changed):,} / {n_ref:,}", "utterances changed"),
             (_pct(len(changed) / n_ref if n_ref else None), "change rate")]
    if llm.get("calls") is not None:
        stats.append((_int(llm.get("calls")), "LLM calls"))
    if llm.get("prompt_tokens") is not None or llm.get("completion_tokens") is not None:
        stats.append((f"{_int(llm.get('prompt_tokens'))} + {_int(llm.get('completion_tokens'))}",
                      "prompt + completion tokens"))
    if llm.get("seconds") is not None:
        stats.append((_secs(llm.get('seconds')), "LLM time"))
    stat_html = "".join(f'<div class="stat"><b>{v}</b><span>{k}</span></div>' for v, k in stats)
    details = []
    for key, label in (("requests", "requests"), ("cache_hits", "cache hits"),
                       ("validation_failures", "validation failures"), ("parse_failures", "parse failures"),
                       ("fallbacks", "fallbacks")):
        if llm.get(key) is not None:
            details.append(f"{label}: {_int(llm.get(key))}")
    detail = f'<p class="note">{" · ".join(details)}</p>' if details else ""
    if not changed:
        body = '<p class="note">The LLM agreed with the vanilla model on every utterance.</p>'
    else:
        pairs = Counter((page.vanilla_label(u), page.refined_label(u)) for _, u in changed)
        pair_html = "".join(f"<li>{page.badge(a, True)}<span class=\"arrow\">→</span>{page.badge(b, True)} "
                            f"× {k}</li>" for (a, b), k in pairs.most_common(12))
        rows = []
        for i, u in changed:
            v, r = page.vanilla(u), page.refined(u) or {}
            pv = page.prob_of(page.probs(v), page.vanilla_label(u))
            pr = page.prob_of(page.probs(r), page.refined_label(u))
            fields = ""
            if r.get("fields") is not None:
                fields = f"{_e(r.get('valid_fields', '?'))}/{_e(r.get('fields'))}"
            rows.append(f'<tr><td class="turn"><a href="#u{i}">{_e(page.turn(u, i))}</a></td>'
                        f"<td class=\"spk\">{_e(u.get('speaker') or '—')}</td>"
                        f'<td class="txt">{_e(_shorten(str(u.get("text") or ""), 160))}</td>'
                        f'<td class="vr" data-k="vanilla">{page.badge(page.vanilla_label(u), True)} '
                        f"<small>{_pct(pv, 0)}</small></td>"
                        f'<td class="vr" data-k="refined">{page.badge(page.refined_label(u), True)} '
                        f"<small>{_pct(pr, 0)}</small></td>"
                        f'<td class="num" data-k="fields">{fields}</td></tr>')
        body = (f'<h3>Most common changes</h3><ul class="legend">{pair_html}</ul>'
                f'<h3>Changed utterances</h3><div class="cmwrap"><table class="tx changes"><thead><tr>'
                f'<th>turn</th><th>speaker</th><th>text</th><th>vanilla</th><th>refined</th>'
                f'<th class="num" title="valid / all receptive fields">fields</th></tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table></div>')
    return (f'<section class="card" id="refinement"><h2>Vanilla vs refined</h2>'
            f'<div class="stats">{stat_html}</div>{detail}{body}</section>')


def _confusion(page: _Page, cm: Any, title: str) -> str:
    if not isinstance(cm, Sequence) or not cm or not all(isinstance(r, Sequence) for r in cm):
        return ""
    k = len(cm)
    labels = [page.classes[j] if j < len(page.classes) else str(j) for j in range(k)]
    counts = [[_num(x) or 0.0 for x in row] for row in cm]
    peak = max((x for row in counts for x in row), default=0.0) or 1.0
    head = "".join(f"<th>{page.badge(c, True)}</th>" for c in labels[: max(len(r) for r in counts)])
    rows = []
    for i, row in enumerate(counts):
        cells = []
        for j, x in enumerate(row):
            a = x / peak
            bg = f"rgba({_HEAT_RGB[0]},{_HEAT_RGB[1]},{_HEAT_RGB[2]},{0.06 + 0.94 * a:.3f})" if x else "#f9fafb"
            fg = "#fff" if a > 0.5 else "#111"
            cls = ' class="diag"' if i == j else ""
            tip = f"gold {page.name(labels[i])}, predicted {page.name(labels[j] if j < k else j)}: {x:g}"
            cells.append(f'<td{cls} style="background:{bg};color:{fg}" title="{_e(tip)}">{x:g}</td>')
        rows.append(f'<tr><th>{page.badge(labels[i], True)}</th>{"".join(cells)}'
                    f'<td class="tot">{sum(row):g}</td></tr>')
    return (f'<table class="cm"><caption>{_e(title)}</caption><thead><tr>'
            f'<th class="corner">gold ↓ predicted →</th>{head}<th class="tot">total</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _scores(page: _Page) -> str:
    sc = page.doc.get("scores")
    if not isinstance(sc, Mapping):
        return ""
    has_ref = _num(sc.get("refined_accuracy")) is not None or _num(sc.get("refined_weighted_f1")) is not None

    def delta(a: Any, b: Any) -> str:
        fa, fb = _num(a), _num(b)
        if fa is None or fb is None:
            return ""
        d = 100 * (fb - fa)
        cls = "up" if d > 0.05 else "down" if d < -0.05 else ""
        return f' <span class="d {cls}">{d:+.1f} pt</span>'

    stats = [(_int(sc.get("n_labelled")), "labelled utterances"),
             (_pct(sc.get("accuracy")), "accuracy · vanilla"),
             (_pct(sc.get("weighted_f1")), "weighted F1 · vanilla")]
    if has_ref:
        stats += [(_pct(sc.get("refined_accuracy")) + delta(sc.get("accuracy"), sc.get("refined_accuracy")),
                   "accuracy · refined"),
                  (_pct(sc.get("refined_weighted_f1"))
                   + delta(sc.get("weighted_f1"), sc.get("refined_weighted_f1")), "weighted F1 · refined")]
    stat_html = "".join(f'<div class="stat"><b>{v}</b><span>{k}</span></div>' for v, k in stats)
    tables = _confusion(page, sc.get("confusion"), "Vanilla")
    if has_ref or sc.get("refined_confusion"):
        tables += _confusion(page, sc.get("refined_confusion"), "Refined")
    if tables:
        tables = (f'<h3>Confusion matrices</h3><div class="cms">{tables}</div>'
                  '<p class="note">Rows are gold classes, columns predicted classes; darker cells hold more '
                  "utterances, the diagonal (outlined) is correct.</p>")
    return (f'<section class="card keep" id="scores"><h2>Scores against the gold labels</h2>'
            f'<div class="stats">{stat_html}</div>{tables}</section>')


def _prob_bar(page: _Page, probs: list[float]) -> str:
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
    return f'<div class="pb" title="{_e(tip)}">{"".join(segs)}</div>'


def _transcript(page: _Page) -> str:
    if page.n == 0:
        return ('<section class="card" id="transcript"><h2>Transcript</h2>'
                '<p class="note">No utterances.</p></section>')
    heads = ['<th class="num">turn</th>', "<th>speaker</th>"]
    if page.any_time:
        heads.append("<th>time</th>")
    heads += ["<th>utterance</th>", "<th>emotion</th>", '<th class="num" title="probability of the final label">p</th>',
              '<th class="num" title="valence">V</th>', '<th class="num" title="arousal">A</th>',
              '<th class="num" title="dominance">D</th>']
    if page.any_gold:
        heads.append("<th>gold</th>")
    ncol = len(heads)
    rows = []
    prev_dlg: Any = object()
    multi = len(page.dialogues) > 1
    for i, u in enumerate(page.utts):
        if multi and u.get("dialogue_id") != prev_dlg:
            rows.append(f'<tr class="dlg"><th colspan="{ncol}">dialogue {_e(u.get("dialogue_id") or "—")}</th></tr>')
            prev_dlg = u.get("dialogue_id")
        final = page.final(u)
        probs = page.final_probs(u)
        changed = page.changed(u)
        gold = u.get("label")
        cls = ["utt"]
        if changed:
            cls.append("changed")
        if gold is not None and str(gold) != final:
            cls.append("wrong")
        cells = [f'<td class="turn">{_e(page.turn(u, i))}</td>',
                 f'<td class="spk">{_e(u.get("speaker") if u.get("speaker") is not None else "—")}</td>']
        if page.any_time:
            s, e = _clock(u.get("start")), _clock(u.get("end"))
            cells.append(f'<td class="time">{_e(s)}{"–" if s or e else ""}{_e(e)}</td>')
        cells.append(f'<td class="txt">{_e(u.get("text") or "")}</td>')
        emo = page.badge(final)
        if changed:
            emo += (f'<div class="chg">vanilla: {_e(page.name(page.vanilla_label(u)))} → '
                    f'refined: {_e(page.name(page.refined_label(u)))}</div>')
        emo += _prob_bar(page, probs)
        cells.append(f'<td class="emo">{emo}</td>')
        cells.append(f'<td class="num" data-k="p">{_pct(page.prob_of(probs, final), 0)}</td>')
        for key, short in (("valence", "V"), ("arousal", "A"), ("dominance", "D")):
            cells.append(f'<td class="num" data-k="{short}">{_fixed(page.vad(u, key), 1)}</td>')
        if page.any_gold:
            if gold is None:
                cells.append('<td class="gold" data-k="gold">—</td>')
            elif str(gold) == final:
                cells.append(f'<td class="gold" data-k="gold"><span class="ok" title="correct">✓</span> '
                             f'{_e(page.name(gold))}</td>')
            else:
                cells.append(f'<td class="gold" data-k="gold"><span class="bad" title="wrong">✗</span> '
                             f'{_e(page.name(gold))}</td>')
        rows.append(f'<tr class="{" ".join(cls)}" id="u{i}" data-c="{page.css(final)}">{"".join(cells)}</tr>')
    options = "".join(f'<option value="{page.css(c)}">{_e(page.name(c))}</option>' for c in page.classes)
    changed_box = ('<label><input type="checkbox" id="f-ch"> changed by the LLM only</label>'
                   if page.any_refined else "")
    filters = (f'<div id="filters" hidden><input type="search" id="f-q" placeholder="Search text or speaker…" '
               f'aria-label="search"><select id="f-c" aria-label="emotion"><option value="">all emotions</option>'
               f'{options}</select>{changed_box}<span id="f-n"></span></div>')
    note = ""
    if page.any_refined:
        note = ('<p class="note">Highlighted rows: the LLM changed the vanilla label. '
                'The bar shows the class probabilities of the final answer.</p>')
    else:
        note = '<p class="note">The bar under each label shows the class probabilities.</p>'
    return (f'<section class="card" id="transcript"><h2>Transcript</h2>{note}{filters}'
            f'<div class="cmwrap"><table class="tx"><thead><tr>{"".join(heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div></section>')


# ---------------------------------------------------------------------------------- API

def render_report(doc: Mapping[str, Any]) -> str:
    """Render a prediction document (``docs/predict-output.md``) as one self-contained HTML page.

    Missing or null fields are tolerated; every text from the document is HTML-escaped.
    """
    page = _Page(doc)
    inp = doc.get("input") if isinstance(doc.get("input"), Mapping) else {}
    title = f"Emotion report — {Path(str(inp.get('path') or 'lantern')).name}"
    version = doc.get("lantern_version")
    footer = (f"<footer>Generated by lantern{' ' + _e(version) if version else ''}"
              f"{' · ' + _e(doc.get('created')) if doc.get('created') else ''}"
              " · a self-contained offline page</footer>")
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="referrer" content="no-referrer">'
            f"<title>{_e(title)}</title>"
            f"<style>{_BASE_CSS}{_class_css(page)}</style></head>"
            f'<body><main class="wrap">{_header(page)}{_overview(page)}{_refinement(page)}'
            f"{_scores(page)}{_transcript(page)}{footer}</main>"
            f"<script>{_SCRIPT}</script></body></html>\n")


def write_report(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Render ``doc`` and write it to ``path`` atomically (UTF-8). Returns the path."""
    path = Path(path)
    atomic_write_text(path, render_report(doc))
    return path

"""The prediction document as the page reads it: defensively, since any field may be
missing or null (``docs/predict-output.md`` describes the document).

:class:`PageDocument` also settles what the whole page shares: the class list (with any
label the document forgot to declare), their display names and colours, the VAD scale, and
the CSS class and badge of each label.
"""

from __future__ import annotations

from typing import Any, Mapping

from lantern.report.colors import class_colors
from lantern.report.formatting import esc, finite


class PageDocument:
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
        lo, hi = ((finite(scale[0]), finite(scale[1])) if isinstance(scale, (list, tuple)) and len(scale) >= 2
                  else (None, None))
        self.vad_lo, self.vad_hi = (lo, hi) if lo is not None and hi is not None and hi > lo else (1.0, 5.0)
        self.llm = doc.get("llm") if isinstance(doc.get("llm"), Mapping) else None
        self.any_refined = any(self.refined(u) is not None for u in self.utts)
        self.any_gold = any(u.get("label") is not None for u in self.utts)
        self.any_time = any(finite(u.get("start")) is not None or finite(u.get("end")) is not None
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
            f = finite(raw.get(c)) if isinstance(raw, Mapping) else None
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
        return finite(v.get(key)) if isinstance(v, Mapping) else None

    # --- rendering helpers
    def css(self, label: str | None) -> str:
        return f"c{self.index[label]}" if label in self.index else "cx"

    def name(self, label: Any) -> str:
        return "—" if label is None else self.names.get(str(label), str(label))

    def badge(self, label: str | None, small: bool = False) -> str:
        if label is None:
            return '<span class="b cx">—</span>'
        cls = "b s" if small else "b"
        return f'<span class="{cls} {self.css(label)}" title="{esc(label)}">{esc(self.name(label))}</span>'

    def prob_of(self, probs: list[float], label: str | None) -> float | None:
        if label not in self.index or not probs:
            return None
        total = sum(probs)
        return probs[self.index[label]] / total if total > 0 else None

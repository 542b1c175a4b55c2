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

One module per part: :mod:`.page` assembles the page from :mod:`.header`, :mod:`.sections`
(overview, vanilla vs refined, scores) and :mod:`.transcript`; the charts are
:mod:`.timeline_chart` and :mod:`.vad_chart` over :mod:`.chart_frame`; :mod:`.document` reads
the document, :mod:`.colors` and :mod:`.formatting` hold colours and text formats, and
:mod:`.assets` loads the skeleton, stylesheet and script from ``templates/``.

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

from lantern.report.colors import class_colors
from lantern.report.page import render_report, write_report

__all__ = ["render_report", "write_report", "class_colors"]

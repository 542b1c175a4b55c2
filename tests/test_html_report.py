"""The HTML report of ``lantern predict`` (``lantern.report``).

Documents are built here (fake but schema-valid, see ``docs/predict-output.md``). The
screenshot tests run a real headless Chromium; they skip when ``/usr/bin/chromium`` is absent,
except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lantern.report import class_colors, render_report, write_report

CLASSES_6 = ["hap", "sad", "neu", "ang", "exc", "fru"]
NAMES_6 = {"hap": "happy", "sad": "sad", "neu": "neutral", "ang": "angry", "exc": "excited",
           "fru": "frustrated"}
MELD7 = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
CHROMIUM = Path("/usr/bin/chromium")
XSS = "</td><script>alert(1)</script>"


# ------------------------------------------------------------------------------ builders

def _probs(classes, top, rng, peak=0.6):
    rest = [rng.random() for _ in classes]
    total = sum(r for c, r in zip(classes, rest) if c != top) or 1.0
    return {c: (peak if c == top else (1 - peak) * r / total) for c, r in zip(classes, rest)}


def make_doc(n=5, *, classes=CLASSES_6, names=None, llm=True, gold=False, times=True,
             texts=None, seed=0, vad_scale=(1.0, 5.0)):
    """A valid prediction document with ``n`` utterances (two speakers)."""
    rng = random.Random(seed)
    names = NAMES_6 if names is None and classes == CLASSES_6 else (names or {c: c for c in classes})
    utts = []
    for i in range(n):
        v = classes[rng.randrange(len(classes))]
        r = classes[rng.randrange(len(classes))] if rng.random() < 0.3 else v
        u = {"dialogue_id": "talk", "utterance_id": f"talk_{i}", "turn": i,
             "speaker": "Ana" if i % 2 == 0 else "Bo",
             "text": texts[i % len(texts)] if texts else f"utterance number {i}",
             "start": 2.0 * i if times else None, "end": 2.0 * i + 1.7 if times else None,
             "media": {},
             "label": (classes[rng.randrange(len(classes))] if rng.random() < 0.5 else v) if gold else None,
             "vanilla": {"label": v, "probs": _probs(classes, v, rng)},
             "vad": {"valence": round(rng.uniform(*vad_scale), 2), "arousal": round(rng.uniform(*vad_scale), 2),
                     "dominance": round(rng.uniform(*vad_scale), 2)},
             "refined": ({"label": r, "probs": _probs(classes, r, rng, 0.55), "fields": 3, "valid_fields": 3}
                         if llm else None)}
        u["final"] = r if llm else v
        utts.append(u)
    k = len(classes)
    scores = None
    if gold:
        lab = [u for u in utts if u["label"] is not None]
        cm = [[0] * k for _ in range(k)]
        rcm = [[0] * k for _ in range(k)]
        for u in lab:
            cm[classes.index(u["label"])][classes.index(u["vanilla"]["label"])] += 1
            rcm[classes.index(u["label"])][classes.index(u["final"])] += 1
        acc = sum(u["label"] == u["vanilla"]["label"] for u in lab) / len(lab)
        racc = sum(u["label"] == u["final"] for u in lab) / len(lab)
        scores = {"n_labelled": len(lab), "accuracy": acc, "weighted_f1": acc - 0.02,
                  "refined_accuracy": racc if llm else None, "refined_weighted_f1": racc - 0.01 if llm else None,
                  "confusion": cm, "refined_confusion": rcm if llm else None}
    per = {"transcription": 0.0, "features": 0.8 / max(n, 1), "vanilla": 0.02 / max(n, 1),
           "llm": 5.0 / max(n, 1) if llm else 0.0, "report": 0.05 / max(n, 1), "total": 5.9 / max(n, 1)}
    return {
        "lantern_version": "0.1.0", "created": "2026-11-22T10:00:00+00:00",
        "input": {"path": "data/talk.jsonl", "kind": "conversation"},
        "classes": list(classes), "class_names": names, "vad_scale": list(vad_scale),
        "model": {"name": "iemocap-6way-text", "path": "/models/x", "card": "GloVe + BiGRU, IEMOCAP 6-way."},
        "llm": ({"backend": "llama-cpp", "model": "qwen2.5-1.5b-instruct-q4", "t": 0.0, "window": 6, "stride": 3,
                 "calls": 4, "requests": 4, "prompt_tokens": 5120, "completion_tokens": 300, "seconds": 5.0,
                 "cache_hits": 0, "validation_failures": 1, "fallbacks": 0} if llm else None),
        "transcription": None,
        "timings": {"transcription": 0.0, "features": 0.8, "vanilla": 0.02, "llm": 5.0 if llm else 0.0,
                    "report": 0.05, "total": 5.9, "utterances": n, "seconds_per_utterance": per},
        "utterances": utts,
        "scores": scores,
    }


def realistic_doc():
    """Twelve utterances of a recording: transcription, LLM on, a few gold labels, emoji and Chinese."""
    script = [
        ("Ana", "I got the job! They called me this morning 🎉", "exc", "hap", "exc", (4.4, 4.1, 3.6)),
        ("Bo", "Wait, really? The one at the design studio?", "exc", None, "exc", (3.9, 3.8, 3.0)),
        ("Ana", "Yes! I start on Monday. I honestly can't believe it.", "exc", "exc", "hap", (4.5, 4.0, 3.4)),
        ("Bo", "That's great... I guess that means you're moving to Lyon.", "neu", "sad", "sad", (2.6, 2.4, 2.7)),
        ("Ana", "Well, yes. We talked about this.", "neu", None, None, (2.9, 2.6, 3.1)),
        ("Bo", "We talked about it as a maybe. Not as next Monday.", "fru", "ang", "ang", (1.9, 3.7, 3.4)),
        ("Ana", "I told you the moment I knew. What was I supposed to do?", "ang", None, "fru", (1.8, 3.9, 3.5)),
        ("Bo", "I don't know. Ask me? Just once?", "sad", "fru", "fru", (1.7, 3.2, 2.4)),
        ("Ana", "我真的很想让你为我高兴。", "sad", None, "sad", (2.1, 2.5, 2.2)),
        ("Bo", "I am happy for you. I'm just scared, OK? <this> & \"that\"", "sad", "sad", None, (2.4, 2.9, 2.1)),
        ("Ana", "Come with me. Seriously — we could figure it out together.", "hap", "exc", "exc", (3.8, 3.6, 3.3)),
        ("Bo", "...Maybe. Let me think about it tonight.", "neu", None, "neu", (3.1, 2.2, 2.8)),
    ]
    rng = random.Random(7)
    utts = []
    t = 0.0
    for i, (spk, text, v, r, gold, (val, aro, dom)) in enumerate(script):
        dur = 1.2 + 0.06 * len(text) / 2
        refined_label = r or v
        utts.append({
            "dialogue_id": "kitchen_talk", "utterance_id": f"kitchen_talk_{i}", "turn": i, "speaker": spk,
            "text": text, "start": round(t, 2), "end": round(t + dur, 2),
            "media": {"audio": "/home/me/kitchen_talk.wav"}, "label": gold,
            "vanilla": {"label": v, "probs": _probs(CLASSES_6, v, rng, 0.45 + 0.4 * rng.random())},
            "vad": {"valence": val, "arousal": aro, "dominance": dom},
            "refined": {"label": refined_label, "probs": _probs(CLASSES_6, refined_label, rng, 0.5 + 0.3 * rng.random()),
                        "fields": 3 if 1 < i < 10 else 2, "valid_fields": 2 if i in (0, 5) else (3 if 1 < i < 10 else 2)},
            "final": refined_label})
        t += dur + 0.4
    lab = [u for u in utts if u["label"] is not None]
    k = len(CLASSES_6)
    cm = [[0] * k for _ in range(k)]
    rcm = [[0] * k for _ in range(k)]
    for u in lab:
        cm[CLASSES_6.index(u["label"])][CLASSES_6.index(u["vanilla"]["label"])] += 1
        rcm[CLASSES_6.index(u["label"])][CLASSES_6.index(u["final"])] += 1
    acc = sum(u["label"] == u["vanilla"]["label"] for u in lab) / len(lab)
    racc = sum(u["label"] == u["final"] for u in lab) / len(lab)
    n = len(utts)
    timings = {"transcription": 3.9, "features": 0.8, "vanilla": 0.02, "llm": 11.4, "report": 0.05}
    timings["total"] = round(sum(timings.values()), 2)
    return {
        "lantern_version": "0.1.0", "created": "2026-11-22T10:00:00+00:00",
        "input": {"path": "/home/me/recordings/kitchen_talk.wav", "kind": "audio"},
        "classes": CLASSES_6, "class_names": NAMES_6, "vad_scale": [1.0, 5.0],
        "model": {"name": "iemocap-6way-text", "path": "/opt/lantern/pretrained/iemocap-6way-text",
                  "card": "Text-only BiGRU over sentence embeddings, IEMOCAP sessions 1–4; 6 classes."},
        "llm": {"backend": "llama-cpp", "model": "qwen2.5-3b-instruct-q4_k_m.gguf", "t": 0.0, "window": 6,
                "stride": 3, "calls": 4, "requests": 4, "prompt_tokens": 6210, "completion_tokens": 412,
                "seconds": 11.4, "cache_hits": 0, "validation_failures": 1, "fallbacks": 1},
        "transcription": {"model": "whisper-base", "language": "en", "language_probability": 0.97,
                          "task": "transcribe", "speakers": "alternating turns", "duration": round(t, 1),
                          "segments": 12},
        "timings": {**timings, "utterances": n,
                    "seconds_per_utterance": {k2: v2 / n for k2, v2 in timings.items()}},
        "utterances": utts,
        "scores": {"n_labelled": len(lab), "accuracy": acc, "weighted_f1": acc - 0.04,
                   "refined_accuracy": racc, "refined_weighted_f1": racc - 0.03,
                   "confusion": cm, "refined_confusion": rcm},
    }


# ------------------------------------------------------------------------------- parsing

class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.data: list[str] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        (self.script_text if self._in_script else self.data).append(data)


def parse(page: str) -> _Collector:
    p = _Collector()
    p.feed(page)
    p.close()
    return p


def ids(page: str) -> set[str]:
    return {a["id"] for _, a in parse(page).tags if a.get("id")}


def transcript_rows(page: str) -> int:
    return sum(1 for t, a in parse(page).tags if t == "tr" and "utt" in (a.get("class") or "").split())


# --------------------------------------------------------------------------------- tests

def test_escapes_transcript_and_creates_no_script_element():
    doc = make_doc(3, gold=True)
    doc["utterances"][1]["text"] = XSS
    doc["utterances"][1]["speaker"] = '"><img src=x onerror=alert(2)>'
    doc["input"]["path"] = "<b>evil</b>.jsonl"
    doc["model"]["card"] = "card with 'quotes' & <tags>"
    page = render_report(doc)
    assert "&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page and "<img" not in page and "<b>evil" not in page
    p = parse(page)
    assert [t for t, _ in p.tags].count("script") == 1            # only the page's own filter script
    assert all("alert" not in s for s in p.script_text)
    assert not any(t == "img" for t, _ in p.tags)
    assert not any(k.startswith("on") for _, a in p.tags for k in a)   # no event-handler attributes
    assert XSS in "".join(p.data)                                # and the text reads as written
    assert transcript_rows(page) == 3


def test_control_characters_never_reach_the_page_raw():
    """Issue 9.13: a NUL in an uploaded file's name reached report.html raw."""
    doc = make_doc(2)
    doc["input"]["path"] = "talk\x00\x1b[31m.jsonl"
    doc["utterances"][0]["text"] = "a\x00b\x7fc\td"
    page = render_report(doc)
    assert not re.search(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", page)
    assert "talk\ufffd\ufffd[31m.jsonl" in page and "a\ufffdb\ufffdc\td" in page


def test_sections_with_llm_and_scores():
    page = render_report(make_doc(20, llm=True, gold=True, seed=3))
    found = ids(page)
    assert {"top", "overview", "timeline", "vad", "refinement", "scores", "transcript"} <= found
    assert "accuracy · refined" in page and "weighted F1 · vanilla" in page
    assert page.count('<table class="cm">') == 2                   # vanilla + refined confusion
    assert "LLM refinement off" not in page and "qwen2.5-1.5b-instruct-q4" in page
    assert "utterances changed" in page and "gold ↓ predicted →" in page
    assert "vanilla: " in page and "refined: " in page
    assert transcript_rows(page) == 20


def test_sections_without_llm_or_scores():
    page = render_report(make_doc(8, llm=False, gold=False))
    found = ids(page)
    assert "scores" not in found and "accuracy" not in page.lower()
    assert "LLM refinement off" in page and "LLM off" in page
    assert '<table class="cm">' not in page and "vanilla: " not in page
    assert not any("changed" in (a.get("class") or "") for t, a in parse(page).tags if t == "tr")
    assert 'id="f-ch"' not in page                                  # no "changed only" filter
    assert "<th>gold</th>" not in page                               # no gold column without labels
    assert transcript_rows(page) == 8


def test_changed_rows_highlighted_and_gold_marked():
    doc = make_doc(4, llm=True, gold=True)
    for i, u in enumerate(doc["utterances"]):
        u["vanilla"]["label"] = "neu"
        u["refined"]["label"] = u["final"] = ("fru" if i == 2 else "neu")
        u["label"] = "fru" if i >= 2 else "neu"
    page = render_report(doc)
    rows = [a for t, a in parse(page).tags if t == "tr" and "utt" in (a.get("class") or "")]
    assert ["changed" in a["class"] for a in rows] == [False, False, True, False]
    assert ["wrong" in a["class"] for a in rows] == [False, False, False, True]
    assert "vanilla: neutral → refined: frustrated" in page
    assert page.count('class="ok"') == 3 and page.count('class="bad"') == 1


def test_one_utterance_zero_labels_no_times():
    page = render_report(make_doc(1, llm=False, gold=False, times=False))
    assert transcript_rows(page) == 1 and "<th>time</th>" not in page
    assert "<svg" in page


def test_zero_utterances_and_missing_fields():
    page = render_report({"utterances": []})
    assert "No utterances" in page and transcript_rows(page) == 0
    page = render_report({"classes": ["neu"], "utterances": [{"text": "hi", "vanilla": {"label": "neu"}}]})
    assert transcript_rows(page) == 1
    doc = make_doc(3)
    doc["utterances"][0]["start"] = None                              # partial times
    doc["utterances"][1]["vad"] = None
    doc["utterances"][2]["final"] = "surprise"                        # not in `classes`
    doc["timings"] = None
    doc["vad_scale"] = None
    doc["class_names"] = None
    page = render_report(doc)
    assert transcript_rows(page) == 3 and "surprise" in page
    with pytest.raises(TypeError):
        render_report(["not", "a", "dict"])


def test_chromium_missing_skips_or_fails_in_ci(monkeypatch):
    me = sys.modules[__name__]
    monkeypatch.setattr(me, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="absent"):
        me._need_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="mandatory in CI"):
        me._need_chromium()


def test_meld7_classes_get_distinct_colours_and_names():
    names = {c: c.capitalize() for c in MELD7}
    doc = make_doc(30, classes=MELD7, names=names, gold=True, seed=5)
    page = render_report(doc)
    colours = class_colors(MELD7)
    assert len(set(colours.values())) == 7
    for c in MELD7:
        assert colours[c].lower() in page.lower()
    assert "Surprise" in page and "Disgust" in page
    assert transcript_rows(page) == 30
    assert class_colors(CLASSES_6)["ang"] == class_colors(MELD7)["anger"]   # anger is anger everywhere


def test_many_classes_distinct_colours():
    cols = class_colors([f"k{i}" for i in range(40)])
    assert len(set(cols.values())) == 40
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in cols.values())


def test_unicode_and_long_text(tmp_path):
    long = "非常长的句子😀 " * 400 + "end-of-long-text"
    doc = make_doc(3, texts=["你好，世界 🌍", long, "Ça va? 👍🏽"])
    page = render_report(doc)
    assert "你好，世界 🌍" in page and "Ça va? 👍🏽" in page and "end-of-long-text" in page
    out = write_report(doc, tmp_path / "r.html")
    assert out.read_bytes().decode("utf-8") == page


def test_500_utterances_stays_small():
    doc = make_doc(500, llm=True, gold=True, seed=11)
    page = render_report(doc)
    size = len(page.encode("utf-8"))
    assert size < 1_500_000, size
    assert transcript_rows(page) == 500
    small = len(render_report(make_doc(10)).encode("utf-8"))
    assert small < 120_000, small


def test_no_network_references():
    doc = make_doc(12, llm=True, gold=True)
    page = render_report(doc)
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(" not in page
    p = parse(page)
    for tag, attrs in p.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed", "audio", "video", "source")
        for k in ("src", "href", "action", "srcset", "xlink:href"):
            v = attrs.get(k)
            assert v is None or (k == "href" and v.startswith("#")), (tag, k, v)
    csp = [a for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]

    # URLs typed by the user show up only as (escaped) text, never as a reference
    doc["utterances"][0]["text"] = 'see https://example.com/x?a=1&b="2" <a href="http://evil">x</a>'
    page = render_report(doc)
    without_text = page.replace(
        "see https://example.com/x?a=1&amp;b=&quot;2&quot; &lt;a href=&quot;http://evil&quot;&gt;x&lt;/a&gt;", "")
    assert "http:" not in without_text and "https:" not in without_text and "//" not in without_text
    assert not any(t == "a" and not a.get("href", "").startswith("#") for t, a in parse(page).tags)


def test_page_skeleton_order_and_script_hash():
    """The skeleton from templates/ around the cards in their order; the CSP allows exactly the
    inline script (its SHA-256), so a browser runs the filter bar and nothing else."""
    page = render_report(make_doc(6, llm=True, gold=True))
    assert page.startswith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    assert page.endswith("</script></body></html>\n")
    style = page[page.index("<style>") + 7: page.index("</style>")]
    assert style.startswith("\n:root{") and ".c0{background:" in style
    assert page.count("\n") == style.count("\n") + 2                 # after the doctype, at the end
    positions = [page.index(f'id="{i}"') for i in ("top", "overview", "refinement", "scores", "transcript")]
    assert positions == sorted(positions) and page.index("<footer>") > positions[-1]
    script = "".join(parse(page).script_text)
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = [a for t, a in parse(page).tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert f"script-src 'sha256-{digest}'" in csp[0]["content"]


def test_write_report_is_atomic_and_returns_path(tmp_path):
    out = write_report(make_doc(2), tmp_path / "sub" / "report.html")
    assert out == tmp_path / "sub" / "report.html"
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


# ------------------------------------------------------------------------ headless chrome

def _need_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} is absent (install Debian's chromium to run the screenshot tests)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; it is mandatory in CI")
    pytest.skip(reason)


def _chromium(report: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(_need_chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *extra,
           report.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, timeout=60, text=True)


@pytest.mark.slow
def test_screenshot_in_headless_chromium(tmp_path):
    from PIL import Image

    _need_chromium()
    doc = realistic_doc()
    report = write_report(doc, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    res = _chromium(report, tmp_path / "profile", "--window-size=1280,2000", f"--screenshot={shot}")
    assert shot.exists(), f"no screenshot; chromium said: {res.stderr[-2000:]}"
    keep = os.environ.get("LANTERN_REPORT_SHOT")          # e.g. /tmp/report-shot.png while developing
    if keep:
        shutil.copyfile(shot, keep)
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2000)
    small = img.resize((320, 500))
    assert len(small.getcolors(1 << 20)) > 200             # not blank: text, charts, badges
    pixels = {px: n for n, px in img.getcolors(1 << 24)}
    for c in sorted({u["final"] for u in doc["utterances"]}):
        rgb = tuple(int(class_colors(doc["classes"])[c][k:k + 2], 16) for k in (1, 3, 5))
        near = sum(n for px, n in pixels.items() if max(abs(a - b) for a, b in zip(px, rgb)) <= 6)
        assert near > 150, f"badge colour of {c} {rgb} barely visible ({near} px)"


@pytest.mark.slow
def test_chromium_dom_has_one_row_per_utterance(tmp_path):
    _need_chromium()
    doc = make_doc(37, llm=True, gold=True, seed=2)
    doc["utterances"][4]["text"] = XSS
    report = write_report(doc, tmp_path / "report.html")
    res = _chromium(report, tmp_path / "profile", "--dump-dom")
    dom = res.stdout
    assert "</html>" in dom, res.stderr[-2000:]
    assert transcript_rows(dom) == 37
    p = parse(dom)
    assert [t for t, _ in p.tags].count("script") == 1
    assert "&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    # the filter script ran under the page's Content-Security-Policy: the bar is revealed
    bar = [a for t, a in p.tags if a.get("id") == "filters"]
    assert bar and "hidden" not in bar[0], "inline script blocked (CSP hash wrong?)"
    # every row has the full set of cells
    cells = re.findall(r'<tr class="utt[^"]*"[^>]*>(.*?)</tr>', dom, flags=re.S)
    assert len(cells) == 37 and all(c.count("<td") == cells[0].count("<td") for c in cells)

"""MERR-lite annotation (issue #12): action units from blendshapes, tone of voice, captions,
reason filters, the MERR layout and resuming an interrupted run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import require_data
from lantern.features.action_units import AUTimeline, au_scores, pseudo_label
from lantern.annotate.merr import ClipAnnotation, annotate, check_reason, read_done
from lantern.data.dialogues import Utterance
from lantern.llm.base import ChatResponse, LLM

MERR_KEYS = {"AU_list", "visual_prior_list", "audio_prior_list", "peak_index", "peak_AU_list",
             "pseu_emotion", "caption", "smp_reason_caption", "text"}


def test_timeline_frequent_aus_peak_frame_and_pseudo_label():
    smile = au_scores({"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "cheekSquintLeft": 0.6,
                       "cheekSquintRight": 0.6})
    weak = au_scores({"mouthSmileLeft": 0.3, "mouthSmileRight": 0.3})
    t = AUTimeline([weak, None, smile, weak])
    assert t.face_frames == [0, 2, 3]
    assert t.frequent() == ["AU6", "AU12"]          # AU6 active in 1 of 3 face frames (>= 30 %)
    assert t.peak_index() == 2 and set(t.active_at(2)) == {"AU6", "AU12"}
    assert pseudo_label(set(t.active_at(2))) == "happy"
    assert pseudo_label({"AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU26"}) == "fear"  # longest wins
    assert pseudo_label(set()) == "neutral" and AUTimeline([None]).peak_index() is None


@pytest.mark.parametrize("reason, status", [
    ("The loud, tense voice shows anger.", "ok"),
    ("Her raised voice sounds angry and sharp.", "ok"),
    ("I'm sorry, I cannot tell from these clues.", "refusal"),
    ("The soft voice suggests she is sad.", "contradiction"),   # another class, never the label
    ("", "refusal"),
    ("The anger shows in a calm but tense voice.", "ok"),       # anger is a form of angry
])
def test_reason_filters(reason, status):
    assert check_reason(reason, "angry", ["neutral", "happy", "sad", "angry"]) == status


class Writer(LLM):
    """A stand-in reason writer that counts its calls (a fake belongs in unit tests only)."""

    backend, model_id = "scripted", "scripted"

    def __init__(self, stop_after=None):
        self.calls, self.stop_after = 0, stop_after

    def chat(self, request):
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt   # the run is killed mid-way
        self.calls += 1
        label = request.messages[-1]["content"].split("The person's emotion is: ")[1].split(".")[0]
        return ChatResponse(json.dumps({"reason": f"The clues fit someone {label}."}), 50, 12, 0.01,
                            "stop", "scripted")


def _clips(tmp_path, n=5):
    import soundfile as sf

    rng = np.random.default_rng(0)
    utts = []
    for i in range(n):
        path = tmp_path / f"clip{i}.wav"
        t = np.arange(16000) / 16000
        sf.write(path, (0.1 * (1 + i) * np.sin(2 * np.pi * (150 + 40 * i) * t)
                        + 0.01 * rng.standard_normal(16000)).astype(np.float32), 16000)
        utts.append(Utterance(f"c{i}", "A", "Kids are talking by the door.", media={"audio": str(path)}))
    return utts


def test_annotate_writes_the_merr_layout_and_resumes_without_repeating_calls(tmp_path):
    from lantern.llm.cache import LLMCache

    pytest.importorskip("opensmile")
    utts = _clips(tmp_path)
    labels = ["angry", "sad", "happy", "neutral", "angry"]
    out = tmp_path / "ann"
    cache = LLMCache(tmp_path / "llm.sqlite")
    with pytest.raises(KeyboardInterrupt):
        annotate(utts, labels, out, classes=["neutral", "happy", "sad", "angry"],
                 llm=Writer(stop_after=2), cache=cache, progress=False)
    assert len(read_done(out / "annotations.jsonl")) == 2
    with open(out / "annotations.jsonl", "ab") as f:
        f.write('{"name": "c2", "text": "caf\u00e9'.encode()[:-1])   # torn inside a character
    writer = Writer()
    summary = annotate(utts, labels, out, classes=["neutral", "happy", "sad", "angry"], llm=writer,
                       cache=cache, progress=False)
    assert writer.calls == 3 and summary["resumed"] == 2 and summary["reasons"]["ok"] == 5
    lines = (out / "annotations.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and all(json.loads(line)["prompt_version"] == 1 for line in lines)
    merr = json.loads((out / "merr.json").read_text())
    assert list(merr) == [u.id for u in utts]
    assert MERR_KEYS <= set(merr["c0"])
    assert merr["c1"]["smp_reason_caption"] == "The clues fit someone sad."
    assert merr["c0"]["AU_list"] == [] and "audio only" in merr["c0"]["caption"]
    assert any("vision-language" in n for n in merr["c0"]["notes"])
    assert all(merr[c]["audio_prior_list"] for c in merr)
    assert ClipAnnotation.from_dict({"name": "x", "text": "", "label": None, "extra": 1}).name == "x"


@pytest.mark.data
def test_a_real_video_clip_gets_action_units_and_a_caption(tmp_path):
    pytest.importorskip("mediapipe")
    clip = require_data("MER2023_example_clips_Emotion-LLaMA/examples/sample_00000338.mp4")
    from lantern.predict.media import extract_audio

    wav = extract_audio(clip, tmp_path / "a.wav")
    u = Utterance("mer338", "S1", "It's all right.", media={"video": str(clip), "audio": str(wav)})
    summary = annotate([u], [None], tmp_path / "ann", progress=False)
    ann = json.loads((tmp_path / "ann" / "merr.json").read_text())["mer338"]
    assert summary["reasons"]["skipped"] == 1
    assert ann["peak_index"] is not None and ann["pseu_emotion"] is not None
    assert ann["caption"].startswith(f"This person in the video is {ann['pseu_emotion']}; expression")


def test_training_reads_reasons_from_a_merr_file(tmp_path):
    from lantern.data.dialogues import Dialogue, EmotionDataset, LabelSet
    from lantern.errors import ConfigError
    from lantern.training.experiment import attach_reasons

    (tmp_path / "merr.json").write_text(json.dumps({
        "a": {"caption": "This person is angry; ...", "smp_reason_caption": "A loud voice."},
        "b": {"caption": "This person is sad; ...", "smp_reason_caption": None}}))
    ls = LabelSet("x", ("angry", "sad"))
    ds = EmotionDataset("t", ls, {"train": [Dialogue("a", [Utterance("a", "A", "", 0)]),
                                            Dialogue("b", [Utterance("b", "A", "", 1)]),
                                            Dialogue("c", [Utterance("c", "A", "", 1)])],
                                  "valid": [], "test": []})
    out = attach_reasons(ds, {"path": "merr.json"}, config_dir=str(tmp_path))
    assert out["train_utterances_with_reason"] == 2
    assert [u.meta.get("reason") for u in ds.utterances("train")] == ["A loud voice.", "This person is sad; ...", None]
    with pytest.raises(ConfigError, match="reasons.field"):
        attach_reasons(ds, {"path": str(tmp_path / "merr.json"), "field": "text"})


def test_reason_judge_scores_are_typed_bounded_and_failures_counted():
    from lantern.annotate.judge import judge_reasons

    class Judge(LLM):
        backend, model_id = "scripted", "judge"

        def chat(self, request):
            text = request.messages[1]["content"]     # the grading prompt (re-asks come after it)
            if "gibberish" in text:
                return ChatResponse('{"clue_overlap": 42, "label_overlap": 1}', 40, 9, 0.01, "stop", "judge")
            score = 8 if "loud" in text.split("Explanation to grade:")[1] else 3
            return ChatResponse(json.dumps({"clue_overlap": score, "label_overlap": score}), 40, 9,
                                0.01, "stop", "judge")

    refs = [("tone: loud", "angry"), ("tone: loud, fast", "angry")]
    out = judge_reasons({"model": ["A loud voice: angry.", "gibberish"],
                         "template": ["This person is angry.", "This person is angry."]}, refs, Judge())
    assert out["model"].clue_overlap == 8 and out["model"].failed == 1   # 42 is out of range
    assert out["template"].clue_overlap == 3 and out["template"].failed == 0
    assert out["template"].prompt_tokens == 80


def test_the_judge_script_scores_the_model_against_the_template_with_the_same_label():
    """scripts/judge_reasons.py: the template baseline is MERR's caption with the model's own
    label; clips the judge failed on leave both systems' paired comparison."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("judge_reasons", REPO / "scripts" / "judge_reasons.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    class Judge(LLM):
        backend, model_id = "scripted", "judge"

        def chat(self, request):
            graded = request.messages[1]["content"].split("Explanation to grade:")[1]
            if "gibberish" in graded:
                return ChatResponse('{"clue_overlap": 42, "label_overlap": 1}', 40, 9, 0.01, "stop", "judge")
            score = 8 if "voice" in graded else 3
            return ChatResponse(json.dumps({"clue_overlap": score, "label_overlap": score}), 40, 9,
                                0.01, "stop", "judge")

    answers = [{"id": "c1", "gold": "ang", "predicted": "ang", "reason": "A loud voice: angry."},
               {"id": "c2", "gold": "ang", "predicted": "neu", "reason": "gibberish"}]
    annotations = {c: {"text": "Dogs are sitting by the door.", "label": "ang", "audio_prior_list": ["loud"]}
                   for c in ("c1", "c2")}
    words = {"neu": "neutral", "ang": "angry"}
    seed = script.judge_seed(answers, annotations, words, Judge(), None)
    assert seed["template_reasons"][1].startswith("This person in the video is neutral;")
    assert seed["emotion-llama"]["failed"] == 1 and seed["template"]["failed"] == 0
    summary = script.summarise([seed, seed])
    assert summary["emotion-llama.clue_overlap"]["mean"] == 8 and summary["template.clue_overlap"]["mean"] == 3
    boot = summary["paired_bootstrap"]["clue_overlap"]
    assert boot["n_clips"] == 1 and boot["delta"] == 5
    labels = script.label_scores([answers], list(words))
    assert labels["accuracy"]["mean"] == 50.0
    failed = script.judge_seed(answers[1:], annotations, words, Judge(), None)   # the judge fails on all
    empty = script.summarise([failed])
    assert empty["emotion-llama.clue_overlap"]["mean"] is None   # shown as "—", not a score of 0
    assert empty["paired_bootstrap"]["clue_overlap"] == {"delta": None, "low": None, "high": None, "n_clips": 0}

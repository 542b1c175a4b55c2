"""Answer files (one line per field, resumable, committed) and refine's use of them with a
scripted LLM: kill and resume without repeating a call, concurrency, the written-percent
fallback when a server has no log-probabilities, and class-order rotation."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from lantern.answers import AnswerFile, FieldAnswer
from lantern.data.labels import IEMOCAP_4WAY_DROP as LS
from lantern.errors import ConfigError, DataError
from lantern.llm.base import ChatResponse, LLM
from lantern.llm.slots import NoLogprobs, SlotResponse
from lantern.records import PredictionRow
from lantern.refine import RefineSettings, refine, rotated

HEADER = {"mode": "logprobs", "template_hash": "t1", "model_id": "m@1"}


def answer(key, n=2, dialogue="d1"):
    return FieldAnswer(key, dialogue, 0, 0, n, [[0.5, 0.5]] * n, [True] * n, mass=[0.9] * n)


def test_answer_file_round_trip_and_torn_last_line(tmp_path):
    path = tmp_path / "a" / "valid.jsonl"
    with AnswerFile(path, HEADER) as f:
        f.add(answer("k1"))
        f.add(answer("k1"))            # the same key twice is stored once
        f.add(answer("k2"))
    assert len(path.read_text().splitlines()) == 3
    with open(path, "a") as fh:         # a kill in the middle of writing a line
        fh.write('{"key":"k3","dialogue_id":"d1","fie')
    with AnswerFile(path, HEADER) as f:
        assert sorted(a.key for a in f) == ["k1", "k2"] and f.added == []
        f.add(answer("k3"))
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["key"] == "k3"


def test_answer_file_refuses_another_runs_answers_and_names_bad_lines(tmp_path):
    path = tmp_path / "valid.jsonl"
    AnswerFile(path, HEADER).close()
    with pytest.raises(ConfigError, match="template_hash"):
        AnswerFile(path, {**HEADER, "template_hash": "other"})
    path.write_text(json.dumps(HEADER) + "\n" + '{"key": 1}\n')
    with pytest.raises(DataError) as e:
        AnswerFile(path, HEADER)
    assert e.value.line == 2 and str(path) in str(e.value)


def test_field_answer_checks_its_shape_and_rounds_compactly():
    with pytest.raises(ValueError, match="covers 2"):
        FieldAnswer("k", "d", 0, 0, 2, [[1.0, 0.0]], [True])
    line = FieldAnswer("k", "d", 0, 0, 1, [[0.123456789, 0.876543211]], [True]).to_json()
    assert "0.1235" in line and "0.12345" not in line


def rows(n_dialogues=2, n=5):
    out = []
    for d in range(n_dialogues):
        for i in range(n):
            p = np.full(4, 0.1)
            p[i % 4] = 0.7
            out.append(PredictionRow(f"d{d}", f"d{d}_u{i}", i, dict(zip(LS.classes, p.tolist())),
                                     (3.0, 3.0, 3.0), LS.classes[i % 4], speaker="AB"[i % 2],
                                     text=f"utterance {i}"))
    return out


class SlotLLM(LLM):
    """Answers slot requests with a fixed distribution; raises on call ``fail_at``."""

    backend = "embedded"

    def __init__(self, fail_at=None, concurrency=1):
        self.calls, self.fail_at, self.max_concurrency = 0, fail_at, concurrency
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0

    @property
    def model_id(self):
        return "slot-llm"

    def chat(self, request):
        raise AssertionError("slot requests must not go through chat")

    def read_slots(self, request):
        with self.lock:
            if self.fail_at is not None and self.calls >= self.fail_at:
                raise KeyboardInterrupt
            self.calls += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        import time
        time.sleep(0.01)
        with self.lock:
            self.in_flight -= 1
        k = len(request.words)
        return SlotResponse(probs=[[0.4] + [0.6 / (k - 1)] * (k - 1)] * request.n_slots,
                            mass=[0.8] * request.n_slots, filled=[0] * request.n_slots,
                            prompt_tokens=40, reused_tokens=100, decode_steps=request.n_slots - 1,
                            fill_tokens=4 * (request.n_slots - 1), seconds=0.01, model_id=self.model_id)


def test_refine_resumes_from_the_answer_file_without_repeating_a_call(tmp_path):
    settings = RefineSettings(window=4, stride=2)
    path = tmp_path / "valid.jsonl"
    with AnswerFile(path, HEADER) as f, pytest.raises(KeyboardInterrupt):
        refine(rows(), LS.classes, SlotLLM(fail_at=3), settings, LS.descriptions, progress=False, answers=f)
    again = SlotLLM()
    with AnswerFile(path, HEADER) as f:
        assert len(f) == 3
        records, summary = refine(rows(), LS.classes, again, settings, LS.descriptions,
                                  progress=False, answers=f)
    assert again.calls == summary["fields"] - 3 and summary["answer_file_hits"] == 3
    assert len(records) == 2 * 5 * settings.t
    assert all(abs(sum(r.probs.values()) - 1) < 1e-6 and r.mass == 0.8 for r in records)
    assert summary["decode_steps_per_utterance"] > 0 and summary["low_mass_slots"] == 0
    # Everything answered: a third run asks nothing.
    third = SlotLLM()
    with AnswerFile(path, HEADER) as f:
        refine(rows(), LS.classes, third, settings, LS.descriptions, progress=False, answers=f)
    assert third.calls == 0


def test_refine_sends_independent_fields_concurrently_when_the_backend_allows():
    llm = SlotLLM(concurrency=4)
    _, summary = refine(rows(4, 8), LS.classes, llm, RefineSettings(), LS.descriptions, progress=False)
    assert llm.peak > 1 and llm.calls == summary["fields"]
    serial = SlotLLM(concurrency=1)
    refine(rows(4, 8), LS.classes, serial, RefineSettings(), LS.descriptions, progress=False)
    assert serial.peak == 1


class PercentServer(LLM):
    """A server without log-probabilities: returns percents as JSON, class order as asked."""

    backend = "openai"

    def __init__(self):
        self.first_keys = []

    @property
    def model_id(self):
        return "percent-server"

    def chat(self, request):
        if request.logprobs:
            return ChatResponse("1: happy", 10, 3, 0.01, "stop", self.model_id, top_logprobs=None)
        props = request.json_schema["properties"]["utterances"]["items"]["properties"]
        keys = [k for k in props if k != "index"]
        self.first_keys.append(keys[0])
        n = request.json_schema["properties"]["utterances"]["minItems"]
        items = [{"index": i, **{k: (70 if k == keys[0] else 10) for k in keys}} for i in range(n)]
        return ChatResponse(json.dumps({"utterances": items}), 10, 30, 0.01, "stop", self.model_id)


def test_a_server_without_logprobs_is_said_and_answered_in_written_percents(capsys):
    llm = PercentServer()
    records, summary = refine(rows(), LS.classes, llm, RefineSettings(window=4, stride=2),
                              LS.descriptions, progress=False)
    assert summary["answer"] == "percent" and "no log-probabilities" in summary["answer_note"]
    assert summary["fallbacks"] == 0 and len(records) == 2 * 5 * 2
    # Rotation: the first key of the answer schema moves with the field id, so a model
    # that always favours the first key no longer favours one class.
    assert len(set(llm.first_keys)) == len(LS.classes)
    favoured = {max(r.probs, key=r.probs.get) for r in records}
    assert len(favoured) == len(LS.classes)


def test_settings_refuse_unknown_modes_and_percents_without_references():
    with pytest.raises(ConfigError):
        RefineSettings(answer="words")
    with pytest.raises(ConfigError):
        RefineSettings(answer="percent", include_refs=False)
    assert RefineSettings(include_refs=False).variant_suffix == "-no-refs"
    assert RefineSettings(include_vad=False).variant_suffix == "-no-vad"
    assert rotated((1, 2, 3), -1) == (3, 1, 2)


def test_no_logprobs_is_an_llm_error():
    from lantern.llm.base import LLMError
    assert issubclass(NoLogprobs, LLMError)


COMMITTED = "benchmarks/answers/iemocap-6way-sdt-qwen2.5-coder-1.5b-logprobs-w6s2"


def test_committed_answers_rebuild_the_committed_results_without_an_llm():
    """The committed answer folder alone (no LLM runtime, no vanilla model, no data set)
    reproduces the committed result files of the fixed mergers exactly."""
    import subprocess
    import sys

    from conftest import REPO

    code = f"""
import json, sys
sys.modules["llama_cpp"] = None          # no LLM runtime in this process
from pathlib import Path
from lantern.evaluation.metrics import accuracy
from lantern.fusion import make_merger
from lantern.fusion.calibration import calibrate, prior_for
from lantern.pipeline import fusion_inputs
folder = Path({str(REPO / COMMITTED)!r})
valid, vh = fusion_inputs(folder, "valid")
test, th = fusion_inputs(folder, "test")
out = {{}}
for v in ("vanilla-only", "uniform", "product"):
    r = json.loads(Path({str(REPO / "benchmarks" / "results")!r}, f"iemocap-6way-sdt-lantern-{{v}}.json").read_text())
    cal = r["calibration"]["chosen"]
    m = make_merger(v).fit(calibrate(valid, cal, prior_for(cal, vh)), "valid")
    p = m.predict_proba(calibrate(test, cal, prior_for(cal, th))).argmax(1)
    out[v] = [100 * accuracy(test.labels, p), r["metrics"]["accuracy"]["mean"]]
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for variant, (rebuilt, committed) in json.loads(done.stdout.strip().splitlines()[-1]).items():
        assert rebuilt == pytest.approx(committed, abs=1e-9), variant


def test_runs_of_one_vanilla_model_share_its_pinned_predictions(tmp_path):
    """The first run of a vanilla model pins its predictions beside its answers and in
    answers_root/vanilla/<key>; a later run (another machine, a retrained model) copies the
    shared pins instead of pinning its own."""
    from lantern.pipeline.settings import shared_pins_dir, vanilla_key
    from lantern.pipeline.vanilla import pin_vanilla, pinned_file
    from lantern.records import read_pinned

    def rows(p):
        return [PredictionRow("d1", f"u{i}", i, {"hap": p, "sad": 1 - p}, (3.0, 3.0, 3.0), "hap") for i in range(2)]

    vcfg = {"name": "iemocap-sdt-ft", "dataset": {"name": "iemocap", "label_set": "6way"}, "model": {"name": "sdt"}}
    assert vanilla_key(vcfg) == "iemocap-6way-sdt-ft"
    shared = shared_pins_dir({"answers_root": str(tmp_path)}, vcfg)
    assert shared == tmp_path / "vanilla" / "iemocap-6way-sdt-ft"
    first = pin_vanilla(rows(0.7), tmp_path / "run-w6", "test", shared)
    assert [r.probs["hap"] for r in first] == [0.7, 0.7] and pinned_file(shared, "test").exists()
    later = pin_vanilla(rows(0.6), tmp_path / "run-w8", "test", shared)      # retrained: 0.6
    assert [r.probs["hap"] for r in later] == [0.7, 0.7]
    assert [r.probs["hap"] for r in read_pinned(pinned_file(tmp_path / "run-w8", "test"))] == [0.7, 0.7]
    own = tmp_path / "run-old"                                              # a run's own pins win
    pin_vanilla(rows(0.5), own, "test")
    assert [r.probs["hap"] for r in pin_vanilla(rows(0.6), own, "test", shared)] == [0.5, 0.5]
    assert shared_pins_dir({"answers_dir": "x", "answers_root": "y"}, vcfg) is None

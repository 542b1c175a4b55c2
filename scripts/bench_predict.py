"""Measure `lantern predict` end to end: seconds per utterance by stage, and what it gets right.

    python scripts/bench_predict.py [--cases example-off,example-llm,ravdess,ravdess-recording,mer2023]

Cases (each writes benchmarks/results/predict-<case>.json; BENCHMARKS.md shows them):
- example-off / example-llm: the shipped example conversation (text only), LLM off / embedded
  Qwen2.5-Coder-1.5B (a fresh LLM cache, so every call is really made).
- ravdess: both RAVDESS actor folders as folders of per-utterance clips (Whisper + shipped
  model, LLM off): transcript accuracy against the known statements, emotion accuracy on the
  classes that exist in IEMOCAP 6-way.
- ravdess-recording: 8 RAVDESS clips joined into one recording with 1 s pauses, with the
  embedded LLM: the per-stage cost of a recording.
- mer2023: the 6 MER2023 example videos, each a single recording (Mandarin, translated to
  English by Whisper), with the embedded LLM. MER2023's EULA forbids passing on information
  derived from it, so only counts are stored, no per-clip labels or transcripts.
- ``--model NAME`` runs the cases above with another vanilla model (a shipped name or a saved
  folder) and writes ``predict-<case>-<name>.json``, so two models compare on one machine.
- startup: whole-process seconds (and peak memory) of ``lantern predict`` on a one-turn
  conversation with the LLM off and a fresh feature cache (the LLM model files linked in),
  ``--repeats`` runs of each of ``--startup-models`` (default: the shipped default and
  ``iemocap-6way-text``), alternating, so the models compare on one machine in one run; writes
  ``predict-startup.json``.
- emotion-llama-ravdess / emotion-llama-mer2023 (``--emotion-llama-model DIR``, default the
  shipped ``ravdess-emotion-llama``): ``--system emotion-llama`` on the RAVDESS test actors'
  folders (15, 16; 8-class accuracy against the file names) and on the folder of the 6 MER2023
  videos (counts only), with a reason per clip.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                    "06": "fearful", "07": "disgust", "08": "surprised"}
RAVDESS_STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
# Dataset labels that have an IEMOCAP 6-way counterpart; the others are reported, not scored.
TO_6WAY = {"neutral": "neu", "calm": "neu", "happy": "hap", "sad": "sad", "angry": "ang"}
MER_LABELS = {"sample_00002422": "neutral", "sample_00000338": "worried", "sample_00004671": "surprise",
              "sample_00005854": "angry", "sample_00003358": "sad", "sample_00001073": "happy"}
MER_6WAY = {"neutral": "neu", "angry": "ang", "sad": "sad", "happy": "hap"}
STAGES = ("transcription", "features", "vanilla", "llm", "reasons", "report", "total")


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z ]", " ", text.lower()).split())


def _scored(pairs: list[tuple[str, str]]) -> dict:
    """Accuracy over (gold 6-way, predicted) pairs; happy also counts as right for 'exc'."""
    from lantern.evaluation.metrics import accuracy, weighted_f1

    classes = ["hap", "sad", "neu", "ang", "exc", "fru"]
    if not pairs:
        return {"n": 0}
    y = [classes.index(g) for g, _ in pairs]
    p = [classes.index(q) for _, q in pairs]
    lenient = sum(g == q or (g == "hap" and q == "exc") for g, q in pairs) / len(pairs)
    return {"n": len(pairs), "accuracy": 100 * accuracy(y, p), "weighted_f1": 100 * weighted_f1(y, p, 6),
            "accuracy_hap_or_exc": 100 * lenient}


def _timings(docs: list[dict]) -> dict:
    n = sum(len(d["utterances"]) for d in docs)
    out = {s: sum(d["timings"].get(s, 0.0) for d in docs) for s in STAGES}
    return {"seconds": out, "utterances": n,
            "seconds_per_utterance": {s: v / max(n, 1) for s, v in out.items()}}


def _llm_totals(docs: list[dict]) -> dict | None:
    llms = [d["llm"] for d in docs if d["llm"]]
    if not llms:
        return None
    keys = ("calls", "requests", "prompt_tokens", "completion_tokens", "seconds", "cache_hits",
            "validation_failures", "parse_failures", "fallbacks", "renormalised_answers")
    out = {k: sum((x.get(k) or 0) for x in llms) for k in keys}
    out.update(backend=llms[0]["backend"], model=llms[0]["model"], t=llms[0]["t"],
               window=llms[0]["window"], stride=llms[0]["stride"])
    return out


def run_case(name: str, data_root: Path, work: Path, emotion_llama: str | None = None,
             model: str | None = None) -> dict:
    from lantern.predict import PredictSettings, predict

    if name.startswith("emotion-llama-"):
        return _emotion_llama_case(name, data_root, work, emotion_llama)
    llm_cache = str(work / f"{name}-llm.sqlite")   # fresh: every LLM call is made and timed
    with_llm = PredictSettings(model=model, llm="embedded", progress=False, llm_cache=llm_cache)
    without = PredictSettings(model=model, llm="off", progress=False)
    details: dict = {}
    if name in ("example-off", "example-llm"):
        inputs = [REPO / "examples" / "conversation.jsonl"]
        settings = without if name == "example-off" else with_llm
        docs = [predict(inputs[0], work / name, settings).document]
        dataset, kind = "example", "conversation (text)"
    elif name == "ravdess":
        inputs = [data_root / "RAVDESS_speech_audio" / a for a in ("Actor_01", "Actor_02")]
        docs = [predict(p, work / name / p.name, without).document for p in inputs]
        pairs, transcripts_ok, by_label = [], 0, {}
        for d in docs:
            for u in d["utterances"]:
                code = Path(next(iter(u["media"].values()))).stem.split("-")
                emotion = RAVDESS_EMOTIONS[code[2]]
                transcripts_ok += _norm(u["text"]) == RAVDESS_STATEMENTS[code[4]]
                by_label.setdefault(emotion, {}).setdefault(u["final"], 0)
                by_label[emotion][u["final"]] += 1
                if emotion in TO_6WAY:
                    pairs.append((TO_6WAY[emotion], u["final"]))
        n = sum(len(d["utterances"]) for d in docs)
        details = {"transcripts_exact": transcripts_ok, "transcripts_total": n,
                   "emotion_vs_label": _scored(pairs), "predicted_by_gold_label": by_label}
        dataset, kind = "ravdess", "folder of clips (audio)"
    elif name == "ravdess-recording":
        clips = sorted((data_root / "RAVDESS_speech_audio" / "Actor_01").glob("*.wav"))[::8][:8]
        recording = work / "ravdess-8-clips.wav"
        _join(clips, recording)
        inputs = [recording]
        docs = [predict(recording, work / name, with_llm).document]
        details = {"clips": len(clips), "segments": len(docs[0]["utterances"]),
                   "transcripts": [u["text"] for u in docs[0]["utterances"]]}
        dataset, kind = "ravdess", "recording (audio, 8 clips joined)"
    elif name == "mer2023":
        inputs = sorted((data_root / "MER2023_example_clips_Emotion-LLaMA" / "examples").glob("*.mp4"))
        docs = [predict(p, work / name / p.stem, with_llm).document for p in inputs]
        pairs, pairs_vanilla, languages = [], [], {}
        for p, d in zip(inputs, docs):
            lang = (d["transcription"] or {}).get("language")
            languages[lang] = languages.get(lang, 0) + 1
            gold = MER_6WAY.get(MER_LABELS.get(p.stem, ""))
            if gold:   # the clip's one utterance (or its longest segment) stands for the clip
                u = max(d["utterances"], key=lambda u: len(u["text"]))
                pairs.append((gold, u["final"]))
                pairs_vanilla.append((gold, u["vanilla"]["label"]))
        details = {"clips": len(inputs), "languages": languages,
                   "segments": sum(len(d["utterances"]) for d in docs),
                   "refined_vs_label": _scored(pairs), "vanilla_vs_label": _scored(pairs_vanilla)}
        dataset, kind = "mer2023", "recording (video, Mandarin)"
    else:
        raise SystemExit(f"unknown case {name}")
    return _result(name, dataset, kind, docs, details)


STARTUP_TURN = {"speaker": "A", "text": "I don't even know where to start."}


def startup_case(models: list[str], repeats: int, work: Path) -> dict:
    """``lantern predict`` as a user starts it, on one turn (see the module), per model."""
    import os

    from lantern.evaluation.results import git_commit, peak_memory_mb
    from lantern.models.base import library_versions
    from lantern.paths import cache_dir

    turn = work / "one-turn.jsonl"
    turn.write_text(json.dumps(STARTUP_TURN) + "\n", encoding="utf-8")
    runs: dict[str, dict[str, list]] = {m: {"seconds": [], "peak_memory_mb": []} for m in models}
    for i in range(repeats):
        for model in models:
            cache = work / f"startup-cache-{model}-{i}"
            cache.mkdir(parents=True)
            (cache / "models").symlink_to(cache_dir() / "models")
            env = {**os.environ, "LANTERN_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "2",
                   "MKL_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"}
            cmd = [sys.executable, "-m", "lantern.cli", "predict", str(turn), "--llm", "off",
                   "--no-progress", "--model", model, "--out", str(work / f"startup-out-{model}-{i}")]
            with open(work / "startup.log", "ab") as log:
                start = time.perf_counter()
                proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
                _, status, usage = os.wait4(proc.pid, 0)   # this child's own peak memory
                seconds = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                raise SystemExit(f"startup: {' '.join(cmd)} exited {proc.returncode}; see {work / 'startup.log'}")
            runs[model]["seconds"].append(round(seconds, 3))
            runs[model]["peak_memory_mb"].append(round(usage.ru_maxrss / 1024))
    summary = {m: {**r, "mean": float(np.mean(r["seconds"])), "std": float(np.std(r["seconds"], ddof=1))
                   if len(r["seconds"]) > 1 else 0.0} for m, r in runs.items()}
    return {
        "dataset": "example", "label_set": "6way", "split": "all", "n_utterances": 1,
        "model": models[0], "method": "predict-startup", "variant": "startup", "features": {},
        "selection_split": "valid", "seeds": [0],
        "metrics": {"accuracy": {"mean": None, "std": None}, "weighted_f1": {"mean": None, "std": None}},
        "startup": summary, "train_seconds": 0.0, "peak_memory_mb": peak_memory_mb(),
        "git_commit": git_commit(), "versions": library_versions(),
        "config": {"case": "startup", "input": STARTUP_TURN, "llm": "off", "repeats": repeats,
                   "models": models, "threads": 2, "feature_cache": "fresh per run"},
    }


def _emotion_llama_case(name: str, data_root: Path, work: Path, model: str | None) -> dict:
    from lantern.predict import PredictSettings, predict
    from lantern.predict.pretrained import default_model

    model = model or default_model("emotion-llama")
    settings = PredictSettings(model=model, system="emotion-llama", progress=False)
    if name == "emotion-llama-ravdess":
        inputs = [data_root / "RAVDESS_speech_16k" / a for a in ("Actor_15", "Actor_16")]
        docs = [predict(p, work / name / p.name, settings).document for p in inputs]
        y, p, by_label = [], [], {}
        classes = docs[0]["classes"]
        for d in docs:
            for u in d["utterances"]:
                gold = RAVDESS_EMOTIONS[Path(next(iter(u["media"].values()))).stem.split("-")[2]]
                y.append(classes.index(gold))
                p.append(classes.index(u["final"]))
                by_label.setdefault(gold, {}).setdefault(u["final"], 0)
                by_label[gold][u["final"]] += 1
        from lantern.evaluation.metrics import classification_report

        report = classification_report(y, p, classes)
        scored = {k: report[k] for k in ("accuracy", "weighted_f1", "uar")}
        details = {"emotion_vs_label": {"n": len(y), **scored}, "predicted_by_gold_label": by_label}
        dataset, kind = "ravdess", "folder of clips (audio), test actors 15-16"
    elif name == "emotion-llama-mer2023":
        # One folder input: a model that normalises per speaker needs 4 clips of a speaker, and
        # a folder is read as one speaker, so the six people are normalised together (stated).
        folder = data_root / "MER2023_example_clips_Emotion-LLaMA" / "examples"
        docs = [predict(folder, work / name, settings).document]
        utts = docs[0]["utterances"]
        details = {"clips": len(utts), "input": "the folder of clips, read as one speaker",   # counts only (MER2023 EULA)
                   "with_reason": sum(bool(u["reason"]) for u in utts),
                   "reason_words_mean": sum(len((u["reason"] or "").split()) for u in utts) / max(len(utts), 1),
                   "distinct_labels": len({u["final"] for u in utts})}
        dataset, kind = "mer2023", "folder of clips (video, Mandarin; voice and words)"
    else:
        raise SystemExit(f"unknown case {name}")
    result = _result(name, dataset, kind, docs, details)
    result["label_set"] = docs[0]["model"].get("trained_on", "").split(" ")[-1] or None
    result["system"] = "emotion-llama"
    return result


def _join(clips: list[Path], out: Path) -> None:
    """One 16 kHz mono recording of the clips with 1 s of silence after each."""
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    filters = []
    for i, c in enumerate(clips):
        args += ["-i", str(c)]
        filters.append(f"[{i}:a]aresample=16000,pan=mono|c0=c0,apad=pad_dur=1[a{i}]")
    chain = ";".join(filters) + ";" + "".join(f"[a{i}]" for i in range(len(clips)))
    chain += f"concat=n={len(clips)}:v=0:a=1[out]"
    subprocess.run(args + ["-filter_complex", chain, "-map", "[out]", str(out)], check=True)


def _result(name: str, dataset: str, kind: str, docs: list[dict], details: dict) -> dict:
    from lantern.evaluation.results import git_commit, peak_memory_mb
    from lantern.models.base import library_versions

    scored = details.get("emotion_vs_label") or details.get("refined_vs_label") or {}
    metric = lambda k: {"mean": scored.get(k), "std": None}   # noqa: E731 (one run, no seeds)
    timing = _timings(docs)
    return {
        "dataset": dataset, "label_set": "6way", "split": "all", "n_utterances": timing["utterances"],
        "model": docs[0]["model"]["name"], "method": "predict", "variant": name,
        "features": docs[0]["model"]["features"], "selection_split": "valid", "seeds": [0],
        "metrics": {"accuracy": metric("accuracy"), "weighted_f1": metric("weighted_f1")},
        "input_kind": kind, "inputs": len(docs), "timings": timing, "llm": _llm_totals(docs),
        "transcription_model": next(((d["transcription"] or {}).get("model") for d in docs
                                     if d["transcription"]), None),
        "details": details, "train_seconds": 0.0, "peak_memory_mb": peak_memory_mb(),
        "git_commit": git_commit(), "versions": library_versions(),
        "config": {"case": name, "llm": (docs[0]["llm"] or {}).get("model"),
                   "window": 6, "stride": 2, "threads": 2},
    }


def main(argv=None) -> int:
    from lantern.evaluation.results import write_result
    from lantern.paths import data_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="example-off,example-llm,ravdess,ravdess-recording,mer2023")
    parser.add_argument("--data-root")
    parser.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--emotion-llama-model", help="a saved emotion-llama model (emotion-llama-* cases; default: the shipped one)")
    parser.add_argument("--startup-models", default="",
                        help="the startup case's models, comma-separated (default: the shipped default, iemocap-6way-text)")
    parser.add_argument("--repeats", type=int, default=4, help="runs per model of the startup case")
    parser.add_argument("--model", help="the vanilla model of the other cases (default: the shipped default); "
                                        "its name is added to the result file's name")
    args = parser.parse_args(argv)
    root = data_root(args.data_root)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        for case in args.cases.split(","):
            start = time.perf_counter()
            if case == "startup":
                from lantern.predict.pretrained import DEFAULT_MODEL

                models = [m for m in args.startup_models.split(",") if m] or [DEFAULT_MODEL, "iemocap-6way-text"]
                result = startup_case(models, args.repeats, Path(tmp))
                path = write_result(result, args.results_dir, name="predict-startup")
                print("startup: " + ", ".join(f"{m} {r['mean']:.2f} ± {r['std']:.2f} s, {max(r['peak_memory_mb'])} MB"
                                              for m, r in result["startup"].items()) + f" -> {path}", flush=True)
                continue
            result = run_case(case, root, Path(tmp), args.emotion_llama_model, args.model)
            suffix = f"-{Path(args.model).name}" if args.model and not case.startswith("emotion-llama-") else ""
            path = write_result(result, args.results_dir, name=f"predict-{case}{suffix}")
            spu = result["timings"]["seconds_per_utterance"]
            print(f"{case}: {result['n_utterances']} utterances, "
                  + ", ".join(f"{s} {spu[s]:.2f}" for s in STAGES)
                  + f" s/utt; details {json.dumps(result['details'])[:300]}; {time.perf_counter() - start:.0f} s -> {path}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())

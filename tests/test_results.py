"""Result files, seed summaries, BENCHMARKS.md rendering and the confusion-matrix PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lantern.evaluation.benchmarks_md import check_benchmarks, render_benchmarks, write_benchmarks
from lantern.evaluation.plots import save_confusion_png
from lantern.evaluation.results import (REQUIRED_KEYS, git_commit, load_results, peak_memory_mb,
                                        result_slug, summarise_seeds, write_result)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_benchmarks.py"


def _result(**overrides) -> dict:
    r = {
        "dataset": "iemocap", "label_set": "iemocap6", "split": "test", "n_utterances": 1623,
        "model": "dialoguernn", "method": "vanilla", "variant": "base",
        "features": ["text:minilm", "audio:egemaps"], "selection_split": "valid",
        "seeds": [0, 1, 2],
        "metrics": {"accuracy": {"mean": 58.1234, "std": 0.3367, "per_seed": [58.0, 57.9, 58.5]},
                    "weighted_f1": {"mean": 57.4, "std": 0.21, "per_seed": [57.2, 57.4, 57.6]}},
        "train_seconds": 123.45, "peak_memory_mb": 812.6,
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "config": {"lr": 1e-3}, "versions": {"numpy": np.__version__},
    }
    r.update(overrides)
    return r


# --------------------------------------------------------------------- write_result

def test_write_result_lists_missing_keys(tmp_path):
    bad = _result()
    del bad["seeds"], bad["git_commit"]
    with pytest.raises(ValueError) as e:
        write_result(bad, tmp_path)
    assert "seeds" in str(e.value) and "git_commit" in str(e.value)
    assert "dataset" not in str(e.value)
    with pytest.raises(ValueError, match="metrics.weighted_f1.std"):
        write_result(_result(metrics={"accuracy": {"mean": 1, "std": 0},
                                      "weighted_f1": {"mean": 1}}), tmp_path)
    with pytest.raises(ValueError, match="metrics.accuracy"):
        write_result(_result(metrics={"weighted_f1": {"mean": 1, "std": 0}}), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_write_result_atomic_json(tmp_path):
    original = _result(extra=np.float32(0.5), nan_value=float("nan"), shape=(2, 3))
    before = json.dumps(original, default=str)
    path = write_result(original, tmp_path / "results")
    assert path == tmp_path / "results" / "iemocap-iemocap6-dialoguernn-vanilla-base.json"
    assert [p.name for p in path.parent.iterdir()] == [path.name]   # no temp files left
    assert json.dumps(original, default=str) == before              # input not mutated
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(REQUIRED_KEYS) <= set(data)
    assert data["created"].endswith("+00:00")
    assert data["extra"] == 0.5 and data["nan_value"] is None and data["shape"] == [2, 3]
    named = write_result(_result(), tmp_path / "results", name="custom.json")
    assert named.name == "custom.json"
    with pytest.raises(ValueError, match="invalid result name"):
        write_result(_result(), tmp_path, name="../escape")
    loaded = load_results(tmp_path / "results")
    assert [r["_file"] for r in loaded] == ["custom.json", path.name]
    assert load_results(tmp_path / "absent") == []


def test_result_slug_is_filesystem_safe():
    slug = result_slug(_result(dataset="MELD", variant="llm/gpt 4", method="Lantern"))
    assert slug == "meld-iemocap6-dialoguernn-lantern-llm_gpt_4"


def test_load_results_rejects_broken_json(tmp_path):
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json"):
        load_results(tmp_path)


# ------------------------------------------------------------------------ provenance

def test_git_commit_and_memory(tmp_path):
    assert git_commit(tmp_path) == "unknown"                 # not a repository
    assert git_commit(tmp_path / "absent") == "unknown"
    c = git_commit(REPO)
    if c != "unknown":
        head = c.removesuffix("-dirty")
        assert len(head) == 40 and all(ch in "0123456789abcdef" for ch in head)
    mb = peak_memory_mb()
    assert 1 < mb < 1_000_000


def test_every_committed_result_and_shipped_card_names_a_clean_commit():
    """A number is reproducible only from the commit it names: a ``-dirty`` (or unknown)
    commit says the code that made it was never committed."""
    import re

    clean = re.compile(r"[0-9a-f]{40}")
    bad = [r["_file"] for r in load_results(REPO / "benchmarks" / "results")
           if not clean.fullmatch(str(r.get("git_commit")))]
    assert not bad, f"rerun these at a clean commit: {bad}"
    cards = sorted((REPO / "src" / "lantern" / "pretrained").glob("*/README.md"))
    assert cards and not [c for c in cards if "-dirty" in c.read_text(encoding="utf-8")]


# ------------------------------------------------------------------------- summaries

def test_summarise_seeds():
    runs = [{"seed": 0, "accuracy": 58.0, "weighted_f1": 57.0, "per_class_f1": {"neu": 50.0},
             "confusion_matrix": [[1]]},
            {"seed": 1, "accuracy": 60.0, "weighted_f1": 57.5, "per_class_f1": {"neu": 54.0},
             "confusion_matrix": [[2]]},
            {"seed": 2, "accuracy": 61.0, "weighted_f1": 59.0, "per_class_f1": {"neu": 52.0},
             "confusion_matrix": [[3]]}]
    s = summarise_seeds(runs)
    assert set(s) == {"accuracy", "weighted_f1", "per_class_f1"}
    acc = np.array([58.0, 60.0, 61.0])
    assert s["accuracy"]["mean"] == pytest.approx(acc.mean())
    assert s["accuracy"]["std"] == pytest.approx(acc.std(ddof=1))
    assert s["accuracy"]["per_seed"] == [58.0, 60.0, 61.0]
    assert s["per_class_f1"]["neu"]["mean"] == pytest.approx(52.0)
    assert s["per_class_f1"]["neu"]["std"] == pytest.approx(2.0)
    one = summarise_seeds([{"accuracy": 55.5, "weighted_f1": 54.0}])
    assert one["accuracy"] == {"mean": 55.5, "std": 0.0, "per_seed": [55.5]}
    with pytest.raises(ValueError, match="at least one"):
        summarise_seeds([])
    with pytest.raises(ValueError, match="missing"):
        summarise_seeds([{"accuracy": 1.0}, {"weighted_f1": 1.0}])


# --------------------------------------------------------------------- BENCHMARKS.md

def _llm_result() -> dict:
    return _result(method="lantern", variant="gpt", metrics={
        "accuracy": {"mean": 61.5, "std": 1.0}, "weighted_f1": {"mean": 60.987, "std": 0.004}},
        gain_vs_vanilla={"accuracy": {"delta": 3.38, "low": 1.2, "high": 5.5},
                         "weighted_f1": {"delta": -0.5, "low": -2.0, "high": 1.0}},
        llm={"calls": 1623, "prompt_tokens": 812345, "completion_tokens": 4567, "seconds": 901.25,
             "cache_hits": 12, "parse_failures": 3},
        confusion_png="benchmarks/results/iemocap-lantern.png")


def test_render_benchmarks_tables():
    text = render_benchmarks([_llm_result(), _result(),
                              _result(dataset="meld", label_set="meld7", seeds=[0])])
    assert "do not edit it by hand" in text and "python scripts/make_benchmarks.py" in text
    assert "58.12 ± 0.34" in text and "57.40 ± 0.21" in text
    assert "61.50 ± 1.00" in text and "60.99 ± 0.00" in text
    assert text.index("## iemocap · iemocap6 · test") < text.index("## meld · meld7 · test")
    iemocap = text.split("## iemocap · iemocap6 · test")[1].split("## meld")[0]
    rows = [line for line in iemocap.splitlines() if line.startswith("| dialoguernn")]
    assert len(rows) == 1 and "| vanilla |" in rows[0]
    assert "| text:minilm+audio:egemaps |" in rows[0] and "| 0123456 |" in rows[0]
    assert "| 3 | 1623 | valid | 123.5 | 813 |" in rows[0]
    # Lantern results have their own section: gains with intervals and LLM cost per utterance.
    lantern = text.split("## Lantern (LLM refinement)")[1]
    row = next(line for line in lantern.splitlines() if line.startswith("| dialoguernn | gpt"))
    assert "+3.38 [+1.20, +5.50]" in row and "-0.50 [-2.00, +1.00]" in row and "61.50 ± 1.00" in row
    # Gain/LLM columns only where some row has them.
    meld = text.split("## meld · meld7 · test")[1].split("## Lantern")[0]
    assert "Δ accuracy" not in meld and "LLM calls" not in meld
    assert "| 1 | 1623 |" in meld
    # Each table row has as many cells as its header.
    for block in text.replace("\n### ", "\n## ").split("\n## ")[1:]:
        table = [line for line in block.splitlines() if line.startswith("|")]
        if table:   # (the Lantern section's heading holds only its explanation)
            assert len({line.count(" | ") for line in table if not line.startswith("|---")}) == 1


def _cross(wf1: float) -> dict:
    return {"weighted_f1": {"mean": wf1, "std": 0.5}, "accuracy": {"mean": wf1 + 1, "std": 0.25},
            "classes": ["neutral", "joy"], "scored": 10, "left_out": 1}


def test_render_cross_corpus_table():
    mix = _result(dataset="mix", label_set="shared7", train_dataset="iemocap+meld", cross_corpus={
        "iemocap": {"valid": _cross(1.0), "test": _cross(60.0)}, "meld": {"test": _cross(50.0)}})
    alone = _result(train_dataset="iemocap", cross_corpus={"iemocap": {"test": _cross(62.0)},
                                                           "meld": {"test": _cross(40.0)}})
    text = render_benchmarks([mix, alone, _result(model="dialoguegcn")])
    table = text.split("## Cross-corpus")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| iemocap")]
    assert [r.split(" | ")[0] for r in rows] == ["| iemocap", "| iemocap+meld"]   # no row without cross_corpus
    assert "| 62.00 ± 0.50 | 40.00 ± 0.50 | 63.00 ± 0.25 | 41.00 ± 0.25 | 51.00 |" in rows[0]
    assert "| 60.00 ± 0.50 | 50.00 ± 0.50 |" in rows[1] and "| 55.00 |" in rows[1]
    assert "iemocap wF1 | meld wF1 | iemocap acc | meld acc | mean wF1" in table
    assert "- meld: scored on neutral, joy" in table


def test_render_predict_startup_table():
    startup = _result(method="predict-startup", variant="startup", startup={
        "mix-6way-text-dialogue": {"seconds": [3.0, 3.5], "peak_memory_mb": [2000, 2100], "mean": 3.25, "std": 0.354},
        "iemocap-6way-text": {"seconds": [2.0, 2.2], "peak_memory_mb": [300, 310], "mean": 2.1, "std": 0.141}})
    text = render_benchmarks([startup, _result()])
    table = text.split("## lantern predict · start-up")[1]
    assert "| mix-6way-text-dialogue | 2 | 3.25 ± 0.35 | 2100 |" in table
    assert "| iemocap-6way-text | 2 | 2.10 ± 0.14 | 310 |" in table
    assert "predict-startup" not in text.split("## lantern predict · start-up")[0]   # not a vanilla row


def test_render_benchmarks_is_deterministic():
    results = [_llm_result(), _result(), _result(split="valid"), _result(model="dialoguegcn")]
    assert render_benchmarks(results) == render_benchmarks(list(reversed(results)))
    assert "No results yet" in render_benchmarks([])


def test_write_and_check_benchmarks(tmp_path):
    results_dir, out = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    write_result(_result(), results_dir)
    assert not check_benchmarks(results_dir, out)
    write_benchmarks(results_dir, out)
    assert check_benchmarks(results_dir, out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_script_check_detects_staleness(tmp_path):
    results_dir, out = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    write_result(_result(), results_dir)
    paths = ["--results-dir", str(results_dir), "--out", str(out)]

    assert _script(*paths, "--check").returncode == 1            # missing
    done = _script(*paths)
    assert done.returncode == 0, done.stderr
    assert "58.12 ± 0.34" in out.read_text(encoding="utf-8")
    assert _script(*paths, "--check").returncode == 0            # fresh

    write_result(_llm_result(), results_dir)                     # a new result arrives
    stale = _script(*paths, "--check")
    assert stale.returncode == 1 and "out of date" in stale.stderr
    assert _script(*paths).returncode == 0
    assert _script(*paths, "--check").returncode == 0

    out.write_text(out.read_text(encoding="utf-8") + "hand edit\n", encoding="utf-8")
    assert _script(*paths, "--check").returncode == 1


# ------------------------------------------------------------------------------ plot

def test_confusion_png(tmp_path):
    cm = [[50, 3, 0], [4, 20, 1], [0, 0, 0]]          # an empty row must not break normalising
    path = save_confusion_png(cm, ["neu", "ang", "sad"], tmp_path / "plots" / "cm.png",
                              title="IEMOCAP test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100 and height > 100
    assert data[-8:-4] == b"IEND"
    assert [p.name for p in path.parent.iterdir()] == ["cm.png"]
    with pytest.raises(ValueError, match="class names"):
        save_confusion_png(cm, ["a", "b"], tmp_path / "x.png")


def test_paired_delta_reads_a_mixed_run_on_one_of_its_corpora(tmp_path, capsys):
    """scripts/paired_delta.py --b-corpus: B, trained on a mix, is scored on corpus NAME from
    its evaluate_on predictions against A trained on NAME alone; both scored seed by seed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("paired_delta", REPO / "scripts" / "paired_delta.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def rows(right: int) -> str:   # 4 utterances of class a/b; the first `right` predicted right
        gold = ["a", "b", "a", "b"]
        return "".join(json.dumps({"utterance_id": f"u{i}", "label": g,
                                   "probs": {"a": 0.9, "b": 0.1} if (g == "a") == (i < right) else {"a": 0.1, "b": 0.9}})
                       + "\n" for i, g in enumerate(gold))

    for run, folder, right in (("A", "predictions", 2), ("B", "cross_corpus/ravdess", 4)):
        for seed in (0, 1):
            path = tmp_path / run / f"seed{seed}" / folder / "test.jsonl"
            path.parent.mkdir(parents=True)
            path.write_text(rows(right))
    result = tmp_path / "b.json"
    result.write_text("{}")
    assert script.main([str(tmp_path / "A"), str(tmp_path / "B"), "--b-corpus", "ravdess", "--a-seeds", "each",
                        "--into", str(result), "--key", "vs A"]) == 0
    saved = json.loads(result.read_text())["paired_bootstrap"]["vs A"]
    assert saved["b_corpus"] == "ravdess" and saved["n"] == 4 and saved["accuracy"]["delta"] == pytest.approx(50.0)
    assert saved["scores"]["a"]["accuracy"] == {"per_seed": [50.0, 50.0], "mean": 50.0, "std": 0.0}
    assert saved["scores"]["b"]["weighted_f1"]["mean"] == 100.0
    with pytest.raises(SystemExit, match="no seed\\*/cross_corpus/meld"):
        script.main([str(tmp_path / "A"), str(tmp_path / "B"), "--b-corpus", "meld"])

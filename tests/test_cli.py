"""The ``lantern`` command line, end to end on a few real dialogues."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, require_data
from lantern.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "lantern" in capsys.readouterr().out


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "iemocap" in out and "4way-drop" in out


def test_unknown_dataset_is_a_clear_error(capsys):
    assert main(["data", "show", "nosuch"]) == 2
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err


def test_missing_config_is_a_clear_error(capsys, tmp_path):
    assert main(["train", str(tmp_path / "absent.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.data
def test_data_show_iemocap(capsys, data_root):
    require_data("IEMOCAP_ERC_joined/iemocap_erc_utterances.csv")
    assert main(["data", "show", "iemocap", "--label-set", "4way-merge", "--data-root", str(data_root),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"]["test"]["utterances"] == 1241
    assert summary["splits"]["train"]["label_counts"]["hap"] == 993


@pytest.mark.data
def test_train_evaluate_export(tmp_path, capsys, data_root):
    require_data("IEMOCAP_ERC_joined/iemocap_erc_utterances.csv")
    run = tmp_path / "run"
    assert main(["train", str(REPO / "configs" / "iemocap-context.yaml"), "--limit", "2",
                 "--set", "seeds=[0]", "--set", "training.epochs=2", "--set", f"output_dir={run}",
                 "--data-root", str(data_root), "--no-results", "--no-progress"]) == 0
    assert "weighted F1" in capsys.readouterr().out
    model_dir = run.with_name("run-limit2") / "seed0" / "model"
    assert main(["evaluate", str(model_dir), "--limit", "2", "--data-root", str(data_root),
                 "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"test"} and 0 <= report["test"]["weighted_f1"] <= 100
    assert main(["export", str(model_dir), "--limit", "1", "--data-root", str(data_root),
                 "--out", str(tmp_path / "preds"), "--no-progress"]) == 0
    rows = (tmp_path / "preds" / "valid.jsonl").read_text().splitlines()
    assert len(json.loads(rows[0])["vad"]) == 3


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "lantern.cli", "data", "list"], capture_output=True,
                         text=True, check=True)
    assert "meld" in out.stdout


def test_benchmarks_md_is_generated_from_the_committed_results():
    assert main(["benchmarks", "--check", "--results-dir", str(REPO / "benchmarks" / "results"),
                 "--out", str(REPO / "BENCHMARKS.md")]) == 0


def test_limited_runs_write_no_benchmark_result_unless_asked():
    from argparse import Namespace

    from lantern.cli import _results_dir
    assert _results_dir(Namespace(no_results=False, limit=2, results_dir=None)) is None
    assert _results_dir(Namespace(no_results=False, limit=2, results_dir="out")) == "out"
    assert _results_dir(Namespace(no_results=False, limit=None, results_dir=None)) == "benchmarks/results"
    assert _results_dir(Namespace(no_results=True, limit=None, results_dir="out")) is None


def test_committed_results_link_figures_inside_the_repository():
    """A result copied in from a worktree once kept its absolute /work/... figure path, which
    BENCHMARKS.md then linked (scripts/import_results.py rewrites it)."""
    import json

    for path in sorted((REPO / "benchmarks" / "results").glob("*.json")):
        png = json.loads(path.read_text()).get("confusion_png")
        if png:
            assert png.startswith("benchmarks/results/") and (REPO / png).exists(), (path.name, png)

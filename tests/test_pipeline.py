"""The Lantern pipeline end to end with a real embedded LLM (SmolLM2-135M) on a few dialogues:
vanilla model -> receptive fields -> prompts -> LLM -> fusion -> result files; and resume."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, Counting, InterruptAfter, require_data
from lantern.config import load_config
from lantern.pipeline import run_pipeline

VARIANTS = ["vanilla-only", "llm-only", "uniform", "product", "position", "attention"]


def config(tmp_path, data_root, *extra):
    return load_config(REPO / "configs" / "lantern-iemocap.yaml", [
        f"output_dir={tmp_path / 'run'}", f"llm_cache={tmp_path / 'llm.sqlite'}",
        f"answers_root={tmp_path / 'answers'}",
        "llm.model=smollm2-135m", "fields.window=4", "fields.stride=2", "prompt.max_retries=1",
        "vanilla.config=iemocap-context.yaml",
        f"vanilla.overrides=[dataset.label_set=4way-drop, training.epochs=2, 'dataset.data_root={data_root}']",
        # every selection path, on a budget: 2 folds, short fits
        "fusion.options={position: {guard_folds: 2, max_epochs: 40}, attention: {guard_folds: 2, max_epochs: 40}}",
        *extra])


def requests_made(folder):
    return sum(json.loads((folder / f"{s}.summary.json").read_text())["fields"] + 1   # + content-free
               for s in ("valid", "test"))


@pytest.mark.data
@pytest.mark.slow
def test_pipeline_end_to_end_and_resume_without_repeating_calls(tmp_path, data_root, smol):
    """Log-probability answers (the default): killed after 3 requests, resumed without
    repeating one, rerun with none, and fusion rebuilt from the answer folder alone."""
    require_data("IEMOCAP_ERC_joined/iemocap_erc_utterances.csv")
    cfg = config(tmp_path, data_root)
    results_dir = tmp_path / "results"
    folder = tmp_path / "run" / "answers-limit1"

    # A run killed after 3 LLM calls ...
    killed = InterruptAfter(smol, 3)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, limit=1, progress=False, results_dir=results_dir, llm=killed)
    # (one of the 3 was the prompt-speed check taken at the start of the run)
    stored = killed.slot_calls
    assert stored == 2 and len((folder / "valid.jsonl").read_text().splitlines()) == 1 + stored
    # ... resumes: the stored answers come from the answer file, the rest are asked once.
    counting = Counting(smol)
    first = run_pipeline(cfg, limit=1, progress=False, results_dir=results_dir, llm=counting)
    assert [r["variant"] for r in first] == [v + "-t2" for v in VARIANTS]
    assert counting.slot_calls == requests_made(folder) - stored

    llm_block = first[0]["llm"]
    assert llm_block["t"] == 2 and llm_block["answer"] == "logprobs" and llm_block["fields"] > 0
    assert llm_block["model"].startswith("smollm2-135m@") and llm_block["decode_steps_per_utterance"] > 0
    for r in first:
        assert r["method"] == "lantern" and r["selection_split"] == "valid"
        assert r["calibration"]["chosen"] in ("none", "batch", "contextual")
        assert (results_dir / f"iemocap-4way-drop-context-lantern-{r['variant']}-limit1.json").exists()
    assert first[5]["seeds"] == [0, 1, 2] and len(first[5]["metrics"]["accuracy"]["per_seed"]) == 3
    assert "2-fold" in first[5]["merger_state"][0]["guard"]["judged_on"]
    # vanilla-only reproduces the vanilla model: zero gain by construction.
    assert first[0]["gain_vs_vanilla"]["accuracy"]["delta"] == 0

    # A complete rerun asks nothing and reproduces every number.
    again = Counting(smol)
    second = run_pipeline(cfg, limit=1, progress=False, results_dir=results_dir, llm=again)
    assert again.calls == 0
    assert [r["metrics"] for r in second] == [r["metrics"] for r in first]

    # Fusion from the answer folder alone, in a process where llama_cpp cannot be imported
    # and without the vanilla model's run folder.
    import shutil
    import subprocess
    import sys
    shutil.rmtree(tmp_path / "run" / "vanilla")
    code = ("import sys; sys.modules['llama_cpp'] = None\n"
            "from lantern.cli import main\n"
            "sys.exit(main(sys.argv[1:]))")
    overrides = [a for o in [f"output_dir={tmp_path / 'run'}", f"answers_root={tmp_path / 'answers'}",
                             "llm.model=smollm2-135m", "fields.window=4", "fields.stride=2",
                             "vanilla.config=iemocap-context.yaml",
                             "vanilla.overrides=[dataset.label_set=4way-drop]",
                             "fusion.options={position: {guard_folds: 2, max_epochs: 40}, "
                             "attention: {guard_folds: 2, max_epochs: 40}}"] for a in ("--set", o)]
    out = subprocess.run([sys.executable, "-c", code, "fuse", str(REPO / "configs" / "lantern-iemocap.yaml"),
                          *overrides, "--limit", "1", "--results-dir", str(tmp_path / "rebuilt")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    for r in first:
        rebuilt = json.loads((tmp_path / "rebuilt" / f"iemocap-4way-drop-context-lantern-{r['variant']}-limit1.json").read_text())
        assert rebuilt["metrics"] == r["metrics"]


@pytest.mark.data
@pytest.mark.slow
def test_pipeline_written_percents(tmp_path, data_root, smol):
    """The written-percent mode (endpoints without log-probabilities) end to end."""
    require_data("IEMOCAP_ERC_joined/iemocap_erc_utterances.csv")
    cfg = config(tmp_path, data_root, "prompt.answer=percent", "fields.window=2", "fields.stride=2",
                 "fusion.variants=[vanilla-only, uniform, attention]", "fusion.seeds=[0]")
    results = run_pipeline(cfg, limit=1, progress=False, llm=smol)
    assert [r["variant"] for r in results] == ["vanilla-only-t1", "uniform-t1", "attention-t1"]
    assert results[1]["llm"]["answer"] == "percent" and results[1]["calibration"]["chosen"] == "none"
    summary = json.loads((tmp_path / "run" / "answers-limit1" / "test.summary.json").read_text())
    assert summary["class_order"] == "rotate" and summary["fields"] > 0

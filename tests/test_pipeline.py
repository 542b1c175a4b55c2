"""The Lantern pipeline end to end with a real embedded LLM (SmolLM2-135M) on a few dialogues:
vanilla model -> receptive fields -> prompts -> LLM -> fusion -> result files; and resume."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, require_data
from lantern.config import load_config
from lantern.llm import get_llm
from lantern.llm.base import LLM
from lantern.pipeline import run_pipeline
from test_llm import require_llm_runtime

VARIANTS = ["vanilla-only", "llm-only", "uniform", "position", "attention"]


class InterruptAfter(LLM):
    """Delegates to a real LLM and raises KeyboardInterrupt on call ``n + 1`` (a kill)."""

    backend = "embedded"

    def __init__(self, llm, n):
        self.llm, self.n, self.calls = llm, n, 0

    @property
    def model_id(self):
        return self.llm.model_id

    def cache_identity(self):
        return self.llm.cache_identity()

    def chat(self, request):
        if self.calls >= self.n:
            raise KeyboardInterrupt
        self.calls += 1
        return self.llm.chat(request)


class Counting(InterruptAfter):
    def __init__(self, llm):
        super().__init__(llm, 10**9)


@pytest.fixture(scope="module")
def smol():
    require_llm_runtime()
    llm = get_llm("embedded", "smollm2-135m", n_ctx=2048)
    yield llm
    llm.close()


def config(tmp_path, data_root):
    return load_config(REPO / "configs" / "lantern-iemocap.yaml", [
        f"output_dir={tmp_path / 'run'}", f"llm_cache={tmp_path / 'llm.sqlite'}",
        "llm.model=smollm2-135m", "fields.window=4", "fields.stride=2", "prompt.max_retries=1",
        "vanilla.config=iemocap-context.yaml",
        f"vanilla.overrides=[dataset.label_set=4way-drop, training.epochs=2, 'dataset.data_root={data_root}']"])


@pytest.mark.data
@pytest.mark.slow
def test_pipeline_end_to_end_and_resume_without_repeating_calls(tmp_path, data_root, smol):
    require_data("IEMOCAP_ERC_joined/iemocap_erc_utterances.csv")
    cfg = config(tmp_path, data_root)
    results_dir = tmp_path / "results"

    # A run killed after 3 LLM calls ...
    killed = InterruptAfter(smol, 3)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, limit=1, progress=False, results_dir=results_dir, llm=killed)
    # ... resumes: the 3 answered calls come from the cache, the rest are asked once.
    counting = Counting(smol)
    first = run_pipeline(cfg, limit=1, progress=False, results_dir=results_dir, llm=counting)
    assert [r["variant"] for r in first] == VARIANTS
    total_requests = sum(json.loads((tmp_path / "run" / "answers" / f"{s}.summary.json").read_text())["requests"]
                         for s in ("valid", "test"))
    assert counting.calls == total_requests - 3

    llm_block = first[0]["llm"]
    assert llm_block["t"] == 2 and llm_block["calls"] > 0
    assert llm_block["model"].startswith("smollm2-135m@")
    for r in first:
        assert r["method"] == "lantern" and r["selection_split"] == "valid"
        assert (results_dir / f"iemocap-4way-drop-context-lantern-{r['variant']}-limit1.json").exists()
    # vanilla-only reproduces the vanilla model: zero gain by construction.
    assert first[0]["gain_vs_vanilla"]["accuracy"]["delta"] == 0

    # A complete rerun asks nothing and reproduces every number.
    again = Counting(smol)
    second = run_pipeline(cfg, limit=1, progress=False, results_dir=results_dir, llm=again)
    assert again.calls == 0
    assert [r["metrics"] for r in second] == [r["metrics"] for r in first]
    answers = (tmp_path / "run" / "answers" / "test.jsonl").read_text().splitlines()
    record = json.loads(answers[0])
    assert set(record) >= {"dialogue_id", "utterance_id", "field_id", "relative_position", "probs", "valid"}

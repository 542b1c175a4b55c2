"""The Lantern pipeline from one YAML config: vanilla model -> refine -> fuse -> results.

``lantern run CONFIG`` runs every stage; ``lantern refine`` and ``lantern fuse`` run one.
Each stage writes its outputs atomically under ``output_dir`` and skips work already done;
LLM answers are kept in the run's answer files (and the SQLite cache) as they arrive, so
killing a run at any moment and starting it again repeats no LLM call and gives the same
result.

- :mod:`.settings`: what a config names (run folder, vanilla model, LLM, answers folder).
- :mod:`.vanilla`: stage 1, the vanilla predictions and the copy pinned beside the answers.
- :mod:`.refine_stage`: stage 2, LLM answers per split in chunks, with their costs.
- :mod:`.fuse`: stage 3, mergers selected and fitted on validation, one result each on test.
"""

from __future__ import annotations

from pathlib import Path

from lantern.pipeline.fuse import answer_records, fusion_inputs, select_on_validation, stage_fuse
from lantern.pipeline.refine_stage import CONTENT_FREE, speed_check, stage_refine
from lantern.pipeline.settings import (FUSION_SPLIT, answers_dir, make_llm, output_dir,
                                       refine_settings, run_slug, vanilla_config, vanilla_name)
from lantern.pipeline.vanilla import pin_vanilla, stage_vanilla

__all__ = ["CONTENT_FREE", "FUSION_SPLIT", "answer_records", "answers_dir", "fusion_inputs",
           "make_llm", "output_dir", "pin_vanilla", "refine_settings", "run_pipeline", "run_slug",
           "select_on_validation", "speed_check", "stage_fuse", "stage_refine", "stage_vanilla",
           "vanilla_config", "vanilla_name"]


def run_pipeline(cfg: dict, limit: int | None = None, progress: bool = True,
                 results_dir: str | Path | None = None, llm=None,
                 max_fields: int | None = None) -> list[dict]:
    predictions = stage_vanilla(cfg, limit, progress)
    summaries = stage_refine(cfg, predictions, limit=limit, progress=progress, llm=llm,
                             max_fields=max_fields)
    if len(summaries) < 2 or not all(s.get("complete") for s in summaries.values()):
        return []   # a chunk of a long run: fuse once every split is answered
    return stage_fuse(cfg, predictions, limit=limit, results_dir=results_dir)

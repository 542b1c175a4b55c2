"""Stage 2: LLM answers for each split, kept in ``answers_dir(cfg)/<split>.jsonl`` as they
arrive, with each invocation's costs beside them (``<split>.runs.jsonl``)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from lantern.llm.base import EMBEDDED
from lantern.paths import atomic_write_text
from lantern.pipeline.settings import (answers_dir, make_llm, refine_settings, shared_pins_dir,
                                       vanilla_config)
from lantern.pipeline.vanilla import pin_vanilla

CONTENT_FREE = "__content_free__"     # dialogue id of the contextual-calibration request


class _ChunkDone(Exception):
    """``max_fields`` new answers were stored: stop here, the next run continues."""


def answer_header(settings, run, llm, split: str, classes, words) -> dict:
    return {"mode": settings.answer, "template_hash": run, "model_id": llm.model_id,
            "split": split, "classes": list(classes), "words": list(words),
            "window": settings.window, "stride": settings.stride, "t": settings.t,
            "include_refs": settings.include_refs, "include_vad": settings.include_vad}


def speed_check(llm) -> dict:
    """Prompt tokens/s of this backend measured now (``lantern llm check``'s prompt-heavy
    request), so costs can be stated as a ratio to a speed taken in the same run."""
    from lantern.llm.base import ChatRequest
    from lantern.llm.cli import PROMPT_HEAVY

    heavy = llm.chat(ChatRequest(PROMPT_HEAVY, max_tokens=1))
    return {"prompt_tokens": heavy.prompt_tokens, "seconds": round(heavy.seconds, 3),
            "prompt_tokens_per_s": round(heavy.prompt_tokens / heavy.seconds, 2) if heavy.seconds else None}


def stage_refine(cfg: dict, predictions: Path, splits=("valid", "test"), limit: int | None = None,
                 progress: bool = True, llm=None, max_fields: int | None = None) -> dict:
    """LLM answers for each split, kept in ``answers_dir(cfg)/<split>.jsonl`` as they arrive.

    ``max_fields`` stops after that many new answers (a long run in chunks: each chunk is
    committed, the next continues). Each invocation appends its costs, with a prompt-speed
    check taken in the same process, to ``<split>.runs.jsonl``.
    """
    from lantern.llm.cache import LLMCache

    folder = answers_dir(cfg, limit)
    folder.mkdir(parents=True, exist_ok=True)
    own_llm = llm is None
    llm = llm or make_llm(cfg)
    summaries = {}
    budget = {"left": max_fields}            # new answers this invocation may still ask for
    try:
        with LLMCache(cfg.get("llm_cache")) as cache:
            for split in splits:
                summaries[split] = _refine_split(cfg, predictions, folder, split, limit, llm, cache,
                                                 budget, progress)
                if not summaries[split]["complete"]:
                    break
    finally:
        if own_llm:
            llm.close()
    return summaries


def _split_rows(predictions: Path, folder: Path, split: str, limit: int | None, shared: Path | None = None):
    from lantern.records import group_by_dialogue, read_predictions

    rows = read_predictions(predictions / f"{split}.jsonl")
    if limit is not None:
        keep = {d for d, _ in group_by_dialogue(rows)[:limit]}
        rows = [r for r in rows if r.dialogue_id in keep]
    return pin_vanilla(rows, folder, split, shared if limit is None else None)


def _refine_split(cfg: dict, predictions: Path, folder: Path, split: str, limit, llm, cache,
                  budget: dict, progress: bool) -> dict:
    from lantern.answers import AnswerFile
    from lantern.models.bundle import resolve_label_set
    from lantern.prompts import SlotPromptTemplate
    from lantern.refine import _Run, refine

    settings = refine_settings(cfg)
    vcfg = vanilla_config(cfg)
    # the classes the LLM is asked about are the vanilla model's, whatever the data's are
    label_set_name = vcfg.get("model_label_set") or vcfg["dataset"].get("label_set")
    rows = _split_rows(predictions, folder, split, limit, shared_pins_dir(cfg, vcfg))
    classes = list(rows[0].probs)
    descriptions = resolve_label_set(label_set_name, tuple(classes)).descriptions
    run = _Run(classes, llm, settings, descriptions, None, None)
    words = SlotPromptTemplate(tuple(classes), descriptions).words
    header = answer_header(settings, run.template_hash, llm, split, classes, words)
    with AnswerFile(folder / f"{split}.jsonl", header) as answers:
        check = None
        missing = _count_missing(run, rows, answers)
        if missing and settings.answer == "logprobs" and llm.backend == EMBEDDED:
            check = speed_check(llm)

        def on_answer(_answer, budget=budget):
            if budget["left"] is not None:
                budget["left"] -= 1
                if budget["left"] <= 0:
                    raise _ChunkDone()
        t_start = time.perf_counter()
        try:
            _, summary = refine(rows, classes, llm, settings, descriptions, cache,
                                progress, answers=answers, on_answer=on_answer)
        except _ChunkDone:
            summary = None
        if summary is not None and summary["answer"] == "logprobs":
            ask_content_free(run, rows, answers)
        run_line = _run_line(folder, split, answers, missing, check, summary is not None,
                             time.perf_counter() - t_start)
    if summary is None:
        return {"complete": False, **run_line}
    summary.update(backend=llm.backend, model_id=llm.model_id, split=split,
                   complete=True, speed_check=check, host=platform.node(),
                   label_set=label_set_name)
    summary["cost_vs_speed_check"] = _cost_ratio(folder / f"{split}.runs.jsonl")
    atomic_write_text(folder / f"{split}.summary.json", json.dumps(summary, indent=2))
    return summary


def ask_content_free(run, rows, answers) -> None:
    """One field of "N/A" utterances (references: the split's mean vanilla prediction), the
    prior that contextual calibration divides by (Zhao et al., 2021). Stored with the answers."""
    from lantern.prompts import FieldLine
    from lantern.receptive_fields import ReceptiveField
    from lantern.refine import _Job

    settings, classes = run.settings, run.classes
    mean_p = {c: float(np.mean([r.probs[c] for r in rows])) for c in classes}
    vads = [r.vad for r in rows if r.vad]
    mean_vad = tuple(float(x) for x in np.mean(vads, axis=0)) if vads and settings.include_vad else None
    speakers = sorted({str(r.speaker) for r in rows})[:2] or ["A"]
    lines = [FieldLine(j, speakers[j % len(speakers)], "N/A", mean_p, mean_vad)
             for j in range(settings.window)]
    field = ReceptiveField(CONTENT_FREE, 0, 0, settings.window, False)
    job = _Job(CONTENT_FREE, field, [], lines, run.key_for(CONTENT_FREE, field, lines))
    if job.key not in answers:
        answers.add(run.ask(job))


def _count_missing(run, rows, answers) -> int:
    from lantern.records import group_by_dialogue
    from lantern.refine import field_jobs

    return sum(job.key not in answers for job in field_jobs(run, group_by_dialogue(rows)))


def _run_line(folder: Path, split: str, answers, missing: int, check, complete: bool,
              wall: float) -> dict:
    """Append this invocation's costs (fields it answered, their tokens and seconds, the
    speed check) to ``<split>.runs.jsonl``."""
    new = [answers.get(k) for k in answers.added]
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(),
            "fields_missing_before": missing, "fields_answered": len(new),
            "prompt_tokens": sum(a.prompt_tokens for a in new),
            "reused_prompt_tokens": sum(a.reused_tokens for a in new),
            "decode_steps": sum(a.decode_steps for a in new),
            "fill_tokens": sum(a.completion_tokens for a in new),
            "llm_seconds": round(sum(a.seconds for a in new), 3),
            "wall_seconds": round(wall, 3),
            "speed_check": check, "complete": complete, "fields_total": len(answers)}
    if new:
        with open(folder / f"{split}.runs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
    return line


def _cost_ratio(runs_file: Path) -> dict | None:
    """LLM seconds against what the same tokens cost at each invocation's measured prompt
    speed (summed over invocations), and the share of wall time spent outside the LLM."""
    if not runs_file.exists():
        return None
    runs = [json.loads(x) for x in runs_file.read_text().splitlines() if x.strip()]
    timed = [r for r in runs if (r.get("speed_check") or {}).get("prompt_tokens_per_s")]
    if not timed:
        return None
    expected = sum((r["prompt_tokens"] + r["fill_tokens"]) / r["speed_check"]["prompt_tokens_per_s"]
                   for r in timed)
    llm_s = sum(r["llm_seconds"] for r in timed)
    wall = sum(r["wall_seconds"] for r in timed)
    return {"invocations": len(runs), "timed_invocations": len(timed),
            "llm_seconds": round(llm_s, 2), "token_cost_seconds": round(expected, 2),
            "ratio": round(llm_s / expected, 3) if expected else None,
            "overhead_share": round(max(0.0, 1 - llm_s / wall), 4) if wall else None,
            "prompt_tokens_per_s": [r["speed_check"]["prompt_tokens_per_s"] for r in timed]}

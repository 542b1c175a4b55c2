"""LLM refinement (spec §2-§3): vanilla predictions -> receptive fields -> prompts -> answers.

For each dialogue the utterances are cut into receptive fields (every utterance in exactly
``t = window / stride`` fields); each field is one structured request showing the vanilla
probabilities (and, unless ablated, dimension scores) as references. Answers are validated
and re-asked on error; a field whose answer still fails gets the vanilla probabilities,
marked ``valid: false`` and counted. With an :class:`~lantern.llm.cache.LLMCache` every
answer is stored as it arrives, so an interrupted run resumes without repeating a call.

The output is one record per (utterance, field), the input of :mod:`lantern.fusion`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

from lantern.prompts import SUM_TOLERANCE, AnswerError, FieldLine, PromptTemplate
from lantern.receptive_fields import fields_per_utterance, make_fields, memberships, n_calls


@dataclass
class RefineSettings:
    window: int = 6
    stride: int = 2
    include_vad: bool = True
    max_retries: int = 2
    # Read percents that do not sum to 100 as relative weights (counted as "renormalised")
    # instead of re-asking; see PromptTemplate.parse.
    renormalise: bool = True
    temperature: float = 0.0
    seed: int = 0

    @property
    def t(self) -> int:
        return fields_per_utterance(self.window, self.stride)


def group_by_dialogue(rows: Iterable[dict]) -> list[tuple[str, list[dict]]]:
    """Prediction rows grouped by dialogue (dialogues in order of first appearance, rows by turn)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["dialogue_id"], []).append(r)
    return [(d, sorted(rs, key=lambda r: r.get("turn", 0))) for d, rs in groups.items()]


def answer_model(classes: Sequence[str]):
    """Pydantic model of one field's answer (the JSON schema itself comes from the template)."""
    from pydantic import create_model

    item = create_model("UtteranceAnswer", index=(int, ...), **{c: (float, ...) for c in classes})
    return create_model("FieldAnswer", utterances=(list[item], ...))


def completion_budget(n_utterances: int, n_classes: int) -> int:
    """Token limit for one field's answer.

    Measured with Qwen2.5: ``"hap": 10, `` costs about 7 tokens and an utterance's framing
    about 10, so 6 utterances x 6 classes need ~400 tokens. A limit that truncates the JSON
    wastes every re-ask (a deterministic model repeats the same cut-off answer), so keep margin.

    >>> completion_budget(6, 6)
    428
    """
    return 32 + n_utterances * (12 + 9 * n_classes)


def refine(rows: Sequence[dict], classes: Sequence[str], llm, settings: RefineSettings,
           descriptions: Sequence[str] = (), cache=None, progress: bool = True) -> tuple[list[dict], dict]:
    """Ask the LLM about every receptive field of every dialogue in ``rows``.

    Returns the flat answer records and a cost summary (calls, tokens, seconds, cache hits,
    parse/validation failures, fallbacks, wall time and the share spent outside the LLM).
    """
    from tqdm.auto import tqdm

    from lantern.fusion.mergers import answer_record
    from lantern.llm.structured import StructuredStats, structured_chat, tighten_schema

    template = PromptTemplate(tuple(classes), tuple(descriptions), include_vad=settings.include_vad)
    model_cls = answer_model(classes)
    dialogues = group_by_dialogue(rows)
    total = sum(n_calls(len(rs), settings.window, settings.stride) for _, rs in dialogues)
    stats = StructuredStats()
    records: list[dict] = []
    fallbacks = renormalised = 0
    start = time.perf_counter()
    bar = tqdm(total=total, unit="call", desc="refine", disable=not progress)
    for dialogue_id, drows in dialogues:
        for f in make_fields(len(drows), settings.window, settings.stride, dialogue_id):
            lines = [FieldLine(j, r["speaker"], r["text"], r["probs"],
                               tuple(r["vad"]) if settings.include_vad and r.get("vad") else None)
                     for j, r in enumerate(drows[f.start:f.end])]
            n = len(lines)
            parsed: dict[str, np.ndarray] = {}

            def validate(obj, n=n):
                answer = obj.model_dump()
                try:
                    parsed["probs"] = template.parse(answer, n, renormalise=settings.renormalise)
                except AnswerError as exc:
                    raise ValueError(str(exc)) from None
                parsed["renormalised"] = sum(
                    abs(sum(v for k, v in item.items() if k != "index") - 100) > SUM_TOLERANCE
                    for item in answer["utterances"])
                return None

            obj, _ = structured_chat(
                llm, template.messages(lines), model_cls, validate, max_retries=settings.max_retries,
                cache=cache, stats=stats, template_hash=template.template_hash,
                temperature=settings.temperature, seed=settings.seed,
                max_tokens=completion_budget(n, len(classes)),
                schema=tighten_schema(template.json_schema(n)), schema_name="FieldAnswer")
            valid = obj is not None and "probs" in parsed
            if valid:
                probs = parsed["probs"]
                renormalised += parsed.get("renormalised", 0)
            else:   # counted fallback: the vanilla probabilities stand in for this field
                fallbacks += 1
                probs = np.array([[line.probs[c] for c in classes] for line in lines])
            for m in memberships([f]):   # positions are field-local
                row = drows[m.utterance_index]
                rec = answer_record(m, dict(zip(classes, probs[m.position].tolist())), valid,
                                    utterance_id=row["utterance_id"])
                rec["dialogue_id"] = dialogue_id
                records.append(rec)
            bar.update(1)
            s = stats.to_dict()
            if s.get("seconds"):
                bar.set_postfix(tok_s=f"{(s['prompt_tokens'] + s['completion_tokens']) / s['seconds']:.0f}",
                                fails=fallbacks)
    bar.close()
    wall = time.perf_counter() - start
    s = stats.to_dict()
    n_utts = len(rows)
    summary = {**asdict(settings), "t": settings.t, "template_hash": template.template_hash,
               "prompt_version": template.version, "utterances": n_utts, "dialogues": len(dialogues),
               "fields": total, **s, "fallbacks": fallbacks, "renormalised_answers": renormalised,
               "wall_seconds": wall,
               "prompt_tokens_per_utterance": s.get("prompt_tokens", 0) / max(n_utts, 1),
               "completion_tokens_per_utterance": s.get("completion_tokens", 0) / max(n_utts, 1),
               "seconds_per_utterance": wall / max(n_utts, 1),
               # Cached answers carry their original seconds, so the share outside the LLM is
               # only measurable on a run that made every call itself.
               "overhead_share": (max(0.0, 1 - s.get("seconds", 0.0) / wall)
                                  if wall and not s.get("cache_hits") else None)}
    return records, summary

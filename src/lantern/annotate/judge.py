"""EMER-style reason scores: an LLM judge rates a reason against a clip's reference clues and
label for *clue overlap* and *label overlap*, each 1-10 (Lian et al., "Explainable Multimodal
Emotion Reasoning"; Emotion-LLaMA reports both).

The answer is a typed JSON object (integers bounded 1-10 by the schema, so llama.cpp's grammar
enforces them), validated, cached, and counted when it fails; it is never read from free text.
:func:`judge_reasons` scores several systems' reasons for the same clips (e.g. the trained
model's against the template-only baseline, MERR's coarse caption) with the same judge and
prompt, so their means compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

JUDGE_VERSION = 1


def _schema():
    from pydantic import BaseModel, Field

    class Scores(BaseModel):
        clue_overlap: int = Field(ge=1, le=10)
        label_overlap: int = Field(ge=1, le=10)

    return Scores


def judge_messages(reference_clues: str, label: str, reason: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You grade explanations of emotions in video clips. Answer in JSON."},
        {"role": "user", "content":
            f"Reference clues: {reference_clues}\nReference emotion: {label}\n"
            f"Explanation to grade: {reason}\n"
            "Give two integer scores from 1 to 10: clue_overlap (how many of the reference clues "
            "the explanation mentions, and nothing contradicting them) and label_overlap (how "
            "well the emotion the explanation concludes matches the reference emotion)."},
    ]


@dataclass
class JudgeResult:
    system: str
    n: int
    clue_overlap: float | None
    label_overlap: float | None
    failed: int
    prompt_tokens: int
    completion_tokens: int
    per_clip: list[dict]

    def to_dict(self) -> dict:
        from dataclasses import asdict
        return asdict(self)


def judge_reasons(systems: dict[str, Sequence[str]], references: Sequence[tuple[str, str]], llm,
                  cache=None) -> dict[str, JudgeResult]:
    """``systems`` maps a system name to its reasons, one per clip, in the order of
    ``references`` (``(clues, label)`` per clip). Returns each system's mean scores over the
    clips the judge answered, with the failures counted."""
    from lantern.llm.structured import structured_chat

    out = {}
    for name, reasons in systems.items():
        if len(reasons) != len(references):
            raise ValueError(f"{name}: {len(reasons)} reasons for {len(references)} clips")
        rows, failed, pt, ct = [], 0, 0, 0
        for (clues, label), reason in zip(references, reasons):
            parsed, call = structured_chat(llm, judge_messages(clues, label, reason or "(none)"), _schema(),
                                           cache=cache, template_hash=f"emer-judge-v{JUDGE_VERSION}",
                                           max_tokens=40)
            pt, ct = pt + call.prompt_tokens, ct + call.completion_tokens
            if parsed is None:
                failed += 1
                rows.append({"clue_overlap": None, "label_overlap": None})
            else:
                rows.append({"clue_overlap": parsed.clue_overlap, "label_overlap": parsed.label_overlap})
        ok = [r for r in rows if r["clue_overlap"] is not None]
        mean = lambda k: round(float(np.mean([r[k] for r in ok])), 3) if ok else None  # noqa: E731
        out[name] = JudgeResult(name, len(rows), mean("clue_overlap"), mean("label_overlap"), failed,
                                pt, ct, rows)
    return out


__all__ = ["judge_reasons", "judge_messages", "JudgeResult", "JUDGE_VERSION"]

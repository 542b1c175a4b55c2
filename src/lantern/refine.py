"""LLM refinement (spec §2-§3): vanilla predictions -> receptive fields -> prompts -> answers.

For each dialogue the utterances are cut into receptive fields (every utterance in exactly
``t = window / stride`` fields); each field is one request showing the vanilla predictions
as references (``include_refs``; dimension scores unless ``include_vad`` is off). Two answer
modes (``answer``):

- ``logprobs`` (default): one line per utterance ``N: <label word>``, the class distribution
  read from next-token log-probabilities at each slot (:mod:`lantern.llm.slots`); one forward
  pass per field on the embedded backend, a greedy completion with ``top_logprobs`` on a
  server. A server that returns no log-probabilities is said so, and the run switches to
  written percents.
- ``percent``: integer percents per class as schema-constrained JSON (the paper's form for
  GPT-4-class endpoints), validated and re-asked on error. The class order is rotated per
  field (``class_order: rotate``) so that no class always sits in the first key.

A field whose answer cannot be had gets the vanilla probabilities, marked ``valid: false``
and counted. Every answer is kept as it arrives: in the SQLite LLM cache, and, given an
:class:`~lantern.answers.AnswerFile`, in that file (committed under ``benchmarks/answers/``),
so an interrupted run resumes without repeating a call, on this machine or another.
All requests not yet answered are sent together through a bounded pool
(``llm.max_concurrency`` at a time: many for a vLLM server, one for llama.cpp in-process).

The output is one :class:`~lantern.records.AnswerRecord` per (utterance, field), the input
of :mod:`lantern.fusion`.
"""

from __future__ import annotations

import hashlib
import time
import threading
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from lantern.answers import AnswerFile, FieldAnswer
from lantern.errors import ConfigError
from lantern.llm.slots import DEFAULT_MIN_MASS
from lantern.prompts import (PERCENT_SUM_TOLERANCE, AnswerError, FieldLine, PromptTemplate,
                             SlotPromptTemplate)
from lantern.receptive_fields import (DEFAULT_STRIDE, DEFAULT_WINDOW, ReceptiveField,
                                      fields_per_utterance, make_fields, memberships)
from lantern.records import AnswerRecord, PredictionRow, group_by_dialogue

ANSWER_MODES = ("logprobs", "percent")
CLASS_ORDERS = ("rotate", "fixed")


@dataclass
class RefineSettings:
    window: int = DEFAULT_WINDOW
    stride: int = DEFAULT_STRIDE
    answer: str = "logprobs"
    include_vad: bool = True
    include_refs: bool = True
    #: percent mode: rotate the class order by one place per field (position-bias fix)
    class_order: str = "rotate"
    max_retries: int = 2
    # Read percents that do not sum to 100 as relative weights (counted as "renormalised")
    # instead of re-asking; see PromptTemplate.parse.
    renormalise: bool = True
    #: logprobs mode: slots whose label words hold less probability than this are counted
    min_mass: float = DEFAULT_MIN_MASS
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.answer not in ANSWER_MODES:
            raise ConfigError(f"answer must be one of {', '.join(ANSWER_MODES)}; got {self.answer!r}")
        if self.class_order not in CLASS_ORDERS:
            raise ConfigError(f"class_order must be one of {', '.join(CLASS_ORDERS)}; got {self.class_order!r}")
        if not self.include_refs and self.answer == "percent":
            raise ConfigError("include_refs: false needs answer: logprobs (the percent prompt "
                              "asks to adjust the references)")

    @property
    def t(self) -> int:
        return fields_per_utterance(self.window, self.stride)

    @property
    def answer_tag(self) -> str:
        """The answer mode as answer folders name it: ``logprobs``, ``percent`` (rotated
        class order) or ``percent-fixed-order`` (the position-bias measurement's baseline)."""
        fixed = self.answer == "percent" and self.class_order == "fixed"
        return self.answer + ("-fixed-order" if fixed else "")

    @property
    def variant_suffix(self) -> str:
        """How this prompt differs from the default, for folder and result names."""
        return ("" if self.include_refs else "-no-refs") + ("" if self.include_vad or not self.include_refs
                                                            else "-no-vad")


def answer_model(classes: Sequence[str]):
    """Pydantic model of one field's answer (the JSON schema itself comes from the template)."""
    from pydantic import create_model

    item = create_model("UtteranceAnswer", index=(int, ...), **{c: (float, ...) for c in classes})
    return create_model("FieldAnswer", utterances=(list[item], ...))


def completion_budget(n_utterances: int, n_classes: int) -> int:
    """Token limit for one field's percent answer.

    Measured with Qwen2.5: ``"hap": 10, `` costs about 7 tokens and an utterance's framing
    about 10, so 6 utterances x 6 classes need ~400 tokens. A limit that truncates the JSON
    wastes every re-ask (a deterministic model repeats the same cut-off answer), so keep margin.

    >>> completion_budget(6, 6)
    428
    """
    return 32 + n_utterances * (12 + 9 * n_classes)


def rotated(seq: Sequence, shift: int) -> tuple:
    """``seq`` rotated left by ``shift`` places.

    >>> rotated(("a", "b", "c"), 1), rotated(("a", "b", "c"), 4)
    (('b', 'c', 'a'), ('b', 'c', 'a'))
    """
    shift %= max(len(seq), 1)
    return tuple(seq[shift:]) + tuple(seq[:shift])


def request_key(*parts) -> str:
    """Names one field's request (model, mode, template, messages): answers are only reused
    for the identical prompt to the identical model."""
    from lantern.llm.cache import canonical_json
    return hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()[:32]


@dataclass
class _Job:
    dialogue_id: str
    field: ReceptiveField
    rows: list[PredictionRow]
    lines: list[FieldLine]
    key: str


class _Run:
    """One refine call: the jobs, the answers as they arrive, and the counts."""

    def __init__(self, classes, llm, settings: RefineSettings, descriptions, cache, answers):
        self.classes = list(classes)
        self.llm = llm
        self.settings = settings
        self.descriptions = tuple(descriptions)
        self.cache = cache
        self.answers = answers
        self.mode = settings.answer
        self.mode_note: str | None = None
        self.counts = {"fallbacks": 0, "renormalised_answers": 0, "low_mass_slots": 0,
                       "unread_slots": 0, "parse_failures": 0, "validation_failures": 0,
                       "retries": 0, "answer_file_hits": 0, "cache_hits": 0}
        self._counts_lock = threading.Lock()   # ask() runs in worker threads on servers

    def count(self, **deltas: int) -> None:
        with self._counts_lock:
            for name, delta in deltas.items():
                self.counts[name] += delta

    # -- templates
    def slot_template(self) -> SlotPromptTemplate:
        return SlotPromptTemplate(tuple(self.classes), self.descriptions,
                                  include_vad=self.settings.include_vad,
                                  include_refs=self.settings.include_refs)

    def percent_template(self, field_id: int = 0) -> PromptTemplate:
        shift = field_id if self.settings.class_order == "rotate" else 0
        classes = rotated(self.classes, shift)
        descriptions = rotated(self.descriptions, shift) if self.descriptions else ()
        return PromptTemplate(classes, descriptions, include_vad=self.settings.include_vad,
                              extra={"class_order": self.settings.class_order})

    @property
    def template_hash(self) -> str:
        if self.mode == "logprobs":
            return self.slot_template().template_hash
        return self.percent_template(0).template_hash

    @property
    def template_version(self) -> str:
        return self.slot_template().version if self.mode == "logprobs" else self.percent_template(0).version

    def key_for(self, dialogue_id: str, field: ReceptiveField, lines: list[FieldLine]) -> str:
        if self.mode == "logprobs":
            material = self.slot_template().request(lines).key_material()
        else:
            material = {"mode": "percent", "messages": self.percent_template(field.field_id).messages(lines),
                        "retries": self.settings.max_retries, "renormalise": self.settings.renormalise}
        # The field's place is part of the key: each answer file line is one field of one
        # dialogue, which fusion looks up by (dialogue, field), even if two prompts are equal.
        return request_key(self.llm.backend, self.llm.model_id, self.llm.cache_identity(),
                           self.template_hash, material, self.settings.temperature, self.settings.seed,
                           dialogue_id, field.field_id)

    # -- answering one job
    def vanilla_rows(self, job: _Job) -> list[list[float]]:
        return [[line.probs[c] for c in self.classes] for line in job.lines]

    def ask_slots(self, job: _Job) -> FieldAnswer:
        from lantern.llm.slots import read_slots_via_chat

        request = self.slot_template().request(job.lines)
        cached = self.cache.get_json(job.key) if self.cache is not None else None
        if cached is not None:
            self.count(cache_hits=1)
            return FieldAnswer.from_dict({**cached, "key": job.key})
        reader = getattr(self.llm, "read_slots", None)
        resp = reader(request) if reader is not None else read_slots_via_chat(self.llm, request)
        vanilla = self.vanilla_rows(job)
        probs = [vanilla[i] if i in resp.unread else row for i, row in enumerate(resp.probs)]
        answer = FieldAnswer(job.key, job.dialogue_id, job.field.field_id, job.field.start,
                             job.field.end, probs, [i not in resp.unread for i in range(len(probs))],
                             mass=resp.mass, prompt_tokens=resp.prompt_tokens,
                             reused_tokens=resp.reused_tokens, decode_steps=resp.decode_steps,
                             completion_tokens=resp.fill_tokens, seconds=resp.seconds,
                             failures=len(resp.unread))
        if self.cache is not None:
            self.cache.put_json(job.key, self.llm.model_id, answer.__dict__)
        return answer

    def ask_percent(self, job: _Job) -> FieldAnswer:
        from lantern.llm.structured import structured_chat, tighten_schema

        template = self.percent_template(job.field.field_id)
        order = [template.classes.index(c) for c in self.classes]   # template -> canonical columns
        n = len(job.lines)
        parsed: dict = {}

        def validate(obj, n=n):
            answer = obj.model_dump()
            try:
                parsed["probs"] = template.parse(answer, n, renormalise=self.settings.renormalise)
            except AnswerError as exc:
                raise ValueError(str(exc)) from None
            parsed["renormalised"] = sum(
                abs(sum(v for k, v in item.items() if k != "index") - 100) > PERCENT_SUM_TOLERANCE
                for item in answer["utterances"])
            return None

        lines = [FieldLine(line.index, line.speaker, line.text,
                           {c: line.probs[c] for c in template.classes}, line.vad) for line in job.lines]
        obj, stats = structured_chat(
            self.llm, template.messages(lines), answer_model(template.classes), validate,
            max_retries=self.settings.max_retries, cache=self.cache,
            template_hash=template.template_hash, temperature=self.settings.temperature,
            seed=self.settings.seed, max_tokens=completion_budget(n, len(self.classes)),
            schema=tighten_schema(template.json_schema(n)), schema_name="FieldAnswer")
        valid = obj is not None and "probs" in parsed
        probs = (np.asarray(parsed["probs"])[:, order].tolist() if valid else self.vanilla_rows(job))
        answer = FieldAnswer(job.key, job.dialogue_id, job.field.field_id, job.field.start,
                             job.field.end, probs, [valid] * n, prompt_tokens=stats.prompt_tokens,
                             completion_tokens=stats.completion_tokens,
                             decode_steps=stats.completion_tokens, seconds=stats.seconds,
                             requests=stats.attempts,
                             failures=stats.parse_failures + stats.validation_failures)
        self.count(parse_failures=stats.parse_failures, validation_failures=stats.validation_failures,
                   retries=stats.retries, cache_hits=stats.cache_hits,
                   renormalised_answers=parsed.get("renormalised", 0) if valid else 0)
        return answer

    def ask(self, job: _Job) -> FieldAnswer:
        return self.ask_slots(job) if self.mode == "logprobs" else self.ask_percent(job)

    def account(self, answer: FieldAnswer) -> None:
        if not all(answer.valid):
            self.counts["fallbacks"] += 1
        if answer.mass is not None:
            self.counts["low_mass_slots"] += sum(m < self.settings.min_mass for m in answer.mass)
            self.counts["unread_slots"] += answer.failures


def _field_lines(drows: list[PredictionRow], f: ReceptiveField,
                 settings: RefineSettings) -> list[FieldLine]:
    return [FieldLine(j, r.speaker, r.text, r.probs,
                      tuple(r.vad) if settings.include_vad and r.vad else None)
            for j, r in enumerate(drows[f.start:f.end])]


def field_jobs(run: _Run, dialogues: Sequence[tuple[str, list[PredictionRow]]]) -> list[_Job]:
    """One job per receptive field of every dialogue, keyed by its request."""
    jobs = []
    for dialogue_id, drows in dialogues:
        for f in make_fields(len(drows), run.settings.window, run.settings.stride, dialogue_id):
            lines = _field_lines(drows, f, run.settings)
            jobs.append(_Job(dialogue_id, f, drows, lines, run.key_for(dialogue_id, f, lines)))
    return jobs


def refine(rows: Sequence[PredictionRow], classes: Sequence[str], llm, settings: RefineSettings,
           descriptions: Sequence[str] = (), cache=None, progress: bool = True,
           answers: AnswerFile | None = None,
           on_answer: Callable[[FieldAnswer], None] | None = None) -> tuple[list[AnswerRecord], dict]:
    """Ask the LLM about every receptive field of every dialogue in ``rows``.

    ``answers`` (optional) holds answers of earlier runs, reused by request key, and
    receives every new one. ``on_answer`` is called after each new answer is stored.
    Returns the flat answer records and a cost summary (requests, tokens evaluated and
    reused, decode steps, LLM seconds, wall time, the share spent outside the LLM, and the
    counts of fallbacks, low-mass and unread slots, parse and validation failures).
    """
    from tqdm.auto import tqdm

    from lantern.llm.slots import NoLogprobs

    run = _Run(classes, llm, settings, descriptions, cache, answers)
    dialogues = group_by_dialogue(rows)
    start = time.perf_counter()
    jobs = field_jobs(run, dialogues)
    done: dict[str, FieldAnswer] = {}
    for job in jobs:
        hit = answers.get(job.key) if answers is not None else None
        if hit is not None:
            done[job.key] = hit
            run.counts["answer_file_hits"] += 1
    pending = [j for j in jobs if j.key not in done]
    bar = tqdm(total=len(jobs), initial=len(done), unit="field", desc="refine", disable=not progress)

    def keep(answer: FieldAnswer) -> None:
        done[answer.key] = answer
        if answers is not None:
            answers.add(answer)
        if on_answer is not None:
            on_answer(answer)
        bar.update(1)

    try:
        _answer_all(run, pending, keep)
    except NoLogprobs as exc:
        if run.mode != "logprobs":
            raise
        bar.write(f"refine: {exc}; using written percents instead")
        run.mode, run.mode_note = "percent", str(exc)
        settings = RefineSettings(**{**asdict(settings), "answer": "percent", "include_refs": True})
        run.settings = settings
        jobs = field_jobs(run, dialogues)
        pending = [j for j in jobs if j.key not in done]
        _answer_all(run, pending, keep)
    bar.close()
    wall = time.perf_counter() - start

    records: list[AnswerRecord] = []
    for job in jobs:
        answer = done[job.key]
        run.account(answer)
        records.extend(field_answer_records(answer, job.field, job.rows, run.classes))
    summary = _summary(run, jobs, done, rows, dialogues, wall, n_new=len(pending))
    return records, summary


def field_answer_records(answer: FieldAnswer, field: ReceptiveField, drows: Sequence[PredictionRow],
                   classes: Sequence[str]) -> list[AnswerRecord]:
    """One :class:`~lantern.records.AnswerRecord` per utterance of a field's answer."""
    out = []
    for m in memberships([field]):   # positions are field-local
        out.append(AnswerRecord.from_membership(
            m, drows[m.utterance_index].utterance_id, dict(zip(classes, answer.probs[m.position])),
            answer.valid[m.position], answer.mass[m.position] if answer.mass is not None else None))
    return out


def _answer_all(run: _Run, pending: list[_Job], keep: Callable[[FieldAnswer], None]) -> None:
    """Answer every pending job, ``max_concurrency`` at a time, keeping each as it arrives."""
    from lantern.llm.base import bounded_map

    width = max(1, int(getattr(run.llm, "max_concurrency", 1) or 1))
    for answer in bounded_map(run.ask, pending, width, in_order=False, thread_name_prefix="lantern-refine"):
        keep(answer)


def _summary(run: _Run, jobs, done, rows, dialogues, wall: float, n_new: int) -> dict:
    answers = [done[j.key] for j in jobs]
    n_utts = len(rows)
    total = lambda f: sum(getattr(a, f) for a in answers)   # noqa: E731
    prompt, reused = total("prompt_tokens"), total("reused_tokens")
    steps, completion, seconds = total("decode_steps"), total("completion_tokens"), total("seconds")
    masses = [m for a in answers if a.mass is not None for m in a.mass]
    fresh_seconds = sum(a.seconds for a in answers[-n_new:]) if n_new else 0.0
    settings = run.settings
    return {**asdict(settings), "t": settings.t, "answer": run.mode, "answer_note": run.mode_note,
            "template_hash": run.template_hash, "prompt_version": run.template_version,
            "utterances": n_utts, "dialogues": len(dialogues), "fields": len(jobs),
            "calls": len(jobs), "requests": total("requests"), "new_requests": n_new,
            "prompt_tokens": prompt, "reused_prompt_tokens": reused, "decode_steps": steps,
            "completion_tokens": completion, "seconds": round(seconds, 3),
            **run.counts, "final_failures": run.counts["fallbacks"],
            "mean_label_mass": float(np.mean(masses)) if masses else None,
            "wall_seconds": wall,
            "prompt_tokens_per_utterance": prompt / max(n_utts, 1),
            "decode_steps_per_utterance": steps / max(n_utts, 1),
            "completion_tokens_per_utterance": completion / max(n_utts, 1),
            "seconds_per_utterance": seconds / max(n_utts, 1),
            # Only a run that made every call itself measures the share outside the LLM.
            "overhead_share": (max(0.0, 1 - fresh_seconds / wall)
                               if wall and n_new == len(jobs) else None)}

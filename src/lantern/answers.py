"""LLM answers per receptive field: the typed record and the file that keeps them.

A :class:`FieldAnswer` is what the LLM said about one receptive field: a class distribution
per utterance of the field (rows sum to 1), whether each row is the LLM's (``valid``) or the
vanilla stand-in after a counted failure, the label mass of log-probability answers, and
what the answer cost. It is keyed by the request that produced it (``key``), so an answer is
only ever reused for the identical prompt to the identical model.

An :class:`AnswerFile` is an append-only JSONL file of them: a header line naming the run
(mode, template hash, model, label words, fields), then one line per field, flushed and
fsynced as each arrives. The files are small (no text, probabilities to 4 decimals) and are
committed under ``benchmarks/answers/``, so that

- ``lantern fuse`` and every result can be rebuilt on any machine without an LLM, and
- a long run continues later, on another machine, from what was committed: fields already
  in the file are not asked again.

A line cut off by a kill is dropped when the file is opened (and the file rewritten
without it), so a resumed run appends after the last complete answer.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "valid.jsonl"
>>> header = {"mode": "logprobs", "template_hash": "abc", "model_id": "m@0"}
>>> with AnswerFile(path, header) as f:
...     f.add(FieldAnswer("k1", "d1", 0, 0, 2, [[0.7, 0.3], [0.2, 0.8]], [True, True]))
>>> with AnswerFile(path, header) as f:
...     len(f), f.get("k1").probs[1]
(1, [0.2, 0.8])
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from lantern.errors import ConfigError, DataError

FORMAT_VERSION = 1
#: header fields that must agree for answers of two runs to share one file
IDENTITY_FIELDS = ("mode", "template_hash", "model_id")
DECIMALS = 4


@dataclass
class FieldAnswer:
    """The LLM's answer about one receptive field (utterances ``start .. end - 1``)."""

    key: str
    dialogue_id: str
    field_id: int
    start: int
    end: int
    probs: list[list[float]]
    valid: list[bool]
    mass: list[float] | None = None
    prompt_tokens: int = 0          # tokens evaluated for this field (KV-cache reuse excluded)
    reused_tokens: int = 0          # prompt tokens taken from the KV cache
    decode_steps: int = 0           # forward calls after the prompt's (slot fills / generated tokens)
    completion_tokens: int = 0      # tokens fed by those calls (fills) or generated
    seconds: float = 0.0            # LLM time of the call that produced it
    requests: int = 1
    failures: int = 0               # parse/validation failures or unread slots on the way

    def __post_init__(self) -> None:
        n = self.end - self.start
        if len(self.probs) != n or len(self.valid) != n:
            raise ValueError(f"field {self.dialogue_id}#{self.field_id} covers {n} utterances "
                             f"but has {len(self.probs)} rows and {len(self.valid)} flags")

    def to_json(self) -> str:
        d = asdict(self)
        d["probs"] = [[round(float(p), DECIMALS) for p in row] for row in self.probs]
        if self.mass is not None:
            d["mass"] = [round(float(m), DECIMALS) for m in self.mass]
        d["seconds"] = round(float(self.seconds), 4)
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FieldAnswer":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class AnswerFile:
    """Append-only store of :class:`FieldAnswer` lines behind a header (see the module doc)."""

    path: Path
    header: dict[str, Any]
    answers: dict[str, FieldAnswer] = field(default_factory=dict)

    def __init__(self, path: str | Path, header: dict[str, Any]):
        self.path = Path(path)
        self.header = {"lantern_answers": FORMAT_VERSION, **header}
        self.answers = {}
        #: keys of the answers this object added (this invocation's new answers)
        self.added: list[str] = []
        self._fh = None
        if self.path.exists():
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write_lines([json.dumps(self.header, sort_keys=True)])

    def _load(self) -> None:
        raw = self.path.read_bytes().decode("utf-8")
        lines = raw.split("\n")      # "\n" only: JSON strings may hold U+2028 and friends
        complete, torn = lines[:-1], lines[-1] != ""
        if not complete:
            raise DataError("no header (expected a JSON object with 'lantern_answers')", path=str(self.path), line=1, field="header")
        try:
            stored = json.loads(complete[0])
        except ValueError as exc:
            raise DataError(f"header is not JSON ({exc})",
                            path=str(self.path), line=1, field="header") from None
        for f in IDENTITY_FIELDS:
            if f in self.header and stored.get(f) != self.header[f]:
                raise ConfigError(f"{self.path} holds answers with {f}={stored.get(f)!r}, this run "
                                  f"has {self.header[f]!r}; use another answers folder")
        self.header = {**stored, **self.header}
        for n, line in enumerate(complete[1:], start=2):
            if not line.strip():
                continue
            try:
                answer = FieldAnswer.from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:
                raise DataError(f"not a field answer ({exc})",
                                path=str(self.path), line=n, field="answer") from None
            self.answers[answer.key] = answer
        if torn:   # a kill mid-line: keep the complete answers only
            self._write_lines(complete)

    def _write_lines(self, lines: list[str]) -> None:
        from lantern.paths import atomic_write_text
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def __len__(self) -> int:
        return len(self.answers)

    def __contains__(self, key: str) -> bool:
        return key in self.answers

    def __iter__(self) -> Iterator[FieldAnswer]:
        return iter(self.answers.values())

    def get(self, key: str) -> FieldAnswer | None:
        return self.answers.get(key)

    def add(self, answer: FieldAnswer) -> None:
        """Append one answer and make it durable before returning."""
        if answer.key in self.answers:
            return
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(answer.to_json() + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.answers[answer.key] = answer
        self.added.append(answer.key)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "AnswerFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["AnswerFile", "FieldAnswer"]

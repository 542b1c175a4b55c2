"""Receptive fields: the sliding windows a dialogue is cut into for the LLM (spec §2).

A window of length ``w`` moves over the dialogue with stride ``s``; ``w`` must be a
multiple of ``s`` so that every utterance lies in exactly ``t = w / s`` windows (the
paper's "each utterance is included in exactly t receptive fields"). Windows start at
``k * s`` for ``k = -(t - 1), ..., ceil(N / s) - 1`` and are clipped to ``[0, N)``:
starting before 0 is what gives the first utterances their t fields, and the windows at
either edge are therefore shorter than ``w`` (``clipped=True``). A dialogue of N
utterances costs ``ceil(N / s) + t - 1`` LLM calls (:func:`n_calls`).

For every (utterance, field) pair, :func:`memberships` records where the utterance sits
in the field (index, relative position in [0, 1], context before/after) and whether the
field was clipped; the receptive-field-aware fusion (:mod:`lantern.fusion`) uses these.

>>> fields = make_fields(5, window=4, stride=2, dialogue_id="d1")
>>> [(f.start, f.end, f.clipped) for f in fields]
[(0, 2, True), (0, 4, False), (2, 5, True), (4, 5, True)]
>>> len(fields) == n_calls(5, window=4, stride=2) == 4
True
>>> by_utt = memberships_by_utterance(fields)
>>> [(m.field_id, m.position, m.relative_position, m.n_before, m.n_after) for m in by_utt[2]]
[(1, 2, 0.6666666666666666, 2, 1), (2, 0, 0.0, 0, 2)]
>>> all(len(ms) == fields_per_utterance(4, 2) == 2 for ms in by_utt)
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

__all__ = ["ReceptiveField", "Membership", "fields_per_utterance", "n_calls", "make_fields",
           "memberships", "memberships_by_utterance"]


#: the paper's fields: 6 utterances, stride 2, so every utterance lies in t = 3 of them
DEFAULT_WINDOW = 6
DEFAULT_STRIDE = 2

@dataclass(frozen=True)
class ReceptiveField:
    """Utterances ``start .. end - 1`` of one dialogue, sent to the LLM in one request.

    ``field_id`` numbers the fields of a dialogue 0, 1, ... in order of their (unclipped)
    start; ``clipped`` is True when the window ran past either end of the dialogue, i.e.
    exactly when the field is shorter than the window length.
    """

    dialogue_id: str
    field_id: int
    start: int
    end: int          # exclusive
    clipped: bool

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"a receptive field needs 0 <= start < end; got "
                             f"start={self.start}, end={self.end}")

    @property
    def length(self) -> int:
        """Number of utterances in the field."""
        return self.end - self.start

    @property
    def indices(self) -> range:
        """Utterance indices (within the dialogue) covered by the field."""
        return range(self.start, self.end)


@dataclass(frozen=True)
class Membership:
    """One utterance as seen inside one of its receptive fields.

    ``position`` is the index inside the field; ``relative_position`` is
    ``position / (length - 1)`` in [0, 1] (0 for a one-utterance field, which has no
    "middle"); ``n_before``/``n_after`` count the utterances of context the LLM sees
    before/after it in that field.
    """

    dialogue_id: str
    utterance_index: int
    field_id: int
    position: int
    relative_position: float
    n_before: int
    n_after: int
    clipped: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def _check_int(name: str, value: Any, minimum: int) -> int:
    # bool is an int subclass; True as a window length is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value


def fields_per_utterance(window: int, stride: int) -> int:
    """t = window / stride, the number of fields every utterance lies in.

    >>> fields_per_utterance(6, 2)
    3
    >>> fields_per_utterance(5, 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: window (5) must be a multiple of stride (2) ...; try window=4 or window=6
    """
    _check_int("window", window, 1)
    _check_int("stride", stride, 1)
    if window % stride:
        lower, upper = (window // stride) * stride, (window // stride + 1) * stride
        hint = f"window={lower} or window={upper}" if lower else f"window={upper}"
        raise ValueError(f"window ({window}) must be a multiple of stride ({stride}) so that "
                         f"every utterance lies in the same number of fields; try {hint}")
    return window // stride


def n_calls(n_utterances: int, window: int, stride: int) -> int:
    """Number of fields (LLM requests) for a dialogue of N utterances: ceil(N/s) + t - 1.

    An empty dialogue needs none.

    >>> n_calls(10, window=3, stride=1), n_calls(10, window=4, stride=2), n_calls(0, 4, 2)
    (12, 6, 0)
    """
    t = fields_per_utterance(window, stride)
    _check_int("n_utterances", n_utterances, 0)
    if n_utterances == 0:
        return 0
    return -(-n_utterances // stride) + t - 1


def make_fields(n_utterances: int, window: int, stride: int,
                dialogue_id: str = "") -> list[ReceptiveField]:
    """The receptive fields of a dialogue of ``n_utterances`` utterances, in order.

    Raises ValueError when ``window`` is not a positive multiple of a positive ``stride``
    or ``n_utterances`` is negative. An empty dialogue has no fields.

    >>> [(f.start, f.end) for f in make_fields(4, window=3, stride=1)]
    [(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4)]
    """
    t = fields_per_utterance(window, stride)
    _check_int("n_utterances", n_utterances, 0)
    if n_utterances == 0:
        return []   # the k range below would still hold the t-1 leading windows
    fields = []
    # k starts at -(t-1) so that utterance 0 is covered t times, and stops at the last
    # window that still starts inside the dialogue (k*s <= N-1).
    for field_id, k in enumerate(range(-(t - 1), -(-n_utterances // stride))):
        raw_start = k * stride
        start, end = max(raw_start, 0), min(raw_start + window, n_utterances)
        fields.append(ReceptiveField(dialogue_id=dialogue_id, field_id=field_id, start=start,
                                     end=end, clipped=(end - start) < window))
    return fields


def memberships(fields: Iterable[ReceptiveField]) -> list[Membership]:
    """Every (utterance, field) pair of ``fields``, ordered by field then position."""
    out = []
    for f in fields:
        last = f.length - 1
        for position, i in enumerate(f.indices):
            out.append(Membership(
                dialogue_id=f.dialogue_id, utterance_index=i, field_id=f.field_id,
                position=position,
                relative_position=position / last if last else 0.0,
                n_before=position, n_after=last - position, clipped=f.clipped))
    return out


def memberships_by_utterance(fields: Iterable[ReceptiveField]) -> list[list[Membership]]:
    """Memberships grouped by utterance index (list index = utterance), each by field id.

    Meant for the fields of one dialogue (as :func:`make_fields` returns them); with
    fields from :func:`make_fields` every inner list has exactly t entries.
    """
    fields = list(fields)
    if len({f.dialogue_id for f in fields}) > 1:
        raise ValueError("memberships_by_utterance expects the fields of a single dialogue")
    n = max((f.end for f in fields), default=0)
    grouped: list[list[Membership]] = [[] for _ in range(n)]
    for m in memberships(fields):
        grouped[m.utterance_index].append(m)
    for group in grouped:
        group.sort(key=lambda m: m.field_id)
    return grouped

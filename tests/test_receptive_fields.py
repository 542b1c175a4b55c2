"""Property tests of lantern.receptive_fields (spec §2): every utterance in exactly t fields."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lantern.receptive_fields import (Membership, ReceptiveField, fields_per_utterance,
                                      make_fields, memberships, memberships_by_utterance,
                                      n_calls)

N = st.integers(min_value=0, max_value=200)
S = st.integers(min_value=1, max_value=8)
T = st.integers(min_value=1, max_value=5)
PROPS = settings(max_examples=300, deadline=None)


@PROPS
@given(n=N, s=S, t=T)
def test_every_utterance_lies_in_exactly_t_fields(n, s, t):
    fields = make_fields(n, window=t * s, stride=s)
    counts = Counter(i for f in fields for i in f.indices)
    assert set(counts) == set(range(n))
    assert all(c == t for c in counts.values())
    assert fields_per_utterance(t * s, s) == t


@PROPS
@given(n=N, s=S, t=T)
def test_number_of_fields_is_n_calls(n, s, t):
    fields = make_fields(n, window=t * s, stride=s)
    assert len(fields) == n_calls(n, t * s, s)
    assert n_calls(n, t * s, s) == (math.ceil(n / s) + t - 1 if n else 0)


@PROPS
@given(n=N, s=S, t=T, name=st.text(max_size=5))
def test_fields_are_contiguous_bounded_nonempty_and_ordered(n, s, t, name):
    w = t * s
    fields = make_fields(n, window=w, stride=s, dialogue_id=name)
    assert [f.field_id for f in fields] == list(range(len(fields)))
    for f in fields:
        assert isinstance(f, ReceptiveField)
        assert f.dialogue_id == name
        assert 0 <= f.start < f.end <= n
        assert f.length == f.end - f.start == len(f.indices) <= w
        assert list(f.indices) == list(range(f.start, f.end))
        assert f.clipped == (f.length < w)          # clipped iff shorter than the window
    # Starts and ends never go backwards; consecutive windows are one stride apart when
    # neither is clipped on that side.
    for a, b in zip(fields, fields[1:]):
        assert a.start <= b.start and a.end <= b.end
        if a.start > 0:
            assert b.start - a.start == s
    if n:
        assert fields[0].start == 0 and fields[-1].end == n


@PROPS
@given(n=N, s=S, t=T)
def test_memberships_are_consistent_with_the_fields(n, s, t):
    fields = make_fields(n, window=t * s, stride=s, dialogue_id="d")
    by_id = {f.field_id: f for f in fields}
    ms = memberships(fields)
    assert len(ms) == n * t == sum(f.length for f in fields)
    for m in ms:
        assert isinstance(m, Membership)
        f = by_id[m.field_id]
        assert m.dialogue_id == "d"
        assert f.start <= m.utterance_index < f.end
        assert m.position == m.utterance_index - f.start == m.n_before
        assert m.n_after == f.end - 1 - m.utterance_index
        assert m.n_before + m.n_after + 1 == f.length
        assert 0.0 <= m.relative_position <= 1.0
        if f.length == 1:
            assert m.relative_position == 0.0
        else:
            assert m.relative_position == pytest.approx(m.position / (f.length - 1))
        assert m.clipped == f.clipped
    grouped = memberships_by_utterance(fields)
    assert len(grouped) == n
    for i, group in enumerate(grouped):
        assert len(group) == t
        assert all(m.utterance_index == i for m in group)
        assert [m.field_id for m in group] == sorted({m.field_id for m in group})


@PROPS
@given(n=st.integers(1, 200), s=S, t=T)
def test_interior_fields_are_full_windows(n, s, t):
    """Only the first t-1 and the last few fields may be clipped."""
    w = t * s
    fields = make_fields(n, window=w, stride=s)
    for f in fields:
        if f.clipped:
            assert f.start == 0 or f.end == n


def test_known_example():
    fields = make_fields(7, window=3, stride=1, dialogue_id="x")
    assert [(f.start, f.end, f.clipped) for f in fields] == [
        (0, 1, True), (0, 2, True), (0, 3, False), (1, 4, False), (2, 5, False),
        (3, 6, False), (4, 7, False), (5, 7, True), (6, 7, True)]
    middle = memberships_by_utterance(fields)[3]
    assert [(m.position, m.relative_position) for m in middle] == [(2, 1.0), (1, 0.5), (0, 0.0)]
    assert middle[0].as_dict() == {"dialogue_id": "x", "utterance_index": 3, "field_id": 3,
                                   "position": 2, "relative_position": 1.0, "n_before": 2,
                                   "n_after": 0, "clipped": False}


def test_empty_dialogue_has_no_fields():
    assert make_fields(0, window=4, stride=2) == []
    assert memberships([]) == [] and memberships_by_utterance([]) == []
    assert n_calls(0, 4, 2) == 0


@pytest.mark.parametrize("window, stride, match", [
    (5, 2, "multiple of stride"), (1, 2, "multiple of stride"), (0, 1, "window must be >= 1"),
    (4, 0, "stride must be >= 1"), (-2, 1, "window must be >= 1"), (4.0, 2, "integer"),
    (4, True, "integer"),
])
def test_invalid_window_and_stride(window, stride, match):
    with pytest.raises(ValueError, match=match):
        make_fields(10, window=window, stride=stride)
    with pytest.raises(ValueError, match=match):
        n_calls(10, window, stride)
    with pytest.raises(ValueError, match=match):
        fields_per_utterance(window, stride)


@pytest.mark.parametrize("n", [-1, 2.5, "3", None])
def test_invalid_dialogue_length(n):
    with pytest.raises(ValueError, match="n_utterances"):
        make_fields(n, window=2, stride=1)
    with pytest.raises(ValueError, match="n_utterances"):
        n_calls(n, 2, 1)


def test_invalid_field_and_mixed_dialogues():
    with pytest.raises(ValueError, match="start < end"):
        ReceptiveField("d", 0, 3, 3, False)
    fields = make_fields(3, 2, 1, "a") + make_fields(3, 2, 1, "b")
    with pytest.raises(ValueError, match="single dialogue"):
        memberships_by_utterance(fields)

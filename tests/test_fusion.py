"""lantern.fusion on synthetic inputs: the fixed mergers' definitions, what the learned ones
learn (and refuse to learn), the test-split guard, persistence and determinism."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from lantern.errors import ConfigError, DataError
from lantern.fusion import MERGERS, load_merger, make_merger
from lantern.fusion.base import Merger, SplitLeakageError
from lantern.fusion.fixed import (LLMOnlyMerger, ProductMerger, UniformMerger, VanillaOnlyMerger,
                                  central_field_index)
from lantern.fusion.inputs import FusionInputs
from lantern.fusion.learned import AttentionMerger, PositionMerger
from lantern.receptive_fields import make_fields, memberships_by_utterance
from lantern.records import AnswerRecord, PredictionRow, group_answers

FAST = {"max_epochs": 60, "patience": 20}      # enough for shape/persistence tests
LEARN = {"max_epochs": 300, "patience": 40}    # enough to learn the synthetic tasks


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny full-batch problems: one thread is fastest and keeps the shared machine free."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synthetic(n_dialogues: int, *, t: int = 3, k: int = 6, seed: int = 0,
              informative: bool = True, adversarial: bool = False) -> FusionInputs:
    """Dialogues cut into real receptive fields (w = t, s = 1), a vanilla model that is right
    about 60% of the time, and t peaked LLM answers per utterance. With ``informative`` the
    answer of the field where the utterance is most central is the (smoothed) true one-hot
    and the others are peaked on random classes, so only the receptive-field features tell
    them apart; otherwise every answer is such noise. ``adversarial`` answers always name a
    wrong class."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {c: [] for c in ("vanilla", "vad", "answers", "position",
                                             "n_before", "n_after", "clipped", "labels",
                                             "dialogue_ids")}
    for di in range(n_dialogues):
        fields = make_fields(int(rng.integers(3, 16)), window=t, stride=1, dialogue_id=f"d{di}")
        for ms in memberships_by_utterance(fields):
            y = int(rng.integers(k))
            logits = rng.normal(size=k)
            logits[y] += 1.5
            pos = np.array([m.relative_position for m in ms])
            nb = np.array([m.n_before for m in ms])
            na = np.array([m.n_after for m in ms])
            central = central_field_index(pos[None], nb[None], na[None])[0]
            answers = []
            for r in range(t):
                if adversarial:
                    c = (y + 1 + int(rng.integers(k - 1))) % k
                else:
                    c = y if informative and r == central else int(rng.integers(k))
                a = np.full(k, 0.1 / k)
                a[c] += 0.9
                answers.append(a)
            cols["vanilla"].append(np.exp(logits) / np.exp(logits).sum())
            cols["vad"].append(rng.uniform(1, 5, size=3))
            cols["answers"].append(answers)
            cols["position"].append(pos)
            cols["n_before"].append(nb)
            cols["n_after"].append(na)
            cols["clipped"].append([m.clipped for m in ms])
            cols["labels"].append(y)
            cols["dialogue_ids"].append(f"d{di}")
    arrays = {c: np.array(v) for c, v in cols.items() if c != "dialogue_ids"}
    return FusionInputs(**arrays, dialogue_ids=tuple(cols["dialogue_ids"]),
                        classes=tuple(f"c{i}" for i in range(k)))


def accuracy(p: np.ndarray, x: FusionInputs) -> float:
    return float((p.argmax(1) == x.labels).mean())


@pytest.fixture(scope="module")
def small() -> FusionInputs:
    return synthetic(12, seed=3)


@pytest.fixture(scope="module")
def informative() -> tuple[FusionInputs, FusionInputs]:
    return synthetic(60, seed=1), synthetic(40, seed=2)


@pytest.fixture(scope="module")
def noise() -> tuple[FusionInputs, FusionInputs]:
    return synthetic(60, seed=1, informative=False), synthetic(40, seed=2, informative=False)


def fitted(name: str, x: FusionInputs, **options) -> Merger:
    opts = FAST | options if MERGERS.get(name).learned else {}
    return make_merger(name, **opts).fit(x, "validation")


# ------------------------------------------------------------------------ definitions

@pytest.mark.parametrize("name", MERGERS.names())
def test_shapes_and_probabilities(name, small):
    p = fitted(name, small).predict_proba(small)
    assert p.shape == (small.n, small.n_classes) and p.dtype == np.float64
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert MERGERS.get(name).name == name


def test_vanilla_only_is_the_vanilla_model(small):
    np.testing.assert_allclose(VanillaOnlyMerger().predict_proba(small), small.vanilla,
                               rtol=0, atol=1e-15)


def test_uniform_is_the_mean_of_the_answers(small):
    np.testing.assert_allclose(UniformMerger().predict_proba(small), small.answers.mean(axis=1),
                               rtol=0, atol=1e-15)


def test_llm_only_takes_the_answer_of_the_most_central_field():
    k = 3
    answers = np.eye(k)[[[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]]]
    x = FusionInputs(
        vanilla=np.full((4, k), 1 / k), vad=None, answers=answers,
        position=np.array([[1.0, 0.5, 0.0],        # middle of the second field
                           [0.0, 0.0, 1.0],        # edges only; the longest field wins
                           [2 / 3, 1 / 3, 0.0],    # a tie at 1/6 from the centre; more context
                           [1.0, 0.0, 0.0]]),      # edge ties; the field with more context
        n_before=np.array([[2, 1, 0], [0, 0, 1], [2, 1, 0], [1, 0, 0]]),
        n_after=np.array([[0, 1, 2], [0, 2, 0], [1, 2, 0], [0, 0, 3]]),
        clipped=np.zeros((4, 3), bool))
    np.testing.assert_array_equal(LLMOnlyMerger().predict(x), [1, 1, 0, 2])


def test_central_field_index_ties_prefer_context_before_then_lower_field():
    pos = np.array([[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(
        central_field_index(pos, np.array([[1, 0], [0, 0]]), np.array([[0, 1], [0, 0]])), [0, 0])


def test_llm_only_on_receptive_fields_is_the_middle_of_a_full_window(small):
    # With w = 3, s = 1 every interior utterance is the exact middle of one full window.
    slot = central_field_index(small.position, small.n_before, small.n_after)
    interior = (small.n_before.max(1) == 2) & (small.n_after.max(1) == 2)
    assert interior.any()
    assert (small.position[np.arange(small.n), slot][interior] == 0.5).all()


# -------------------------------------------------------------------------- learning

@pytest.mark.parametrize("name", ["attention", "position"])
def test_learned_mergers_trust_the_informative_field(name, informative):
    train, test = informative
    m = make_merger(name, **LEARN).fit(train, "validation")
    vanilla = accuracy(test.vanilla, test)
    fused = accuracy(m.predict_proba(test), test)
    assert vanilla < 0.75
    assert fused > 0.95 and fused > vanilla + 0.2
    assert m.state["guard"]["beats_fallback"] and not m.state["uses_fallback"]
    # The weight goes to the central field's answer.
    w = m.weights(test)
    central = central_field_index(test.position, test.n_before, test.n_after)
    assert w[np.arange(test.n), central].mean() > 0.8


def test_attention_never_much_worse_than_vanilla_on_noise(noise):
    train, test = noise
    m = AttentionMerger(**LEARN).fit(train, "validation")
    fused = accuracy(m.predict_proba(test), test)
    assert fused >= accuracy(test.vanilla, test) - 0.02
    assert accuracy(UniformMerger().predict_proba(test), test) < 0.3   # the answers are noise
    # Either the guard fell back, or the merger itself kept almost all weight on vanilla.
    assert m.state["uses_fallback"] or m.weights(test)[:, -1].mean() > 0.9


def test_attention_starts_at_the_vanilla_model(small):
    m = AttentionMerger(max_epochs=0, guard=False, vanilla_bias=4.0).fit(small, "validation")
    w = m.weights(small)
    assert w.shape == (small.n, small.t + 1)
    # All answer slots score 0 and the vanilla slot 4: α_vanilla = e^4 / (e^4 + t).
    np.testing.assert_allclose(w[:, -1], math.exp(4) / (math.exp(4) + small.t), rtol=1e-5)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-6)
    assert m.state["best_epoch"] == 0


def test_guard_falls_back_to_vanilla_when_answers_only_hurt():
    x = synthetic(20, seed=5, adversarial=True)
    m = AttentionMerger(max_epochs=0).fit(x, "validation")
    assert m.state["guard"]["enabled"] and not m.state["guard"]["beats_fallback"]
    assert m.state["uses_fallback"] and m.state["guard"]["fallback"] == "vanilla-only"
    np.testing.assert_allclose(m.predict_proba(x), x.vanilla, rtol=0, atol=1e-15)
    w = m.weights(x)
    assert (w[:, -1] == 1).all() and (w[:, :-1] == 0).all()
    # Without the guard the (slightly) mixed model is kept and recorded as such.
    m = AttentionMerger(max_epochs=0, guard=False).fit(x, "validation")
    assert not m.state["uses_fallback"] and not m.state["guard"]["enabled"]
    assert not np.allclose(m.predict_proba(x), x.vanilla)


def test_position_guard_falls_back_to_uniform(noise):
    train, test = noise
    m = PositionMerger(max_epochs=0).fit(train, "validation")
    assert m.state["guard"]["fallback"] == "uniform"
    if m.state["uses_fallback"]:
        np.testing.assert_allclose(m.predict_proba(test), test.answers.mean(1), atol=1e-15)
        np.testing.assert_allclose(m.weights(test), 1 / test.t)


def test_holdout_is_whole_dialogues_and_only_labelled(small):
    x = small.subset(np.arange(small.n))
    x.labels[::4] = -1                          # unknown labels are not fitted on
    m = AttentionMerger(**FAST)
    train_idx, hold_idx = m._holdout_split(x)
    assert not set(train_idx) & set(hold_idx)
    assert set(train_idx) | set(hold_idx) == set(np.flatnonzero(x.labels >= 0))
    held = {x.dialogue_ids[i] for i in hold_idx}
    assert not held & {x.dialogue_ids[i] for i in train_idx}
    m.fit(x, "validation")
    assert m.state["n_fit"] == m.state["n_train"] + m.state["n_holdout"] == (x.labels >= 0).sum()


def test_one_dialogue_falls_back_to_an_utterance_holdout(small):
    one = small.subset(np.flatnonzero(np.array(small.dialogue_ids) == "d0"))
    m = AttentionMerger(**FAST)
    train_idx, hold_idx = m._holdout_split(one)
    assert len(train_idx) and len(hold_idx) and not set(train_idx) & set(hold_idx)
    m.fit(one, "validation")
    assert m.predict_proba(one).shape == one.vanilla.shape


def test_fitting_needs_two_labelled_utterances(small):
    one = small.subset(np.flatnonzero(np.array(small.dialogue_ids) == "d0")[:1])
    with pytest.raises(ValueError, match="at least two"):
        AttentionMerger(**FAST).fit(one, "validation")


# ----------------------------------------------------------------------- test split

@pytest.mark.parametrize("name", MERGERS.names())
@pytest.mark.parametrize("split", ["test", "TEST", " Test "])
def test_fit_on_test_split_raises(name, split, small):
    with pytest.raises(SplitLeakageError, match="test split"):
        make_merger(name).fit(small, split)


@pytest.mark.parametrize("split", ["", "  ", None])
def test_fit_needs_a_split_name(split, small):
    with pytest.raises(ValueError, match="split_name"):
        UniformMerger().fit(small, split)


def test_fit_records_the_split(small):
    m = fitted("attention", small)
    assert m.state["fit_split"] == "validation"
    assert fitted("uniform", small).state["fit_split"] == "validation"


# ------------------------------------------------------------ persistence, determinism

@pytest.mark.parametrize("name", MERGERS.names())
def test_save_load_round_trip(name, small, tmp_path):
    m = fitted(name, small)
    m.save_pretrained(tmp_path / name)
    cfg = json.loads((tmp_path / name / "config.json").read_text())
    assert cfg["merger"] == name and "torch" in cfg["versions"]
    assert (tmp_path / name / "model.safetensors").exists() == m.learned
    for loaded in (load_merger(tmp_path / name), Merger.from_pretrained(tmp_path / name),
                   type(m).from_pretrained(tmp_path / name)):
        assert type(loaded) is type(m)
        assert loaded.options == m.options and loaded.state == json.loads(json.dumps(m.state))
        np.testing.assert_array_equal(loaded.predict_proba(small), m.predict_proba(small))


def test_round_trip_keeps_the_fallback_decision(tmp_path):
    x = synthetic(20, seed=5, adversarial=True)
    m = AttentionMerger(max_epochs=0).fit(x, "validation")
    assert m.state["uses_fallback"]
    loaded = load_merger(m.save_pretrained(tmp_path / "m"))
    assert loaded.state["uses_fallback"]
    np.testing.assert_array_equal(loaded.predict_proba(x), x.vanilla)


def test_loading_the_wrong_type_raises(small, tmp_path):
    UniformMerger().fit(small, "validation").save_pretrained(tmp_path / "u")
    with pytest.raises(ValueError, match="'uniform' merger"):
        AttentionMerger.from_pretrained(tmp_path / "u")


@pytest.mark.parametrize("name", ["attention", "position"])
def test_fitting_is_deterministic_and_leaves_global_rng_alone(name, small):
    rng_before = torch.get_rng_state()
    a = fitted(name, small, seed=7)
    b = fitted(name, small, seed=7)
    assert torch.equal(torch.get_rng_state(), rng_before)
    np.testing.assert_array_equal(a.predict_proba(small), b.predict_proba(small))
    assert a.state == b.state


def test_unfitted_learned_merger_refuses_to_predict(small):
    with pytest.raises(RuntimeError, match="not fitted"):
        AttentionMerger().predict_proba(small)


def test_predicting_other_classes_raises(small):
    m = fitted("attention", small)
    other = synthetic(3, k=4, seed=9)
    with pytest.raises(ValueError, match="classes"):
        m.predict_proba(other)
    renamed = small.subset(np.arange(small.n))
    renamed.classes = tuple(reversed(small.classes))
    with pytest.raises(ValueError, match="classes"):
        m.predict_proba(renamed)


@pytest.mark.parametrize("options, match", [
    ({"holdout": 0.0}, "holdout"), ({"holdout": 1.0}, "holdout"),
    ({"guard_metric": "f1"}, "guard_metric"), ({"max_epochs": -1}, "max_epochs"),
    ({"vad_scale": (5, 1)}, "vad_scale"),
])
def test_invalid_options(options, match):
    with pytest.raises(ValueError, match=match):
        AttentionMerger(**options)


def test_unknown_merger_name():
    with pytest.raises(ConfigError, match="unknown merger"):
        make_merger("median")


# ------------------------------------------------------------------------- inputs

CLASSES = ("neu", "hap", "sad")


def _records(lengths=(4, 3), window=2, stride=1, seed=0):
    """Vanilla prediction rows and per-utterance answer records for dialogues of ``lengths``."""
    rng = np.random.default_rng(seed)
    rows, answers = [], {}
    for di, n in enumerate(lengths):
        did = f"dlg{di}"
        groups = memberships_by_utterance(make_fields(n, window, stride, dialogue_id=did))
        for i, ms in enumerate(groups):
            uid = f"{did}_u{i}"
            p = rng.dirichlet(np.ones(3))
            rows.append(PredictionRow(did, uid, i, dict(zip(CLASSES, p.round(6))), (3.0, 2.5, 4.0),
                                      CLASSES[i % 3] if i != 1 else None, speaker="A", text="..."))
            answers[(did, uid)] = [
                AnswerRecord.from_membership(m, uid, dict(zip(CLASSES, rng.dirichlet(np.ones(3)))),
                                             valid=bool(m.field_id % 2))
                for m in reversed(ms)]       # any order: sorted by field id on reading
    return rows, answers


def test_from_records_builds_consistent_arrays():
    rows, answers = _records()
    x = FusionInputs.from_records(rows, answers)
    assert (x.n, x.t, x.n_classes) == (7, 2, 3) and x.classes == CLASSES
    assert x.utterance_ids[0] == "dlg0_u0" and x.dialogue_ids[-1] == "dlg1"
    np.testing.assert_array_equal(x.labels, [0, -1, 2, 0, 0, -1, 2])
    np.testing.assert_allclose(x.answers.sum(-1), 1.0)
    np.testing.assert_allclose(x.vad[0], [3.0, 2.5, 4.0])
    # Answers are ordered by field id: utterance 0 of dialogue 0 lies in fields 0 and 1,
    # at the start of a one-utterance clipped field and then of a full one.
    recs = sorted(answers[("dlg0", "dlg0_u0")], key=lambda r: r.field_id)
    np.testing.assert_allclose(x.answers[0], [[r.probs[c] for c in CLASSES] for r in recs])
    np.testing.assert_array_equal(x.clipped[0], [True, False])
    np.testing.assert_array_equal(x.answer_valid[0], [False, True])
    np.testing.assert_array_equal(x.position[1], [1.0, 0.0])
    np.testing.assert_array_equal(x.n_before[1], [1, 0])
    np.testing.assert_array_equal(x.n_after[1], [0, 1])
    # A flat list of records groups back to the same inputs.
    y = FusionInputs.from_records(rows, group_answers(r for rs in answers.values() for r in rs))
    np.testing.assert_array_equal(y.answers, x.answers)
    np.testing.assert_array_equal(y.position, x.position)
    # The whole pipeline runs on them.
    for name in MERGERS.names():
        p = make_merger(name, **(FAST if MERGERS.get(name).learned else {})) \
            .fit(x, "validation").predict_proba(x)
        np.testing.assert_allclose(p.sum(1), 1.0)


def test_from_records_errors():
    rows, answers = _records()
    key = ("dlg0", "dlg0_u2")
    with pytest.raises(DataError, match="no LLM answers"):
        FusionInputs.from_records(rows, {k: v for k, v in answers.items() if k != key})
    bad = dict(answers)
    bad[key] = answers[key][:1]
    with pytest.raises(DataError, match="exactly t fields"):
        FusionInputs.from_records(rows, bad)
    bad = dict(answers)
    bad[key] = [replace(r, probs={"neu": 1.0}) for r in answers[key]]
    with pytest.raises(DataError, match="lack classes"):
        FusionInputs.from_records(rows, bad)
    bad[key] = [replace(r, probs={"neu": -1.0, "hap": 1.0, "sad": 1.0}) for r in answers[key]]
    with pytest.raises(DataError, match="non-negative"):
        FusionInputs.from_records(rows, bad)
    with pytest.raises(DataError, match="unknown label"):
        FusionInputs.from_records([replace(rows[0], label="joy")] + rows[1:], answers)
    with pytest.raises(DataError, match="no vanilla"):
        FusionInputs.from_records([], answers)


def test_inputs_validation(small):
    base = dict(vanilla=small.vanilla, vad=small.vad, answers=small.answers,
                position=small.position, n_before=small.n_before, n_after=small.n_after,
                clipped=small.clipped, labels=small.labels)
    FusionInputs(**base)
    for change, match in [
        ({"vanilla": small.vanilla * 2}, "sum to 1"),
        ({"answers": -small.answers}, "negative"),
        ({"answers": np.full((small.n, small.t, 2), 0.5)}, "answers must be"),
        ({"position": small.position + 1}, r"\[0, 1\]"),
        ({"n_before": small.n_before[:, :1]}, "n_before must be"),
        ({"labels": np.full(small.n, small.n_classes)}, "labels"),
        ({"vad": small.vad[:, :2]}, "vad must be"),
    ]:
        with pytest.raises(ValueError, match=match):
            FusionInputs(**(base | change))
    with pytest.raises(ValueError, match="class names"):
        FusionInputs(**base, classes=("a",))
    x = FusionInputs(**(base | {"labels": None, "vad": None}))
    assert (x.labels == -1).all() and np.isnan(x.vad).all() and x.answer_valid.all()
    # Unknown dimension scores are read as the middle of the scale; prediction still works.
    m = fitted("attention", small)
    assert np.isfinite(m.predict_proba(x)).all()


def test_subset(small):
    idx = np.array([5, 0, 2])
    s = small.subset(idx)
    assert s.n == 3 and s.classes == small.classes
    np.testing.assert_array_equal(s.answers, small.answers[idx])
    assert s.dialogue_ids == tuple(small.dialogue_ids[i] for i in idx)


# ----------------------------------------------------- log-linear pooling, product, out-of-fold guard

def test_product_is_the_geometric_mean_of_vanilla_and_the_mean_answer(small):
    p = ProductMerger().predict_proba(small)
    expected = np.sqrt(small.vanilla * small.answers.mean(1))
    np.testing.assert_allclose(p, expected / expected.sum(1, keepdims=True), rtol=1e-9)
    np.testing.assert_allclose(ProductMerger(vanilla_weight=1.0).predict_proba(small), small.vanilla, rtol=1e-9)
    with pytest.raises(ValueError):
        ProductMerger(vanilla_weight=1.5)


@pytest.mark.parametrize("name", ["attention", "position"])
def test_log_linear_pooling_learns_the_informative_field(name, informative):
    train, test = informative
    m = make_merger(name, pooling="log-linear", **LEARN).fit(train, "validation")
    assert accuracy(m.predict_proba(test), test) > 0.95
    np.testing.assert_allclose(m.predict_proba(test).sum(1), 1.0, rtol=1e-6)


def test_log_linear_attention_starts_near_the_vanilla_model(small):
    m = AttentionMerger(max_epochs=0, guard=False, vanilla_bias=12.0, pooling="log-linear").fit(small, "validation")
    np.testing.assert_allclose(m.predict_proba(small), small.vanilla, atol=1e-3)
    with pytest.raises(ValueError, match="pooling"):
        AttentionMerger(pooling="max")


def test_out_of_fold_guard_judges_every_labelled_utterance(informative, noise):
    train, _ = informative
    m = AttentionMerger(guard_folds=3, **LEARN).fit(train, "validation")
    guard = m.state["guard"]
    assert "3-fold" in guard["judged_on"] and guard["beats_fallback"] and not m.state["uses_fallback"]
    assert guard["holdout"]["fused"]["accuracy"] > guard["holdout"]["fallback"]["accuracy"]
    noisy, _ = noise
    bad = AttentionMerger(guard_folds=3, **LEARN).fit(noisy, "validation")
    assert bad.state["uses_fallback"] or bad.state["guard"]["holdout"]["fused"]["accuracy"] >= \
        bad.state["guard"]["holdout"]["fallback"]["accuracy"]


def test_round_trip_of_a_log_linear_merger(informative, tmp_path):
    train, test = informative
    m = AttentionMerger(pooling="log-linear", **LEARN).fit(train, "validation")
    m.save_pretrained(tmp_path / "m")
    again = load_merger(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(test), m.predict_proba(test), rtol=1e-6)


def test_selection_on_validation_chooses_calibration_and_pooling(informative):
    from lantern.fusion.calibration import calibrate
    from lantern.pipeline import select_on_validation

    train, _ = informative
    by_cal = {c: calibrate(train, c) for c in ("none", "batch")}
    fixed = select_on_validation("uniform", {}, by_cal, ["linear", "log-linear"])
    assert set(fixed["candidates"]) == {"none", "batch"} and fixed["criterion"] == "validation accuracy"
    learned = select_on_validation("attention", dict(LEARN), by_cal, ["linear", "log-linear"])
    assert set(learned["candidates"]) == {"none/linear", "none/log-linear", "batch/linear", "batch/log-linear"}
    best = min(learned["candidates"].values(), key=lambda c: c["holdout_nll"])
    assert learned["chosen"] == best
    assert select_on_validation("vanilla-only", {}, by_cal, [])["chosen"] == {"calibration": "none"}

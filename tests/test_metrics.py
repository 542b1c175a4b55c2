"""lantern.evaluation.metrics against scikit-learn and direct formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from lantern.evaluation.metrics import (accuracy, ccc, classification_report, confusion_matrix,
                                        mae, paired_bootstrap, per_class_f1, vad_report,
                                        weighted_f1)

SEEDS = range(60)


def _random_labels(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 9))
    n = int(rng.integers(1, 60))
    # Draw from a random subset so some classes are absent from y_true and/or y_pred.
    true_pool = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)
    pred_pool = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)
    y_true = rng.choice(true_pool, size=n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.choice(pred_pool, size=n))
    return y_true, y_pred, k


@pytest.mark.filterwarnings("ignore:A single label was found")
@pytest.mark.parametrize("seed", SEEDS)
def test_classification_metrics_match_sklearn(seed):
    y_true, y_pred, k = _random_labels(seed)
    labels = list(range(k))
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert weighted_f1(y_true, y_pred, k) == pytest.approx(
        skm.f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0))
    np.testing.assert_allclose(
        per_class_f1(y_true, y_pred, k),
        skm.f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0))
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, k),
                                  skm.confusion_matrix(y_true, y_pred, labels=labels))


@pytest.mark.parametrize("seed", range(20))
def test_mae_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(1, 50)), int(rng.integers(1, 4))
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    np.testing.assert_allclose(mae(a, b), skm.mean_absolute_error(a, b, multioutput="raw_values"))
    assert mae(a[:, 0], b[:, 0]) == pytest.approx(skm.mean_absolute_error(a[:, 0], b[:, 0]))


def _ccc_direct(x, y) -> float:
    x, y = list(map(float, x)), list(map(float, y))
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    vx = sum((v - mx) ** 2 for v in x) / n
    vy = sum((v - my) ** 2 for v in y) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y)) / n
    return 2 * cov / (vx + vy + (mx - my) ** 2)


@pytest.mark.parametrize("seed", range(20))
def test_ccc_matches_direct_formula(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    a = rng.normal(size=(n, 3)) * rng.uniform(0.5, 2, 3) + rng.uniform(-1, 1, 3)
    b = 0.6 * a + rng.normal(size=(n, 3))
    got = ccc(a, b)
    assert got.shape == (3,)
    for j in range(3):
        assert got[j] == pytest.approx(_ccc_direct(a[:, j], b[:, j]))
        assert ccc(a[:, j], b[:, j]) == pytest.approx(got[j])
        # CCC never exceeds |Pearson r| in magnitude.
        assert abs(got[j]) <= abs(np.corrcoef(a[:, j], b[:, j])[0, 1]) + 1e-12


def test_ccc_known_values():
    x = np.array([1.0, 2.5, 3.0, 4.5, 7.0])
    assert ccc(x, x) == pytest.approx(1.0)
    centred = x - x.mean()
    assert ccc(centred, -centred) == pytest.approx(-1.0)
    assert ccc(x, -x) < -0.1                     # negated, uncentred: negative but not -1
    assert ccc(x, x + 1.0) < 1.0                 # a shift is penalised, unlike Pearson
    assert math.isnan(ccc([2.0, 2.0], [2.0, 2.0]))   # undefined for identical constants


def test_classification_report():
    names = ["neu", "hap", "sad"]
    y_true = [0, 0, 1, 1, 1, 0]
    y_pred = [0, 1, 1, 1, 0, 0]
    r = classification_report(y_true, y_pred, names)
    assert r["n"] == 6
    assert r["accuracy"] == pytest.approx(100 * 4 / 6)
    assert r["weighted_f1"] == pytest.approx(
        100 * skm.f1_score(y_true, y_pred, labels=[0, 1, 2], average="weighted", zero_division=0))
    assert r["per_class_f1"]["sad"] == 0.0
    assert r["support"] == {"neu": 3, "hap": 3, "sad": 0}
    assert r["confusion_matrix"] == [[2, 1, 0], [1, 2, 0], [0, 0, 0]]
    # UAR over the classes present = scikit-learn's balanced accuracy; WAR = accuracy
    assert r["uar"] == pytest.approx(100 * skm.balanced_accuracy_score(y_true, y_pred))
    assert r["war"] == pytest.approx(100 * skm.recall_score(y_true, y_pred, labels=[0, 1],
                                                            average="weighted"))
    import json
    json.dumps(r)   # plain Python types only


def test_vad_report_skips_nan_truth():
    rng = np.random.default_rng(0)
    t = rng.uniform(1, 5, size=(30, 3))
    p = t + rng.normal(scale=0.3, size=(30, 3))
    t_nan = t.copy()
    t_nan[::4] = np.nan
    p_garbage = p.copy()
    p_garbage[::4] = 1e6          # predictions on unlabelled rows must not matter
    r = vad_report(t_nan, p_garbage)
    keep = np.isfinite(t_nan[:, 0])
    for j, name in enumerate(("valence", "arousal", "dominance")):
        assert r[name]["n"] == int(keep.sum())
        assert r[name]["mae"] == pytest.approx(skm.mean_absolute_error(t[keep, j], p[keep, j]))
        assert r[name]["ccc"] == pytest.approx(_ccc_direct(t[keep, j], p[keep, j]))
    r2 = vad_report(t[:, :2], p[:, :2], names=("v", "a"))
    assert set(r2) == {"v", "a"}


def test_empty_and_bad_inputs_raise():
    for call in (lambda: accuracy([], []),
                 lambda: weighted_f1([], [], 3),
                 lambda: per_class_f1([], [], 3),
                 lambda: confusion_matrix([], [], 3),
                 lambda: classification_report([], [], ["a"]),
                 lambda: mae([], []),
                 lambda: ccc([], []),
                 lambda: vad_report(np.empty((0, 3)), np.empty((0, 3))),
                 lambda: paired_bootstrap([], [], [], "accuracy")):
        with pytest.raises(ValueError, match="empty"):
            call()
    with pytest.raises(ValueError, match="length"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="outside range"):
        weighted_f1([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="integer"):
        accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="no row"):
        vad_report(np.full((2, 3), np.nan), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        vad_report(np.ones((2, 3)), np.full((2, 3), np.nan))


def test_paired_bootstrap_identical_predictions():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 200)
    a = np.where(rng.random(200) < 0.6, y, rng.integers(0, 4, 200))
    r = paired_bootstrap(y, a, a.copy(), "weighted_f1", n_boot=200, n_classes=4)
    assert r == {"delta": 0.0, "low": 0.0, "high": 0.0, "p_value": 1.0}


def test_paired_bootstrap_clearly_better():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 300)
    a = np.where(rng.random(300) < 0.4, y, rng.integers(0, 4, 300))
    b = np.where(rng.random(300) < 0.8, y, a)
    r = paired_bootstrap(y, a, b, "accuracy", n_boot=300, seed=3)
    assert r["delta"] == pytest.approx(100 * (accuracy(y, b) - accuracy(y, a)))
    assert 0 < r["low"] <= r["delta"] <= r["high"]
    assert r["p_value"] < 0.01
    # Swapping the systems mirrors the result.
    s = paired_bootstrap(y, b, a, "accuracy", n_boot=300, seed=3)
    assert s["delta"] == pytest.approx(-r["delta"])
    assert s["high"] < 0
    # Deterministic for a seed; a callable metric works too.
    assert paired_bootstrap(y, a, b, "accuracy", n_boot=300, seed=3) == r
    c = paired_bootstrap(y, a, b, accuracy, n_boot=300, seed=3)
    assert c["delta"] == pytest.approx(r["delta"] / 100)
    assert c["low"] == pytest.approx(r["low"] / 100)


def test_paired_bootstrap_argument_errors():
    with pytest.raises(ValueError, match="n_classes"):
        paired_bootstrap([0, 1], [0, 1], [0, 1], "weighted_f1")
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap([0, 1], [0, 1], [0, 1], "f2")
    with pytest.raises(ValueError, match="lengths differ"):
        paired_bootstrap([0, 1], [0], [0, 1], "accuracy")


def test_average_precision_matches_scikit_learn_with_ties():
    from lantern.evaluation.metrics import average_precision, mean_average_precision

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=(200, 26))
    y[:, 5] = 0                                              # a class with no positive
    s = np.round(rng.random((200, 26)) + 0.5 * y, 1)        # rounded: many tied scores
    for k in (0, 7, 25):
        assert average_precision(y[:, k], s[:, k]) == pytest.approx(skm.average_precision_score(y[:, k], s[:, k]))
    r = mean_average_precision(y, s)
    keep = [k for k in range(26) if k != 5]
    assert r["map"] == pytest.approx(100 * np.mean([skm.average_precision_score(y[:, k], s[:, k]) for k in keep]))
    assert r["classes_without_positives"] == [5] and r["per_class_ap"][5] is None

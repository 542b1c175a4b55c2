"""The shared label space the corpora meet in, and cross-corpus scoring on it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from lantern.data.label_mapping import (SHARED, TO_SHARED, cross_corpus_scores, project_labels,
                                        project_probs, shared_classes)
from lantern.data.labels import LABEL_SETS
from lantern.errors import ConfigError


def test_every_label_set_maps_every_class():
    for name, ls in LABEL_SETS.items():
        assert set(TO_SHARED[name]) == set(ls.classes), name
        assert {v for v in TO_SHARED[name].values() if v} <= set(SHARED)


def test_shared_classes_between_corpora():
    assert shared_classes("6way", "meld7") == ("neutral", "joy", "sadness", "anger")
    assert shared_classes("meld7", "dailydialog7") == SHARED
    assert shared_classes("emorynlp7", "meld7") == ("neutral", "joy", "sadness", "anger", "fear")


def test_project_probs_sums_merged_classes_and_drops_unmapped():
    classes = ("hap", "sad", "neu", "ang", "exc", "fru")
    p = np.array([[0.1, 0.1, 0.1, 0.1, 0.2, 0.4],     # fru's 0.4 is dropped
                  [0, 0, 0, 0, 0, 1.0]])              # nothing left: uniform
    out = project_probs(p, classes, "6way", ("neutral", "joy", "sadness", "anger"))
    np.testing.assert_allclose(out[0], np.array([0.1, 0.3, 0.1, 0.1]) / 0.6)
    np.testing.assert_allclose(out[1], [0.25] * 4)


def test_project_labels_leaves_out_what_has_no_counterpart():
    target = shared_classes("6way", "emorynlp7")
    y = project_labels(["Joyful", "Peaceful", None, "Scared", "Mad"], "emorynlp7", target)
    assert y.tolist() == [target.index("joy"), -1, -1, -1, target.index("anger")]
    with pytest.raises(ConfigError, match="not a class"):
        project_labels(["hap"], "emorynlp7", target)


def test_cross_corpus_scores_match_sklearn():
    rng = np.random.default_rng(0)
    classes = ("hap", "sad", "neu", "ang", "exc", "fru")
    p = rng.dirichlet(np.ones(6), size=200)
    gold = list(rng.choice(["neutral", "happiness", "surprise", "anger", "sadness", "disgust", "fear"], 200))
    s = cross_corpus_scores(p, classes, "6way", gold, "dailydialog7")
    target = ("neutral", "joy", "sadness", "anger")
    y = project_labels(gold, "dailydialog7", target)
    keep = y >= 0
    pred = project_probs(p, classes, "6way", target)[keep].argmax(1)
    assert s["scored"] == keep.sum() and s["left_out"] == (~keep).sum()
    assert s["accuracy"] == pytest.approx(100 * accuracy_score(y[keep], pred))
    assert s["weighted_f1"] == pytest.approx(100 * f1_score(y[keep], pred, average="weighted",
                                                            labels=range(4), zero_division=0))


def test_unknown_label_set_is_a_config_error():
    with pytest.raises(ConfigError, match="no mapping"):
        shared_classes("6way", "nope")

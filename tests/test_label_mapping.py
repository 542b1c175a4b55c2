"""The shared label space the corpora meet in, and cross-corpus scoring on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from lantern.data.label_mapping import (SHARED, TO_SHARED, project_labels, project_probs,
                                        shared_classes)
from lantern.evaluation.cross_corpus import cross_corpus_scores
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


def test_rows_of_another_corpus_keep_its_labels(tmp_path):
    from lantern.errors import DataError
    from lantern.records import PredictionRow, read_pinned, write_pinned

    probs = {"hap": 0.5, "sad": 0.1, "neu": 0.1, "ang": 0.1, "exc": 0.1, "fru": 0.1}
    row = PredictionRow("d", "u1", 0, probs, (3.0, 3.0, 3.0), "happiness", gold_label_set="dailydialog7")
    assert not row.has_own_label
    write_pinned(tmp_path / "p.jsonl.gz", [row])
    assert read_pinned(tmp_path / "p.jsonl.gz") == [row]
    own = PredictionRow("d", "u2", 1, probs, None, "hap")
    assert own.has_own_label and "gold_label_set" not in own.to_json()   # old files unchanged
    with pytest.raises(DataError, match="unknown label 'hap'"):
        PredictionRow.from_json({**row.to_json(), "label": "hap"})
    with pytest.raises(DataError, match="unknown gold_label_set"):
        PredictionRow.from_json({**row.to_json(), "gold_label_set": "nope"})


def test_fusion_inputs_treat_another_corpus_labels_as_unknown():
    from lantern.fusion.inputs import FusionInputs
    from lantern.records import AnswerRecord, PredictionRow

    probs = {"neu": 0.6, "ang": 0.4}
    rows = [PredictionRow("d", "u1", 0, probs, None, "anger", gold_label_set="meld7"),
            PredictionRow("d", "u2", 1, probs, None, "ang")]
    answers = {r.key: [AnswerRecord("d", r.utterance_id, 0, {"neu": 0.5, "ang": 0.5}, 0.5, 1, 0, False)]
               for r in rows}
    x = FusionInputs.from_records(rows, answers, classes=("neu", "ang"))
    assert x.labels.tolist() == [-1, 1]


def test_a_shipped_model_on_another_corpus_asks_about_its_own_classes():
    from lantern.config import load_config
    from lantern.pipeline import run_slug, vanilla_config

    cfg = load_config("configs/lantern-iemocap-text.yaml", ["vanilla.overrides=[dataset.name=dailydialog]"])
    vcfg = vanilla_config(cfg)
    assert vcfg["dataset"] == {"name": "dailydialog", "label_set": None}
    assert vcfg["model_label_set"] == "6way"
    assert run_slug(cfg).startswith("dailydialog-iemocap-6way-text-")


def test_a_model_trained_on_a_mix_is_refined_on_iemocap_in_its_own_label_set():
    from lantern.config import load_config
    from lantern.pipeline import run_slug, vanilla_config

    vcfg = vanilla_config(load_config("configs/lantern-mix-text-dialogue.yaml"))
    assert vcfg["dataset"] == {"name": "iemocap", "label_set": "6way"} and vcfg["model_label_set"] == "6way"
    assert set(vcfg["features"].values()) == {"text:minilm", "text:qwen-dialogue"}
    assert run_slug(load_config("configs/lantern-mix-text-dialogue.yaml")).startswith(
        "iemocap-6way-mix-6way-text-dialogue-")


def test_fuse_refuses_answers_labelled_by_another_corpus(tmp_path):
    from lantern.errors import DataError
    from lantern.pipeline.fuse import fusion_inputs

    with pytest.raises(DataError, match="another corpus"):
        fusion_inputs(Path("benchmarks/answers/dailydialog-iemocap-6way-text-qwen2.5-coder-1.5b-logprobs-w6s2"),
                      "valid")

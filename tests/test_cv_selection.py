"""Cross-validation folds (lantern.data.folds) and the pooled selection scores
(lantern.evaluation.cv_selection), against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from lantern.config import load_config
from lantern.data.dialogues import Dialogue, EmotionDataset, Utterance
from lantern.data.folds import HELD_OUT, CrossValidationFold, cross_validation_fold
from lantern.data.labels import IEMOCAP_6WAY
from lantern.errors import ConfigError
from lantern.evaluation.cv_selection import candidate_score, confusion_scores, ranked, render_cv_selection


def sessions_dataset() -> EmotionDataset:
    """Dialogues of 4 'sessions' spread over train and valid, plus a test session."""
    splits = {"train": [], "valid": [], "test": []}
    for session in range(1, 6):
        for k in range(3):
            split = "test" if session == 5 else ("valid" if k == 2 else "train")
            did = f"Ses0{session}F_impro0{k}"
            splits[split].append(Dialogue(did, [Utterance(f"{did}_0", "A", "hi", 0)], split))
    return EmotionDataset("toy", IEMOCAP_6WAY, splits)


def test_each_group_is_held_out_exactly_once_and_test_is_untouched():
    ds = sessions_dataset()
    held = []
    for fold in range(4):
        part = cross_validation_fold(ds, CrossValidationFold(fold=fold, folds=4, group=r"^Ses\d+"))
        out = {d.id[:5] for d in part.dialogues(HELD_OUT)}
        assert len(out) == 1 and len(part.dialogues(HELD_OUT)) == 3   # a session's train and valid
        for split in ("train", "valid"):   # the others keep their split: stopping is on valid
            assert not out & {d.id[:5] for d in part.dialogues(split)}
            assert all(d.split == split for d in part.dialogues(split))
        assert all(d.split == HELD_OUT for d in part.dialogues(HELD_OUT))
        assert [len(part.dialogues(s)) for s in ("train", "valid")] == [6, 3]
        assert part.dialogues("test") == ds.dialogues("test")
        assert part.source["cv"]["held_out_groups"] == sorted(out)
        held += sorted(out)
    assert held == ["Ses01", "Ses02", "Ses03", "Ses04"]


def test_bad_folds_are_config_errors():
    ds = sessions_dataset()
    with pytest.raises(ConfigError, match="cannot make 5 folds"):
        cross_validation_fold(ds, CrossValidationFold(fold=0, folds=5, group=r"^Ses\d+"))
    with pytest.raises(ConfigError, match="does not match dialogue id"):
        cross_validation_fold(ds, CrossValidationFold(fold=0, folds=2, group=r"^Dia\d+"))
    with pytest.raises(ConfigError, match="cv.fold"):
        CrossValidationFold(fold=4, folds=4)
    with pytest.raises(ConfigError, match="regular expression"):
        CrossValidationFold(fold=0, folds=2, group="(")
    one_valid = EmotionDataset("toy", ds.label_set, {**ds.splits, "valid": ds.dialogues("valid")[:1]})
    with pytest.raises(ConfigError, match="no valid dialogues"):
        cross_validation_fold(one_valid, CrossValidationFold(fold=0, folds=4, group=r"^Ses\d+"))
    # without a group every dialogue is its own group: 12 dialogues deal into 5 folds
    sizes = [len(cross_validation_fold(ds, CrossValidationFold(fold=k, folds=5)).dialogues(HELD_OUT))
             for k in range(5)]
    assert sizes == [3, 3, 2, 2, 2]


def test_a_config_cv_section_is_read(tmp_path):   # its typos: tests/test_configs.py
    path = tmp_path / "c.yaml"
    path.write_text("dataset: {name: iemocap}\nfeatures: {text: text:minilm}\nmodel: {name: context}\n")
    cfg = load_config(path, overrides=["cv={fold: 1, folds: 4, group: '^Ses\\d+'}"])
    assert CrossValidationFold.of(cfg) == CrossValidationFold(1, 4, r"^Ses\d+")


def test_pooled_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 600)
    p = np.where(rng.random(600) < 0.6, y, rng.integers(0, 6, 600))
    folds = np.arange(600) % 3
    per_fold = {str(k): {"confusion": {"0": confusion_matrix(y[folds == k], p[folds == k],
                                                             labels=range(6)).tolist()}}
                for k in range(3)}
    score = candidate_score(per_fold, 3)
    assert score["accuracy"]["mean"] == pytest.approx(100 * accuracy_score(y, p))
    assert score["weighted_f1"]["mean"] == pytest.approx(100 * f1_score(y, p, average="weighted"))
    assert candidate_score(dict(list(per_fold.items())[:2]), 3) is None   # a fold is missing
    assert candidate_score({**per_fold, "3": per_fold["0"]}, 3) is None   # another scheme's fold
    # a class never predicted nor present scores 0 without dividing by zero
    assert confusion_scores([[2, 0, 0], [1, 1, 0], [0, 0, 0]])["weighted_f1"] == pytest.approx(
        100 * f1_score([0, 0, 1, 1], [0, 0, 0, 1], average="weighted"))


def test_ranking_puts_the_best_complete_candidate_first():
    good = {str(k): {"confusion": {"0": [[5, 0], [0, 5]], "1": [[4, 1], [0, 5]]}} for k in range(2)}
    poor = {str(k): {"confusion": {"0": [[3, 2], [2, 3]], "1": [[3, 2], [2, 3]]}} for k in range(2)}
    order = ranked({"poor": {"folds": poor}, "good": {"folds": good},
                    "half": {"folds": {"0": good["0"]}}}, 2)
    assert [name for name, _ in order] == ["good", "poor"]
    assert order[0][1]["seeds"] == [0, 1] and order[0][1]["accuracy"]["std"] > 0


def test_the_selection_section_ranks_and_survives_odd_files():
    good = {str(k): {"confusion": {"0": [[5, 0], [0, 5]], "1": [[4, 1], [0, 5]]}, "git_commit": "a" * 40}
            for k in range(2)}
    result = {"dataset": "iemocap", "label_set": "6way", "folds": 2, "group": "^Ses", "n_utterances": 40,
              "chosen": "good", "candidates": {
                  "half": {"model": "sdt", "folds": {"0": good["0"]}},
                  "good": {"model": "context", "folds": good, "test": {"weighted_f1": 67.0},
                           "cv": candidate_score(good, 2)},
                  "odd": "not a candidate"}}
    text = render_cv_selection(result)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "candidate" not in line]
    assert rows[0].startswith("| **good** | context | 2/2 | 95.00 ± 7.07") and "aaaaaaa" in rows[0]
    assert rows[1].startswith("| half | sdt | 1/2 | — | — |")
    assert len(rows) == 2 and "**good**" in text
    broken = {**result, "folds": None, "candidates": {"x": {"folds": {"0": {"confusion": "?"}}}}}
    assert "| x |" in render_cv_selection(broken)

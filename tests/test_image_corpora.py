"""EMOTIC, CAER-S and BoLD loaders on fixtures of their official layouts, and the multi-label
path they need (targets, binary cross-entropy, sigmoid probabilities, mAP selection)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from image_corpora import bold_fixture, caer_fixture, emotic_fixture, write_descriptions
from lantern.data.labels import CAER_7, EMOTIC_26
from lantern.errors import ConfigError, DataError

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None and not os.environ.get("CI"),
                                  reason="ffmpeg is not installed (scripts/setup.sh installs it)")


def test_caer_s_folder_layout_on_a_synthetic_fixture(tmp_path):
    from lantern.data.caer import load_caer

    caer_fixture(tmp_path)
    ds = load_caer(tmp_path)
    sizes = {s: len(ds.utterances(s)) for s in ds.splits}
    assert sizes == {"train": 63, "valid": 7, "test": 14}      # 1 of every 10 train images held out
    assert ds.label_counts("valid") == {c: 1 for c in CAER_7.classes}
    assert ds.utterances("test")[0].media["image"].endswith(".png")
    (tmp_path / "CAER-S" / "test" / "Contempt").mkdir()
    with pytest.raises(DataError, match="unknown class folder"):
        load_caer(tmp_path)
    with pytest.raises(DataError, match="no train/ folder"):
        load_caer(tmp_path / "CAER-S")


def test_emotic_official_annotation_layout_on_a_synthetic_fixture(tmp_path):
    from lantern.data.emotic import load_emotic

    emotic_fixture(tmp_path)
    ds = load_emotic(tmp_path)
    train = ds.utterances("train")
    assert len(train) == 3 and len(ds.utterances("valid")) == 2 and len(ds.utterances("test")) == 2
    cls = ds.label_set.classes
    assert [cls[i] for i in train[0].labels] == ["Happiness", "Pleasure"] and train[0].label is None
    assert [cls[i] for i in train[2].labels] == ["Anger", "Annoyance", "Disapproval"]
    assert train[1].meta["box"] == [32.0, 2.0, 60.0, 40.0] and train[1].vad == (4.0, 2.0, 5.0)
    assert train[0].media["image"].endswith("emotic/mscoco/images/a.jpg")
    assert [cls[i] for i in ds.utterances("test")[0].labels] == ["Fear", "Surprise"]
    assert ds.vad_scale == (1.0, 10.0) and len(cls) == 26 and ds.label_set.multi_label
    (tmp_path / "emotic" / "Annotations" / "Annotations.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="cannot read the annotation file"):
        load_emotic(tmp_path)


@needs_ffmpeg
def test_bold_public_release_layout_on_a_synthetic_fixture(tmp_path, monkeypatch):
    from PIL import Image

    from lantern.data.bold import load_bold

    base = bold_fixture(tmp_path)
    ds = load_bold(tmp_path)
    sizes = {s: len(ds.utterances(s)) for s in ds.splits}
    assert sizes == {"train": 2, "valid": 1, "test": 1}         # official val is the test split
    first = ds.utterances("train")[0]
    assert [EMOTIC_26.classes[i] for i in first.labels] == ["Happiness", "Pleasure"]  # Peace 0.2 < 0.5
    assert first.vad == (7.0, 5.5, 6.0) and first.meta["frames"] == [0, 9]
    assert first.meta["category_scores"]["Peace"] == 0.2
    assert first.meta["box"] == pytest.approx([10 + 20 / 17, 5 + 35 / 17, 30.0, 40.0])    # the unsure joint left out
    assert first.meta["keyframe"] == 4 and Image.open(first.media["image"]).size == (64, 48)
    test = ds.utterances("test")[0]
    assert [EMOTIC_26.classes[i] for i in test.labels] == ["Disconnection", "Surprise"]  # BoLD's "Disconnect"
    assert len(load_bold(tmp_path, threshold=0.4).utterances("train")[0].labels) == 2
    # a second load reuses the extracted keyframes (no ffmpeg call)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert load_bold(tmp_path).utterances("train")[0].media["image"] == first.media["image"]
    bad = base / "annotations" / "val.csv"
    bad.write_text(bad.read_text().replace(",0.6,", ",1.6,", 1))
    with pytest.raises(DataError, match="must lie in \\[0, 1\\]") as err:
        load_bold(tmp_path)
    assert "val.csv" in str(err.value) and "line 1" in str(err.value)
    bad.write_text("003/x.mp4,0,1\n")
    with pytest.raises(DataError, match="needs 37 columns"):
        load_bold(tmp_path)
    with pytest.raises(ConfigError, match="one label set"):
        load_bold(tmp_path, label_set="6way")


def _multi_label_utterances(n: int, rng):
    from lantern.data.dialogues import Dialogue, Utterance

    out = []
    for i in range(n):
        labels = tuple(sorted(rng.choice(4, size=rng.integers(1, 3), replace=False).tolist()))
        x = rng.normal(size=6).astype(np.float32)
        x[list(labels)] += 3.0          # the target classes are readable from the features
        out.append(Dialogue(f"d{i}", [Utterance(f"u{i}", "p", "", features={"image:x": x}, labels=labels)]))
    return out


def test_multi_label_targets_loss_and_selection_by_map():
    """Multi-hot targets, binary cross-entropy on each class's sigmoid, probabilities that need
    not sum to 1, and the trainer selecting on validation mAP."""
    from lantern.data.dialogues import LabelSet
    from lantern.evaluation.metrics import mean_average_precision
    from lantern.models.batching import FeatureSpec, collate
    from lantern.models.utterance import LinearClassifier
    from lantern.training.losses import multitask_loss
    from lantern.training.trainer import Trainer, TrainingConfig

    rng = np.random.default_rng(0)
    train, valid = _multi_label_utterances(80, rng), _multi_label_utterances(20, rng)
    spec = FeatureSpec.fit({"image": "image:x"}, train)
    batch = collate(train[:3], spec, None, n_classes=4)
    assert batch.targets.shape == (3, 1, 4)
    assert batch.targets[0, 0].tolist() == [float(k in train[0].utterances[0].labels) for k in range(4)]
    model = LinearClassifier({"image": 6}, 4)
    loss, parts = multitask_loss(model(batch), batch, vad_weight=0.0)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(model(batch).logits[:, 0], batch.targets[:, 0])
    assert torch.isclose(loss, expected) and "ce" in parts
    fit = Trainer(model, spec, train, valid, TrainingConfig(epochs=30, lr=0.05, patience=30, batch_size=16),
                  progress=False, multi_label=True).fit()
    assert fit["selection_metric"] == "mAP" and fit["best_valid_mAP"] > 80
    from lantern.models.inference import multi_label_arrays, prediction_rows

    labels = LabelSet("demo-multi", ("a", "b", "c", "d"), multi_label=True)
    rows = list(prediction_rows(model, valid, spec, labels, None))
    assert any(abs(sum(r.probs.values()) - 1) > 0.05 for r in rows)   # sigmoids, not a softmax
    y, p = multi_label_arrays(rows, labels.classes)
    assert mean_average_precision(y, p)["map"] == pytest.approx(fit["best_valid_mAP"], abs=1e-6)


def test_a_multi_label_prediction_row_round_trips_and_is_checked():
    from lantern.records import PredictionRow

    row = PredictionRow("d", "u", 0, {"a": 0.9, "b": 0.7}, multi_label=True, labels=("a", "b"))
    back = PredictionRow.from_json(json.loads(json.dumps(row.to_json())))
    assert back == row
    bad = dict(row.to_json(), probs={"a": 1.5, "b": 0.1})
    with pytest.raises(DataError, match="lie in \\[0, 1\\]"):
        PredictionRow.from_json(bad, path="p.jsonl", line=3)
    with pytest.raises(DataError, match="labels must be"):
        PredictionRow.from_json(dict(row.to_json(), labels=["z"]))


def test_descriptions_are_matched_by_image_and_subject_box(tmp_path):
    """An EMOTIC image shows several people: each takes the description written for its box."""
    from lantern.data.descriptions import attach_descriptions
    from lantern.data.emotic import load_emotic

    emotic_fixture(tmp_path, images=True)
    ds = load_emotic(tmp_path)
    file = write_descriptions(tmp_path / "d.jsonl", ds)
    attach_descriptions(ds, file)
    a, b = ds.utterances("train")[:2]
    assert a.media["image"] == b.media["image"] and a.text != b.text and a.id in a.text
    # a file written without boxes (lantern describe on the image files) still serves each person
    lines = [dict(json.loads(x), box=None) for x in file.read_text().splitlines()]
    file.write_text("".join(json.dumps(x) + "\n" for x in lines))
    attach_descriptions(ds, file)
    assert ds.utterances("train")[0].text.startswith("The person")


def test_describe_dataset_lists_every_person_with_its_box(tmp_path):
    from lantern.describe.cli import _dataset_images

    emotic_fixture(tmp_path, images=True)
    images, boxes, label_set = _dataset_images("emotic", str(tmp_path))
    assert len(images) == 7 and boxes[1] == [32.0, 2.0, 60.0, 40.0] and label_set == "emotic26"


def test_a_multi_label_prediction_lists_every_class_past_one_half():
    from lantern.data.dialogues import Dialogue, Utterance
    from lantern.predict.inputs import PredictInput
    from lantern.predict.outputs import build_document
    from lantern.records import PredictionRow

    row = PredictionRow("img", "img", 0, {c: 0.1 for c in EMOTIC_26.classes} | {"Fear": 0.8, "Pain": 0.6},
                        (5.0, 5.0, 5.0), multi_label=True)
    inp = PredictInput("a.jpg", "images", [Dialogue("img", [Utterance("img", "person", "", media={"image": "a.jpg"})])],
                       EMOTIC_26)
    doc = build_document([row], inp, EMOTIC_26, (1.0, 10.0), {}, None, None, {}, "a.jpg", system="context")
    assert doc["utterances"][0]["vanilla"]["labels"] == ["Fear", "Pain"]

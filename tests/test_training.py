"""Trainer, collation and prediction export on small synthetic dialogues (unit level)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lantern.data.labels import IEMOCAP_6WAY
from lantern.data.dialogues import Dialogue, EmotionDataset, Utterance
from lantern.models import MODELS
from lantern.models.batching import FeatureSpec, collate
from lantern.models.inference import prediction_rows
from lantern.records import read_predictions, write_predictions
from lantern.training.trainer import Trainer, TrainingConfig, class_weight_tensor


def synthetic_dataset(n_dialogues=6, seed=0) -> EmotionDataset:
    """Separable toy data: the class is encoded in the text feature's first 6 dims."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("train", "valid", "test"):
        dialogues = []
        for d in range(n_dialogues):
            utts = []
            for t in range(int(rng.integers(3, 9))):
                label = int(rng.integers(0, 6))
                text = rng.normal(0, 0.3, 16).astype(np.float32)
                text[label] += 2.0
                utts.append(Utterance(f"{split}{d}_{t}", "AB"[t % 2], f"utt {t}", label,
                                      (3.0 + label / 5, 2.5, 3.0),
                                      {"text:toy": text, "audio:toy": rng.normal(size=4).astype(np.float32)}))
            dialogues.append(Dialogue(f"{split}{d}", utts, split))
        splits[split] = dialogues
    return EmotionDataset("toy", IEMOCAP_6WAY, splits, vad_scale=(1.0, 5.0))


MODALITIES = {"text": "text:toy", "audio": "audio:toy"}


def test_collate_pads_and_masks():
    ds = synthetic_dataset()
    spec = FeatureSpec.fit(MODALITIES, ds.dialogues("train"))
    batch = collate(ds.dialogues("train")[:3], spec, ds.vad_scale)
    lengths = [len(d) for d in ds.dialogues("train")[:3]]
    assert batch.mask.sum(1).tolist() == lengths
    assert (batch.labels[~batch.mask] == -100).all()
    assert torch.isnan(batch.vad[~batch.mask]).all()
    assert batch.vad[batch.mask].abs().max() <= 1.0  # normalised from the 1-5 scale
    assert batch.features["text"].shape[-1] == 16


def test_coarse_labels_enter_the_loss_as_the_mass_on_their_classes():
    from lantern.models.base import ModelOutput
    from lantern.training.losses import multitask_loss

    ds = synthetic_dataset()
    spec = FeatureSpec.fit(MODALITIES, ds.dialogues("train"))
    dialogues = ds.dialogues("train")[:2]
    first, second = dialogues[0].utterances[0], dialogues[1].utterances[1]
    first.label, first.meta["label_options"] = None, [0, 4]      # hap or exc
    second.label, second.meta["label_options"] = None, [2]       # a one-class option is exact
    batch = collate(dialogues, spec, ds.vad_scale, n_classes=6)
    assert batch.label_options[0, 0].tolist() == [True, False, False, False, True, False]
    assert batch.label_options.sum() == 3 and collate(dialogues, spec, ds.vad_scale).label_options is None
    logits = torch.randn(*batch.labels.shape, 6)
    out = ModelOutput(logits, torch.zeros(*batch.labels.shape, 3))
    weight = torch.tensor([1.0, 2.0, 0.5, 1.0, 1.5, 1.0])
    loss, _ = multitask_loss(out, batch, weight, vad_weight=0.0)
    # by hand: weighted exact NLL and unweighted coarse NLL, averaged over their total weight
    logp = torch.log_softmax(logits, -1)
    exact = batch.labels != -100
    w = weight[batch.labels[exact]]
    exact_sum = -(w * logp[exact].gather(-1, batch.labels[exact][:, None])[:, 0]).sum()
    coarse = [-torch.logsumexp(logp[0, 0, [0, 4]], 0), -logp[1, 1, 2]]
    assert loss.item() == pytest.approx(((exact_sum + sum(coarse)) / (w.sum() + 2)).item(), rel=1e-5)
    # with no coarse label the loss is plain weighted cross-entropy
    del first.meta["label_options"], second.meta["label_options"]
    plain = collate(dialogues, spec, ds.vad_scale, n_classes=6)
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, 6), plain.labels.reshape(-1), weight=weight,
                                            ignore_index=-100)
    assert multitask_loss(out, plain, weight, vad_weight=0.0)[0].item() == pytest.approx(ref.item(), rel=1e-6)
    # a loss weight of 3 on the first dialogue counts it as if it were there three times
    for u in dialogues[0]:
        u.meta["weight"] = 3.0
    weighted = collate(dialogues, spec, ds.vad_scale, n_classes=6)
    assert weighted.weights[0, :len(dialogues[0])].tolist() == [3.0] * len(dialogues[0])
    assert collate(dialogues, spec, ds.vad_scale).weights is None
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, 6), plain.labels.reshape(-1),
                                            ignore_index=-100, reduction="none").reshape(plain.labels.shape)
    cw = torch.where(exact, weight[plain.labels.clamp(min=0)], torch.zeros(()))
    cw[0] *= 3
    assert multitask_loss(out, weighted, weight, vad_weight=0.0)[0].item() == pytest.approx(
        ((cw * nll).sum() / cw.sum()).item(), rel=1e-5)


def test_feature_spec_round_trip():
    ds = synthetic_dataset()
    spec = FeatureSpec.fit(MODALITIES, ds.dialogues("train"))
    again = FeatureSpec.from_config(json.loads(json.dumps(spec.to_config())))
    assert again.modalities == spec.modalities
    np.testing.assert_allclose(again.mean["text"], spec.mean["text"])


def test_class_weights_inverse_frequency():
    ds = synthetic_dataset()
    w = class_weight_tensor(ds.dialogues("train"), 6)
    counts = np.bincount([u.label for u in ds.utterances("train")], minlength=6)
    assert w.shape == (6,)
    assert w[int(np.argmax(counts))] == w.min()


def _trainer(ds, run_dir, epochs, seed=0):
    spec = FeatureSpec.fit(MODALITIES, ds.dialogues("train"))
    torch.manual_seed(seed)
    model = MODELS.get("context")(spec.dims(), 6, 2, hidden=16, dropout=0.0)
    cfg = TrainingConfig(epochs=epochs, lr=0.01, batch_size=2, patience=100, seed=seed)
    return Trainer(model, spec, ds.dialogues("train"), ds.dialogues("valid"), cfg, ds.vad_scale,
                   run_dir=run_dir, progress=False), spec


def test_trainer_learns_and_selects_on_valid(tmp_path):
    ds = synthetic_dataset()
    trainer, _ = _trainer(ds, tmp_path / "run", epochs=15)
    fit = trainer.fit()
    assert fit["best_valid_weighted_f1"] > 60
    assert fit["best_epoch"] == max(range(len(fit["history"])),
                                    key=lambda i: fit["history"][i]["valid_weighted_f1"]) + 1
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_resume_refuses_a_different_config(tmp_path):
    ds = synthetic_dataset()
    first, _ = _trainer(ds, tmp_path / "run", epochs=2)
    first.fit()
    other, _ = _trainer(ds, tmp_path / "run", epochs=4)
    with pytest.raises(RuntimeError, match="another experiment or training config"):
        other.fit()


def test_resume_refuses_a_different_experiment(tmp_path):
    # Same training config, different experiment (e.g. another label set): no resume.
    ds = synthetic_dataset()
    first, _ = _trainer(ds, tmp_path / "run", epochs=2)
    first.fingerprint = "6way"
    first.fit()
    other, _ = _trainer(ds, tmp_path / "run", epochs=2)
    other.fingerprint = "4way-merge"
    with pytest.raises(RuntimeError, match="another experiment"):
        other.fit()


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, monkeypatch):
    ds = synthetic_dataset()
    straight, _ = _trainer(ds, tmp_path / "a", epochs=5)
    straight.fit()
    expected = {k: v.clone() for k, v in straight.model.state_dict().items()}

    crashing, _ = _trainer(ds, tmp_path / "b", epochs=5)
    calls = {"n": 0}
    original = Trainer._train_epoch

    def crash_on_third(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "_train_epoch", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        crashing.fit()
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    resumed, _ = _trainer(ds, tmp_path / "b", epochs=5)
    fit = resumed.fit()
    assert fit["resumed"] and fit["epochs_run"] == 5
    for k, v in resumed.model.state_dict().items():
        torch.testing.assert_close(v, expected[k])


def test_prediction_export_round_trip(tmp_path):
    ds = synthetic_dataset()
    trainer, spec = _trainer(ds, None, epochs=2)
    trainer.fit()
    rows = list(prediction_rows(trainer.model, ds.dialogues("test"), spec, ds.label_set, ds.vad_scale))
    assert len(rows) == len(ds.utterances("test"))
    path = write_predictions(tmp_path / "test.jsonl", rows)
    back = read_predictions(path)
    assert back == rows
    assert abs(sum(back[0].probs.values()) - 1) < 1e-3
    assert 0.5 < back[0].vad[0] < 5.5  # back on the dataset's 1-5 scale


def test_missing_measurements_are_imputed_with_the_train_mean():
    ds = synthetic_dataset()
    ds.dialogues("train")[0].utterances[0].features["audio:toy"] = np.full(4, np.nan, np.float32)
    spec = FeatureSpec.fit(MODALITIES, ds.dialogues("train"))
    assert np.isfinite(spec.mean["audio"]).all()
    batch = collate(ds.dialogues("train")[:1], spec, ds.vad_scale)
    assert torch.equal(batch.features["audio"][0, 0], torch.zeros(4))


def test_a_misspelt_model_option_is_a_config_error():
    from lantern.errors import ConfigError
    with pytest.raises(ConfigError, match="bad options for model 'context'.*hiden"):
        MODELS.create("context", {"text": 4}, 6, 2, hiden=16)


def test_an_ensemble_clips_each_member_on_its_own(monkeypatch, tmp_path):
    ds = synthetic_dataset()
    spec = FeatureSpec.fit(MODALITIES, ds.dialogues("train"))
    torch.manual_seed(0)
    model = MODELS.create("ensemble", spec.dims(), 6, 2, member="context", size=3, hidden=8)
    clipped = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda params, norm: clipped.append(list(params)) or real(clipped[-1], norm))
    cfg = TrainingConfig(epochs=1, batch_size=64, patience=1, seed=0)
    Trainer(model, spec, ds.dialogues("train"), ds.dialogues("valid"), cfg, ds.vad_scale,
            run_dir=tmp_path, progress=False).fit()
    assert len(clipped) == 3   # one batch, one clip per member
    for params, member in zip(clipped, model.members):
        assert [id(p) for p in params] == [id(p) for p in member.parameters()]

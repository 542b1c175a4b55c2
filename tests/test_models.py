"""Vanilla models: shapes for 1-3 modalities, padding isolation, gradients, overfitting,
save/load round trip, SDT self-distillation loss, ensembles' independent members."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from lantern.models import MODELS
from lantern.models.base import CONFIG_NAME, WEIGHTS_NAME, Batch, VanillaModel

K = 4
DIMS = {"text": 12, "audio": 5, "visual": 7}
# tiny hyper-parameters so the whole file stays fast on two cores
TINY = {
    "context": {"hidden": 16},
    "corect": {"hidden": 16, "graph_heads": 2, "encoder_layers": 1, "self_att_layers": 1,
               "crossmodal_layers": 1, "wp": 2, "wf": 1},
    "sdt": {"hidden": 16, "heads": 2},
    "ensemble": {"member": "context", "size": 3, "hidden": 16},
}
NAMES = sorted(TINY)
MODALITY_SETS = [("text",), ("audio", "text"), ("audio", "text", "visual")]


def make_model(name: str, modalities=("audio", "text"), seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return MODELS.get(name)({m: DIMS[m] for m in modalities}, K, n_speakers=3,
                            **{**TINY[name], **overrides})


def make_batch(modalities=("audio", "text"), lengths=(6, 3), seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    feats = {m: torch.randn(B, T, DIMS[m], generator=g) for m in modalities}
    speakers = torch.randint(0, 2, (B, T), generator=g).masked_fill(~mask, 0)
    labels = torch.randint(0, K, (B, T), generator=g).masked_fill(~mask, -100)
    vad = torch.rand(B, T, 3, generator=g) * 2 - 1
    vad[~mask] = float("nan")
    return Batch(feats, mask, speakers, labels, vad)


def loss_of(out, batch: Batch) -> torch.Tensor:
    """Class CE + VAD MSE (+ the model's aux loss), as the trainer combines them."""
    loss = F.cross_entropy(out.logits.reshape(-1, K), batch.labels.reshape(-1), ignore_index=-100)
    known = batch.mask[..., None] & ~torch.isnan(batch.vad)
    loss = loss + F.mse_loss(out.vad[known], batch.vad[known])
    return loss if out.aux_loss is None else loss + out.aux_loss


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("modalities", MODALITY_SETS, ids=lambda m: "+".join(m))
def test_forward_shapes(name, modalities):
    model = make_model(name, modalities)
    batch = make_batch(modalities)
    out = model(batch)
    assert out.logits.shape == (2, 6, K)
    assert out.vad.shape == (2, 6, 3)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.vad).all()
    assert (out.vad.abs() <= 1).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("modalities", [("text",), ("audio", "text")], ids=lambda m: "+".join(m))
def test_padding_does_not_leak(name, modalities):
    model = make_model(name, modalities).eval()
    batch = make_batch(modalities)
    with torch.no_grad():
        ref = model(batch)
        for m in modalities:          # garbage at padded positions
            batch.features[m][~batch.mask] = torch.randn_like(batch.features[m][~batch.mask]) * 50
        batch.speakers[~batch.mask] = 2
        new = model(batch)
    torch.testing.assert_close(new.logits[batch.mask], ref.logits[batch.mask])
    torch.testing.assert_close(new.vad[batch.mask], ref.vad[batch.mask])


@pytest.mark.parametrize("name", NAMES)
def test_padding_does_not_leak_in_training_batches(name):
    """Also in train mode (BatchNorm statistics, dropout off): padded rows change nothing."""
    model = make_model(name, dropout=0.0).train()
    batch = make_batch()
    torch.manual_seed(0)
    ref = model(batch)
    batch.features["text"][~batch.mask] = 100.0
    torch.manual_seed(0)
    new = model(batch)
    torch.testing.assert_close(new.logits[batch.mask], ref.logits[batch.mask])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("modalities", [("text",), ("audio", "text", "visual")],
                         ids=lambda m: "+".join(m))
def test_backward_gives_finite_grads_everywhere(name, modalities):
    model = make_model(name, modalities).train()
    batch = make_batch(modalities)
    loss_of(model(batch), batch).backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}: {pname} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"


@pytest.mark.parametrize("name", NAMES)
def test_tiny_overfit(name):
    model = make_model(name, dropout=0.0).train()
    batch = make_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = loss_of(model(batch), batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    model = make_model(name, ("audio", "text", "visual"))
    batch = make_batch(("audio", "text", "visual"))
    model.train()
    loss_of(model(batch), batch)          # a train-mode pass moves BatchNorm running stats
    model.eval()
    model.save_pretrained(tmp_path, metadata={"labels": ["a", "b", "c", "d"]})
    assert (tmp_path / WEIGHTS_NAME).is_file()
    cfg = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert cfg["model_type"] == name and cfg["labels"] == ["a", "b", "c", "d"]
    assert {"lantern", "torch", "numpy", "python"} <= set(cfg["versions"])
    loaded = VanillaModel.from_pretrained(tmp_path)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.hparams == model.hparams
    with torch.no_grad():
        a, b = model(batch), loaded(batch)
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)
    torch.testing.assert_close(a.vad, b.vad, rtol=0, atol=0)


def test_sdt_aux_loss_train_only():
    model = make_model("sdt")
    batch = make_batch()
    out = model.train()(batch)
    assert out.aux_loss is not None and out.aux_loss.ndim == 0 and torch.isfinite(out.aux_loss)
    assert out.aux_loss.requires_grad
    assert model.eval()(batch).aux_loss is None
    unlabelled = make_batch()
    unlabelled.labels.fill_(-100)
    assert model.train()(unlabelled).aux_loss is None


def test_sdt_distillation_weights_and_teacher_detach():
    batch = make_batch()
    model = make_model("sdt", dropout=0.0).train()
    base = model(batch).aux_loss
    model.gamma_kl = 0.0
    ce_only = model(batch).aux_loss
    model.gamma_ce, model.gamma_kl = 0.0, 1.0
    kl_only = model(batch).aux_loss
    torch.testing.assert_close(base, ce_only + kl_only)
    assert kl_only >= 0
    # teacher detached: the distillation loss sends no gradient into the teacher head
    kl_only.backward()
    assert model.heads.classifier.weight.grad is None or \
        model.heads.classifier.weight.grad.abs().sum() == 0
    assert model.students["text"][-1].weight.grad.abs().sum() > 0


def test_corect_graph_relations():
    model = make_model("corect", ("audio", "text"), wp=1, wf=2)
    assert model.n_relations == 2 * 3 + 2
    mask = torch.tensor([[True, True, True, True, False]])
    rel = model.relations(mask, torch.zeros(1, 5, dtype=torch.long))[0]   # (10, 10)
    T = 5
    # audio node 2 receives from audio 1 (past), itself (present), 3 (future), not 4 (padding)
    assert rel[2, 1] == 0 and rel[2, 2] == 1 and rel[2, 3] == 2 and rel[2, 4] == -1
    assert rel[1, 3] == 2 and rel[3, 1] == -1        # future window 2, past window 1
    assert rel[2, 0] == -1
    # cross-modal edges only between one utterance's nodes: text 2 <- audio 2 and back
    assert rel[T + 2, 2] >= 6 and rel[2, T + 2] >= 6 and rel[T + 2, 2] != rel[2, T + 2]
    assert rel[T + 2, 3] == -1
    # padding nodes have no edges at all
    assert (rel[4] == -1).all() and (rel[:, 4] == -1).all() and (rel[T + 4] == -1).all()
    spk = make_model("corect", ("text",), speaker_relations=True, rgcn_bases=2, wf=2)
    assert spk.n_relations == 5
    r = spk.relations(torch.ones(1, 3, dtype=torch.bool), torch.tensor([[0, 1, 0]]))[0]
    assert r[2, 0] == 0 and r[2, 1] == 1 and r[0, 0] == 2 and r[0, 1] == 4 and r[0, 2] == 3


@pytest.mark.parametrize("encoder", ["lstm", "ffn"])
def test_corect_text_encoder_options(encoder):
    model = make_model("corect", ("text",), text_encoder=encoder).eval()
    batch = make_batch(("text",))
    with torch.no_grad():
        ref = model(batch).logits
        batch.features["text"][~batch.mask] = 9.0
        torch.testing.assert_close(model(batch).logits[batch.mask], ref[batch.mask])


def test_ensemble_members_differ_and_train_on_their_own_losses():
    from lantern.training.losses import multitask_loss

    model = make_model("ensemble", dropout=0.0).train()
    batch = make_batch()
    out = model(batch)
    first = [p.detach().clone() for p in model.members[0].parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(first, model.members[1].parameters()))
    loss, parts = multitask_loss(out, batch, vad_weight=0.5)
    own = [multitask_loss(m, batch, vad_weight=0.5)[0] for m in out.members]
    torch.testing.assert_close(loss, sum(own))
    assert set(parts) == {"ce", "vad"}
    # member 0's gradient is that of its own loss alone: the others do not reach it
    loss.backward()
    grads = [p.grad.clone() for p in model.members[0].parameters()]
    model.zero_grad()
    multitask_loss(model.members[0](batch), batch, vad_weight=0.5)[0].backward()
    for g, p in zip(grads, model.members[0].parameters()):
        torch.testing.assert_close(g, p.grad)
    # the ensemble's probabilities are the members' mean
    with torch.no_grad():
        model.eval()
        mean = torch.stack([m(batch).logits.softmax(-1) for m in model.members]).mean(0)
        torch.testing.assert_close(model(batch).logits.exp(), mean)


def test_ensemble_options_are_checked():
    from lantern.errors import ConfigError

    with pytest.raises(ConfigError, match="size"):
        make_model("ensemble", size=1)
    for member in ("ensemble", "emotion-llama"):
        with pytest.raises(ConfigError, match="member must be one of"):
            make_model("ensemble", member=member)


def test_an_ensemble_config_loads_with_its_members_options(tmp_path):   # typos: test_configs.py
    from lantern.config import load_config

    path = tmp_path / "e.yaml"
    path.write_text("dataset: {name: iemocap}\nfeatures: {text: text:minilm}\n"
                    "model: {name: ensemble, member: sdt, size: 3, heads: 2}\n")
    assert load_config(path)["model"]["member"] == "sdt"

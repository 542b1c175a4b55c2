"""The context-qformer model of issue #13: shapes, which stream reads what, padding tokens,
training and save/load, on tiny random tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lantern.models import MODELS
from lantern.models.base import Batch, VanillaModel
from lantern.models.context_qformer import STREAMS

K, TEXT_TOK, TEXT_DIM, IMG_TOK, IMG_DIM = 5, 3, 8, 4, 6
DIMS = {"text": TEXT_TOK * TEXT_DIM, "visual": IMG_TOK * IMG_DIM}


def make_model(streams="fused", seed=0, **kw):
    torch.manual_seed(seed)
    return MODELS.get("context-qformer")(DIMS, K, text_tokens=TEXT_TOK, image_tokens=IMG_TOK,
                                         streams=streams, hidden=16, n_heads=2, n_queries=4,
                                         **{"dropout": 0.0, **kw})


def make_batch(n=6, seed=1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    feats = {m: torch.randn(n, 1, d, generator=g) for m, d in DIMS.items()}
    return Batch(feats, torch.ones(n, 1, dtype=torch.bool), torch.zeros(n, 1, dtype=torch.long),
                 torch.randint(0, K, (n, 1), generator=g), torch.zeros(n, 1, 3))


@pytest.mark.parametrize("streams", STREAMS)
def test_shapes_and_finite(streams):
    out = make_model(streams).eval()(make_batch())
    assert out.logits.shape == (6, 1, K) and out.vad.shape == (6, 1, 3)
    assert torch.isfinite(out.logits).all() and (out.vad.abs() <= 1).all()


@pytest.mark.parametrize("streams, ignored", [("text-only", "visual"), ("image-only", "text")])
def test_an_ablation_does_not_read_the_other_stream(streams, ignored):
    model, batch = make_model(streams).eval(), make_batch()
    with torch.no_grad():
        ref = model(batch).logits
        batch.features[ignored] = torch.randn_like(batch.features[ignored]) * 10
        torch.testing.assert_close(model(batch).logits, ref)


def test_fused_reads_both_streams():
    model, batch = make_model().eval(), make_batch()
    with torch.no_grad():
        ref = model(batch).logits
        for m in DIMS:
            changed = make_batch()
            changed.features[m] = torch.randn_like(changed.features[m])
            assert not torch.allclose(model(changed).logits, ref), m


def test_zero_tokens_are_padding():
    """A description padded with all-zero tokens is read as the shorter description: the
    output does not depend on what a *non-padding* position would have held."""
    model, batch = make_model().eval(), make_batch()
    text = batch.features["text"].reshape(6, 1, TEXT_TOK, TEXT_DIM)
    text[:, :, -1] = 0.0                                # last token is padding
    batch.features["text"] = text.reshape(6, 1, -1)
    padded_item = make_batch()
    with torch.no_grad():
        out = model(batch).logits
        # an all-zero (padded) utterance stays finite
        padded_item.features = {m: torch.zeros_like(v) for m, v in padded_item.features.items()}
        assert torch.isfinite(model(padded_item).logits).all()
    # the same inputs with the padding token made non-zero give a different answer
    text[:, :, -1] = 1.0
    batch.features["text"] = text.reshape(6, 1, -1)
    with torch.no_grad():
        assert not torch.allclose(model(batch).logits, out)


def test_trains_on_a_separable_problem():
    model, batch = make_model().train(), make_batch(n=24)
    batch.features["visual"][:, 0, :IMG_DIM] += 3.0 * F.one_hot(batch.labels[:, 0], IMG_DIM)[:, :IMG_DIM]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(batch).logits[:, 0], batch.labels[:, 0])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("streams", STREAMS)
def test_every_parameter_gets_a_gradient(streams):
    model, batch = make_model(streams).train(), make_batch()
    F.cross_entropy(model(batch).logits[:, 0], batch.labels[:, 0]).backward()
    for name, p in model.named_parameters():
        if name.startswith("heads.regressor"):
            continue                                   # the VAD head: no VAD loss here
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_save_load_round_trip(tmp_path):
    model, batch = make_model(dropout=0.1).eval(), make_batch()
    model.save_pretrained(tmp_path)
    loaded = VanillaModel.from_pretrained(tmp_path)
    assert type(loaded) is type(model) and loaded.hparams == model.hparams
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).logits, model(batch).logits, rtol=0, atol=0)


@pytest.mark.parametrize("kw, message", [
    ({"streams": "both"}, "streams must be one of"),
    ({"text": "audio"}, "reads the text from the 'audio' features"),
    ({"text_tokens": 5}, "not a whole number of text_tokens=5"),
    ({"hidden": 15}, "multiple of n_heads"),
])
def test_bad_options_are_named(kw, message):
    opts = {"text_tokens": TEXT_TOK, "image_tokens": IMG_TOK, "hidden": 16, "n_heads": 2, **kw}
    with pytest.raises(ValueError, match=message):
        MODELS.get("context-qformer")(DIMS, K, **opts)

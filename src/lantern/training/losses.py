"""Multi-task loss: class cross-entropy + lambda * dimension regression (+ model aux loss).

A coarse label (``batch.label_options``: the classes an utterance of another corpus may
be, such as MELD joy for IEMOCAP's hap or exc) contributes the negative log of the
probability mass on its allowed classes; exact and coarse labels are averaged together,
each utterance counting once (coarse ones unweighted by class). A loss weight per utterance
(``batch.weights``: a mix's per-corpus weight) multiplies its term and its share of the
denominator, so weight 2 counts an utterance as if it were there twice.

A multi-label target (``batch.targets``: EMOTIC's categories) takes binary cross-entropy on
each class's own sigmoid instead, averaged over the labelled utterances and the classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lantern.errors import ConfigError
from lantern.models.base import Batch, ModelOutput


def ccc_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """1 - Lin's concordance correlation, averaged over dimensions (columns)."""
    pm, tm = pred.mean(0), true.mean(0)
    pv, tv = pred.var(0, unbiased=False), true.var(0, unbiased=False)
    cov = ((pred - pm) * (true - tm)).mean(0)
    return (1 - 2 * cov / (pv + tv + (pm - tm) ** 2 + 1e-8)).mean()


def _multi_label_bce(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    rows = batch.mask & ~torch.isnan(batch.targets[..., 0])
    if not rows.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[rows], batch.targets[rows])


def multitask_loss(out: ModelOutput, batch: Batch, class_weight: torch.Tensor | None = None,
                   vad_weight: float = 0.5, vad_loss: str = "mse") -> tuple[torch.Tensor, dict]:
    # An ensemble: the sum of its members' own losses, so no gradient couples them (the logged
    # parts are the members' means; the training loss is their sum).
    if out.members:
        if batch.targets is not None:
            raise ConfigError("an ensemble averages softmax probabilities: single-label targets only")
        losses = [multitask_loss(m, batch, class_weight, vad_weight, vad_loss) for m in out.members]
        parts = {k: sum(p[k] for _, p in losses) / len(losses) for k in losses[0][1]}
        return sum(loss for loss, _ in losses), parts
    K = out.logits.shape[-1]
    options = batch.label_options
    if batch.targets is not None:
        ce = _multi_label_bce(out.logits, batch)
    elif batch.weights is None and (options is None or not options.any()):
        ce = F.cross_entropy(out.logits.reshape(-1, K), batch.labels.reshape(-1),
                             weight=class_weight, ignore_index=-100)
    else:
        # A weighted mean over every labelled utterance: an exact label counts its class weight
        # (as cross_entropy weighs it) times its own weight, a coarse one its own weight.
        w = batch.weights if batch.weights is not None else torch.ones_like(batch.mask, dtype=out.logits.dtype)
        exact = batch.labels != -100
        logits = out.logits[exact]
        nll = torch.logsumexp(logits, -1) - logits.gather(-1, batch.labels[exact].unsqueeze(-1)).squeeze(-1)
        we = w[exact] * (class_weight[batch.labels[exact]] if class_weight is not None else 1.0)
        num, den = (we * nll).sum(), we.sum()
        if options is not None and options.any():
            coarse = options.any(-1) & batch.mask
            logits = out.logits[coarse]
            nll = torch.logsumexp(logits, -1) - torch.logsumexp(
                logits.masked_fill(~options[coarse], float("-inf")), -1)
            num, den = num + (w[coarse] * nll).sum(), den + w[coarse].sum()
        ce = num / den if den > 0 else out.logits.sum() * 0.0
    total, parts = ce, {"ce": ce.item()}
    known = batch.mask.unsqueeze(-1) & ~torch.isnan(batch.vad)
    if vad_weight > 0 and known.any():
        rows = known.all(-1)
        if vad_loss == "ccc" and rows.sum() > 1:
            reg = ccc_loss(out.vad[rows], batch.vad[rows])
        elif vad_loss in ("mse", "ccc"):
            reg = F.mse_loss(out.vad[known], batch.vad[known])
        else:
            raise ValueError(f"vad_loss must be 'mse' or 'ccc', not {vad_loss!r}")
        total = total + vad_weight * reg
        parts["vad"] = reg.item()
    if out.aux_loss is not None:
        total = total + out.aux_loss
        parts["aux"] = out.aux_loss.item()
    return total, parts

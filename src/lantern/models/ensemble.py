"""A deep ensemble: ``size`` copies of a registered vanilla model, each initialised from its
own draw and trained on its own loss, whose class probabilities (and VAD) are averaged.

Seeds of one model disagree by 1-3 points of weighted F1 on IEMOCAP; averaging members
removes much of that variance. The members see the same batches in the same order and stop
at the same epoch (the ensemble's validation score); their losses are summed, so no gradient
couples them. Single-label targets only (the average is over softmax probabilities).

>>> import torch
>>> from lantern.models.base import Batch
>>> m = Ensemble({"text": 8}, n_classes=6, member="context", size=3, hidden=16)
>>> b = Batch({"text": torch.randn(2, 5, 8)}, torch.ones(2, 5, dtype=torch.bool),
...           torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long),
...           torch.zeros(2, 5, 3))
>>> out = m(b)
>>> len(out.members), round(float(out.logits.exp().sum(-1).mean()), 4)
(3, 1.0)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lantern.errors import ConfigError
from lantern.models.base import Batch, ModelOutput, VanillaModel


#: dialogue and utterance classifiers; not Emotion-LLaMA (its own saving and label words) nor
#: the context Q-Former (another `lantern predict` system)
MEMBERS = ("context", "corect", "sdt", "linear", "mlp")


def _check_member(member: str) -> None:
    if member not in MEMBERS:
        raise ConfigError(f"an ensemble's member must be one of {', '.join(MEMBERS)}, not {member!r}")


class Ensemble(VanillaModel):
    model_type = "ensemble"

    def __init__(self, input_dims: dict[str, int], n_classes: int, n_speakers: int = 9,
                 member: str = "context", size: int = 5, **member_hparams: Any):
        super().__init__(input_dims, n_classes, n_speakers, member=member, size=size, **member_hparams)
        from lantern.models import MODELS

        _check_member(member)
        if not (isinstance(size, int) and size >= 2):
            raise ConfigError(f"ensemble size must be an integer >= 2, got {size!r}")
        self.members = nn.ModuleList(MODELS.create(member, input_dims, n_classes, n_speakers, **member_hparams)
                                     for _ in range(size))

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> list[str]:
        """The option names an ensemble of ``options["member"]`` accepts (config checking)."""
        import inspect

        from lantern.models import MODELS

        member = options.get("member", "context")
        _check_member(member)
        params = inspect.signature(MODELS.get(member)).parameters
        return ["member", "size", *[n for n in params if n not in ("input_dims", "n_classes")]]

    @classmethod
    def modalities_read(cls, hparams: dict[str, Any], modalities: list[str]) -> list[str]:
        from lantern.models import MODELS

        own = {k: v for k, v in hparams.items() if k not in ("member", "size")}
        return MODELS.get(hparams.get("member", "context")).modalities_read(own, modalities)

    def forward(self, batch: Batch) -> ModelOutput:
        outs = [m(batch) for m in self.members]
        probs = torch.stack([o.logits.softmax(-1) for o in outs]).mean(0)
        return ModelOutput(logits=probs.clamp_min(1e-12).log(),
                           vad=torch.stack([o.vad for o in outs]).mean(0), members=outs)

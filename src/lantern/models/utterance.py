"""Utterance-level baselines that ignore the dialogue: a linear classifier and an MLP.

They are the non-LLM heads of issue #12 (RAVDESS clips are single utterances): the same
inputs the Emotion-LLaMA model gets, without the LLM. ``linear`` on standardised features
trained with cross-entropy and weight decay is a (multinomial) logistic regression; ``mlp``
adds one hidden layer. Modalities are concatenated.

>>> import torch
>>> from lantern.models.base import Batch
>>> b = Batch({"audio": torch.randn(2, 1, 8)}, torch.ones(2, 1, dtype=torch.bool),
...           torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long),
...           torch.zeros(2, 1, 3))
>>> tuple(LinearClassifier({"audio": 8}, n_classes=8)(b).logits.shape)
(2, 1, 8)
>>> tuple(MLPClassifier({"audio": 8}, n_classes=8, hidden=16)(b).vad.shape)
(2, 1, 3)
"""

from __future__ import annotations

import torch
from torch import nn

from lantern.models.base import Batch, ModelOutput, MultiTaskHeads, VanillaModel


class LinearClassifier(VanillaModel):
    model_type = "linear"

    def __init__(self, input_dims: dict[str, int], n_classes: int, n_speakers: int = 2,
                 dropout: float = 0.0):
        super().__init__(input_dims, n_classes, n_speakers, dropout=dropout)
        self.modalities = sorted(input_dims)
        self.heads = MultiTaskHeads(sum(input_dims.values()), n_classes, dropout=dropout)

    def forward(self, batch: Batch) -> ModelOutput:
        x = torch.cat([batch.features[m] for m in self.modalities], dim=-1)
        return ModelOutput(*self.heads(x))


class MLPClassifier(VanillaModel):
    model_type = "mlp"

    def __init__(self, input_dims: dict[str, int], n_classes: int, n_speakers: int = 2,
                 hidden: int = 256, dropout: float = 0.3):
        super().__init__(input_dims, n_classes, n_speakers, hidden=hidden, dropout=dropout)
        self.modalities = sorted(input_dims)
        self.body = nn.Sequential(nn.Dropout(dropout), nn.Linear(sum(input_dims.values()), hidden),
                                  nn.GELU())
        self.heads = MultiTaskHeads(hidden, n_classes, dropout=dropout)

    def forward(self, batch: Batch) -> ModelOutput:
        x = torch.cat([batch.features[m] for m in self.modalities], dim=-1)
        return ModelOutput(*self.heads(self.body(x)))

"""Fast dialogue-context baseline: per-modality projection, speaker embedding, bi-GRU, heads.

>>> import torch
>>> from lantern.models.base import Batch
>>> m = ContextBaseline({"text": 8, "audio": 4}, n_classes=6, hidden=16)
>>> b = Batch({"text": torch.randn(2, 5, 8), "audio": torch.randn(2, 5, 4)},
...           torch.ones(2, 5, dtype=torch.bool), torch.zeros(2, 5, dtype=torch.long),
...           torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, 3))
>>> out = m(b)
>>> tuple(out.logits.shape), tuple(out.vad.shape)
((2, 5, 6), (2, 5, 3))
"""

from __future__ import annotations

import torch
from torch import nn

from lantern.models.base import Batch, ModelOutput, MultiTaskHeads, VanillaModel


class ContextBaseline(VanillaModel):
    model_type = "context"

    def __init__(self, input_dims: dict[str, int], n_classes: int, n_speakers: int = 9,
                 hidden: int = 128, dropout: float = 0.3, layers: int = 1):
        super().__init__(input_dims, n_classes, n_speakers, hidden=hidden, dropout=dropout, layers=layers)
        self.modalities = sorted(input_dims)
        self.project = nn.ModuleDict({
            m: nn.Sequential(nn.LayerNorm(d), nn.Dropout(dropout), nn.Linear(d, hidden), nn.GELU())
            for m, d in input_dims.items()})
        self.speaker = nn.Embedding(n_speakers, hidden)
        fused = hidden * len(self.modalities)
        self.gru = nn.GRU(fused + hidden, hidden, num_layers=layers, batch_first=True,
                          bidirectional=True)
        self.heads = MultiTaskHeads(2 * hidden + fused, n_classes, dropout=dropout)

    def forward(self, batch: Batch) -> ModelOutput:
        x = torch.cat([self.project[m](batch.features[m]) for m in self.modalities], dim=-1)
        speakers = batch.speakers.clamp(max=self.n_speakers - 1)
        lengths = batch.lengths.clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            torch.cat([x, self.speaker(speakers)], dim=-1), lengths, batch_first=True,
            enforce_sorted=False)
        context, _ = self.gru(packed)
        context, _ = nn.utils.rnn.pad_packed_sequence(context, batch_first=True,
                                                      total_length=x.shape[1])
        logits, vad = self.heads(torch.cat([context, x], dim=-1))
        return ModelOutput(logits, vad)

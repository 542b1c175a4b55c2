"""``context-qformer``: a scene description fused with image features by an instruction-aware
query transformer (EmoCommonSense, Xenos et al. 2024, stage 2; issue #13).

Learnable queries and the description's text tokens share one self-attention; only the
queries then cross-attend to the image's patch tokens; text and queries have separate
feed-forward layers; the block repeats ``n_blocks`` times, and the mean of the output
queries feeds the classifier (and the VAD head every vanilla model has). ``streams`` gives
the paper's ablations from the same code: ``fused``; ``text-only`` (no cross-attention, the
image is not read); ``image-only`` (the queries self-attend without text tokens).

Features arrive as the flat per-item vectors every feature table stores: the ``text``
modality holds ``text_tokens`` token embeddings of equal size back to back, the ``image``
modality ``image_tokens`` patch tokens (1 each: a sentence embedding and a pooled image
vector). An all-zero token is padding and is not attended to, so descriptions of different
lengths share one table (``text:minilm-tokens`` writes NaN rows there and is fed
unstandardised, so batching turns them into zeros).

>>> import torch
>>> from lantern.models.base import Batch
>>> b = Batch({"text": torch.randn(2, 1, 3 * 8), "visual": torch.randn(2, 1, 5 * 6)},
...           torch.ones(2, 1, dtype=torch.bool), torch.zeros(2, 1, dtype=torch.long),
...           torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 1, 3))
>>> m = ContextQFormer({"text": 24, "visual": 30}, n_classes=7, text_tokens=3, image_tokens=5,
...                    hidden=16, n_heads=2)
>>> tuple(m(b).logits.shape)
(2, 1, 7)
"""

from __future__ import annotations

import torch
from torch import nn

from lantern.models.base import Batch, ModelOutput, MultiTaskHeads, VanillaModel

__all__ = ["ContextQFormer", "STREAMS"]

STREAMS = ("fused", "text-only", "image-only")


def _tokens(x: torch.Tensor, n_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, n_tokens * E) -> tokens (N, n_tokens, E) and their padding mask (True = padding).

    A row whose tokens are all padding (a padded utterance) keeps them all unmasked, so
    attention over it stays finite; its outputs are never scored."""
    tok = x.reshape(x.shape[0], n_tokens, -1)
    pad = tok.abs().sum(-1) == 0
    return tok, pad & ~pad.all(dim=1, keepdim=True)


class _Block(nn.Module):
    """Shared self-attention over [queries; text], queries-only cross-attention to the image,
    separate feed-forwards for queries and text (pre-norm residual layers)."""

    def __init__(self, hidden: int, n_heads: int, dropout: float, cross: bool, text_ffn: bool):
        super().__init__()
        self.norm_self = nn.LayerNorm(hidden)
        self.self_attn = nn.MultiheadAttention(hidden, n_heads, dropout=dropout, batch_first=True)
        self.cross = cross
        if cross:
            self.norm_cross = nn.LayerNorm(hidden)
            self.cross_attn = nn.MultiheadAttention(hidden, n_heads, dropout=dropout, batch_first=True)

        def ffn() -> nn.Module:
            return nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 4 * hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(4 * hidden, hidden))
        # The last block's text feed-forward would feed nothing (only queries are read out).
        self.ffn_query, self.ffn_text = ffn(), (ffn() if text_ffn else None)
        self.dropout = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, text: torch.Tensor | None, text_pad: torch.Tensor | None,
                image: torch.Tensor | None, image_pad: torch.Tensor | None):
        n_q = q.shape[1]
        seq = q if text is None else torch.cat([q, text], dim=1)
        pad = None
        if text is not None:
            pad = torch.cat([torch.zeros(q.shape[:2], dtype=torch.bool, device=q.device), text_pad], 1)
        h = self.norm_self(seq)
        seq = seq + self.dropout(self.self_attn(h, h, h, key_padding_mask=pad, need_weights=False)[0])
        q, text = seq[:, :n_q], (None if text is None else seq[:, n_q:])
        if self.cross:
            h = self.norm_cross(q)
            q = q + self.dropout(self.cross_attn(h, image, image, key_padding_mask=image_pad,
                                                 need_weights=False)[0])
        q = q + self.dropout(self.ffn_query(q))
        if text is not None and self.ffn_text is not None:
            text = text + self.dropout(self.ffn_text(text))
        return q, text


class ContextQFormer(VanillaModel):
    model_type = "context-qformer"

    def __init__(self, input_dims: dict[str, int], n_classes: int, n_speakers: int = 2, *,
                 text: str = "text", image: str = "visual", text_tokens: int = 1,
                 image_tokens: int = 1, streams: str = "fused", n_queries: int = 8,
                 hidden: int = 128, n_heads: int = 4, n_blocks: int = 2, dropout: float = 0.1):
        super().__init__(input_dims, n_classes, n_speakers, text=text, image=image,
                         text_tokens=text_tokens, image_tokens=image_tokens, streams=streams,
                         n_queries=n_queries, hidden=hidden, n_heads=n_heads, n_blocks=n_blocks,
                         dropout=dropout)
        if streams not in STREAMS:
            raise ValueError(f"streams must be one of {STREAMS}; got {streams!r}")
        if min(n_queries, hidden, n_heads, n_blocks, text_tokens, image_tokens) < 1 or hidden % n_heads:
            raise ValueError("n_queries, hidden, n_heads, n_blocks and the token counts must be >= 1, "
                             "and hidden a multiple of n_heads")
        self.text_key = text if streams != "image-only" else None
        self.image_key = image if streams != "text-only" else None
        self.n_tokens = {}
        self.proj = nn.ModuleDict()
        self.pos = nn.ParameterDict()
        for role, key, n_tok in (("text", self.text_key, text_tokens), ("image", self.image_key, image_tokens)):
            if key is None:
                continue
            if key not in input_dims:
                raise ValueError(f"streams={streams!r} reads the {role} from the {key!r} features, but "
                                 f"the inputs are {sorted(input_dims)}; set model.{role} to one of them")
            if input_dims[key] % n_tok:
                raise ValueError(f"{key!r} features have {input_dims[key]} values, not a whole number "
                                 f"of {role}_tokens={n_tok} tokens")
            self.n_tokens[role] = n_tok
            self.proj[role] = nn.Linear(input_dims[key] // n_tok, hidden)
            self.pos[role] = nn.Parameter(torch.zeros(n_tok, hidden))
        self.queries = nn.Parameter(torch.randn(n_queries, hidden) * 0.02)
        self.blocks = nn.ModuleList(_Block(hidden, n_heads, dropout, cross=self.image_key is not None,
                                           text_ffn=self.text_key is not None and i < n_blocks - 1)
                                    for i in range(n_blocks))
        self.norm = nn.LayerNorm(hidden)
        self.heads = MultiTaskHeads(hidden, n_classes, dropout=dropout)

    @classmethod
    def modalities_read(cls, hparams, modalities):
        """A ``text-only`` or ``image-only`` ablation reads its one stream's modality."""
        streams = hparams.get("streams", "fused")
        keep = {"text-only": hparams.get("text", "text"), "image-only": hparams.get("image", "visual")}
        return [m for m in modalities if streams not in keep or m == keep[streams]]

    def _embed(self, role: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tok, pad = _tokens(x, self.n_tokens[role])
        return self.proj[role](tok) + self.pos[role], pad

    def forward(self, batch: Batch) -> ModelOutput:
        some = batch.features[self.text_key or self.image_key]
        b, t = some.shape[:2]
        text = text_pad = image = image_pad = None
        if self.text_key is not None:
            text, text_pad = self._embed("text", batch.features[self.text_key].reshape(b * t, -1))
        if self.image_key is not None:
            image, image_pad = self._embed("image", batch.features[self.image_key].reshape(b * t, -1))
        q = self.queries.unsqueeze(0).expand(b * t, -1, -1)
        for block in self.blocks:
            q, text = block(q, text, text_pad, image, image_pad)
        logits, vad = self.heads(self.norm(q).mean(dim=1))
        return ModelOutput(logits.reshape(b, t, -1), vad.reshape(b, t, -1))

"""CORECT: relational temporal graph + pairwise cross-modal transformers (plain torch).

Nguyen et al., EMNLP 2023, "Conversation Understanding using Relational Temporal Graph
Neural Networks with Auxiliary Cross-Modality Interaction"; reference code
``leson502/CORECT_EMNLP2023``. The blocks, in the paper's order:

1. unimodal encoders (text: linear + transformer encoder over the dialogue, or a bi-LSTM /
   feed-forward; audio / visual: a two-layer MLP) plus a learned speaker embedding added to every
   modality;
2. RT-GNN: one node per (utterance, modality). Same-modality nodes are joined inside a past window
   ``wp`` and a future window ``wf`` (``-1`` = unbounded) with relations (modality x past / present
   / future), the modality nodes of one utterance are joined by one relation per ordered modality
   pair. Message passing is an RGCN layer (relation-specific weights, optional basis
   decomposition, mean aggregation per relation, root weight) followed by a graph-transformer
   layer (TransformerConv: multi-head attention over the in-neighbours, heads concatenated, skip
   projection), BatchNorm and leaky ReLU. Graphs are dense per dialogue: (B, M*T, M*T);
3. P-CM: a MulT-style cross-modal transformer for every ordered modality pair, then a
   self-attention transformer over each target modality's concatenated cross-modal outputs
   (skipped with one modality);
4. graph and P-CM outputs concatenated per utterance -> linear + ReLU -> :class:`MultiTaskHeads`.

Padded utterances are never graph nodes with edges and are masked as attention keys, so they
cannot influence real utterances.

>>> import torch
>>> from lantern.models.base import Batch
>>> m = CORECT({"text": 8, "audio": 4}, n_classes=6, hidden=16, graph_heads=2)
>>> b = Batch({"text": torch.randn(2, 5, 8), "audio": torch.randn(2, 5, 4)},
...           torch.ones(2, 5, dtype=torch.bool), torch.zeros(2, 5, dtype=torch.long),
...           torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, 3))
>>> out = m(b)
>>> tuple(out.logits.shape), tuple(out.vad.shape), out.aux_loss is None
((2, 5, 6), (2, 5, 3), True)
>>> m.n_relations   # 2 modalities x (past, present, future) + 2 ordered cross-modal pairs
8
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lantern.models.base import Batch, ModelOutput, MultiTaskHeads, VanillaModel

_NEG = -1e9   # additive mask value: finite, so a row with no valid key gives no NaN


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor,
            dropout: float = 0.0) -> torch.Tensor:
    """Multi-head attention on (B, H, L, C) tensors; ``allowed`` broadcasts to (B, H, Lq, Lk)."""
    bias = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill(~allowed, _NEG)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)


# --- (1) unimodal encoders ------------------------------------------------------------------

class _SeqTransformer(nn.Module):
    """CORECT ``SeqTransfomer``: a transformer encoder over the utterances of a dialogue (no
    positional encoding, as in the reference code) and a linear map; here the input is projected
    to ``hidden`` first so any feature size works with ``heads`` heads."""

    def __init__(self, d_in: int, hidden: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.inp = nn.Linear(d_in, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.encoder(self.inp(x), src_key_padding_mask=~mask))


class _SeqLSTM(nn.Module):
    """CORECT ``LSTM_Layer``: bidirectional LSTM over the dialogue (packed: padding is unseen)."""

    def __init__(self, d_in: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden // 2, num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(2 * (hidden // 2), hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return self.out(y)


class _MLP(nn.Module):
    """CORECT audio / visual (and ``rnn="ffn"`` text) encoder: Linear-ReLU-Linear-ReLU."""

    def __init__(self, d_in: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --- (2) RT-GNN: RGCN + graph transformer on a dense relational graph -----------------------

class DenseRGCN(nn.Module):
    """RGCNConv (Schlichtkrull et al.) on a dense graph: h_i = W_0 x_i + b +
    sum_r mean_{j in N_r(i)} W_r x_j, with W_r = sum_b a_rb V_b when ``bases`` is set."""

    def __init__(self, d_in: int, d_out: int, n_relations: int, bases: int | None = None):
        super().__init__()
        if bases:
            self.basis = nn.Parameter(torch.empty(bases, d_in, d_out))
            self.comp = nn.Parameter(torch.empty(n_relations, bases))
            nn.init.xavier_uniform_(self.basis)
            nn.init.xavier_uniform_(self.comp)
            self.weight = None
        else:
            self.weight = nn.Parameter(torch.empty(n_relations, d_in, d_out))
            nn.init.xavier_uniform_(self.weight)
        self.root = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D); adj: (B, R, N, N) row-normalised (mean over each relation's neighbours)."""
        weight = self.weight if self.weight is not None else torch.einsum(
            "rb,bio->rio", self.comp, self.basis)
        agg = torch.einsum("brij,bjd->brid", adj, x)
        return torch.einsum("brid,rdo->bio", agg, weight) + self.root(x)


class DenseGraphTransformer(nn.Module):
    """TransformerConv (Shi et al., 2021) with concatenated heads and root weight:
    h_i = W_s x_i + ||_h sum_{j in N(i)} softmax_j(q_i . k_j / sqrt(C)) v_j."""

    def __init__(self, d_in: int, d_out: int, heads: int):
        super().__init__()
        self.heads, self.d_out = heads, d_out
        self.qkv = nn.Linear(d_in, 3 * heads * d_out)
        self.skip = nn.Linear(d_in, heads * d_out)

    def forward(self, x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D); edges: (B, N, N) bool, edges[b, i, j] = j sends to i."""
        B, N, _ = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, self.d_out).permute(2, 0, 3, 1, 4)
        msg = _attend(q, k, v, edges.unsqueeze(1))
        msg = msg * edges.any(-1)[:, None, :, None]        # nodes without in-edges receive 0
        return msg.transpose(1, 2).reshape(B, N, -1) + self.skip(x)


# --- (3) P-CM: MulT-style cross-modal transformer -----------------------------------------

class _CrossLayer(nn.Module):
    """Pre-LN transformer layer of the reference ``transformer.py``: the same LayerNorm is applied
    to query, key and value; ReLU feed-forward of width 4d."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        return x.view(B, L, self.heads, D // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None, key_mask: torch.Tensor):
        B, L, D = x.shape
        h = self.norm1(x)
        src = h if kv is None else self.norm1(kv)
        att = _attend(self._split(self.q(h)), self._split(self.k(src)), self._split(self.v(src)),
                      key_mask[:, None, None, :],
                      self.dropout if self.training else 0.0)
        x = x + F.dropout(self.o(att.transpose(1, 2).reshape(B, L, D)), self.dropout,
                          self.training)
        h = F.dropout(F.relu(self.fc1(self.norm2(x))), self.dropout, self.training)
        return x + F.dropout(self.fc2(h), self.dropout, self.training)


class _CrossTransformer(nn.Module):
    """Reference ``TransformerEncoder``: inputs scaled by sqrt(d), ``layers`` layers, final LN.
    With ``kv`` given it is cross-modal (queries from ``x``, keys/values from ``kv``)."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.scale = math.sqrt(dim)
        self.layers = nn.ModuleList(_CrossLayer(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, kv: torch.Tensor | None = None):
        x = self.scale * x
        kv = None if kv is None else self.scale * kv
        for layer in self.layers:
            x = layer(x, kv, mask)
        return self.norm(x)


class CORECT(VanillaModel):
    """CORECT backbone with the lantern multi-task heads (class logits + 3 VAD scores).

    Defaults follow the reference IEMOCAP configuration scaled for CPU: hidden 100 -> 128,
    7 graph-transformer heads -> 4, dropout 0.5 -> 0.3; wp=11, wf=9 (train.py defaults),
    2 cross-modal layers with 2 heads, 3 self-attention layers with 2 heads.
    ``speaker_relations=True`` additionally splits past/future relations by same/different
    speaker (DialogueGCN / COGMEN style; the CORECT reference code does not).
    """

    model_type = "corect"

    def __init__(self, input_dims: dict[str, int], n_classes: int, n_speakers: int = 9,
                 hidden: int = 128, dropout: float = 0.3, text_encoder: str = "transformer",
                 encoder_layers: int = 2, encoder_heads: int = 4, use_speaker: bool = True,
                 wp: int = 11, wf: int = 9, speaker_relations: bool = False,
                 rgcn_bases: int | None = None, graph_heads: int = 4,
                 crossmodal_layers: int = 2, crossmodal_heads: int = 2,
                 self_att_layers: int = 3, self_att_heads: int = 2):
        super().__init__(input_dims, n_classes, n_speakers, hidden=hidden, dropout=dropout,
                         text_encoder=text_encoder, encoder_layers=encoder_layers,
                         encoder_heads=encoder_heads, use_speaker=use_speaker, wp=wp, wf=wf,
                         speaker_relations=speaker_relations, rgcn_bases=rgcn_bases,
                         graph_heads=graph_heads, crossmodal_layers=crossmodal_layers,
                         crossmodal_heads=crossmodal_heads, self_att_layers=self_att_layers,
                         self_att_heads=self_att_heads)
        if text_encoder not in ("transformer", "lstm", "ffn"):
            raise ValueError(f"text_encoder must be transformer, lstm or ffn, not {text_encoder!r}")
        self.modalities = sorted(input_dims)
        M = len(self.modalities)
        self.wp, self.wf, self.speaker_relations = wp, wf, speaker_relations

        # (1) unimodal encoders + speaker embedding
        encoders = {}
        for m, d in input_dims.items():
            if m == "text" and text_encoder == "transformer":
                encoders[m] = _SeqTransformer(d, hidden, encoder_heads, encoder_layers, dropout)
            elif m == "text" and text_encoder == "lstm":
                encoders[m] = _SeqLSTM(d, hidden, encoder_layers, dropout)
            else:
                encoders[m] = _MLP(d, hidden)
        self.encoders = nn.ModuleDict(encoders)
        self.speaker = nn.Embedding(n_speakers, hidden) if use_speaker else None

        # (2) RT-GNN; relations: modality x temporal type, then one per ordered modality pair
        self.n_temporal = 5 if speaker_relations else 3
        self.n_relations = M * self.n_temporal + M * (M - 1)
        self.rgcn = DenseRGCN(hidden, hidden, self.n_relations, rgcn_bases)
        self.graph_transformer = DenseGraphTransformer(hidden, hidden, graph_heads)
        self.graph_norm = nn.BatchNorm1d(hidden * graph_heads)

        # (3) P-CM, only with two or more modalities
        self.crossmodal = nn.ModuleDict()
        if M > 1:
            for tgt in self.modalities:
                for src in self.modalities:
                    if src != tgt:
                        self.crossmodal[f"{tgt}<-{src}"] = _CrossTransformer(
                            hidden, crossmodal_heads, crossmodal_layers, 0.0)
                self.crossmodal[f"mem_{tgt}"] = _CrossTransformer(
                    hidden * (M - 1), self_att_heads, self_att_layers, 0.0)

        # (4) classifier: lin1 + ReLU + dropout (reference Classifier) -> multi-task heads
        fused = M * hidden * graph_heads + (M * (M - 1) * hidden if M > 1 else 0)
        self.lin1 = nn.Linear(fused, hidden)
        self.heads = MultiTaskHeads(hidden, n_classes, dropout=dropout)

    def relations(self, mask: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
        """(B, M*T, M*T) long: relation of the edge j -> i at [b, i, j], -1 where there is none.

        Node index = modality_index * T + utterance_index."""
        B, T = mask.shape
        M, n_temp = len(self.modalities), self.n_temporal
        dev = mask.device
        t = torch.arange(T, device=dev)
        off = t[None, :] - t[:, None]                               # off[i, j] = j - i
        window = torch.ones(T, T, dtype=torch.bool, device=dev)
        if self.wp >= 0:
            window &= off >= -self.wp
        if self.wf >= 0:
            window &= off <= self.wf
        temporal = torch.where(off < 0, 0, torch.where(off == 0, 1, 2))   # past / present / future
        temporal = temporal.expand(B, T, T)
        if self.speaker_relations:   # past-same, past-other, present, future-same, future-other
            other = speakers[:, :, None] != speakers[:, None, :]
            temporal = torch.where(temporal == 0, other.long(),
                                   torch.where(temporal == 1, 2, 3 + other.long()))
        real = mask[:, :, None] & mask[:, None, :]
        rel = torch.full((B, M, T, M, T), -1, dtype=torch.long, device=dev)
        eye = torch.eye(T, dtype=torch.bool, device=dev)
        pair = 0
        for a in range(M):
            rel[:, a, :, a, :] = torch.where(real & window, temporal + a * n_temp, -1)
            for c in range(M):
                if c != a:   # cross-modal edge between the same utterance's nodes
                    rel[:, a, :, c, :] = torch.where(real & eye, M * n_temp + pair, -1)
                    pair += 1
        return rel.view(B, M * T, M * T)

    def _graph(self, nodes: torch.Tensor, rel: torch.Tensor, node_mask: torch.Tensor):
        onehot = (rel.unsqueeze(1) == torch.arange(self.n_relations, device=rel.device)
                  .view(1, -1, 1, 1)).to(nodes.dtype)                  # (B, R, N, N)
        adj = onehot / onehot.sum(-1, keepdim=True).clamp(min=1)       # mean per relation
        h = self.rgcn(nodes, adj)
        h = self.graph_transformer(h, rel >= 0)
        # BatchNorm statistics over real nodes only, so padding never leaks through them
        flat, sel = h.reshape(-1, h.shape[-1]), node_mask.reshape(-1)
        out = torch.zeros_like(flat)
        if self.training and int(sel.sum()) < 2:
            normed = F.batch_norm(flat[sel], self.graph_norm.running_mean,
                                  self.graph_norm.running_var, self.graph_norm.weight,
                                  self.graph_norm.bias, False, 0.0, self.graph_norm.eps)
        else:
            normed = self.graph_norm(flat[sel])
        out[sel] = normed
        return F.leaky_relu(out).view_as(h)

    def forward(self, batch: Batch) -> ModelOutput:
        mask = batch.mask
        B, T = mask.shape
        M = len(self.modalities)
        # (1) modality encoders + speaker embedding
        feats = [self.encoders[m](batch.features[m], mask) for m in self.modalities]
        if self.speaker is not None:
            spk = self.speaker(batch.speakers.clamp(0, self.n_speakers - 1))
            feats = [f + spk for f in feats]
        feats = [f.masked_fill(~mask[..., None], 0.0) for f in feats]

        # (2) RT-GNN over the (B, M*T) nodes
        nodes = torch.cat(feats, dim=1)
        rel = self.relations(mask, batch.speakers)
        g = self._graph(nodes, rel, mask.repeat(1, M))
        parts = [g.view(B, M, T, -1).permute(0, 2, 1, 3).reshape(B, T, -1)]

        # (3) P-CM: cross-modal transformers per ordered pair, then self-attention per target
        if M > 1:
            by_name = dict(zip(self.modalities, feats))
            for tgt in self.modalities:
                cross = [self.crossmodal[f"{tgt}<-{src}"](by_name[tgt], mask, kv=by_name[src])
                         for src in self.modalities if src != tgt]
                parts.append(self.crossmodal[f"mem_{tgt}"](torch.cat(cross, -1), mask))

        # (4) concatenation -> classifier hidden layer -> multi-task heads
        h = F.relu(self.lin1(torch.cat(parts, dim=-1)))
        logits, vad = self.heads(h)
        return ModelOutput(logits, vad)

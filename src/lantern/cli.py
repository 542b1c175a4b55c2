"""The ``lantern`` command line. Every subcommand is a thin layer over the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lantern.errors import LanternError

DEFAULT_RESULTS_DIR = "benchmarks/results"


def _limit_threads() -> None:
    # 2 threads for every runtime (BLAS, OpenMP, torch, tokenizers) on laptop-class CPUs.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "2")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")   # never reach for a model hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _dataset_options(args) -> dict:
    opts = {}
    if getattr(args, "data_root", None):
        opts["data_root"] = args.data_root
    if getattr(args, "label_set", None):
        opts["label_set"] = args.label_set
    return opts


# --- data ---------------------------------------------------------------------------------
def cmd_data_list(args) -> int:
    from lantern.data import DATASETS
    from lantern.data.labels import LABEL_SETS

    print("datasets:", ", ".join(DATASETS.names()))
    for name, ls in LABEL_SETS.items():
        print(f"label set {name}: {', '.join(ls.classes)}")
    return 0


def cmd_data_show(args) -> int:
    from lantern.data import load_dataset

    opts = _dataset_options(args)
    if args.name == "conversation" or args.name.endswith((".csv", ".jsonl")):
        from lantern.data.conversation import load_conversation
        ds = load_conversation(args.path or args.name, label_set=args.label_set)
    elif args.name in ("cogmen-pickle", "sdt-pickle"):
        if not args.path:
            raise LanternError(f"{args.name} needs --path to the pickle file")
        ds = load_dataset(args.name, path=args.path, **{k: v for k, v in opts.items() if k != "data_root"})
    else:
        ds = load_dataset(args.name, **opts)
    if args.verify:
        from lantern.data.iemocap import verify_against_sources
        from lantern.paths import data_root
        print("verified:", verify_against_sources(ds, data_root(args.data_root)))
    summary = ds.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['dataset']} ({summary['label_set']}): {', '.join(summary['classes'])}")
    header = f"{'split':<6} {'dialogues':>9} {'utterances':>10} {'labelled':>8}  label counts"
    print(header)
    for split, s in summary["splits"].items():
        counts = " ".join(f"{k}={v}" for k, v in s["label_counts"].items())
        print(f"{split:<6} {s['dialogues']:>9} {s['utterances']:>10} {s['labelled']:>8}  {counts}")
    if args.examples:
        for split, dialogues in ds.splits.items():
            for d in dialogues[:1]:
                print(f"\n[{split}] dialogue {d.id}")
                for u in d.utterances[: args.examples]:
                    label = ds.label_set.classes[u.label] if u.label is not None else "-"
                    print(f"  {u.id:<24} {u.speaker:<10} {label:<9} {u.text[:70]}")
    return 0


# --- training and evaluation ----------------------------------------------------------------
def _results_dir(args) -> str | None:
    """Benchmark results are written for full runs; a --limit run only if --results-dir is given."""
    if args.no_results or (args.limit is not None and args.results_dir is None):
        return None
    return args.results_dir or DEFAULT_RESULTS_DIR


def cmd_train(args) -> int:
    from lantern.config import load_config
    from lantern.training.experiment import run_experiment

    overrides = list(args.set or [])
    if args.data_root:
        overrides.append(f"dataset.data_root={args.data_root}")
    cfg = load_config(args.config, overrides)
    result = run_experiment(cfg, limit=args.limit, progress=not args.no_progress,
                            results_dir=_results_dir(args))
    m = result["metrics"]
    print(f"{result['dataset']} {result['label_set']} {result['variant']}: test accuracy "
          f"{m['accuracy']['mean']:.2f} ± {m['accuracy']['std']:.2f}, weighted F1 "
          f"{m['weighted_f1']['mean']:.2f} ± {m['weighted_f1']['std']:.2f} over seeds {result['seeds']}")
    print(f"models and predictions: {result['output_dir']}")
    if result.get("result_file"):
        print(f"result: {result['result_file']}")
    return 0


def _load_for_model(model_dir: str, args):
    """The saved model bundle and the data set it is applied to, features attached."""
    from lantern.data import load_dataset
    from lantern.features import attach_features
    from lantern.models.bundle import ModelBundle

    bundle = ModelBundle.load(model_dir)
    opts = _dataset_options(args)
    opts.setdefault("label_set", bundle.label_set.name)
    if args.conversation:
        from lantern.data.conversation import load_conversation
        ds = load_conversation(args.conversation, label_set=opts.get("label_set"))
    else:
        ds = load_dataset(args.dataset or bundle.dataset, **opts)
    if bundle.text_source and not args.descriptions:
        from lantern.errors import ConfigError

        raise ConfigError(f"{model_dir} reads context descriptions as its text (trained on "
                          f"{bundle.text_source.get('file')}); pass --descriptions FILE (lantern describe)")
    if args.descriptions:
        from lantern.data.descriptions import attach_descriptions

        attach_descriptions(ds, args.descriptions)
    ds = ds.limit(args.limit)
    bundle.check_classes(ds.label_set)
    attach_features(ds, bundle.feature_names, options=bundle.feature_options,
                    progress=not args.no_progress)
    return bundle, ds


def cmd_evaluate(args) -> int:
    import numpy as np

    from lantern.evaluation.metrics import classification_report, vad_report
    from lantern.models.inference import label_arrays

    bundle, ds = _load_for_model(args.model, args)
    out = {}
    for split in args.split or ["test"]:
        rows = list(bundle.prediction_rows(ds.dialogues(split)))
        if ds.label_set.multi_label:   # EMOTIC, BoLD: mAP over the categories
            from lantern.training.experiment import multi_label_metrics

            out[split] = multi_label_metrics(rows, ds.label_set.classes)
            continue
        y, p, vt, vp = label_arrays(rows, ds.label_set.classes)
        if len(y) == 0:
            out[split] = {"n_utterances": 0, "note": "no labelled utterances"}
            continue
        report = classification_report(y, p.argmax(1), list(ds.label_set.classes))
        if bundle.vad_scale is not None and vt.size and np.isfinite(vt).any():
            report["vad"] = vad_report(vt, vp)
        report["n_utterances"] = int(len(y))
        out[split] = report
    print(json.dumps(out, indent=2))
    return 0


def cmd_export(args) -> int:
    from lantern.records import write_predictions

    bundle, ds = _load_for_model(args.model, args)
    for split in args.split or list(ds.splits):
        path = write_predictions(Path(args.out) / f"{split}.jsonl", bundle.prediction_rows(ds.dialogues(split)))
        print(f"wrote {path}")
    return 0


def _pipeline_config(args) -> dict:
    from lantern.config import load_config

    overrides = list(args.set or [])
    cfg = load_config(args.config, overrides)
    if getattr(args, "data_root", None):
        cfg.setdefault("vanilla", {}).setdefault("overrides", []).append(f"dataset.data_root={args.data_root}")
    return cfg


def cmd_refine(args) -> int:
    from lantern.pipeline import stage_refine, stage_vanilla

    cfg = _pipeline_config(args)
    summaries = stage_refine(cfg, stage_vanilla(cfg, args.limit, not args.no_progress),
                             splits=args.split or ("valid", "test"), limit=args.limit,
                             progress=not args.no_progress, max_fields=args.max_fields)
    for split, s in summaries.items():
        _print_refine_summary(split, s)
        if s.get("complete"):
            _warn_fallbacks(s)
    return 0


def _print_refine_summary(split: str, s: dict) -> None:
    if not s.get("complete"):
        print(f"{split}: stopped after {s['fields_answered']} new answers ({s['fields_total']} stored, "
              f"{s['fields_missing_before'] - s['fields_answered']} to go); run again to continue")
        return
    line = (f"{split}: {s['fields']} fields ({s['answer']}), {s['new_requests']} asked now, "
            f"{s['answer_file_hits']} from the answer file, {s['cache_hits']} from the cache; "
            f"{s['prompt_tokens_per_utterance']:.0f} prompt tokens and "
            f"{s['decode_steps_per_utterance']:.1f} decode steps per utterance; "
            f"{s['fallbacks']} fallbacks, {s['low_mass_slots']} low-mass slots, "
            f"{s['parse_failures'] + s['validation_failures']} parse/validation failures")
    ratio = (s.get("cost_vs_speed_check") or {}).get("ratio")
    if ratio is not None:
        line += f"; LLM time {ratio:.2f}x the token cost at the measured prompt speed"
    print(line)


def _warn_fallbacks(summary: dict) -> None:
    """On stderr, when fields fell back to the vanilla probabilities: the run 'worked', but
    (part of) its refinement is not the LLM's."""
    if summary.get("fallbacks"):
        print(f"lantern: warning: {summary['fallbacks']} of {summary['calls']} LLM fields got no "
              f"valid answer and fell back to the vanilla probabilities", file=sys.stderr)


def _print_fusion(results) -> None:
    for r in results:
        g = r["gain_vs_vanilla"]["weighted_f1"]
        print(f"{r['variant']:<18} accuracy {r['metrics']['accuracy']['mean']:6.2f}  weighted F1 "
              f"{r['metrics']['weighted_f1']['mean']:6.2f}  gain {g['delta']:+.2f} [{g['low']:+.2f}, {g['high']:+.2f}]")
    llm = next((r.get("llm") for r in results if r.get("llm")), None)
    if llm:   # the same answers under every variant: say once how they went
        failed = (llm.get("parse_failures") or 0) + (llm.get("validation_failures") or 0)
        print(f"LLM answers (test split, {llm.get('answer')}): {llm.get('fields')} fields, "
              f"{llm.get('requests')} requests, {failed} failed answers, "
              f"{llm.get('low_mass_slots') or 0} low-mass slots, "
              f"{llm.get('fallbacks') or 0} fields fell back to the vanilla probabilities")
        _warn_fallbacks({**llm, "calls": llm.get("fields")})


def cmd_fuse(args) -> int:
    from lantern.pipeline import stage_fuse

    cfg = _pipeline_config(args)
    # Fusion reads the answer folder (vanilla predictions pinned there, answers): no LLM and
    # no vanilla model needed.
    results = stage_fuse(cfg, limit=args.limit, results_dir=_results_dir(args))
    _print_fusion(results)
    return 0


def cmd_run(args) -> int:
    from lantern.pipeline import run_pipeline

    results = run_pipeline(_pipeline_config(args), limit=args.limit, progress=not args.no_progress,
                           results_dir=_results_dir(args), max_fields=args.max_fields)
    if not results:
        print("answers are not complete yet (--max-fields); run again to continue, then fuse")
    _print_fusion(results)
    return 0


def cmd_predict(args) -> int:
    from lantern.predict import PredictSettings, predict

    settings = PredictSettings(
        model=args.model, llm=args.llm, llm_model=args.llm_model, base_url=args.base_url,
        window=args.window, stride=args.stride, include_vad=not args.no_vad,
        max_duration_s=args.max_duration, language=args.language, task=args.task,
        speaker=args.speaker, report=not args.no_report, progress=not args.no_progress,
        max_text_chars=args.max_text_chars, max_utterances=args.max_utterances,
        system=args.system)
    out = args.out or str(Path("runs") / "predict" / Path(args.input).stem)
    result = predict(args.input, out, settings)
    doc = result.document
    counts: dict[str, int] = {}
    for u in doc["utterances"]:
        counts[u["final"]] = counts.get(u["final"], 0) + 1
    print(f"{len(doc['utterances'])} utterances: "
          + ", ".join(f"{doc['class_names'][c]} {n}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])))
    if doc["scores"]:
        s = doc["scores"]
        line = f"against the {s['n_labelled']} given labels: accuracy {100 * s['accuracy']:.1f}, weighted F1 {100 * s['weighted_f1']:.1f}"
        if "refined_accuracy" in s:
            line += f" (refined: {100 * s['refined_accuracy']:.1f}, {100 * s['refined_weighted_f1']:.1f})"
        print(line)
    if doc["llm"]:   # every run says how the refinement went, failures included
        s = doc["llm"]
        print(f"LLM {s['backend']}: {s['calls']} fields, {s['requests']} requests "
              f"({s['cache_hits']} from the cache), {s['parse_failures']} unparseable and "
              f"{s['validation_failures']} invalid answers, {s['fallbacks']} fields fell back "
              f"to the vanilla probabilities")
        _warn_fallbacks(s)
    stages = {k: v for k, v in doc["timings"].items() if k != "utterances" and isinstance(v, (int, float))}
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))   # every stage the system ran
    print(f"wrote {result.json_path}, {result.csv_path}" + (f", {result.report_path}" if result.report_path else ""))
    return 0


def cmd_serve(args) -> int:
    from lantern.web import serve

    serve(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, llm=args.llm,
          jobs_dir=args.jobs_dir, workers=args.workers,
          predict_options={k: v for k, v in (("base_url", args.base_url),
                                             ("llm_model", args.llm_model)) if v})
    return 0


def cmd_benchmarks(args) -> int:
    from lantern.evaluation.benchmarks_md import main as benchmarks_main

    return benchmarks_main(["--results-dir", args.results_dir, "--out", args.out]
                          + (["--check"] if args.check else []))


# --- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    import lantern
    from lantern.annotate.cli import add_parser as add_annotate_parser
    from lantern.describe.cli import add_parser as add_describe_parser
    from lantern.features.cli import add_parser as add_features_parser
    from lantern.llm.cli import add_parser as add_llm_parser

    parser = argparse.ArgumentParser(prog="lantern", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"lantern {lantern.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    # The order here is the order `lantern --help` lists the commands in.
    _add_data_parsers(sub)
    add_features_parser(sub)
    add_llm_parser(sub)
    add_annotate_parser(sub)
    add_describe_parser(sub)
    _add_train_parser(sub)
    _add_saved_model_parsers(sub)
    _add_pipeline_parsers(sub)
    _add_predict_parser(sub)
    _add_serve_parser(sub)
    _add_benchmarks_parser(sub)
    return parser


def _add_data_parsers(sub) -> None:
    data = sub.add_parser("data", help="inspect datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("list", help="registered datasets and label sets")
    p.set_defaults(func=cmd_data_list)
    p = data.add_parser("show", help="dialogues, utterances and label counts per split")
    p.add_argument("name", help="dataset name (iemocap, meld, emorynlp, dailydialog, conversation, cogmen-pickle, sdt-pickle) or a conversation file")
    p.add_argument("--label-set")
    p.add_argument("--data-root")
    p.add_argument("--path", help="file for conversation / official pickle datasets")
    p.add_argument("--verify", action="store_true", help="cross-check IEMOCAP against COSMIC and MERBench")
    p.add_argument("--examples", type=int, default=0, help="print N utterances of the first dialogue per split")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_data_show)


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train and evaluate a vanilla model from a YAML config")
    p.add_argument("config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--limit", type=int, help="use only the first N dialogues of each split (smoke runs)")
    p.add_argument("--data-root")
    p.add_argument("--results-dir", help=f"where result files go (default {DEFAULT_RESULTS_DIR}; "
                   "--limit runs write none unless this is given)")
    p.add_argument("--no-results", action="store_true", help="do not write a benchmark result file")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)


def _add_saved_model_parsers(sub) -> None:
    """``evaluate`` and ``export``: both read a saved vanilla model and a dataset."""
    for name, func, helptext in (("evaluate", cmd_evaluate, "evaluate a saved model"),
                                 ("export", cmd_export, "export per-utterance predictions (probabilities + VAD)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("model", help="directory written by save_pretrained (runs/NAME/seedN/model)")
        p.add_argument("--dataset", help="dataset name (default: the one the model was trained on)")
        p.add_argument("--conversation", help="a conversation file in the documented JSONL/CSV format")
        p.add_argument("--label-set")
        p.add_argument("--data-root")
        p.add_argument("--descriptions", metavar="FILE.jsonl",
                       help="context descriptions as the images' text (a context-qformer model)")
        p.add_argument("--limit", type=int)
        p.add_argument("--split", action="append", default=None)
        p.add_argument("--no-progress", action="store_true")
        if name == "export":
            p.add_argument("--out", required=True, help="output folder for {split}.jsonl")
        p.set_defaults(func=func)


def _add_pipeline_parsers(sub) -> None:
    """``refine``, ``fuse`` and ``run``: the stages of a Lantern pipeline config."""
    for name, func, helptext in (
            ("refine", cmd_refine, "ask the LLM about every receptive field (vanilla predictions -> answers)"),
            ("fuse", cmd_fuse, "train the mergers on validation answers, evaluate on test"),
            ("run", cmd_run, "all Lantern stages: vanilla model, refine, fuse, results")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("config", help="a Lantern pipeline config (configs/lantern-*.yaml)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE")
        p.add_argument("--limit", type=int, help="first N dialogues of each split")
        p.add_argument("--data-root")
        p.add_argument("--results-dir", help=f"default {DEFAULT_RESULTS_DIR}; --limit runs write none unless given")
        p.add_argument("--no-results", action="store_true")
        p.add_argument("--no-progress", action="store_true")
        if name == "refine":
            p.add_argument("--split", action="append")
        if name in ("refine", "run"):
            p.add_argument("--max-fields", type=int,
                           help="stop after this many new LLM answers (a long run in chunks; the next run continues)")
        p.set_defaults(func=func)


def _add_predict_parser(sub) -> None:
    from lantern.llm.base import EMBEDDED, LLM_CHOICES
    from lantern.predict.inputs import (DEFAULT_MAX_DURATION_S, DEFAULT_MAX_TEXT_CHARS,
                                        DEFAULT_MAX_UTTERANCES, DEFAULT_SPEAKER)
    from lantern.receptive_fields import DEFAULT_STRIDE, DEFAULT_WINDOW

    p = sub.add_parser("predict", help="emotions of every utterance of a conversation file, a folder of clips or a recording")
    p.add_argument("input", help="a conversation file (.jsonl/.json/.csv, docs/conversation-format.md), "
                   "a folder of per-utterance audio/video clips, or one audio/video recording")
    p.add_argument("--out", help="output folder (default runs/predict/<input name>)")
    p.add_argument("--system", choices=("lantern", "emotion-llama", "context"), default="lantern",
                   help="lantern: vanilla model + LLM refinement (default); emotion-llama: a saved "
                        "emotion-llama model (--model) names the emotion from voice (and words) and says why; "
                        "context: an image or a folder of images, each described, then read with its "
                        "description by a context-qformer model (default: the shipped fer2013-context)")
    p.add_argument("--model", help="a saved model folder or a shipped model name (default: mix-6way-text-dialogue; "
                   "iemocap-6way-text needs no 1.5B model; fer2013-context with --system context)")
    p.add_argument("--llm", choices=LLM_CHOICES, default=EMBEDDED,
                   help="LLM refinement: embedded llama.cpp (default), an OpenAI-compatible server, or off")
    p.add_argument("--llm-model", help="embedded: qwen2.5-coder-1.5b (default), qwen2.5-coder-0.5b, smollm2-135m or a .gguf; openai: the server's model name")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint for --llm openai (API key from $OPENAI_API_KEY)")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW, help=f"receptive field length (default {DEFAULT_WINDOW})")
    p.add_argument("--stride", type=int, default=DEFAULT_STRIDE,
                   help=f"receptive field stride (default {DEFAULT_STRIDE}: every utterance in "
                        f"{DEFAULT_WINDOW // DEFAULT_STRIDE} fields)")
    p.add_argument("--no-vad", action="store_true", help="do not show the LLM the valence/arousal/dominance references")
    p.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION_S,
                   help=f"refuse recordings longer than this many seconds (default {DEFAULT_MAX_DURATION_S:g})")
    p.add_argument("--language", help="spoken language code for Whisper (default: detect)")
    p.add_argument("--task", choices=["auto", "transcribe", "translate"], default="auto",
                   help="auto: translate non-English speech to English (the text model reads English)")
    p.add_argument("--speaker", default=DEFAULT_SPEAKER, help="speaker name for recordings and clip folders (no diarisation)")
    p.add_argument("--max-text-chars", type=int, default=DEFAULT_MAX_TEXT_CHARS,
                   help=f"refuse conversation files with a longer utterance text (default {DEFAULT_MAX_TEXT_CHARS})")
    p.add_argument("--max-utterances", type=int, default=DEFAULT_MAX_UTTERANCES,
                   help=f"refuse conversation files with more utterances (default {DEFAULT_MAX_UTTERANCES})")
    p.add_argument("--no-report", action="store_true", help="write JSON and CSV only")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_predict)


def _add_serve_parser(sub) -> None:
    from lantern.llm.base import LLM_CHOICES
    from lantern.web.settings import ServeSettings

    d = ServeSettings()

    p = sub.add_parser("serve", help="web app: upload a conversation or a recording, see its emotion report")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb,
                   help=f"largest accepted upload in MB (default {d.max_upload_mb:g})")
    p.add_argument("--llm", choices=LLM_CHOICES, default=d.llm,
                   help=f"LLM backend the upload form may switch on for refinement (default {d.llm}; off: vanilla only)")
    p.add_argument("--llm-model", help="embedded: a lantern LLM name or .gguf; openai: the server's model")
    p.add_argument("--base-url", help="--llm openai: the server, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--jobs-dir", help="where uploads and reports are kept (default <cache dir>/serve-jobs; "
                                      f"the last {d.keep_jobs} are kept)")
    p.add_argument("--workers", type=int, default=d.workers,
                   help=f"predictions that may run at once (default {d.workers}; more only helps with --llm openai/off)")
    p.set_defaults(func=cmd_serve)


def _add_benchmarks_parser(sub) -> None:
    p = sub.add_parser("benchmarks", help="regenerate BENCHMARKS.md from benchmarks/results/*.json")
    p.add_argument("--results-dir", default="benchmarks/results")
    p.add_argument("--out", default="BENCHMARKS.md")
    p.add_argument("--check", action="store_true", help="exit 1 if BENCHMARKS.md is out of date")
    p.set_defaults(func=cmd_benchmarks)


def main(argv: list[str] | None = None) -> int:
    _limit_threads()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LanternError as exc:
        print(f"lantern: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lantern: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

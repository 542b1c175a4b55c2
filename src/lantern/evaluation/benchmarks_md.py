"""Render ``benchmarks/results/*.json`` into BENCHMARKS.md.

One table per (dataset, label set, split); one row per (model, method, variant, features).
Output depends only on the result files (no timestamps), so ``--check`` can tell CI
whether BENCHMARKS.md is stale::

    python scripts/make_benchmarks.py            # regenerate
    python scripts/make_benchmarks.py --check    # exit 1 if out of date
    python -m lantern.evaluation.benchmarks_md --results-dir benchmarks/results --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from lantern.evaluation.cv_selection import CV_SELECTION, render_cv_selection
from lantern.evaluation.describe_cost import DESCRIBE_COST, render_describe_cost
from lantern.evaluation.reason_scores import REASON_JUDGE, render_reason_judge
from lantern.evaluation.results import load_results
from lantern.paths import atomic_write_text

__all__ = ["render_benchmarks", "write_benchmarks", "check_benchmarks", "main"]

HEADER = """# Benchmarks

<!-- GENERATED FILE: do not edit by hand. -->

This file is generated from `benchmarks/results/*.json`; do not edit it by hand.
Regenerate it with `python scripts/make_benchmarks.py`
(CI runs `python scripts/make_benchmarks.py --check`).

Accuracy and weighted F1 are percentages, mean ± sample standard deviation over seeds.
"""

LLM_FIELDS = (("calls", "LLM calls"), ("prompt_tokens", "prompt tok"),
              ("completion_tokens", "completion tok"), ("seconds", "LLM s"),
              ("cache_hits", "cache hits"), ("parse_failures", "parse fails"))

MISSING = "—"


# ------------------------------------------------------------------------ formatting

def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _cell(text: Any) -> str:
    s = str(text).replace("\n", " ").replace("|", "\\|").strip()
    return s if s else MISSING


def _mean_std(metric: Any) -> str:
    """``58.12 ± 0.34`` from ``{"mean": 58.123, "std": 0.337}``.

    >>> _mean_std({"mean": 58.123, "std": 0.337})
    '58.12 ± 0.34'
    """
    if not isinstance(metric, dict):
        return MISSING
    mean, std = _num(metric.get("mean")), _num(metric.get("std"))
    if mean is None:
        return MISSING
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


def _fixed(v: Any, digits: int) -> str:
    f = _num(v)
    if f is None:
        return MISSING if v is None else _cell(v)
    return f"{f:.{digits}f}"


def _integer(v: Any) -> str:
    f = _num(v)
    if f is None:
        return MISSING if v is None else _cell(v)
    return f"{int(round(f)):d}"


def _n_seeds(seeds: Any) -> str:
    if isinstance(seeds, (list, tuple)):
        return str(len(seeds))
    return _integer(seeds)


def _features(features: Any) -> str:
    if isinstance(features, (list, tuple)):
        return "+".join(str(f) for f in features) or MISSING
    if isinstance(features, dict):
        # {modality: extractor}; extractor names already start with their modality
        return "+".join(str(v) if str(v).startswith(f"{k}:") else f"{k}:{v}"
                        for k, v in sorted(features.items())) or MISSING
    return MISSING if features is None else str(features)


def _commit(commit: Any) -> str:
    """Short hash, keeping ``-dirty``.

    >>> _commit("0123456789abcdef0123456789abcdef01234567-dirty")
    '0123456-dirty'
    """
    if not commit:
        return MISSING
    s = str(commit)
    head, dirty = (s[:-6], "-dirty") if s.endswith("-dirty") else (s, "")
    if len(head) == 40 and all(c in "0123456789abcdef" for c in head.lower()):
        head = head[:7]
    return head + dirty


def _gain(g: Any) -> str:
    """``+1.23 [+0.45, +2.01]`` from ``{"delta", "low", "high"}``."""
    if not isinstance(g, dict):
        return MISSING
    d, lo, hi = (_num(g.get(k)) for k in ("delta", "low", "high"))
    if d is None:
        return MISSING
    if lo is None or hi is None:
        return f"{d:+.2f}"
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _llm(llm: Any, field: str) -> str:
    if not isinstance(llm, dict) or field not in llm:
        return MISSING
    return _fixed(llm[field], 1) if field == "seconds" else _integer(llm[field])


def _confusion(result: dict) -> str:
    png = result.get("confusion_png")
    if not png:
        return MISSING
    target = str(png).replace("\\", "/").replace(" ", "%20").replace(")", "%29")
    return f"[png]({target})"


# --------------------------------------------------------------------------- render

def _key(value: Any) -> str:
    return "" if value is None else str(value)


def _row_sort_key(r: dict) -> tuple:
    return (_key(r.get("model")), _key(r.get("method")), _key(r.get("variant")),
            _features(r.get("features")), _key(r.get("_file")), _key(r.get("created")))


def render_benchmarks(results: Sequence[dict]) -> str:
    """BENCHMARKS.md text for a list of result dicts (as :func:`load_results` returns).

    Deterministic: tables sorted by (dataset, label_set, split), rows by (model, method,
    variant, features). Gain and LLM columns appear in a table only when a row has them.
    A result's ``confusion_png`` is linked as given, so store it relative to the repository
    root (where BENCHMARKS.md lives).

    >>> r = {"dataset": "iemocap", "label_set": "iemocap6", "split": "test",
    ...      "model": "dialoguernn", "method": "vanilla", "variant": "base",
    ...      "features": ["text"], "seeds": [0, 1], "n_utterances": 1623,
    ...      "selection_split": "valid", "train_seconds": 12.3, "peak_memory_mb": 512.4,
    ...      "git_commit": "abcdef0123456789abcdef0123456789abcdef01",
    ...      "metrics": {"accuracy": {"mean": 58.123, "std": 0.337},
    ...                  "weighted_f1": {"mean": 57.0, "std": 0.5}}}
    >>> print(render_benchmarks([r]).split("## ")[1])  # doctest: +NORMALIZE_WHITESPACE
    iemocap · iemocap6 · test
    <BLANKLINE>
    | model | method | variant | features | accuracy | weighted F1 | seeds | utterances | selection | train s | peak MB | commit | confusion |
    |---|---|---|---|---|---|---|---|---|---|---|---|---|
    | dialoguernn | vanilla | base | text | 58.12 ± 0.34 | 57.00 ± 0.50 | 2 | 1623 | valid | 12.3 | 512 | abcdef0 | — |
    <BLANKLINE>
    """
    groups: dict[tuple[str, str, str], list[dict]] = {}
    predict_rows = [r for r in results if r.get("method") == "predict"]
    startup_rows = [r for r in results if r.get("method") == PREDICT_STARTUP]
    lantern_rows = [r for r in results if r.get("method") == "lantern"]
    bias_rows = [r for r in results if r.get("method") == POSITION_BIAS]
    cv_rows = [r for r in results if r.get("method") == CV_SELECTION]
    judge_rows = [r for r in results if r.get("method") == REASON_JUDGE]
    describe_rows = [r for r in results if r.get("method") == DESCRIBE_COST]
    for r in results:
        if r.get("method") in ("predict", "lantern", POSITION_BIAS, CV_SELECTION, PREDICT_STARTUP, REASON_JUDGE,
                               DESCRIBE_COST):
            continue
        key = (_key(r.get("dataset")), _key(r.get("label_set")), _key(r.get("split")))
        groups.setdefault(key, []).append(r)

    parts = [HEADER]
    if not groups:
        parts.append("\nNo results yet.\n")
    for (dataset, label_set, split) in sorted(groups):
        rows = sorted(groups[(dataset, label_set, split)], key=_row_sort_key)
        parts.append(_render_group(dataset, label_set, split, rows))
    cross_rows = [r for r in results if isinstance(r.get("cross_corpus"), dict)]
    if cross_rows:
        parts.append(_render_cross_corpus(cross_rows))
    for r in cv_rows:
        parts.append(render_cv_selection(r))
    if lantern_rows:
        parts.append(_render_lantern(lantern_rows))
    if bias_rows:
        parts.append(_render_position_bias(bias_rows))
    if predict_rows:
        parts.append(_render_predict(predict_rows))
    if startup_rows:
        parts.append(_render_startup(startup_rows))
    if judge_rows:
        parts.append(render_reason_judge(judge_rows))
    if describe_rows:
        parts.append(render_describe_cost(describe_rows))
    return "".join(parts)


def _render_group(dataset: str, label_set: str, split: str, rows: list[dict]) -> str:
    """One table of vanilla (and older Lantern) results: a dataset, label set and split."""
    has_gain = any(isinstance(r.get("gain_vs_vanilla"), dict) for r in rows)
    has_llm = any(isinstance(r.get("llm"), dict) for r in rows)

    # UAR (mean per-class recall) where results report it (speech emotion: RAVDESS);
    # WAR, the speech papers' other figure, is the accuracy column.
    has_uar = any(isinstance(r.get("metrics"), dict) and "uar" in r["metrics"] for r in rows)
    header = ["model", "method", "variant", "features", "accuracy", "weighted F1",
              *(["UAR"] if has_uar else []), "seeds",
              "utterances", "selection", "train s", "peak MB", "commit", "confusion"]
    if has_gain:
        header += ["Δ accuracy [95% CI]", "Δ weighted F1 [95% CI]"]
    if has_llm:
        header += [label for _, label in LLM_FIELDS]

    lines = [f"\n## {_cell(dataset)} · {_cell(label_set)} · {_cell(split)}\n",
             "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for r in rows:
        metrics = r.get("metrics") if isinstance(r.get("metrics"), dict) else {}
        cells = [_cell(r.get("model", MISSING)), _cell(r.get("method", MISSING)),
                 _cell(r.get("variant", MISSING)), _cell(_features(r.get("features"))),
                 _mean_std(metrics.get("accuracy")), _mean_std(metrics.get("weighted_f1")),
                 *([_mean_std(metrics.get("uar"))] if has_uar else []),
                 _n_seeds(r.get("seeds")), _integer(r.get("n_utterances")),
                 _cell(r.get("selection_split", MISSING)), _fixed(r.get("train_seconds"), 1),
                 _fixed(r.get("peak_memory_mb"), 0), _cell(_commit(r.get("git_commit"))),
                 _confusion(r)]
        if has_gain:
            gain = r.get("gain_vs_vanilla") if isinstance(r.get("gain_vs_vanilla"), dict) else {}
            cells += [_gain(gain.get("accuracy")), _gain(gain.get("weighted_f1"))]
        if has_llm:
            cells += [_llm(r.get("llm"), field) for field, _ in LLM_FIELDS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + _paired_lines(rows)) + "\n"


def _paired_lines(rows: list[dict]) -> list[str]:
    """One line per paired-bootstrap comparison a result records (``paired_bootstrap``, from
    ``scripts/paired_delta.py --into``): the variant against the named run, 95 % intervals.

    >>> _paired_lines([{"variant": "fused", "paired_bootstrap": {"vs text-only": {"n": 9,
    ...     "accuracy": {"delta": -2.0, "low": -5.0, "high": 1.0},
    ...     "weighted_f1": {"delta": -1.0, "low": -4.0, "high": 2.0}}}}])
    ['', '- fused vs text-only (paired bootstrap, 9 utterances): Δ accuracy -2.00 [-5.00, +1.00], Δ weighted F1 -1.00 [-4.00, +2.00]']
    """
    out = []
    for r in rows:
        for name, c in sorted((r.get("paired_bootstrap") or {}).items()):
            if isinstance(c, dict):
                out.append(f"- {_cell(r.get('variant', MISSING))} {_cell(name)} (paired bootstrap, "
                           f"{_integer(c.get('n'))} utterances): Δ accuracy {_gain(c.get('accuracy'))}, "
                           f"Δ weighted F1 {_gain(c.get('weighted_f1'))}")
    return [""] + out if out else []


CORPUS_ORDER = ("iemocap", "meld", "emorynlp", "dailydialog")


def _render_cross_corpus(rows: Sequence[dict]) -> str:
    """Vanilla models trained on one corpus (or a mix) and scored on every corpus's test split
    on the classes both label sets share: weighted F1 and accuracy, mean ± std over seeds."""
    corpora = sorted({c for r in rows for c in r["cross_corpus"]},
                     key=lambda c: (CORPUS_ORDER.index(c) if c in CORPUS_ORDER else len(CORPUS_ORDER), c))
    header = ["trained on", "label set", "model", "variant", "features", "seeds",
              *[f"{c} wF1" for c in corpora], *[f"{c} acc" for c in corpora], "mean wF1", "commit"]
    lines = ["\n## Cross-corpus · trained on one corpus (or several), tested on each\n",
             "Test splits, scored on the classes the model's label set and the corpus's share "
             "(`lantern.data.label_mapping`: IEMOCAP exc and hap count as joy; fru, Peaceful and "
             "Powerful are left out). Mean wF1 is over the corpora shown; models are selected on "
             "their own training corpus's validation split.\n",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: (_key(r.get("train_dataset")), _key(r.get("label_set")),
                                         _key(r.get("model")), _key(r.get("variant")))):
        cross = r["cross_corpus"]
        test = {c: (cross.get(c) or {}).get("test") or {} for c in corpora}
        wf1 = [_num((test[c].get("weighted_f1") or {}).get("mean")) for c in corpora]
        mean = None if any(v is None for v in wf1) else sum(wf1) / len(wf1)
        cells = [_cell(r.get("train_dataset", r.get("dataset", MISSING))), _cell(r.get("label_set", MISSING)),
                 _cell(r.get("model", MISSING)), _cell(r.get("variant", MISSING)),
                 _cell(_features(r.get("features"))), _n_seeds(r.get("seeds")),
                 *[_mean_std(test[c].get("weighted_f1")) for c in corpora],
                 *[_mean_std(test[c].get("accuracy")) for c in corpora],
                 _fixed(mean, 2), _cell(_commit(r.get("git_commit")))]
        lines.append("| " + " | ".join(cells) + " |")
    classes = {}
    for r in rows:
        for c in corpora:
            t = (r["cross_corpus"].get(c) or {}).get("test") or {}
            if t.get("classes"):
                classes.setdefault(c, set()).add(", ".join(t["classes"]))
    lines.append("")
    lines += [f"- {c}: scored on " + " or ".join(sorted(v)) for c, v in classes.items()]
    return "\n".join(lines) + "\n"


LANTERN_VARIANT_ORDER = ("vanilla-only", "llm-only", "uniform", "product", "position", "attention")


def _variant_key(variant: str) -> tuple:
    base = variant.split("-no-")[0].split("-t")[0]
    rank = LANTERN_VARIANT_ORDER.index(base) if base in LANTERN_VARIANT_ORDER else len(LANTERN_VARIANT_ORDER)
    return (rank, variant)


def _calibration(cal: dict) -> str:
    """``batch`` or ``none · log-linear``: the calibration (and pooling) chosen on validation."""
    chosen = (cal.get("selection") or {}).get("chosen") or {}
    pooling = chosen.get("pooling")
    return str(cal.get("chosen", MISSING)) + (f" · {pooling}" if pooling else "")


def _render_lantern(rows: Sequence[dict]) -> str:
    """Lantern results side by side per data set: every merger (and ablation) of every
    vanilla model, its gain over that vanilla model with the paired-bootstrap interval, the
    calibration chosen on validation and the LLM cost per utterance."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((_key(r.get("dataset")), _key(r.get("label_set")), _key(r.get("split"))), []).append(r)
    header = ["vanilla model", "variant", "accuracy", "weighted F1", "Δ accuracy [95% CI]",
              "Δ weighted F1 [95% CI]", "seeds", "calibration · pooling", "t", "answer", "prompt tok/utt",
              "decode steps/utt", "label mass", "LLM s ÷ token cost", "fallbacks", "commit"]
    parts = ["\n## Lantern (LLM refinement) · gains over each vanilla model\n\n"
             "Mergers are fitted on the validation split's LLM answers only; Δ is the paired "
             "bootstrap (1,000 resamples of test utterances) of the merger's mean over its seeds "
             "against the vanilla model. Costs are per test utterance; \"LLM s ÷ token cost\" is "
             "LLM seconds over what the same tokens cost at the prompt speed measured at the start "
             "of each chunk of the run (see `benchmarks/NOTES.md` for what else ran).\n"]
    for (dataset, label_set, split) in sorted(groups):
        lines = [f"\n### {_cell(dataset)} · {_cell(label_set)} · {_cell(split)}\n",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in sorted(groups[(dataset, label_set, split)],
                        key=lambda r: (_key(r.get("model")), _variant_key(_key(r.get("variant"))))):
            metrics = r.get("metrics") if isinstance(r.get("metrics"), dict) else {}
            gain = r.get("gain_vs_vanilla") if isinstance(r.get("gain_vs_vanilla"), dict) else {}
            llm = r.get("llm") if isinstance(r.get("llm"), dict) else {}
            cal = r.get("calibration") if isinstance(r.get("calibration"), dict) else {}
            ratio = (llm.get("cost_vs_speed_check") or {}).get("ratio") if isinstance(
                llm.get("cost_vs_speed_check"), dict) else None
            cells = [_cell(r.get("model", MISSING)), _cell(r.get("variant", MISSING)),
                     _mean_std(metrics.get("accuracy")), _mean_std(metrics.get("weighted_f1")),
                     _gain(gain.get("accuracy")), _gain(gain.get("weighted_f1")),
                     _n_seeds(r.get("seeds")), _cell(_calibration(cal)),
                     _integer(llm.get("t")), _cell(llm.get("answer", MISSING)),
                     _fixed(llm.get("prompt_tokens_per_utterance"), 1),
                     _fixed(llm.get("decode_steps_per_utterance"), 2),
                     _fixed(llm.get("mean_label_mass"), 3), _fixed(ratio, 2),
                     _integer(llm.get("fallbacks")), _cell(_commit(r.get("git_commit")))]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


POSITION_BIAS = "llm-position-bias"


def _render_position_bias(rows: Sequence[dict]) -> str:
    """The written-percent mode's position bias (``scripts/bench_position_bias.py``): how often
    an utterance's top class is the class listed first, per answer mode, on the same fields."""
    header = ["vanilla model", "fields", "mode", "top listed first", "order-blind",
              "accuracy", "weighted F1", "agrees with vanilla", "completion tok/field", "commit"]
    lines = ["\n## LLM answers · position bias of the written-percent mode\n",
             "The same validation fields asked with the class order fixed, rotated by one place "
             "per field, and rotated with each listed position's mean probability divided out; "
             "the log-probability mode on the same fields for comparison. \"Order-blind\" is the "
             "share an answer that ignores the order would put first under rotation (1/K); "
             "accuracy is the mean of each utterance's answers, single run at temperature 0.\n",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: (_key(r.get("dataset")), _key(r.get("model")))):
        modes = r.get("modes") if isinstance(r.get("modes"), dict) else {}
        blind = (r.get("reference") or {}).get("order_blind_top_listed_first")
        for mode, m in modes.items():
            lines.append("| " + " | ".join([
                _cell(r.get("model", MISSING)), _integer(r.get("n_fields")), _cell(mode),
                _fixed(m.get("top_listed_first"), 3), _fixed(blind, 3), _fixed(m.get("accuracy"), 2),
                _fixed(m.get("weighted_f1"), 2), _fixed(m.get("agrees_with_vanilla_top"), 3),
                _fixed(m.get("completion_tokens_per_field"), 1), _cell(_commit(r.get("git_commit")))]) + " |")
    return "\n".join(lines) + "\n"


PREDICT_STAGES = ("transcription", "features", "vanilla", "llm", "reasons", "report", "total")


def _render_predict(rows: Sequence[dict]) -> str:
    """`lantern predict` end to end: seconds per utterance by stage (wall clock, 2 threads)."""
    header = ["case", "vanilla model", "input", "LLM", "utterances", *[f"{s} s/utt" for s in PREDICT_STAGES],
              "LLM calls", "accuracy vs labels", "commit"]
    lines = ["\n## lantern predict · seconds per utterance by stage\n",
             "Wall-clock seconds on this project's 2-core CPU machine (2 threads), from "
             "`scripts/bench_predict.py`; accuracy only where the data's labels have a counterpart "
             "in the model's classes (IEMOCAP 6-way; RAVDESS's 8 for emotion-llama; see each "
             "file's `details`).\n",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: (_key(r.get("dataset")), _key(r.get("variant")), _key(r.get("model")))):
        timing = r.get("timings") if isinstance(r.get("timings"), dict) else {}
        spu = timing.get("seconds_per_utterance") or {}
        llm = r.get("llm") if isinstance(r.get("llm"), dict) else None
        acc = (r.get("metrics") or {}).get("accuracy") or {}
        scored = _num(acc.get("mean")) if isinstance(acc, dict) else None
        cells = [_cell(r.get("variant", MISSING)), _cell(r.get("model", MISSING)),
                 _cell(r.get("input_kind", MISSING)),
                 _cell(llm.get("model", "").partition("@")[0] if llm else "off"),
                 _integer(r.get("n_utterances")), *[_fixed(spu.get(s), 2) for s in PREDICT_STAGES],
                 _llm(llm, "calls"), MISSING if scored is None else f"{scored:.1f}",
                 _cell(_commit(r.get("git_commit")))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


PREDICT_STARTUP = "predict-startup"


def _render_startup(rows: Sequence[dict]) -> str:
    """Whole-process start-up of `lantern predict`, per vanilla model (``--cases startup``)."""
    lines = ["\n## lantern predict · start-up\n",
             "Whole-process wall-clock seconds of `lantern predict` on a one-turn conversation, LLM "
             "off, fresh feature cache, the models alternating within one run "
             "(`scripts/bench_predict.py --cases startup`; 2 threads).\n",
             "| vanilla model | runs | seconds | peak MB | commit |", "|---|---|---|---|---|"]
    for r in rows:
        for model, m in (r.get("startup") or {}).items():
            seconds, peaks = m.get("seconds") or [], m.get("peak_memory_mb") or []
            lines.append(f"| {_cell(model)} | {len(seconds)} | {_fixed(m.get('mean'), 2)} ± "
                         f"{_fixed(m.get('std'), 2)} | {_integer(max(peaks) if peaks else None)} | "
                         f"{_cell(_commit(r.get('git_commit')))} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- file + CLI

def write_benchmarks(results_dir: str | Path, out: str | Path) -> Path:
    """Render every result in ``results_dir`` and write ``out`` atomically."""
    out = Path(out)
    atomic_write_text(out, render_benchmarks(load_results(results_dir)))
    return out


def check_benchmarks(results_dir: str | Path, out: str | Path) -> bool:
    """True when ``out`` exists and equals what :func:`write_benchmarks` would write."""
    out = Path(out)
    if not out.is_file():
        return False
    return out.read_text(encoding="utf-8") == render_benchmarks(load_results(results_dir))


def main(argv: Sequence[str] | None = None, root: str | Path | None = None) -> int:
    """CLI: ``--results-dir`` and ``--out`` default to ``benchmarks/results`` and
    ``BENCHMARKS.md`` under ``root`` (default: the current directory)."""
    base = Path(root) if root is not None else Path.cwd()
    parser = argparse.ArgumentParser(
        prog="make_benchmarks", description="Regenerate BENCHMARKS.md from result JSON files.")
    parser.add_argument("--results-dir", type=Path, default=base / "benchmarks" / "results",
                        help="folder of result JSON files (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=base / "BENCHMARKS.md",
                        help="Markdown file to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the file is missing or out of date")
    args = parser.parse_args(argv)
    try:
        if args.check:
            if check_benchmarks(args.results_dir, args.out):
                print(f"{args.out} is up to date")
                return 0
            print(f"{args.out} is out of date with {args.results_dir}; "
                  f"regenerate with `python scripts/make_benchmarks.py`", file=sys.stderr)
            return 1
        path = write_benchmarks(args.results_dir, args.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

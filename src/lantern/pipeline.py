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
    """The vanilla model's training config (``vanilla.config`` + overrides), or, for
    ``vanilla.pretrained`` (a shipped model name or a saved model folder), a description of
    that model in the same shape (dataset, model name, features)."""
    from lantern.config import load_config

    spec = cfg.get("vanilla")
    if spec and spec.get("pretrained"):
        return _pretrained_vanilla_config(cfg, spec)
    if not spec or "config" not in spec:
        raise ConfigError("a lantern pipeline config needs vanilla.config (a vanilla training config) "
                          "or vanilla.pretrained (a shipped model name or a saved model folder)")
    path = Path(spec["config"])
    if not path.is_absolute() and not path.exists():
        path = Path(cfg.get("config_dir", ".")) / path
    vcfg = load_config(path, list(spec.get("overrides") or []))
    vcfg["seeds"] = [int(spec.get("seed", 0))]
    vcfg.setdefault("output_dir", str(_out(cfg) / "vanilla"))
    return vcfg


def _pretrained_vanilla_config(cfg: dict, spec: dict) -> dict:
    from lantern.predict.pretrained import shipped_model_dir, shipped_models

    name = str(spec["pretrained"])
    directory = shipped_model_dir(name) if name in shipped_models() else Path(name)
    if not (directory / "config.json").is_file():
        raise ConfigError(f"vanilla.pretrained: {name} is neither a shipped model "
                          f"({', '.join(shipped_models())}) nor a saved model folder")
    saved = json.loads((directory / "config.json").read_text())
    extra = saved.get("extra_config", saved)
    dataset = {"name": extra.get("dataset"), "label_set": extra.get("label_set")}
    for o in spec.get("overrides") or []:        # e.g. dataset.data_root=...
        key, _, value = str(o).partition("=")
        if key.startswith("dataset."):
            dataset[key.split(".", 1)[1]] = value
    return {"pretrained": str(directory), "dataset": dataset, "model": {"name": directory.name},
            "features": (extra.get("feature_spec") or {}).get("modalities", {}), "seeds": [0],
            "output_dir": str(_out(cfg) / "vanilla")}


def stage_vanilla(cfg: dict, limit: int | None = None, progress: bool = True) -> Path:
    """Train the vanilla model (or load the pretrained one) unless its predictions exist;
    return the predictions folder."""
    vcfg = vanilla_config(cfg)
    out = Path(vcfg["output_dir"])
    if limit is not None:
        out = out.with_name(out.name + f"-limit{limit}")
    preds = out / f"seed{vcfg['seeds'][0]}" / "predictions"
    if (preds / "test.jsonl").exists():
        return preds
    if vcfg.get("pretrained"):
        _export_pretrained(vcfg, preds, limit, progress)
    else:
        from lantern.training.experiment import run_experiment
        run_experiment(vcfg, limit=limit, progress=progress, results_dir=None)
    return preds


def _export_pretrained(vcfg: dict, preds: Path, limit: int | None, progress: bool) -> None:
    from lantern.data import load_dataset
    from lantern.features import attach_features
    from lantern.predict.pretrained import load_vanilla
    from lantern.training.predictions import prediction_rows, write_predictions

    model, spec, label_set, vad_scale, _ = load_vanilla(vcfg["pretrained"])
    options = {k: v for k, v in vcfg["dataset"].items() if k != "name" and v is not None}
    ds = load_dataset(vcfg["dataset"]["name"], **options).limit(limit)
    names = list(spec.modalities.values())
    feature_options = model.extra_config.get("feature_options") or {}
    attach_features(ds, names, options={k: v for k, v in feature_options.items() if k in names},
                    progress=progress)
    for split in ("valid", "test"):
        write_predictions(preds / f"{split}.jsonl",
                          prediction_rows(model, ds.dialogues(split), spec, label_set, vad_scale))


def make_llm(cfg: dict):
    from lantern.llm import get_llm

    llm_cfg = dict(cfg.get("llm") or {})
    return get_llm(llm_cfg.pop("backend", "embedded"), model=llm_cfg.pop("model", None),
                   **(llm_cfg.pop("options", None) or {}))


def refine_settings(cfg: dict):
    from lantern.refine import RefineSettings

    try:
        return RefineSettings(**(cfg.get("fields") or {}), **(cfg.get("prompt") or {}))
    except TypeError as exc:
        raise ConfigError(f"fields/prompt: {exc}") from None


def answers_dir(cfg: dict, limit: int | None = None) -> Path:
    """Where a run's answer files live: ``answers_dir``, else
    ``answers_root/<run_slug>`` (the benchmarks commit theirs under ``benchmarks/answers/``),
    else the run folder. A ``--limit`` run (whose vanilla model saw only N dialogues) keeps
    its answers in its run folder, never beside the full run's."""
    settings = refine_settings(cfg)
    if limit is not None:
        return _out(cfg) / f"answers{settings.variant_suffix}-limit{limit}"
    if cfg.get("answers_dir"):
        return Path(cfg["answers_dir"])
    if cfg.get("answers_root"):
        return Path(cfg["answers_root"]) / run_slug(cfg)
    return _out(cfg) / ("answers" + settings.variant_suffix)


def run_slug(cfg: dict) -> str:
    """``iemocap-6way-sdt-qwen2.5-coder-1.5b-logprobs-w6s2`` (+ ``-no-refs`` / ``-no-vad``):
    names a run's answers by everything that changes them."""
    settings = refine_settings(cfg)
    vcfg = vanilla_config(cfg)
    llm = (cfg.get("llm") or {}).get("model") or "default"
    parts = [vcfg["dataset"]["name"], vcfg["dataset"].get("label_set") or "", vcfg["model"]["name"],
             str(llm).replace("/", "_"), settings.answer]
    return "-".join(p for p in parts if p) + settings.variant_suffix + f"-w{settings.window}s{settings.stride}"


def _vanilla_file(folder: Path, split: str) -> Path:
    return folder / f"vanilla-{split}.jsonl.gz"


#: what the committed vanilla file keeps of a prediction row (no text: corpora licences)
VANILLA_KEYS = ("dialogue_id", "utterance_id", "turn", "label", "probs", "vad")


def write_vanilla_file(path: Path, rows: list[dict]) -> None:
    import gzip

    lines = [json.dumps({k: r.get(k) for k in VANILLA_KEYS}, separators=(",", ":")) for r in rows]
    # mtime=0: the same predictions give the same bytes (no spurious diffs when committed)
    data = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0)
    from lantern.paths import atomic_write_bytes
    atomic_write_bytes(path, data)


def read_vanilla_file(path: Path) -> list[dict]:
    import gzip

    from lantern.errors import DataError

    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"not a gzipped JSONL file ({exc})", path=path) from None
    rows = []
    for n, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise DataError(f"not JSON ({exc})", path=path, line=n) from None
    return rows


def pin_vanilla(rows: list[dict], folder: Path, split: str) -> list[dict]:
    """The vanilla predictions the answers were asked with. The first run writes them next
    to its answers; later runs (another machine, where a retrained vanilla model may differ
    in the last digits and so change every prompt) take probabilities, dimension scores and
    labels from that file, and only the texts from the data set."""
    from lantern.errors import DataError

    path = _vanilla_file(folder, split)
    if not path.exists():
        write_vanilla_file(path, rows)
        return rows
    pinned = {(r["dialogue_id"], r["utterance_id"]): r for r in read_vanilla_file(path)}
    out = []
    for r in rows:
        p = pinned.get((r["dialogue_id"], r["utterance_id"]))
        if p is None:
            raise DataError(f"utterance {r['dialogue_id']}/{r['utterance_id']} is not in the pinned "
                            f"vanilla predictions; they belong to another data set or split", path=path)
        out.append({**r, "probs": p["probs"], "vad": p["vad"], "label": p["label"], "turn": p["turn"]})
    return out


def answer_header(settings, run, llm, split: str, classes, words) -> dict:
    return {"mode": settings.answer, "template_hash": run, "model_id": llm.model_id,
            "split": split, "classes": list(classes), "words": list(words),
            "window": settings.window, "stride": settings.stride, "t": settings.t,
            "include_refs": settings.include_refs, "include_vad": settings.include_vad}


def speed_check(llm) -> dict:
    """Prompt tokens/s of this backend measured now (``lantern llm check``'s prompt-heavy
    request), so costs can be stated as a ratio to a speed taken in the same run."""
    from lantern.llm.base import ChatRequest
    from lantern.llm.cli import PROMPT_HEAVY

    heavy = llm.chat(ChatRequest(PROMPT_HEAVY, max_tokens=1))
    return {"prompt_tokens": heavy.prompt_tokens, "seconds": round(heavy.seconds, 3),
            "prompt_tokens_per_s": round(heavy.prompt_tokens / heavy.seconds, 2) if heavy.seconds else None}


def stage_refine(cfg: dict, predictions: Path, splits=("valid", "test"), limit: int | None = None,
                 progress: bool = True, llm=None, max_fields: int | None = None) -> dict:
    """LLM answers for each split, kept in ``answers_dir(cfg)/<split>.jsonl`` as they arrive.

    ``max_fields`` stops after that many new answers (a long run in chunks: each chunk is
    committed, the next continues). Each invocation appends its costs, with a prompt-speed
    check taken in the same process, to ``<split>.runs.jsonl``.
    """
    import platform

    from lantern.answers import AnswerFile
    from lantern.data.labels import LABEL_SETS
    from lantern.llm.cache import LLMCache
    from lantern.prompts import SlotPromptTemplate
    from lantern.refine import _Run, group_by_dialogue, refine
    from lantern.training.predictions import read_predictions

    settings = refine_settings(cfg)
    folder = answers_dir(cfg, limit)
    folder.mkdir(parents=True, exist_ok=True)
    own_llm = llm is None
    llm = llm or make_llm(cfg)
    summaries = {}
    label_set_name = vanilla_config(cfg)["dataset"].get("label_set")
    budget = {"left": max_fields}            # new answers this invocation may still ask for
    try:
        with LLMCache(cfg.get("llm_cache")) as cache:
            for split in splits:
                rows = read_predictions(predictions / f"{split}.jsonl")
                if limit is not None:
                    keep = {d for d, _ in group_by_dialogue(rows)[:limit]}
                    rows = [r for r in rows if r["dialogue_id"] in keep]
                rows = pin_vanilla(rows, folder, split)
                classes = list(rows[0]["probs"])
                label_set = LABEL_SETS.get(label_set_name) if label_set_name else None
                if label_set is None or list(label_set.classes) != classes:
                    label_set = next((ls for ls in LABEL_SETS.values() if list(ls.classes) == classes), None)
                descriptions = label_set.descriptions if label_set else ()
                probe = _Run(classes, llm, settings, descriptions, None, None)
                words = SlotPromptTemplate(tuple(classes), descriptions).words
                header = answer_header(settings, probe.template_hash, llm, split, classes, words)
                with AnswerFile(folder / f"{split}.jsonl", header) as answers:
                    check = None
                    missing = _count_missing(rows, classes, llm, settings, descriptions, answers)
                    if missing and settings.answer == "logprobs" and llm.backend == "embedded":
                        check = speed_check(llm)

                    def on_answer(_answer, budget=budget):
                        if budget["left"] is not None:
                            budget["left"] -= 1
                            if budget["left"] <= 0:
                                raise _ChunkDone()
                    t_start = time.perf_counter()
                    try:
                        _, summary = refine(rows, classes, llm, settings, descriptions, cache,
                                            progress, answers=answers, on_answer=on_answer)
                        complete = True
                    except _ChunkDone:
                        complete, summary = False, None
                    if complete and summary["answer"] == "logprobs":
                        ask_content_free(rows, classes, llm, settings, descriptions, answers)
                    run_line = _run_line(folder, split, answers, missing, check, complete,
                                         time.perf_counter() - t_start)
                if not complete:
                    summaries[split] = {"complete": False, **run_line}
                    break
                summary.update(backend=llm.backend, model_id=llm.model_id, split=split,
                               complete=True, speed_check=check, host=platform.node(),
                               label_set=label_set_name)
                summary["cost_vs_speed_check"] = _cost_ratio(folder / f"{split}.runs.jsonl")
                atomic_write_text(folder / f"{split}.summary.json", json.dumps(summary, indent=2))
                summaries[split] = summary
    finally:
        if own_llm:
            llm.close()
    return summaries


def ask_content_free(rows, classes, llm, settings, descriptions, answers) -> None:
    """One field of "N/A" utterances (references: the split's mean vanilla prediction), the
    prior that contextual calibration divides by (Zhao et al., 2021). Stored with the answers."""
    from lantern.prompts import FieldLine
    from lantern.receptive_fields import ReceptiveField
    from lantern.refine import _Job, _Run

    run = _Run(classes, llm, settings, descriptions, None, None)
    mean_p = {c: float(np.mean([r["probs"][c] for r in rows])) for c in classes}
    vads = [r["vad"] for r in rows if r.get("vad")]
    mean_vad = tuple(float(x) for x in np.mean(vads, axis=0)) if vads and settings.include_vad else None
    speakers = sorted({str(r["speaker"]) for r in rows})[:2] or ["A"]
    lines = [FieldLine(j, speakers[j % len(speakers)], "N/A", mean_p, mean_vad)
             for j in range(settings.window)]
    field = ReceptiveField(CONTENT_FREE, 0, 0, settings.window, False)
    job = _Job(CONTENT_FREE, field, [], lines, run.key_for(CONTENT_FREE, field, lines))
    if job.key not in answers:
        answers.add(run.ask(job))


class _ChunkDone(Exception):
    """``max_fields`` new answers were stored: stop here, the next run continues."""


def _count_missing(rows, classes, llm, settings, descriptions, answers) -> int:
    from lantern.receptive_fields import make_fields
    from lantern.refine import _field_lines, _Run, group_by_dialogue

    run = _Run(classes, llm, settings, descriptions, None, None)
    n = 0
    for dialogue_id, drows in group_by_dialogue(rows):
        for f in make_fields(len(drows), settings.window, settings.stride, dialogue_id):
            n += run.key_for(dialogue_id, f, _field_lines(drows, f, settings)) not in answers
    return n


def _run_line(folder: Path, split: str, answers, missing: int, check, complete: bool,
              wall: float) -> dict:
    """Append this invocation's costs (fields it answered, their tokens and seconds, the
    speed check) to ``<split>.runs.jsonl``."""
    import platform

    new = [answers.get(k) for k in answers.added]
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(),
            "fields_missing_before": missing, "fields_answered": len(new),
            "prompt_tokens": sum(a.prompt_tokens for a in new),
            "reused_prompt_tokens": sum(a.reused_tokens for a in new),
            "decode_steps": sum(a.decode_steps for a in new),
            "fill_tokens": sum(a.completion_tokens for a in new),
            "llm_seconds": round(sum(a.seconds for a in new), 3),
            "wall_seconds": round(wall, 3),
            "speed_check": check, "complete": complete, "fields_total": len(answers)}
    if new:
        with open(folder / f"{split}.runs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
    return line


def _cost_ratio(runs_file: Path) -> dict | None:
    """LLM seconds against what the same tokens cost at each invocation's measured prompt
    speed (summed over invocations), and the share of wall time spent outside the LLM."""
    if not runs_file.exists():
        return None
    runs = [json.loads(x) for x in runs_file.read_text().splitlines() if x.strip()]
    timed = [r for r in runs if (r.get("speed_check") or {}).get("prompt_tokens_per_s")]
    if not timed:
        return None
    expected = sum((r["prompt_tokens"] + r["fill_tokens"]) / r["speed_check"]["prompt_tokens_per_s"]
                   for r in timed)
    llm_s = sum(r["llm_seconds"] for r in timed)
    wall = sum(r["wall_seconds"] for r in timed)
    return {"invocations": len(runs), "timed_invocations": len(timed),
            "llm_seconds": round(llm_s, 2), "token_cost_seconds": round(expected, 2),
            "ratio": round(llm_s / expected, 3) if expected else None,
            "overhead_share": round(max(0.0, 1 - llm_s / wall), 4) if wall else None,
            "prompt_tokens_per_s": [r["speed_check"]["prompt_tokens_per_s"] for r in timed]}


CONTENT_FREE = "__content_free__"     # dialogue id of the contextual-calibration request


def answer_records(folder: Path, split: str) -> tuple[list[dict], dict, dict]:
    """(vanilla rows, answer records grouped by utterance, answer-file header) rebuilt from
    the files in ``folder`` alone: no LLM, no vanilla model, no data set needed."""
    from lantern.answers import AnswerFile
    from lantern.errors import DataError
    from lantern.fusion.inputs import answer_record
    from lantern.receptive_fields import make_fields, memberships
    from lantern.refine import group_by_dialogue

    path = folder / f"{split}.jsonl"
    if not path.exists():
        raise DataError("no answers for this split (run lantern refine first)", path=path)
    vanilla = read_vanilla_file(_vanilla_file(folder, split))
    with AnswerFile(path, {}) as store:
        header = dict(store.header)
        by_field = {(a.dialogue_id, a.field_id): a for a in store}
    w, s_ = int(header["window"]), int(header["stride"])
    classes = list(header["classes"])
    grouped: dict[tuple[str, str], list[dict]] = {}
    missing = total = 0
    for dialogue_id, drows in group_by_dialogue(vanilla):
        for f in make_fields(len(drows), w, s_, dialogue_id):
            total += 1
            a = by_field.get((dialogue_id, f.field_id))
            if a is None:
                missing += 1
                continue
            if (a.start, a.end) != (f.start, f.end):
                raise DataError(f"field {dialogue_id}#{f.field_id} covers {a.start}..{a.end}, "
                                f"expected {f.start}..{f.end}", path=path, field="start")
            for m in memberships([f]):
                row = drows[m.utterance_index]
                rec = answer_record(m, dict(zip(classes, a.probs[m.position])), a.valid[m.position],
                                    utterance_id=row["utterance_id"])
                rec["dialogue_id"] = dialogue_id
                grouped.setdefault((dialogue_id, row["utterance_id"]), []).append(rec)
    if missing:
        raise DataError(f"{missing} of {total} fields have no answer yet; continue the run with "
                        f"lantern refine", path=path)
    cf = [a for a in by_field.values() if a.dialogue_id == CONTENT_FREE]
    header["content_free"] = (np.mean(np.asarray(cf[0].probs), axis=0).tolist() if cf else None)
    return vanilla, grouped, header


def fusion_inputs(folder: Path, split: str):
    """The :class:`~lantern.fusion.inputs.FusionInputs` of one split's labelled utterances,
    and its answer-file header."""
    from lantern.fusion.inputs import FusionInputs

    vanilla, grouped, header = answer_records(folder, split)
    rows = [r for r in vanilla if r["label"] is not None]
    return FusionInputs.from_records(rows, grouped, classes=header["classes"]), header


FIXED_MERGERS = ("vanilla-only", "llm-only", "uniform", "product")
POOLINGS = ("linear", "log-linear")
DEFAULT_VARIANTS = ("vanilla-only", "llm-only", "uniform", "product", "position", "attention")


def select_on_validation(variant: str, options: dict, fit_by_cal: dict, poolings) -> dict:
    """The calibration (and, for learned mergers, the pooling) a merger uses, chosen on the
    validation split only: a fixed merger by its accuracy there; a learned one by the NLL
    of its seed-0 fit on the validation dialogues it holds out (the same dialogues for every
    candidate, since the hold-out depends on the seed alone). Ties keep the earlier candidate
    (none < batch < contextual; linear < log-linear)."""
    from lantern.evaluation.metrics import accuracy
    from lantern.fusion import make_merger

    if variant == "vanilla-only":
        return {"criterion": "none (the vanilla model)", "candidates": {},
                "chosen": {"calibration": "none"}}
    candidates: dict[str, dict] = {}
    learned = variant not in FIXED_MERGERS
    for cal, x in fit_by_cal.items():
        for pooling in (poolings if learned and "pooling" not in options else [None]):
            merger = make_merger(variant, **{**options, **({"pooling": pooling} if pooling else {}),
                                             **({"seed": 0} if learned else {})})
            merger.fit(x, FUSION_SPLIT)
            name = cal + (f"/{pooling}" if pooling else "")
            if learned:
                held = merger.state["guard"]["holdout"]["fused"]
                candidates[name] = {"calibration": cal, "pooling": pooling, "holdout_nll": held["nll"],
                                    "holdout_accuracy": held["accuracy"]}
            else:
                candidates[name] = {"calibration": cal, "valid_accuracy":
                                    accuracy(x.labels, merger.predict_proba(x).argmax(1))}
    if learned:
        best = min(candidates, key=lambda k: candidates[k]["holdout_nll"])
        criterion = "held-out validation NLL of the seed-0 fit"
    else:
        best = max(candidates, key=lambda k: candidates[k]["valid_accuracy"])
        criterion = "validation accuracy"
    return {"criterion": criterion, "candidates": candidates, "chosen": candidates[best]}
MERGER_SEEDS = (0, 1, 2)
COST_KEYS = ("fields", "requests", "prompt_tokens", "reused_prompt_tokens", "decode_steps",
             "completion_tokens", "seconds", "fallbacks", "low_mass_slots", "unread_slots",
             "mean_label_mass", "parse_failures", "validation_failures", "renormalised_answers",
             "prompt_tokens_per_utterance", "decode_steps_per_utterance",
             "completion_tokens_per_utterance", "seconds_per_utterance", "cost_vs_speed_check")


def stage_fuse(cfg: dict, predictions: Path | None = None, limit: int | None = None,
               results_dir: str | Path | None = None) -> list[dict]:
    """Fit each merger on the validation answers (learned ones over ``fusion.seeds``), apply
    to test, write one result per merger. Reads only the answer folder (vanilla predictions
    and answers), so it runs on any machine without an LLM."""
    from lantern.evaluation.metrics import classification_report, paired_bootstrap
    from lantern.evaluation.results import git_commit, peak_memory_mb, write_result
    from lantern.fusion import make_merger
    from lantern.fusion.calibration import CALIBRATIONS, calibrate, prior_for
    from lantern.models.base import library_versions

    settings = refine_settings(cfg)
    folder = answers_dir(cfg, limit)
    fit_raw, header = fusion_inputs(folder, FUSION_SPLIT)
    test_raw, test_header = fusion_inputs(folder, "test")
    fusion_cfg = cfg.get("fusion") or {}
    calibrations = (list(fusion_cfg.get("calibrations", CALIBRATIONS)) if header.get("mode") == "logprobs"
                    else ["none"])
    calibrations = [c for c in calibrations if c != "contextual" or header.get("content_free") is not None]
    fit_by_cal = {c: calibrate(fit_raw, c, prior_for(c, header)) for c in calibrations}
    test_by_cal = {c: calibrate(test_raw, c, prior_for(c, test_header)) for c in calibrations}
    test_inputs = test_raw
    classes = list(header["classes"])
    y = np.asarray(test_inputs.labels)
    vanilla_pred = test_inputs.vanilla.argmax(1)
    summaries = {s: json.loads((folder / f"{s}.summary.json").read_text())
                 for s in (FUSION_SPLIT, "test") if (folder / f"{s}.summary.json").exists()}
    test_cost = summaries.get("test", {})
    vcfg = vanilla_config(cfg)
    seeds = [int(x) for x in fusion_cfg.get("seeds", MERGER_SEEDS)]
    suffix = settings.variant_suffix + ("" if settings.t == 3 else f"-t{settings.t}")
    results = []
    poolings = list(fusion_cfg.get("poolings", POOLINGS))
    for variant in fusion_cfg.get("variants", DEFAULT_VARIANTS):
        start = time.perf_counter()
        run_seeds = [0] if variant in FIXED_MERGERS else seeds
        base_options = dict((fusion_cfg.get("options") or {}).get(variant, {}))
        selection = select_on_validation(variant, base_options, fit_by_cal, poolings)
        chosen = selection["chosen"]
        fit_inputs, test_inputs = fit_by_cal[chosen["calibration"]], test_by_cal[chosen["calibration"]]
        preds, reports, states = [], [], []
        for seed in run_seeds:
            options = {**base_options, **({"pooling": chosen["pooling"]} if chosen.get("pooling") else {})}
            if variant not in FIXED_MERGERS:
                options.setdefault("seed", seed)
            merger = make_merger(variant, **options)
            merger.fit(fit_inputs, FUSION_SPLIT)
            merger.save_pretrained(_out(cfg) / "mergers" / f"{variant}{suffix}-seed{seed}")
            pred = merger.predict_proba(test_inputs).argmax(1)
            preds.append(pred)
            reports.append(classification_report(y, pred, classes))
            states.append(getattr(merger, "state", None))
        calibration = {"chosen": chosen["calibration"], "selection": selection}
        gain = {m: paired_bootstrap(y, vanilla_pred, np.stack(preds), m, n_boot=1000, seed=0,
                                    n_classes=len(classes))
                for m in ("accuracy", "weighted_f1")}

        def stat(key, reports=reports):
            vals = [r[key] for r in reports]
            return {"mean": float(np.mean(vals)),
                    "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, "per_seed": vals}

        name = variant + suffix
        per_class = {c: float(np.mean([r["per_class_f1"][c] for r in reports]))
                     for c in reports[0]["per_class_f1"]}
        result = {
            "dataset": vcfg["dataset"]["name"], "label_set": vcfg["dataset"].get("label_set"),
            "split": "test", "n_utterances": int(len(y)), "model": vcfg["model"]["name"],
            "method": "lantern", "variant": name, "features": vcfg["features"],
            "selection_split": FUSION_SPLIT, "seeds": run_seeds,
            "metrics": {"accuracy": stat("accuracy"), "weighted_f1": stat("weighted_f1"),
                        "per_class_f1": per_class},
            "gain_vs_vanilla": gain,
            "calibration": calibration,
            "answers_dir": str(folder),
            "llm": {"backend": test_cost.get("backend"), "model": header.get("model_id"),
                    "sha256": (header.get("model_id") or "").partition("@")[2] or None,
                    "answer": header.get("mode"), "t": settings.t, "window": settings.window,
                    "stride": settings.stride, "include_vad": settings.include_vad,
                    "include_refs": settings.include_refs,
                    "template_hash": header.get("template_hash"),
                    **{k: test_cost.get(k) for k in COST_KEYS}},
            "merger_state": states[0] if len(states) == 1 else states,
            "train_seconds": time.perf_counter() - start, "peak_memory_mb": peak_memory_mb(),
            "git_commit": git_commit(), "config": cfg, "versions": library_versions(), "limit": limit,
        }
        if results_dir is not None:
            slug = f"{result['dataset']}-{result['label_set']}-{result['model']}-lantern-{name}"
            if limit is not None:
                slug += f"-limit{limit}"
            result["result_file"] = str(write_result(result, results_dir, name=slug))
        results.append(result)
    atomic_write_text(_out(cfg) / f"fusion{suffix}.json", json.dumps(
        [{k: r[k] for k in ("variant", "metrics", "gain_vs_vanilla", "calibration")} for r in results],
        indent=2, default=str))
    return results


def run_pipeline(cfg: dict, limit: int | None = None, progress: bool = True,
                 results_dir: str | Path | None = None, llm=None,
                 max_fields: int | None = None) -> list[dict]:
    predictions = stage_vanilla(cfg, limit, progress)
    summaries = stage_refine(cfg, predictions, limit=limit, progress=progress, llm=llm,
                             max_fields=max_fields)
    if len(summaries) < 2 or not all(s.get("complete") for s in summaries.values()):
        return []   # a chunk of a long run: fuse once every split is answered
    return stage_fuse(cfg, predictions, limit=limit, results_dir=results_dir)

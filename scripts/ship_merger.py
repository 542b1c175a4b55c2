"""Ship the merger of a Lantern run into the package, next to the vanilla model it refines.

    python scripts/ship_merger.py configs/lantern-iemocap-text.yaml [--variant attention|cross-corpus]

Run it after `lantern fuse` of that config wrote its result files. It copies the merger of
the seed with the lowest out-of-fold validation NLL (chosen on validation only; test is
scored after the choice, for the card), writes
`calibration.json` (the calibration chosen on validation and its prior, estimated on the
validation answers) and a card generated from the run's result files, to
`<vanilla model>/mergers/<llm>-<answer>-w<window>s<stride>/`. `lantern predict` then uses it
whenever the same LLM file answers with the same settings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

CARD = """# {name}

The merger `lantern predict` uses to turn the {t} LLM answers of each utterance (one per receptive field, read from
{llm}'s log-probabilities) and the prediction of the vanilla model `{vanilla}` into the refined prediction. Type: `{type}`
(receptive-field-aware attention over the {t} answers plus the vanilla prediction as one more slot, started at and
guarded by the vanilla model).

## What it was trained on
- The LLM's answers on IEMOCAP {label_set} **validation** ({n_valid} utterances), with `{vanilla}`'s predictions as
  references; the attention's early stopping and its guard used held-out validation dialogues. Test was not seen.
- Calibration and pooling, chosen on validation ({criterion}): `{calibration}` (candidates: {cal_scores}).
- Answers: `{answers_dir}` (committed; `lantern fuse {config}` rebuilds every number below without an LLM).
- Seed {seed} of seeds {seeds}: the lowest out-of-fold validation NLL ({seed_nlls}). Guard: {guard}.

## How well it does (IEMOCAP {label_set} test, {n_test} utterances)
| | accuracy | weighted F1 | Δ accuracy vs vanilla [95% CI] | Δ weighted F1 [95% CI] |
|---|---|---|---|---|
{rows}

## Limits
- Trained on acted English IEMOCAP dialogues: on other conversations the LLM's own opinion may be worth more or
  less than it was here.
- Used only with the LLM file it was trained on ({llm_model_id}); any other LLM gets the plain mean of its answers.
"""


def _as_list(prior):
    """A prior as calibration.json stores it (a list, or as given: the content-free answer
    already is one; None)."""
    return prior.tolist() if hasattr(prior, "tolist") else prior


def _ci(d: dict) -> str:
    """``+1.23 [+0.45, +2.01]``: a paired-bootstrap delta with its interval."""
    return f"{d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def _shipped_row(target: Path, folder: Path, seed: int, method: str, prior) -> str:
    """The shipped merger itself, loaded from the package, on the run's test answers."""
    from lantern.evaluation.metrics import paired_bootstrap, percent_scores
    from lantern.fusion import load_merger
    from lantern.fusion.calibration import calibrate
    from lantern.pipeline import fusion_inputs

    test, _ = fusion_inputs(folder, "test")
    pred = load_merger(target).predict_proba(calibrate(test, method, prior)).argmax(1)
    y, k = test.labels, test.vanilla.shape[1]
    s = percent_scores(y, pred, k)
    g = {m: paired_bootstrap(y, test.vanilla.argmax(1), pred, m, n_boot=1000, seed=0, n_classes=k)
         for m in ("accuracy", "weighted_f1")}
    return (f"| **shipped** (seed {seed}, prior as shipped) | {s['accuracy']:.2f} | {s['weighted_f1']:.2f} | "
            f"{_ci(g['accuracy'])} | {_ci(g['weighted_f1'])} |")


CROSS_CARD = """# {name}

The merger `lantern predict` uses to turn the {t} LLM answers of each utterance (one per receptive field, read from
{llm}'s log-probabilities) and the prediction of the vanilla model `{vanilla}` into the refined prediction: the
geometric mix P ∝ p_vanilla^{w} · (mean of the {t} answers)^{w_llm}, answers calibrated: `{calibration}`. Nothing in it is
trained; its weight and calibration were **chosen on the validation splits of several corpora**.

## How it was chosen (validation splits only)
- Rule: {rule}.
- Answers: IEMOCAP `{answers_dir}` and, for the other corpora, the same vanilla model and LLM on their validation
  splits (`{corpora}`), all committed; `python scripts/validate_merger.py {config} {corpus_args}` rebuilds the table.
- Why not the attention merger fitted on IEMOCAP: it calibrates the answers by IEMOCAP's prior and stays at the vanilla
  model, which is right on IEMOCAP and wrong elsewhere (on DailyDialog the LLM's own tilt towards neutral is worth
  more than the references).

| candidate | IEMOCAP valid wF1 (6-way) | {corpus_header} | mean of the choosing corpora |
|---|---|{corpus_rule}---|
{table}

## How well it does (IEMOCAP {label_set} test, {n_test} utterances; scored after the choice)
| | accuracy | weighted F1 | Δ accuracy vs vanilla [95% CI] | Δ weighted F1 [95% CI] |
|---|---|---|---|---|
{rows}
{held_out}
## Limits
- Chosen on {n_corpora} besides IEMOCAP's own validation split{checked}; other conversations may weigh
  the LLM differently.
- Used only with the LLM file it was chosen for ({llm_model_id}); any other LLM gets the plain mean of its answers.
"""


def _corpora(n: int) -> str:
    return f"{n} corpus" if n == 1 else f"{n} corpora"


def _ship_cross_corpus(cfg, args, chosen, folder, valid_inputs, header) -> int:
    """Ship the fixed merger ``validate_merger.py`` chose across corpora, with its card."""
    from lantern.evaluation.results import load_results
    from lantern.fusion import make_merger
    from lantern.fusion.calibration import shipped_prior
    from lantern.paths import atomic_write_text
    from lantern.pipeline import refine_settings, vanilla_config, vanilla_name
    from lantern.predict.merger import CALIBRATION_FILE, merger_name

    settings, vcfg = refine_settings(cfg), vanilla_config(cfg)
    spec = chosen["shipped_merger"]
    method = spec["calibration"]
    prior = _as_list(shipped_prior(method, valid_inputs, header))
    llm_name = (cfg.get("llm") or {}).get("model")
    target = Path(vcfg["pretrained"]) / "mergers" / merger_name(llm_name, settings.answer, settings.window, settings.stride)
    if target.exists():
        shutil.rmtree(target)
    make_merger(spec["type"], **spec["options"]).save_pretrained(target)
    selection = chosen["selection"]
    calibration = {"method": method, "prior": prior, "llm_model_id": header["model_id"],
                   "trained_on": f"chosen on validation answers of iemocap and {', '.join(selection['corpora'])}",
                   "answers_dir": str(folder), "window": settings.window, "stride": settings.stride,
                   "answer": settings.answer, "result_file": chosen.get("_file"), "selection": selection}
    atomic_write_text(target / CALIBRATION_FILE, json.dumps(calibration, indent=2) + "\n")
    corpora = selection["corpora"] + selection.get("held_out", [])
    table = []
    for name, row in selection["candidates"].items():
        cells = [f"{row['iemocap_valid_weighted_f1']:.2f}" + (" (out of fold)" if row.get("out_of_fold") else ""),
                 *[f"{row[c + '_valid_weighted_f1']:.2f}" for c in corpora], f"{row['other_corpora_mean']:.2f}"]
        label = f"**{name}** (shipped)" if name == selection["chosen"] else name
        table.append(f"| {label} | " + " | ".join(cells) + " |")
    m, g = chosen["metrics"], chosen["gain_vs_vanilla"]
    results = {r["variant"]: r for r in load_results(args.results_dir)
               if r.get("method") == "lantern" and r.get("answers_dir") == str(folder)}
    van = results.get("vanilla-only")
    rows = ([f"| vanilla `{vanilla_name(vcfg)}` | {van['metrics']['accuracy']['mean']:.2f} | "
             f"{van['metrics']['weighted_f1']['mean']:.2f} | +0.00 | +0.00 |"] if van else [])
    rows.append(f"| **shipped** ({selection['chosen']}) | {m['accuracy']['mean']:.2f} | {m['weighted_f1']['mean']:.2f} | "
                f"{_ci(g['accuracy'])} | {_ci(g['weighted_f1'])} |")
    held_out = selection.get("held_out", [])
    held_rows = []
    for corpus in held_out:   # the same candidate's result on a corpus that took no part in the choice
        there = {r["variant"]: r for r in load_results(args.results_dir)
                 if r.get("method") == "lantern" and r.get("dataset") == corpus
                 and r.get("model") == chosen.get("model")}
        if "cross-corpus" in there and "vanilla-only" in there:
            hm, hg, hv = there["cross-corpus"]["metrics"], there["cross-corpus"]["gain_vs_vanilla"], there["vanilla-only"]["metrics"]
            held_rows.append(f"| {corpus} valid, {there['cross-corpus']['n_utterances']} utterances "
                             f"({there['cross-corpus']['label_set']}): vanilla | {hv['accuracy']['mean']:.2f} | "
                             f"{hv['weighted_f1']['mean']:.2f} | +0.00 | +0.00 |")
            held_rows.append(f"| {corpus} valid: **shipped** | {hm['accuracy']['mean']:.2f} | "
                             f"{hm['weighted_f1']['mean']:.2f} | {_ci(hg['accuracy'])} | {_ci(hg['weighted_f1'])} |")
    held_text = ("\n## On held-out corpora (validation splits that took no part in the choice; shared classes)\n"
                 "| | accuracy | weighted F1 | Δ accuracy vs vanilla [95% CI] | Δ weighted F1 [95% CI] |\n"
                 "|---|---|---|---|---|\n" + "\n".join(held_rows) + "\n") if held_rows else ""
    w = float(spec["options"].get("vanilla_weight", 0.5))
    card = CROSS_CARD.format(
        name=target.name, t=settings.t, llm=llm_name, vanilla=vanilla_name(vcfg), w=f"{w:.1f}",
        w_llm=f"{1 - w:.1f}", calibration=method, rule=selection["rule"], answers_dir=folder,
        corpora="`, `".join(corpora), config=args.config,
        corpus_args=" ".join([*(f"--corpus {c}" for c in selection["corpora"]),
                              *(f"--held-out {c}" for c in held_out)]),
        corpus_header=" | ".join(f"{c} valid wF1 (shared classes{'; held out' if c not in selection['corpora'] else ''})"
                                 for c in corpora),
        corpus_rule="---|" * len(corpora), table="\n".join(table), label_set=vcfg["dataset"].get("label_set"),
        n_test=chosen["n_utterances"], rows="\n".join(rows), n_corpora=_corpora(len(selection["corpora"])),
        held_out=held_text, checked=f" and checked on {_corpora(len(held_out))} held out" if held_out else "",
        llm_model_id=header["model_id"])
    atomic_write_text(target / "README.md", card)
    print(f"shipped {selection['chosen']} -> {target}")
    return 0


def main(argv=None) -> int:
    from lantern.config import load_config
    from lantern.evaluation.results import load_results
    from lantern.fusion.calibration import shipped_prior
    from lantern.paths import atomic_write_text
    from lantern.pipeline import (FUSION_SPLIT, answers_dir, fusion_inputs, output_dir, refine_settings,
                                  vanilla_config, vanilla_name)
    from lantern.predict.merger import CALIBRATION_FILE, merger_name

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--variant", default="attention")
    ap.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    settings = refine_settings(cfg)
    vcfg = vanilla_config(cfg)
    if not vcfg.get("pretrained"):
        raise SystemExit("ship a merger for a pretrained (shipped) vanilla model: vanilla.pretrained")
    folder = answers_dir(cfg)
    results = {r["variant"]: r for r in load_results(args.results_dir)
               if r.get("method") == "lantern" and r.get("answers_dir") == str(folder)}
    # results and saved mergers carry the run's suffix (-no-refs, -t2, ...)
    suffix = settings.variant_suffix + ("" if settings.t == 3 else f"-t{settings.t}")
    variant = args.variant + suffix
    if variant not in results:
        raise SystemExit(f"no result file for variant {variant!r} of {folder}; run lantern fuse first")
    chosen = results[variant]
    valid_inputs, header = fusion_inputs(folder, FUSION_SPLIT)
    if (chosen.get("shipped_merger") or {}).get("type"):     # chosen across corpora
        return _ship_cross_corpus(cfg, args, chosen, folder, valid_inputs, header)
    method = chosen["calibration"]["chosen"]
    sel = chosen["calibration"]["selection"]
    prior = _as_list(shipped_prior(method, valid_inputs, header))
    llm_name = (cfg.get("llm") or {}).get("model")
    target = Path(vcfg["pretrained"]) / "mergers" / merger_name(llm_name, settings.answer, settings.window, settings.stride)
    states = chosen["merger_state"] if isinstance(chosen["merger_state"], list) else [chosen["merger_state"]]
    nlls = [((st or {}).get("guard") or {}).get("holdout", {}).get("fused", {}).get("nll", float("inf"))
            for st in states]
    pick = int(np.argmin(nlls))
    seed = int(chosen["seeds"][pick])
    source = output_dir(cfg) / "mergers" / f"{variant}-seed{seed}"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    calibration = {"method": method, "prior": prior, "llm_model_id": header["model_id"],
                   "trained_on": f"{vcfg['dataset']['name']} {vcfg['dataset'].get('label_set')} {FUSION_SPLIT} answers",
                   "answers_dir": str(folder), "window": settings.window, "stride": settings.stride,
                   "answer": settings.answer, "result_file": chosen.get("_file")}
    atomic_write_text(target / CALIBRATION_FILE, json.dumps(calibration, indent=2) + "\n")
    state = states[pick]
    guard = state.get("guard") or {}
    guard_text = (f"{'kept the trained merger' if not state.get('uses_fallback') else 'fell back to the vanilla model'} "
                  f"(held-out accuracy {guard.get('holdout', {}).get('fused', {}).get('accuracy', float('nan')):.2f} fused vs "
                  f"{guard.get('holdout', {}).get('fallback', {}).get('accuracy', float('nan')):.2f} vanilla)")

    def row(variant, label):
        r = results.get(variant)
        if r is None:
            return None
        m, g = r["metrics"], r["gain_vs_vanilla"]
        return (f"| {label} | {m['accuracy']['mean']:.2f} | {m['weighted_f1']['mean']:.2f} | "
                f"{_ci(g['accuracy'])} | {_ci(g['weighted_f1'])} |")
    rows = [x for x in (row("vanilla-only" + suffix, f"vanilla `{vanilla_name(vcfg)}`"),
                        row("uniform" + suffix, "mean of the LLM answers"),
                        row(variant, f"{args.variant}, mean of seeds {chosen['seeds']}")) if x]
    rows.append(_shipped_row(target, folder, seed, method, prior))
    card = CARD.format(name=target.name, t=settings.t, llm=llm_name, vanilla=vanilla_name(vcfg),
                       type=args.variant, label_set=vcfg["dataset"].get("label_set"),
                       n_valid=len(valid_inputs.labels),
                       calibration=method + (f" · {sel['chosen'].get('pooling')}" if sel["chosen"].get("pooling") else ""),
                       criterion=sel["criterion"],
                       cal_scores=", ".join(f"{k}: NLL {v['holdout_nll']:.3f}" if "holdout_nll" in v
                                            else f"{k}: accuracy {v['valid_accuracy']:.2f}"
                                            for k, v in sel["candidates"].items()),
                       answers_dir=folder, config=args.config, seeds=chosen["seeds"], guard=guard_text,
                       seed=seed, seed_nlls=", ".join(f"seed {s}: {n:.4f}" for s, n in zip(chosen["seeds"], nlls)),
                       n_test=chosen["n_utterances"], rows="\n".join(rows), llm_model_id=header["model_id"])
    atomic_write_text(target / "README.md", card)
    print(f"shipped {source} -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

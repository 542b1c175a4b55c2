"""Model cards: a shipped vanilla model's README, generated from its result file.

Every number on the card comes from the result file (scores, seeds, selection, commit) or
from the bundle itself (parameters, classes, features, VAD scale); split sizes are counted
in the dataset the model was trained on, so nothing is typed in by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

CARD_NAME = "README.md"

_LIMITS = """## Limits
- {trained_on}: expect lower scores on other domains, other languages (recordings in
  another language are translated to English by Whisper first) and on short, context-free lines.
- A model on text features reads words only: the same sentence said angrily or calmly gets the
  same answer (see the RAVDESS measurement in `BENCHMARKS.md`).
"""
# A model on voice features (Emotion-LLaMA on RAVDESS) hears how things are said.
_VOICE_LIMITS = """## Limits
- {trained_on}: expect lower scores on other voices, languages, microphones and on spontaneous
  rather than acted speech.
"""
# A context-descriptions model reads an image's description (and, unless text-only, the image).
_IMAGE_LIMITS = """## Limits
- {trained_on}: expect lower scores on images unlike its training images (other sizes, colour,
  whole scenes rather than cropped faces).
- It reads the description the describer it was trained with writes; descriptions from another
  describer or writer are text it has never seen.
"""


def _cross_corpus_section(result: Mapping[str, Any], index: int) -> str:
    """Weighted F1 and accuracy of seed ``index`` (and of all seeds) on every corpus's valid and
    test splits, on the classes each shares with the model (``result["cross_corpus"]``)."""
    cross = result.get("cross_corpus") or {}
    if not cross:
        return ""
    rows = []
    for corpus, splits in cross.items():
        v, t = splits["valid"], splits["test"]
        rows.append(f"| {corpus} | {', '.join(t['classes'])} | {t['scored']:,} | "
                    f"{v['weighted_f1']['per_seed'][index]:.2f} | {t['weighted_f1']['per_seed'][index]:.2f} | "
                    f"{t['accuracy']['per_seed'][index]:.2f} | "
                    f"{t['weighted_f1']['mean']:.2f} ± {t['weighted_f1']['std']:.2f} |")
    return ("\n## On every dialogue corpus (the classes it shares with this model)\n"
            "Other corpora's labels are mapped through the shared label space "
            "(`lantern.data.label_mapping`); utterances whose label has no counterpart are left out.\n\n"
            "| corpus | classes scored | test utterances | valid wF1 | test wF1 | test accuracy | "
            "test wF1, all seeds |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def card_summary(directory: Path) -> str:
    """The first paragraph of the model card after its title (one line for reports)."""
    card = Path(directory) / CARD_NAME
    if not card.is_file():
        return ""
    paragraphs = [p.strip() for p in card.read_text(encoding="utf-8").split("\n\n")]
    body = [p for p in paragraphs if p and not p.startswith("#")]
    return " ".join(body[0].split()) if body else ""


def split_sizes(dataset: str, label_set: str, options: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Labelled utterances (coarse labels included) per split of the dataset a model was
    trained on."""
    from lantern.data import load_dataset

    ds = load_dataset(dataset, label_set=label_set, **dict(options or {}))
    return {split: sum(u.label is not None or bool(u.meta.get("label_options")) for d in dialogues for u in d)
            for split, dialogues in ds.splits.items()}


def model_card(bundle, result: Mapping[str, Any], shipped_seed: int, name: str,
               sizes: Mapping[str, int], selection: str | None = None) -> str:
    """The card of ``bundle`` (seed ``shipped_seed`` of the run that wrote ``result``);
    ``selection`` says how the seed was chosen when it was not by the run's own validation
    score (e.g. the cross-corpus rule of ``scripts/choose_vanilla.py``)."""
    seed = next(s for s in result["per_seed"] if s["seed"] == shipped_seed)
    index = [s["seed"] for s in result["per_seed"]].index(shipped_seed)
    test, m = seed["test"], result["metrics"]
    params = sum(p.numel() for p in bundle.model.parameters())
    trained = sum(p.numel() for p in bundle.model.parameters() if p.requires_grad)
    size = f"{params:,} parameters" + (f", {trained:,} of them trained" if trained < params else "")
    features = ", ".join(f"{mod} (`{feat}`)" for mod, feat in bundle.spec.modalities.items())
    classes = ", ".join(d.split(":")[0] for d in (bundle.label_set.descriptions or bundle.classes))
    vad = (f" and valence, arousal and dominance on a {bundle.vad_scale[0]:g}–{bundle.vad_scale[1]:g} scale"
           if bundle.vad_scale else "")
    per_class = ", ".join(f"{k} {v:.1f}" for k, v in test["per_class_f1"].items())
    ccc = test.get("vad") or {}
    ccc_line = (" VAD concordance (CCC) of the shipped seed: "
                + ", ".join(f"{d} {ccc[d]['ccc']:.2f}" for d in ("valence", "arousal", "dominance") if d in ccc)
                + ".") if ccc else ""
    config = result.get("config") or {}
    images = bundle.model.model_type == "context-qformer"
    voice = not images and all(f.startswith("audio:") for f in bundle.spec.modalities.values())
    unit, kind = ("images", "model") if images else ("utterances", "vanilla model")
    corpora = result.get("train_dataset", result["dataset"]).split("+")
    trained_on = ("Trained on one corpus" if len(corpora) == 1
                  else f"Trained on {len(corpora)} corpora ({', '.join(corpora)})")
    if selection is None:
        selection = (f"the best of seeds {result['seeds']} on **{result['selection_split']}** "
                     f"weighted F1 ({seed['selection']:.2f})")
    data = (f"- {result['dataset']}: train {sizes.get('train', 0):,} {unit}, model selection on valid "
            f"({sizes.get('valid', 0):,} {unit}), test {sizes.get('test', result['n_utterances']):,} {unit}.")
    if len(corpora) > 1:
        data = (f"- The corpora {', '.join(corpora)} in {result['dataset']} `{bundle.label_set.name}` "
                f"(`lantern.data.mix`): train {sizes.get('train', 0):,} labelled utterances, model "
                f"selection on valid ({sizes.get('valid', 0):,}), test {sizes.get('test', result['n_utterances']):,}.")
    return f"""# {name}

A `{bundle.model.model_type}` {kind} ({size}) on {features}, predicting the {len(bundle.classes)} classes of {result['dataset']} `{bundle.label_set.name}` ({classes}){vad}.

## What it was trained on
{data}
- Recipe: `{config.get('config_dir', 'configs')}/{config.get('name', '?')}.yaml`, git commit {result['git_commit']}. Shipped: seed {shipped_seed}, {selection}.

## How well it does ({result['dataset']} {bundle.label_set.name} test, {result['n_utterances']:,} {unit})
| | accuracy | weighted F1 |
|---|---|---|
| shipped seed {shipped_seed} | {test['accuracy']:.2f} | {test['weighted_f1']:.2f} |
| all seeds {result['seeds']}, mean ± std | {m['accuracy']['mean']:.2f} ± {m['accuracy']['std']:.2f} | {m['weighted_f1']['mean']:.2f} ± {m['weighted_f1']['std']:.2f} |

Per-class F1 of the shipped seed: {per_class}.{ccc_line}
{_cross_corpus_section(result, index)}
{(_IMAGE_LIMITS if images else _VOICE_LIMITS if voice else _LIMITS).format(trained_on=trained_on)}"""

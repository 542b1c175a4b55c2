"""Several dialogue corpora as one dataset, in one label set.

``load_dataset("mix", corpora=["iemocap", "meld"])`` loads each corpus with its own loader
and label set, keeps its train/valid/test splits, and relabels every utterance through the
shared space (:mod:`lantern.data.label_mapping`) into the mix's ``label_set``:

* ``shared7`` (default): the shared class itself.
* a corpus's own label set, e.g. ``6way`` (IEMOCAP's, so that a model trained on the mix
  keeps the classes users of the IEMOCAP model see): that corpus's utterances keep their
  labels; another corpus's label becomes the target class with the same shared class, and
  where several target classes share it (MELD ``joy`` is IEMOCAP ``hap`` *or* ``exc``) the
  utterance gets no single label but the set of them in ``meta["label_options"]``, which
  training reads as a coarse label (:func:`lantern.training.losses.multitask_loss`).

An utterance whose label has no counterpart (IEMOCAP ``fru`` in ``shared7``, EmoryNLP
``Peaceful``, MELD ``surprise`` in ``6way``) keeps its place in the dialogue as context,
unlabelled; its own label stays in ``meta["source_label"]``. Ids get the corpus as a prefix
(``meld/d12``, ``meld/d12_u3``) so two corpora never collide, and ``meta["corpus"]`` says
where each utterance came from. ``valid_from`` keeps only those corpora's validation
dialogues, so that model selection looks at them alone (the others are still scored with
``evaluate_on:``). ``weights`` (``{"iemocap": 3}``) sets a corpus's weight in the training
loss (``meta["weight"]``; 1 for the others), so a small corpus is not drowned by larger ones.

Dialogues are interleaved across corpora (the first of each, then the second of each, ...),
so ``--limit N`` keeps a little of every corpus. Dimension labels (valence, arousal,
dominance) stay where a corpus has them; corpora that have them must share one scale.
"""

from __future__ import annotations

from itertools import chain, zip_longest
from pathlib import Path
from typing import Any, Sequence

from lantern.data.dialogues import SPLITS, Dialogue, EmotionDataset, Utterance
from lantern.errors import ConfigError

DEFAULT_CORPORA = ("iemocap", "meld", "emorynlp", "dailydialog")

__all__ = ["DEFAULT_CORPORA", "load_mix", "corpus_specs"]


def corpus_specs(corpora: Sequence[str | dict[str, Any]], key: str = "mix") -> list[dict[str, Any]]:
    """Each corpus as ``{"name": ..., **loader options}`` (a bare name means its defaults);
    ``key`` names the config entry in errors. An empty list gives no specs."""
    specs = []
    for item in corpora:
        spec = {"name": item} if isinstance(item, str) else dict(item)
        if not spec.get("name") or spec["name"] == "mix":
            raise ConfigError(f"{key}: each corpus needs a name (not 'mix'), got {item!r}")
        specs.append(spec)
    names = [s["name"] for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: corpora must be distinct, got {names}")
    return specs


def load_mix(corpora: Sequence[str | dict[str, Any]] = DEFAULT_CORPORA,
             data_root: str | Path | None = None, label_set: str = "shared7",
             valid_from: Sequence[str] | None = None,
             weights: dict[str, float] | None = None) -> EmotionDataset:
    """The corpora as one dataset in ``label_set`` (see the module docstring)."""
    from lantern.data import load_dataset
    from lantern.data.label_mapping import TO_SHARED, mapping
    from lantern.data.labels import LABEL_SETS

    if label_set not in LABEL_SETS or label_set not in TO_SHARED:
        raise ConfigError(f"mix: label_set must be one of {sorted(set(LABEL_SETS) & set(TO_SHARED))}, "
                          f"not {label_set!r}")
    target = LABEL_SETS[label_set]
    target_shared = mapping(target.name, target.classes)
    specs = corpus_specs(corpora)
    if not specs:
        raise ConfigError("mix: corpora must not be empty")
    unknown = sorted(set(valid_from or ()) - {s["name"] for s in specs})
    if unknown:
        raise ConfigError(f"mix: valid_from names {unknown}, which are not among the corpora")
    weights = dict(weights or {})
    unknown = sorted(set(weights) - {s["name"] for s in specs})
    if unknown:
        raise ConfigError(f"mix: weights names {unknown}, which are not among the corpora")
    bad = {k: v for k, v in weights.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0}
    if bad:
        raise ConfigError(f"mix: weights must be positive numbers, got {bad}")
    splits: dict[str, list[list[Dialogue]]] = {s: [] for s in SPLITS}
    scales, sources = {}, {}
    for spec in specs:
        options = {k: v for k, v in spec.items() if k != "name"}
        options.setdefault("data_root", data_root)
        ds = load_dataset(spec["name"], **options)
        to_shared = mapping(ds.label_set.name, ds.label_set.classes)
        if ds.label_set.name == target.name:   # the target's own corpus keeps its labels
            options_of = {c: [i] for i, c in enumerate(target.classes)}
        else:
            options_of = {c: [i for i, t in enumerate(target.classes)
                              if s is not None and target_shared[t] == s]
                          for c, s in to_shared.items()}
        if ds.vad_scale is not None:
            scales[ds.name] = tuple(ds.vad_scale)
        sources[ds.name] = {"label_set": ds.label_set.name, **ds.source}
        for split in SPLITS:
            keep = split != "valid" or valid_from is None or ds.name in valid_from
            splits[split].append([_relabel(d, ds.name, ds.label_set.classes, options_of,
                                           weights.get(ds.name))
                                  for d in ds.splits.get(split, [])] if keep else [])
    if len(set(scales.values())) > 1:
        raise ConfigError(f"mix: corpora with dimension labels use different scales {scales}")
    merged = {s: [d for d in chain.from_iterable(zip_longest(*parts)) if d is not None]
              for s, parts in splits.items()}
    return EmotionDataset("mix", target, merged, source={"corpora": sources},
                          vad_scale=next(iter(scales.values()), None))


def _relabel(dialogue: Dialogue, corpus: str, classes: tuple[str, ...],
             options_of: dict[str, list[int]], weight: float | None = None) -> Dialogue:
    """The dialogue with ids prefixed and each label replaced by its target class (or, where
    several target classes fit, by none and the set of them in ``meta["label_options"]``)."""
    utterances = []
    for u in dialogue:
        own = classes[u.label] if u.label is not None else None
        fits = options_of[own] if own is not None else []
        meta = {**u.meta, "corpus": corpus, "source_label": own}
        if len(fits) > 1:
            meta["label_options"] = fits
        if weight is not None:
            meta["weight"] = float(weight)
        utterances.append(Utterance(
            f"{corpus}/{u.id}", u.speaker, u.text, fits[0] if len(fits) == 1 else None, u.vad,
            u.features, u.media, u.start, u.end, meta))
    return Dialogue(f"{corpus}/{dialogue.id}", utterances, dialogue.split)

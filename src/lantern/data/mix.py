"""Several dialogue corpora as one dataset, labelled in the shared space (``shared7``).

``load_dataset("mix", corpora=["iemocap", "meld"])`` loads each corpus with its own loader
and label set, keeps its train/valid/test splits, and relabels every utterance with the
shared class its label maps to (:mod:`lantern.data.label_mapping`). An utterance whose
label has no shared counterpart (IEMOCAP ``fru``, EmoryNLP ``Peaceful`` and ``Powerful``)
keeps its place in the dialogue as context, unlabelled; its own label stays in
``meta["source_label"]``. Ids get the corpus as a prefix (``meld/d12``, ``meld/d12_u3``)
so two corpora never collide, and ``meta["corpus"]`` says where each utterance came from.

Dialogues are interleaved across corpora (the first of each, then the second of each, ...),
so ``--limit N`` keeps a little of every corpus. Dimension labels (valence, arousal,
dominance) stay where a corpus has them; corpora that have them must share one scale.
"""

from __future__ import annotations

from itertools import chain, zip_longest
from pathlib import Path
from typing import Any, Sequence

from lantern.data.dialogues import SPLITS, Dialogue, EmotionDataset, Utterance
from lantern.data.labels import SHARED_7
from lantern.errors import ConfigError

DEFAULT_CORPORA = ("iemocap", "meld", "emorynlp", "dailydialog")

__all__ = ["DEFAULT_CORPORA", "load_mix", "corpus_specs"]


def corpus_specs(corpora: Sequence[str | dict[str, Any]]) -> list[dict[str, Any]]:
    """Each corpus as ``{"name": ..., **loader options}`` (a bare name means its defaults)."""
    specs = []
    for item in corpora:
        spec = {"name": item} if isinstance(item, str) else dict(item)
        if not spec.get("name") or spec["name"] == "mix":
            raise ConfigError(f"mix: each corpus needs a name (not 'mix'), got {item!r}")
        specs.append(spec)
    names = [s["name"] for s in specs]
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"mix: corpora must be distinct and not empty, got {names}")
    return specs


def load_mix(corpora: Sequence[str | dict[str, Any]] = DEFAULT_CORPORA,
             data_root: str | Path | None = None, label_set: str = "shared7") -> EmotionDataset:
    """The corpora as one dataset in the shared label space (see the module docstring)."""
    from lantern.data import load_dataset
    from lantern.data.label_mapping import mapping

    if label_set != SHARED_7.name:
        raise ConfigError(f"mix: label_set must be {SHARED_7.name!r} (the shared space), "
                          f"not {label_set!r}")
    splits: dict[str, list[list[Dialogue]]] = {s: [] for s in SPLITS}
    scales, sources = {}, {}
    for spec in corpus_specs(corpora):
        options = {k: v for k, v in spec.items() if k != "name"}
        options.setdefault("data_root", data_root)
        ds = load_dataset(spec["name"], **options)
        to_shared = mapping(ds.label_set.name, ds.label_set.classes)
        if ds.vad_scale is not None:
            scales[ds.name] = tuple(ds.vad_scale)
        sources[ds.name] = {"label_set": ds.label_set.name, **ds.source}
        for split in SPLITS:
            splits[split].append([_relabel(d, ds.name, ds.label_set.classes, to_shared)
                                  for d in ds.splits.get(split, [])])
    if len(set(scales.values())) > 1:
        raise ConfigError(f"mix: corpora with dimension labels use different scales {scales}")
    merged = {s: [d for d in chain.from_iterable(zip_longest(*parts)) if d is not None]
              for s, parts in splits.items()}
    return EmotionDataset("mix", SHARED_7, merged, source={"corpora": sources},
                          vad_scale=next(iter(scales.values()), None))


def _relabel(dialogue: Dialogue, corpus: str, classes: tuple[str, ...],
             to_shared: dict[str, str | None]) -> Dialogue:
    utterances = []
    for u in dialogue:
        own = classes[u.label] if u.label is not None else None
        shared = to_shared[own] if own is not None else None
        utterances.append(Utterance(
            f"{corpus}/{u.id}", u.speaker, u.text,
            SHARED_7.index(shared) if shared is not None else None, u.vad, u.features,
            u.media, u.start, u.end, {**u.meta, "corpus": corpus, "source_label": own}))
    return Dialogue(f"{corpus}/{dialogue.id}", utterances, dialogue.split)

"""EMOTIC (Kosti et al., TPAMI 2019): people in context, 26 emotion categories (multi-label)
and valence/arousal/dominance (1-10), read from the official annotation file.

``<root>/emotic/Annotations/Annotations.mat`` (``annotations=`` for another name, e.g.
``CVPR17_Annotations.mat``) holds struct arrays ``train``, ``val`` and ``test``; each entry is an
image (``filename``, ``folder``, ``image_size``, ``person``), each person has a ``body_bbox``
``[x1 y1 x2 y2]``, ``annotations_categories`` (per annotator: ``categories``) and
``annotations_continuous`` (``valence``, ``arousal``, ``dominance``); the validation and test
people also have ``combined_categories`` and ``combined_continuous`` (the annotators' union and
mean), which are used where present. Images live at ``<root>/emotic/<folder>/<filename>``.

Every person is one single-utterance dialogue: ``labels`` holds the indices of its categories,
``media["image"]`` the image, ``meta["box"]`` the body box (the subject: the paper draws it in
red for the describer), ``vad`` the continuous ratings. No EMOTIC data exists on this machine;
the loader is tested on a synthetic file of exactly the official layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lantern.data.dialogues import Dialogue, EmotionDataset, Utterance
from lantern.data.labels import EMOTIC_26
from lantern.errors import ConfigError, DataError
from lantern.paths import data_root as default_root

SPLITS = {"train": "train", "val": "valid", "test": "test"}
VAD_SCALE = (1.0, 10.0)


def _as_list(value: Any) -> list:
    """A MATLAB array read with ``squeeze_me`` as a list (one element comes back bare)."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _categories(person, path: Path, where: str) -> list[int]:
    combined = getattr(person, "combined_categories", None)
    if combined is not None and len(_as_list(combined)):
        names = [str(c) for c in _as_list(combined)]
    else:
        names = []
        for worker in _as_list(getattr(person, "annotations_categories", None)):
            names += [str(c) for c in _as_list(getattr(worker, "categories", None))]
    out = []
    for name in dict.fromkeys(names):
        if name not in EMOTIC_26.classes:
            raise DataError(f"{where}: unknown category {name!r}", path=path, field="categories")
        out.append(EMOTIC_26.index(name))
    return sorted(out)


def _vad(person) -> tuple[float, float, float] | None:
    cont = getattr(person, "combined_continuous", None)
    if cont is None or not hasattr(cont, "valence"):
        workers = _as_list(getattr(person, "annotations_continuous", None))
        cont = workers[0] if workers else None
    if cont is None:
        return None
    try:
        v = tuple(float(getattr(cont, k)) for k in ("valence", "arousal", "dominance"))
    except (TypeError, ValueError, AttributeError):
        return None
    return v if all(np.isfinite(v)) else None


def load_emotic(data_root: str | Path | None = None, folder: str = "emotic",
                annotations: str = "Annotations/Annotations.mat", label_set: str | None = None) -> EmotionDataset:
    from scipy.io import loadmat

    if label_set not in (None, EMOTIC_26.name):
        raise ConfigError(f"emotic has one label set, {EMOTIC_26.name!r}; got {label_set!r}")
    root = default_root(data_root) / folder
    path = root / annotations
    if not path.is_file():
        raise DataError("EMOTIC annotation file not found (set data_root, or annotations= for "
                        "CVPR17_Annotations.mat)", path=path)
    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:   # scipy raises ValueError/TypeError/MatReadError on a bad file
        raise DataError(f"cannot read the annotation file ({exc})", path=path) from None
    splits: dict[str, list[Dialogue]] = {}
    for key, split in SPLITS.items():
        if key not in mat:
            raise DataError(f"no {key!r} struct array in the annotation file", path=path, field=key)
        dialogues = []
        for i, entry in enumerate(_as_list(mat[key])):
            where = f"{key}({i + 1})"
            try:
                filename, image_folder = str(entry.filename), str(entry.folder)
            except AttributeError:
                raise DataError(f"{where}: an entry needs filename and folder", path=path, field=key) from None
            for k, person in enumerate(_as_list(getattr(entry, "person", None))):
                box = np.asarray(getattr(person, "body_bbox", []), dtype=np.float64).ravel()
                if box.size != 4:
                    raise DataError(f"{where}.person({k + 1}): body_bbox must be [x1 y1 x2 y2]",
                                    path=path, field="body_bbox")
                labels = _categories(person, path, f"{where}.person({k + 1})")
                uid = f"{key}/{image_folder}/{filename}#{k}"
                u = Utterance(uid, f"person{k}", "", label=None, vad=_vad(person),
                              media={"image": str(root / image_folder / filename)},
                              meta={"box": [float(x) for x in box]}, labels=tuple(labels))
                dialogues.append(Dialogue(uid, [u], split))
        splits[split] = dialogues
    return EmotionDataset("emotic", EMOTIC_26, splits, {"path": str(path)}, VAD_SCALE)


__all__ = ["load_emotic", "SPLITS", "VAD_SCALE"]

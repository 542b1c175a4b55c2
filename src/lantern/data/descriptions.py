"""Context descriptions as utterance text: the ``descriptions`` option of every image dataset.

``lantern describe FOLDER --out descriptions.jsonl`` writes one JSON line per image (its
``sha256``, ``text``, ``describer``, ``status``, ...; see :mod:`lantern.describe`);
``load_dataset("fer2013", descriptions="descriptions.jsonl.gz")`` then sets each image's
``Utterance.text`` to its description, matched by the image file's sha256 (so the data root
may move) and, where the file gives a ``box``, by the subject's box too (an EMOTIC image
shows several people, each described with its own box: ``lantern describe --dataset``), for
the text stream of the ``context-qformer`` model. An image without an ``ok``
description is an error naming it: a model trained on a silently partial set would not say
what it read. The file may be gzip-compressed (``.gz``), as committed descriptions are.
"""

from __future__ import annotations

from pathlib import Path

from lantern.data.io import read_jsonl
from lantern.errors import DataError

__all__ = ["attach_descriptions", "read_descriptions"]


def match_key(sha256: str, box) -> tuple:
    """What a description is matched by: the image's sha256 and the subject's box (rounded to
    a hundredth of a pixel, so a box read back from JSON matches), or the image alone."""
    return (sha256, tuple(round(float(v), 2) for v in box) if box is not None else None)


def read_descriptions(path: str | Path) -> tuple[dict[tuple, str], dict]:
    """``({(image sha256, box or None): description text}, {"describers": [...], "writers":
    [...], "images": n})`` from a describe output file (``writers``: the observations
    describer's). Failed descriptions are left out; a later line for the same image and box (a
    resumed run) wins."""
    texts: dict[tuple, str] = {}
    describers: set[str] = set()
    writers: set[str] = set()
    for i, obj in read_jsonl(path):
        for key in ("sha256", "status"):
            if not isinstance(obj.get(key), str):
                raise DataError(f"missing or non-string {key!r}", path=path, line=i, field=key)
        if obj["status"] != "ok":
            continue
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError("an ok description with no text", path=path, line=i, field="text")
        box = obj.get("box")
        if box is not None and (not isinstance(box, list) or len(box) != 4):
            raise DataError("box must be [x1, y1, x2, y2] or null", path=path, line=i, field="box")
        texts[match_key(obj["sha256"], box)] = text
        describers.add(str(obj.get("describer")))
        if obj.get("describer") == "observations":
            writers.add(str(obj.get("writer") or "llm"))
    return texts, {"describers": sorted(describers), "writers": sorted(writers), "images": len(texts)}


def attach_descriptions(dataset, path: str | Path):
    """Set every image utterance's text to its description (in place); returns ``dataset``.
    An utterance with a subject box (``meta["box"]``) takes the description written for that
    box, else the image's description without a box."""
    from lantern.llm import sha256_file

    texts, info = read_descriptions(path)
    missing = []
    for dialogues in dataset.splits.values():
        for d in dialogues:
            for u in d.utterances:
                image = u.media.get("image")
                if image is None:
                    raise DataError(f"utterance {u.id} has no image to describe", path=path)
                sha = sha256_file(image)
                text = texts.get(match_key(sha, u.meta.get("box"))) or texts.get((sha, None))
                if text is None:
                    missing.append(image)
                else:
                    u.text = text
    if missing:
        raise DataError(f"{len(missing)} image(s) have no ok description, e.g. {missing[0]} "
                        f"(run lantern describe on them, appending to this file)", path=path)
    dataset.source = {**dataset.source, "descriptions": {"file": Path(path).name, **info}}
    return dataset

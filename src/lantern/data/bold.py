"""BoLD, the Body Language Dataset (Luo et al., IJCV 2020): people in movie clips, EMOTIC's 26
emotion categories (multi-label) and valence/arousal/dominance, read from its public release.

``<root>/BOLD_public/annotations/{train,val}.csv`` have no header; each row is one person in
one clip: ``video`` (``003/IzvOYVMltkI.mp4/0114.mp4``, under ``videos/``), ``person_id``,
``min_frame``, ``max_frame`` (the frames the person is annotated in), the 26 categories' scores
(the annotators' average, 0-1, in BoLD's own order: Peace, Affection, ... Suffering), valence,
arousal, dominance (1-10), gender, age, ethnicity and ``annotation_confidence``.
``test_meta.csv`` carries no labels (BoLD's test labels are withheld), so the official
validation split is the test split here and ``valid_fraction`` of the training rows, chosen by
the sha256 of the source video (the path before the clip, so no film is in both), selects
models. A category counts as present when its score is at least ``threshold`` (0.5 by
default; the scores stay in ``meta["category_scores"]``). ``joints/<video>.npy`` (OpenPose's
18 joints: rows ``[frame, person_id, x1, y1, c1, ..., x18, y18, c18]``), where present, gives
the person's box: the extent of its joints with confidence >= 0.1 over the clip.

Every person is one single-utterance dialogue with ``media["video"]`` (face features sample
it); with ``keyframes`` (the default) the middle annotated frame is extracted once with
ffmpeg into the cache (``<cache>/bold-keyframes/``) as ``media["image"]``, for image encoders
and describers. No BoLD data exists on this machine; the loader is tested on a synthetic
fixture of exactly this layout.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from lantern.data.dialogues import Dialogue, EmotionDataset, Utterance
from lantern.data.labels import EMOTIC_26
from lantern.errors import ConfigError, DataError
from lantern.paths import data_root as default_root

FOLDER = "BOLD_public"
VAD_SCALE = (1.0, 10.0)
#: BoLD's column order of the 26 categories, as EMOTIC_26 names them (BoLD's "Disconnect")
CATEGORIES = ("Peace", "Affection", "Esteem", "Anticipation", "Engagement", "Confidence", "Happiness",
              "Pleasure", "Excitement", "Surprise", "Sympathy", "Doubt/Confusion", "Disconnection",
              "Fatigue", "Embarrassment", "Yearning", "Disapproval", "Aversion", "Annoyance", "Anger",
              "Sensitivity", "Sadness", "Disquietment", "Fear", "Pain", "Suffering")
N_COLUMNS = 4 + len(CATEGORIES) + 3 + 3 + 1


def load_bold(data_root: str | Path | None = None, folder: str = FOLDER, label_set: str | None = None,
              threshold: float = 0.5, valid_fraction: float = 0.1, keyframes: bool = True) -> EmotionDataset:
    if label_set not in (None, EMOTIC_26.name):
        raise ConfigError(f"bold has one label set, {EMOTIC_26.name!r}; got {label_set!r}")
    if not 0 < threshold <= 1 or not 0 < valid_fraction < 1:
        raise ConfigError(f"threshold must be in (0, 1] and valid_fraction in (0, 1); got "
                          f"{threshold}, {valid_fraction}")
    root = default_root(data_root) / folder
    splits: dict[str, list[Dialogue]] = {"train": [], "valid": [], "test": []}
    for official in ("train", "val"):
        path = root / "annotations" / f"{official}.csv"
        if not path.is_file():
            raise DataError(f"BoLD annotation file not found (expected annotations/{official}.csv "
                            f"under {folder}/)", path=path)
        for line, row in _rows(path):
            u = _utterance(root, row, path, line, threshold)
            source = row[0].rsplit("/", 1)[0]
            digest = int(hashlib.sha256(source.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            split = "test" if official == "val" else "valid" if digest < valid_fraction else "train"
            splits[split].append(Dialogue(u.id, [u], split))
    if keyframes:
        extract_keyframes([u for s in splits.values() for d in s for u in d])
    return EmotionDataset("bold", EMOTIC_26, splits,
                          {"path": str(root), "threshold": threshold,
                           "valid": f"{valid_fraction:.0%} of the training rows by source video",
                           "test": "the official validation split (test labels are withheld)"},
                          VAD_SCALE)


def _rows(path: Path):
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != N_COLUMNS:
                raise DataError(f"a row needs {N_COLUMNS} columns (video, person_id, min_frame, max_frame, "
                                f"26 categories, valence, arousal, dominance, gender, age, ethnicity, "
                                f"annotation_confidence); this one has {len(row)}", path=path, line=line)
            yield line, row


def _number(row: list[str], i: int, name: str, path: Path, line: int) -> float:
    try:
        value = float(row[i])
    except ValueError:
        raise DataError(f"{name} must be a number, got {row[i]!r}", path=path, line=line, field=name) from None
    if not np.isfinite(value):
        raise DataError(f"{name} must be finite", path=path, line=line, field=name)
    return value


def _utterance(root: Path, row: list[str], path: Path, line: int, threshold: float) -> Utterance:
    video, person = row[0].strip(), int(_number(row, 1, "person_id", path, line))
    first, last = int(_number(row, 2, "min_frame", path, line)), int(_number(row, 3, "max_frame", path, line))
    if last < first:
        raise DataError(f"max_frame {last} is before min_frame {first}", path=path, line=line, field="max_frame")
    scores = {c: _number(row, 4 + k, c, path, line) for k, c in enumerate(CATEGORIES)}
    bad = [c for c, v in scores.items() if not 0 <= v <= 1]
    if bad:
        raise DataError(f"category scores must lie in [0, 1]: {bad}", path=path, line=line, field=bad[0])
    labels = tuple(sorted(EMOTIC_26.index(c) for c, v in scores.items() if v >= threshold))
    vad = tuple(_number(row, 30 + k, n, path, line) for k, n in enumerate(("valence", "arousal", "dominance")))
    clip = root / "videos" / video
    meta = {"person_id": person, "frames": [first, last], "category_scores": scores,
            "annotation_confidence": _number(row, N_COLUMNS - 1, "annotation_confidence", path, line)}
    box = _joint_box(root / "joints" / (video[:-4] + ".npy" if video.endswith(".mp4") else video + ".npy"),
                     person)
    if box is not None:
        meta["box"] = box
    return Utterance(f"{video}#{person}", f"person{person}", "", label=None, vad=vad,
                     media={"video": str(clip)}, meta=meta, labels=labels)


def _joint_box(path: Path, person: int) -> list[float] | None:
    """The extent of ``person``'s confident joints in an OpenPose joints file, or None."""
    if not path.is_file():
        return None
    try:
        joints = np.load(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the joints file ({exc})", path=path) from None
    if joints.ndim != 2 or joints.shape[1] != 2 + 18 * 3:
        raise DataError(f"joints must be rows of frame, person_id and 18 (x, y, confidence); "
                        f"got shape {joints.shape}", path=path)
    points = joints[joints[:, 1] == person, 2:].reshape(-1, 3)
    points = points[points[:, 2] >= 0.1]
    if not len(points):
        return None
    return [float(points[:, 0].min()), float(points[:, 1].min()),
            float(points[:, 0].max()), float(points[:, 1].max())]


def extract_keyframes(utterances: list[Utterance]) -> None:
    """Set ``media["image"]`` to each clip's middle annotated frame, extracted once with ffmpeg
    into the cache (a clip that cannot be read is an error naming it)."""
    import shutil
    import subprocess

    from lantern.paths import cache_dir

    out_dir = cache_dir() / "bold-keyframes"
    todo = []
    for u in utterances:
        first, last = u.meta["frames"]
        frame = (first + last) // 2
        key = hashlib.sha256(f"{Path(u.media['video']).resolve()}|{frame}".encode()).hexdigest()[:24]
        u.media["image"] = str(out_dir / f"{key}.jpg")
        u.meta["keyframe"] = frame
        if not Path(u.media["image"]).is_file():
            todo.append(u)
    if not todo:
        return
    if shutil.which("ffmpeg") is None:
        raise ConfigError("BoLD keyframes need ffmpeg on PATH (or load with keyframes: false)")
    out_dir.mkdir(parents=True, exist_ok=True)
    for u in todo:
        clip, target = Path(u.media["video"]), Path(u.media["image"])
        if not clip.is_file():
            raise DataError("BoLD clip not found", path=clip, field="video")
        tmp = target.with_suffix(".tmp.jpg")
        done = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(clip),
                               "-vf", f"select=eq(n\\,{u.meta['keyframe']})", "-frames:v", "1", str(tmp)],
                              capture_output=True, text=True)
        if done.returncode != 0 or not tmp.is_file():
            raise DataError(f"ffmpeg could not extract frame {u.meta['keyframe']} "
                            f"({done.stderr.strip()[-200:] or 'the clip has fewer frames'})", path=clip)
        tmp.replace(target)


__all__ = ["load_bold", "CATEGORIES", "VAD_SCALE", "extract_keyframes"]

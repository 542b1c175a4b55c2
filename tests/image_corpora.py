"""Synthetic fixtures of exactly the official layouts of EMOTIC, CAER-S and BoLD (none of them
is obtainable here): the loader tests and the smoke runs of their recipes build them under a
temporary data root. Images are small noise pictures; BoLD clips are made with ffmpeg."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np


def _picture(path: Path, seed: int, size=(64, 48)) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def emotic_fixture(root: Path, images: bool = False) -> Path:
    """A synthetic Annotations.mat of the official layout: struct arrays of images, each with a
    struct array of persons (train: one annotator; val/test: combined_* fields too)."""
    from scipy.io import savemat

    def person(box, cats, vad, combined=False):
        p = {"body_bbox": np.array(box, float),
             "annotations_categories": {"categories": np.array(cats, dtype=object)},
             "annotations_continuous": {"valence": vad[0], "arousal": vad[1], "dominance": vad[2]}}
        if combined:
            p["combined_categories"] = np.array(cats, dtype=object)
            p["combined_continuous"] = {"valence": vad[0], "arousal": vad[1], "dominance": vad[2]}
        return p

    def struct_array(rows, fields):
        arr = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
        for i, row in enumerate(rows):
            for f in fields:
                arr[0, i][f] = row[f]
        return arr

    pfields = ["body_bbox", "annotations_categories", "annotations_continuous"]

    def image(name, persons, combined=False):
        fields = pfields + (["combined_categories", "combined_continuous"] if combined else [])
        return {"filename": name, "folder": "mscoco/images", "image_size": {"n_col": 640, "n_row": 480},
                "person": struct_array(persons, fields)}

    ifields = ["filename", "folder", "image_size", "person"]
    train = [image("a.jpg", [person([1, 2, 30, 40], ["Happiness", "Pleasure"], (7, 5, 6)),
                             person([32, 2, 60, 40], ["Fatigue"], (4, 2, 5))]),
             image("b.jpg", [person([0, 0, 10, 10], ["Anger", "Annoyance", "Disapproval"], (2, 8, 7))])]
    val = [image("c.jpg", [person([5, 5, 20, 20], ["Peace", "Happiness"], (6, 3, 5), True),
                           person([25, 5, 50, 40], ["Fatigue"], (3, 2, 4), True)], True)]
    test = [image("d.jpg", [person([5, 5, 20, 20], ["Surprise", "Fear"], (4, 8, 3), True),
                            person([25, 5, 50, 40], ["Happiness"], (8, 6, 6), True)], True)]
    folder = root / "emotic" / "Annotations"
    folder.mkdir(parents=True)
    savemat(folder / "Annotations.mat", {"train": struct_array(train, ifields),
                                         "val": struct_array(val, ifields), "test": struct_array(test, ifields)})
    if images:
        for i, name in enumerate("abcd"):
            _picture(root / "emotic" / "mscoco" / "images" / f"{name}.jpg", i)
    return folder / "Annotations.mat"


def caer_fixture(root: Path, per_class: dict[str, int] | None = None) -> None:
    from lantern.data.labels import CAER_7

    for split, n in (per_class or {"train": 10, "test": 2}).items():
        for k, label in enumerate(CAER_7.classes):
            for i in range(n):
                _picture(root / "CAER-S" / split / label / f"{i:04d}.png", 100 * k + i, (32, 32))


BOLD_ROWS = [   # video, person, first, last, {category: score}, (v, a, d)
    ("003/IzvOYVMltkI.mp4/0114.mp4", 0, 0, 9, {"Happiness": 0.8, "Pleasure": 0.6, "Peace": 0.2}, (7.0, 5.5, 6.0)),
    ("003/IzvOYVMltkI.mp4/0115.mp4", 1, 2, 7, {"Anger": 0.7, "Annoyance": 0.5}, (2.5, 8.0, 7.0)),
    ("007/dbdbdbdbdbx.mp4/0001.mp4", 0, 0, 5, {"Sadness": 0.9, "Fatigue": 0.4}, (2.0, 2.0, 3.0)),
    ("011/bbbbbbbbbbb.mp4/0042.mp4", 2, 1, 8, {"Disconnection": 0.6, "Surprise": 0.5}, (5.0, 6.0, 5.0)),
]


def bold_fixture(root: Path, joints: bool = True) -> Path:
    """``BOLD_public/`` with headerless annotation CSVs (the first three rows train, the last
    val; the third one's source video hashes into the held-out validation tenth), ten-frame
    clips made with ffmpeg and OpenPose joint files."""
    from lantern.data.bold import CATEGORIES

    base = root / "BOLD_public"
    (base / "annotations").mkdir(parents=True)
    rows = {"train": BOLD_ROWS[:3], "val": BOLD_ROWS[3:]}
    for split, entries in rows.items():
        with open(base / "annotations" / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            for video, person, first, last, scores, vad in entries:
                w.writerow([video, person, first, last, *[scores.get(c, 0.0) for c in CATEGORIES],
                            *vad, "Male", "Adult", "White", 0.9])
    ffmpeg = shutil.which("ffmpeg")
    for i, (video, person, *_rest) in enumerate(BOLD_ROWS):
        clip = base / "videos" / video
        clip.parent.mkdir(parents=True, exist_ok=True)
        if ffmpeg:
            subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                            f"testsrc=size=64x48:rate=10:duration=1", "-pix_fmt", "yuv420p", str(clip)],
                           check=True)
        if joints:
            frames = []
            for frame in range(10):
                xy = np.column_stack([np.linspace(10, 30, 18) + i, np.linspace(5, 40, 18), np.full(18, 0.9)])
                xy[0, 2] = 0.05   # a joint OpenPose is unsure of: left out of the box
                xy[0, :2] = 999
                frames.append(np.r_[frame, person, xy.ravel()])
            path = base / "joints" / (video[:-4] + ".npy")
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.array(frames))
    return base


def write_descriptions(path: Path, dataset) -> Path:
    """A describe output file for every image of ``dataset`` (one line per image and box), as
    ``lantern describe --dataset`` writes it; the text names the utterance, so each differs."""
    from lantern.llm import sha256_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for split, dialogues in dataset.splits.items():
            for d in dialogues:
                for u in d:
                    f.write(json.dumps({"image": u.media["image"], "sha256": sha256_file(u.media["image"]),
                                        "describer": "observations", "writer": "template", "status": "ok",
                                        "box": u.meta.get("box"),
                                        "text": f"The person {u.id} seems to feel something here."}) + "\n")
    return path

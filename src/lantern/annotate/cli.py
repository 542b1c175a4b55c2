"""``lantern annotate``: MERR-lite annotations of a dataset's clips or of media files.

Examples::

    lantern annotate --dataset ravdess --split train --out annotations/ravdess-train
    lantern annotate --dataset ravdess --split test --limit 20 --reasons none --out /tmp/ann
    lantern annotate ../shared/data/MER2023_example_clips_Emotion-LLaMA/examples --out /tmp/mer

Labelled clips give their label to the reason writer (MERR's way); media files have none, so
the AU pseudo-label is given where a face was found, and no reason is written otherwise.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="lantern")
>>> add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["annotate", "--dataset", "ravdess", "--out", "x", "--reasons", "none"])
>>> args.dataset, args.reasons, args.model
('ravdess', 'none', None)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    from lantern.data.dialogues import SPLITS

    p = subparsers.add_parser("annotate", help="MERR-style clues, captions and reasons for clips (Emotion-LLaMA)",
                              description="Action units, peak frame, tone of voice, coarse caption and an "
                                          "LLM-written reason per clip; resumable.")
    p.add_argument("paths", nargs="*", metavar="PATH", help="media files or folders of clips")
    p.add_argument("--dataset", metavar="NAME", help="a registered dataset instead of PATHs (e.g. ravdess)")
    p.add_argument("--split", action="append", choices=SPLITS, help="dataset split (repeatable; default all)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N clips of each split")
    p.add_argument("--data-root", metavar="DIR")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes annotations.jsonl (as it goes), merr.json and summary.json here")
    p.add_argument("--reasons", choices=("llm", "none"), default="llm",
                   help="write fine-grained reasons with the LLM (default) or captions only")
    p.add_argument("--model", help="embedded model for the reasons (default: the embedded default)")
    p.add_argument("--no-face", action="store_true", help="skip action units even for videos")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_annotate)


def _clips(args):
    """(utterances, label words, class words) of the dataset splits or the media paths."""
    from lantern.llm.slots import Verbaliser

    if args.dataset:
        from lantern.data import load_dataset

        ds = load_dataset(args.dataset, **({"data_root": args.data_root} if args.data_root else {}))
        words = Verbaliser.for_label_set(ds.label_set.classes, ds.label_set.descriptions).words
        utts = []
        for split in args.split or list(ds.splits):
            utts += ds.utterances(split)[:args.limit] if args.limit else ds.utterances(split)
        return utts, [words[u.label] if u.label is not None else None for u in utts], list(words)
    from lantern.predict.inputs import load_input

    utts = []
    for path in args.paths:
        loaded = load_input(path, workdir=Path(args.out) / "wav", progress=not args.no_progress)
        for d in loaded.dialogues:
            for u in d.utterances:
                if u.meta.get("wav"):   # the 16 kHz track extracted from the audio or video file
                    u.media["audio"] = u.meta["wav"]
                utts.append(u)
    return utts, [None] * len(utts), ["neutral", "happy", "sad", "angry", "surprise", "fear", "disgust"]


def run_annotate(args) -> int:
    from lantern.annotate.merr import annotate
    from lantern.errors import ConfigError

    if bool(args.dataset) == bool(args.paths):
        raise ConfigError("give either --dataset NAME or media PATHs")
    utts, labels, classes = _clips(args)
    llm = cache = None
    if args.reasons == "llm":
        from lantern.llm import EMBEDDED, get_llm
        from lantern.llm.cache import LLMCache

        llm = get_llm(EMBEDDED, args.model, n_threads=2, n_threads_batch=2)
        cache = LLMCache()
    try:
        summary = annotate(utts, labels, args.out, classes=classes, llm=llm, cache=cache,
                           face=not args.no_face, progress=not args.no_progress)
    finally:
        if llm is not None:
            llm.close()
        if cache is not None:
            cache.close()
    json.dump(summary, sys.stdout, indent=1)
    print()
    return 0

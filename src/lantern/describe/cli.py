"""``lantern describe IMAGE|FOLDER``: how the person in each image seems to feel, in words.

Examples::

    lantern describe photo.jpg --classes fer7                       # offline: observations
    lantern describe photos/ --box 40,20,300,380 --out descriptions.jsonl
    lantern describe photos/ --describer vlm --base-url http://127.0.0.1:8080/v1   # LLaVA server
    lantern describe --dataset emotic --data-root DATA --out DATA/emotic/lantern-descriptions.jsonl

``--dataset`` describes every person of an image corpus (emotic, caer, bold, fer2013) with its
own subject box and the corpus's classes: the file its recipe's ``dataset.descriptions`` reads.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="lantern")
>>> add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["describe", "a.jpg", "--box", "1,2,30,40"])
>>> args.describer, parse_box(args.box)
('observations', (1.0, 2.0, 30.0, 40.0))
"""

from __future__ import annotations

import sys
from pathlib import Path

from lantern.errors import ConfigError
from lantern.features.images import IMAGE_SUFFIXES


def parse_box(text: str | None):
    if not text:
        return None
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
        raise ConfigError(f"--box must be x1,y1,x2,y2 with x2 > x1 and y2 > y1, got {text!r}")
    return box


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("describe", help="describe how the person in an image seems to feel (context descriptions)",
                              description="A vision-language endpoint (vlm) or the offline observations "
                                          "describer writes, per image, which emotions suit the person.")
    p.add_argument("paths", nargs="*", metavar="IMAGE|FOLDER")
    p.add_argument("--dataset", help="describe every image of this corpus (its boxes and classes) instead")
    p.add_argument("--data-root", help="with --dataset: where the corpus lives (default: the data root)")
    p.add_argument("--describer", choices=("observations", "vlm"), default="observations")
    p.add_argument("--classes", help="a label set name (fer7, emotic26, caer7, ...) or a comma list "
                                     "(default: the dataset's, else fer7)")
    p.add_argument("--box", help="the subject's box x1,y1,x2,y2 (drawn in red for vlm)")
    p.add_argument("--base-url", help="vlm: the OpenAI-compatible endpoint (with /v1)")
    p.add_argument("--model", help="vlm: the server's model; observations: the embedded LLM")
    p.add_argument("--writer", choices=("llm", "template"), default="llm",
                   help="observations: the embedded LLM writes the description (llm), or fixed "
                        "sentences set out the observations (template: no LLM call)")
    p.add_argument("--out", metavar="FILE.jsonl", help="write one JSON line per image (default: stdout)")
    p.add_argument("--no-cache", action="store_true")
    p.set_defaults(func=run_describe)


def _images(paths) -> list[Path]:
    from lantern.errors import DataError

    out = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"no images in this folder ({' '.join(IMAGE_SUFFIXES)})", path=path)
            out += found
        else:
            out.append(path)
    return out


def _dataset_images(name: str, data_root: str | None):
    """Every image of a corpus, its subject boxes (None where it has none) and its label set."""
    from lantern.data import load_dataset

    ds = load_dataset(name, **({"data_root": data_root} if data_root else {}))
    utterances = [u for split in ds.splits for u in ds.utterances(split) if u.media.get("image")]
    if not utterances:
        raise ConfigError(f"dataset {name!r} has no images to describe")
    boxes = [u.meta.get("box") for u in utterances]
    return [u.media["image"] for u in utterances], boxes, ds.label_set.name


def prompt_classes(text: str) -> list[str]:
    """The class names a describe prompt offers: a label set's names (the part of each
    description before ":"), or a comma list."""
    from lantern.data.labels import LABEL_SETS

    if text in LABEL_SETS:
        ls = LABEL_SETS[text]
        return [d.split(":")[0].strip() for d in ls.descriptions] if ls.descriptions else list(ls.classes)
    classes = [c.strip() for c in text.split(",") if c.strip()]
    if len(classes) < 2:
        raise ConfigError(f"--classes: a label set ({', '.join(sorted(LABEL_SETS))}) or at least two names")
    return classes


def run_describe(args) -> int:
    from lantern.describe.describers import DESCRIBERS, describe_images
    from lantern.llm.cache import LLMCache

    if args.describer == "vlm" and not args.base_url:
        raise ConfigError("--describer vlm needs --base-url (an OpenAI-compatible vision endpoint)")
    if bool(args.paths) == bool(args.dataset):
        raise ConfigError("describe needs IMAGE|FOLDER paths or --dataset NAME (one of the two)")
    if args.dataset:
        images, boxes, label_set = _dataset_images(args.dataset, args.data_root)
        classes = prompt_classes(args.classes or label_set)
    else:
        images, box = _images(args.paths), parse_box(args.box)
        boxes, classes = ([box] * len(images) if box else None), prompt_classes(args.classes or "fer7")
    options = ({"base_url": args.base_url, "model": args.model} if args.describer == "vlm"
               else {"model": args.model, "writer": args.writer})
    cache = None if args.no_cache else LLMCache()
    describer = DESCRIBERS.create(args.describer, **options)
    if args.describer == "observations":
        describer.cache = cache
    sink = open(args.out, "a", encoding="utf-8") if args.out else sys.stdout
    try:
        out = describe_images(images, describer, classes, cache=cache, boxes=boxes, sink=sink)
    finally:
        describer.close()
        if cache is not None:
            cache.close()
        if args.out:
            sink.close()
    ok = sum(d.status == "ok" for d in out)
    print(f"{len(out)} image(s) described, {ok} ok, {sum(d.cached for d in out)} from the cache"
          + (f"; written to {args.out}" if args.out else ""), file=sys.stderr)
    return 0 if ok == len(out) else 1

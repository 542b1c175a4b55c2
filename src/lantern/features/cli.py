"""``lantern features extract|list``.

Examples::

    lantern features list
    lantern features extract --dataset iemocap --extractor text:minilm --extractor audio:iemocap8 \\
        --limit 2 --split test --out feats.npz
    lantern features extract --dataset iemocap --extractor text:st \\
        --option text:st.model_path=runs/encoder --dataset-option label_set=4way-merge

``--out`` writes an ``.npz`` with ``ids``, ``dialogue_ids``, ``splits``, ``labels`` (-1 when
unknown) and one ``(n, dim)`` float32 array per extractor, named after it (``text:minilm``).
Statistics (computed / from cache / seconds per extractor) are printed as JSON.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="lantern")
>>> add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["features", "extract", "--dataset", "iemocap",
...                           "--extractor", "text:minilm", "--option", "text:minilm.batch_size=8"])
>>> args.extractor, parse_extractor_options(args.option, args.extractor)
(['text:minilm'], {'text:minilm': {'batch_size': 8}})
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from typing import Any

import numpy as np

from lantern.errors import ConfigError


def add_parser(subparsers) -> None:
    """Add ``features`` (with ``extract`` and ``list``) to an argparse subparsers object."""
    from lantern.data.dialogues import SPLITS

    features = subparsers.add_parser("features", help="extract and cache utterance features")
    sub = features.add_subparsers(dest="features_command", metavar="{extract,list}")
    sub.required = True

    ex = sub.add_parser("extract", help="fill features for a dataset or conversation file",
                        description="Compute (or read from the cache) features for every utterance.")
    source = ex.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", metavar="NAME", help="a registered dataset (lantern.data.DATASETS)")
    source.add_argument("--conversation", metavar="PATH", help="a conversation file")
    ex.add_argument("--extractor", metavar="NAME", action="append", required=True,
                    help="a registered extractor (repeatable); see `lantern features list`")
    ex.add_argument("--option", metavar="EXTRACTOR.KEY=VALUE", action="append", default=[],
                    help="extractor option, value parsed as YAML (e.g. text:st.model_path=DIR)")
    ex.add_argument("--dataset-option", metavar="KEY=VALUE", action="append", default=[],
                    help="dataset loader option, value parsed as YAML (e.g. label_set=4way-merge)")
    ex.add_argument("--data-root", metavar="DIR", help="data root (default $LANTERN_DATA_ROOT or ../shared/data)")
    ex.add_argument("--limit", metavar="N", type=int, help="only the first N dialogues of each split")
    ex.add_argument("--split", action="append", choices=SPLITS,
                    help="only this split (repeatable; default all)")
    ex.add_argument("--out", metavar="FILE.npz", help="also write ids and feature arrays here")
    ex.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")
    ex.add_argument("--no-progress", action="store_true", help="no progress bar")
    ex.set_defaults(func=run_extract)

    ls = sub.add_parser("list", help="list the registered feature extractors")
    ls.set_defaults(func=run_list)


def _parse_value(raw: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def parse_key_values(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{item!r} is not of the form key=value")
        out[key.strip()] = _parse_value(raw)
    return out


def parse_extractor_options(items: list[str], extractors: list[str]) -> dict[str, dict]:
    """``["text:st.model_path=DIR"]`` -> ``{"text:st": {"model_path": "DIR"}}``."""
    out: dict[str, dict] = {}
    for key, value in parse_key_values(items).items():
        name, dot, option = key.rpartition(".")
        if not dot or not name or not option:
            raise ConfigError(f"--option {key!r}: expected EXTRACTOR.KEY=VALUE")
        if name not in extractors:
            raise ConfigError(f"--option {key!r}: extractor {name!r} is not among --extractor {extractors}")
        out.setdefault(name, {})[option] = value
    return out


def load_source(args):
    """The dataset named by ``--dataset`` or ``--conversation``, limited by ``--limit``."""
    from lantern.data import DATASETS, load_dataset

    opts = parse_key_values(args.dataset_option)
    if args.dataset:
        if args.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {args.dataset!r}; known: {', '.join(DATASETS.names())}")
        data = load_dataset(args.dataset, data_root=args.data_root, **opts)
    else:
        data = load_dataset("conversation", path=args.conversation, **opts)
    if hasattr(data, "limit"):
        return data.limit(args.limit)
    return list(data)[:args.limit] if args.limit else data


def run_extract(args) -> int:
    from lantern.data.dialogues import EmotionDataset
    from lantern.features import attach_features

    names = list(dict.fromkeys(args.extractor))
    options = parse_extractor_options(args.option, names)
    data = load_source(args)
    splits = args.split if isinstance(data, EmotionDataset) else None
    if args.split and splits is None:
        raise ConfigError("--split needs a dataset with splits")
    stats = attach_features(data, names, options=options, cache=not args.no_cache,
                            progress=not args.no_progress, splits=splits)
    if args.out:
        write_npz(args.out, data, names, splits)
    json.dump({"features": stats, **({"out": args.out} if args.out else {})}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def write_npz(path, data, names: list[str], splits=None) -> None:
    """Write ids, splits, labels and one array per extractor to ``path`` atomically."""
    from lantern.data.dialogues import EmotionDataset
    from lantern.paths import atomic_write_bytes

    if isinstance(data, EmotionDataset):
        rows = [(u, d.id, s) for s in (splits or list(data.splits))
                for d in data.dialogues(s) for u in d.utterances]
    else:
        from lantern.features import collect_utterances

        rows = [(u, getattr(d, "id", ""), getattr(d, "split", None) or "")
                for d in data for u in collect_utterances([d])]
    arrays = {
        "ids": np.array([u.id for u, _, _ in rows], dtype=str),
        "dialogue_ids": np.array([d for _, d, _ in rows], dtype=str),
        "splits": np.array([s for _, _, s in rows], dtype=str),
        "labels": np.array([-1 if u.label is None else u.label for u, _, _ in rows], dtype=np.int64),
    }
    for name in names:
        arrays[name] = (np.stack([u.features[name] for u, _, _ in rows]).astype(np.float32)
                        if rows else np.zeros((0, 0), dtype=np.float32))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def run_list(args) -> int:
    from lantern.features import FEATURES

    for name in FEATURES.names():
        cls = FEATURES.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        dim = cls.dim if isinstance(cls.dim, int) else "model"
        print(f"{name:<16} {cls.modality:<7} {str(dim):>6}  {doc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m lantern.features.cli features list``)."""
    parser = argparse.ArgumentParser(prog="lantern")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Copy result files written outside the repository (a clean worktree's ``--results-dir``) into
``benchmarks/results/``, with their confusion figures, and point ``confusion_png`` at the copy
(a path relative to the repository root, where BENCHMARKS.md links it). Result files already
here whose figure path points outside are repaired the same way.

    python scripts/import_results.py /work/rav-results [--only 'ravdess-*']
    python scripts/make_benchmarks.py
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEST = REPO / "benchmarks" / "results"


def relink(result: dict, dest: Path = DEST) -> bool:
    """Point ``confusion_png`` at ``benchmarks/results/<name>``; True when it changed."""
    png = result.get("confusion_png")
    if not png:
        return False
    local = f"benchmarks/results/{Path(png).name}"
    if png == local:
        return False
    result["confusion_png"] = local
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", type=Path, help="a folder of result JSON files (and PNGs)")
    ap.add_argument("--only", default="*.json", help="file-name pattern of the results to copy")
    args = ap.parse_args(argv)
    DEST.mkdir(parents=True, exist_ok=True)
    if args.source is not None:
        for src in sorted(args.source.glob("*.json")):
            if not fnmatch.fnmatch(src.name, args.only):
                continue
            result = json.loads(src.read_text())
            png = result.get("confusion_png")
            if png and (args.source / Path(png).name).exists():
                shutil.copy(args.source / Path(png).name, DEST / Path(png).name)
            elif png:
                print(f"warning: {src.name}: its figure {Path(png).name} is not in {args.source}")
            relink(result)
            try:
                text = json.dumps(result, indent=2, sort_keys=True, allow_nan=False) + "\n"
            except ValueError as exc:
                raise SystemExit(f"{src}: {exc} (a result must not hold NaN)") from None
            (DEST / src.name).write_text(text)
            print(f"imported {src.name}")
    for path in sorted(DEST.glob("*.json")):
        result = json.loads(path.read_text())
        if relink(result):
            if not (REPO / result["confusion_png"]).exists():
                print(f"warning: {path.name}: {result['confusion_png']} does not exist")
            path.write_text(json.dumps(result, indent=2, sort_keys=True, allow_nan=False) + "\n")
            print(f"relinked {path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Regenerate BENCHMARKS.md from benchmarks/results/*.json (thin wrapper around
:mod:`lantern.evaluation.benchmarks_md`).

    python scripts/make_benchmarks.py                 # write BENCHMARKS.md
    python scripts/make_benchmarks.py --check         # exit 1 if BENCHMARKS.md is stale (CI)
    python scripts/make_benchmarks.py --results-dir DIR --out FILE

Paths default to benchmarks/results and BENCHMARKS.md relative to the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

try:
    from lantern.evaluation.benchmarks_md import main, render_benchmarks  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(REPO / "src"))
    from lantern.evaluation.benchmarks_md import main, render_benchmarks  # noqa: F401

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], root=REPO))

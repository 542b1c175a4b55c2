"""Figures for result files. matplotlib is imported lazily and only through the Agg canvas,
so this works headless and never changes the global pyplot backend."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from lantern.paths import atomic_write_bytes

__all__ = ["save_confusion_png"]


def save_confusion_png(cm, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Write a confusion-matrix heat map (rows = true class, colours normalised per row,
    cells annotated with raw counts) as a PNG, atomically. Returns the path.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = save_confusion_png([[5, 1], [2, 7]], ["neu", "ang"], pathlib.Path(d) / "cm.png")
    ...     p.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(cm)
    names = [str(c) for c in class_names]
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion matrix must be square; got shape {counts.shape}")
    if counts.shape[0] != len(names):
        raise ValueError(f"{counts.shape[0]} classes in the matrix but {len(names)} class names")
    if counts.shape[0] == 0:
        raise ValueError("empty confusion matrix")
    counts = counts.astype(np.float64)
    row_sums = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)

    k = len(names)
    size = max(4.0, 0.6 * k + 2.0)
    fig = Figure(figsize=(size + 1.0, size), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(k), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    integral = np.all(np.mod(counts, 1) == 0)
    for i in range(k):
        for j in range(k):
            text = f"{int(counts[i, j])}" if integral else f"{counts[i, j]:.2g}"
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path

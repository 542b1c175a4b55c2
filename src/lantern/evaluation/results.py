"""Result files: one JSON per (dataset, label set, model, method, variant) run, written
atomically under ``benchmarks/results/`` and rendered into BENCHMARKS.md by
:mod:`lantern.evaluation.benchmarks_md`.

A result records everything needed to reproduce and judge a number: the data (dataset,
label set, split, utterance count), the system (model, method, variant, features), how
the checkpoint was chosen (``selection_split``), the seeds and their per-seed metrics
summarised by :func:`summarise_seeds`, cost (train seconds, peak memory), provenance
(git commit, config, library versions) and a ``created`` UTC timestamp.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from datetime import datetime, timezone
from numbers import Real
from pathlib import Path
from typing import Any

from lantern.paths import atomic_write_text

__all__ = ["REQUIRED_KEYS", "build_result", "git_commit", "peak_memory_mb", "save_result",
           "seed_stats", "summarise_seeds", "write_result", "load_results", "validate_result", "result_slug"]

REQUIRED_KEYS = ("dataset", "label_set", "split", "n_utterances", "model", "method", "variant",
                 "features", "selection_split", "seeds", "metrics", "train_seconds",
                 "peak_memory_mb", "git_commit", "config", "versions")
REQUIRED_METRICS = ("accuracy", "weighted_f1")


# ------------------------------------------------------------------------- provenance

def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_commit(repo_dir: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of ``repo_dir`` (default: the repository holding this package),
    with ``-dirty`` appended when tracked files have uncommitted changes; ``"unknown"`` when
    it is not a git repository or git is unavailable.

    >>> c = git_commit()
    >>> c == "unknown" or len(c.split("-")[0]) == 40
    True
    """
    cwd = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    if not cwd.is_dir():
        return "unknown"
    head = _git(["rev-parse", "HEAD"], cwd)
    if not head or not head.strip():
        return "unknown"
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    dirty = bool(status and status.strip())
    return head.strip() + ("-dirty" if dirty else "")


def peak_memory_mb() -> float:
    """Peak resident memory in MB: the max of this process and its (waited-for) children.

    ``ru_maxrss`` is in KiB on Linux and bytes on macOS. NaN where ``resource`` is missing.

    >>> peak_memory_mb() > 0
    True
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    divisor = 1024 * 1024 if sys.platform == "darwin" else 1024
    return rss / divisor


# ---------------------------------------------------------------------------- seeds

def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def seed_stats(values: list[float]) -> dict:
    """Mean, sample std (ddof=1; 0.0 for one value) and the values, as every result reports
    a metric over seeds.

    >>> seed_stats([58.0, 60.0])
    {'mean': 59.0, 'std': 1.4142135623730951, 'per_seed': [58.0, 60.0]}
    """
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n >= 2 else 0.0
    return {"mean": mean, "std": std, "per_seed": list(values)}


def summarise_seeds(per_seed: list[dict]) -> dict:
    """Mean, sample std (ddof=1; 0.0 for one seed) and per-seed values of every numeric
    metric; nested dicts of numbers (e.g. ``per_class_f1``) are summarised key by key;
    other values (confusion matrices, names) are ignored, as is a ``seed`` key.
    Values are taken as given, so pass percentages (as :func:`classification_report` does).

    >>> s = summarise_seeds([{"accuracy": 58.0, "weighted_f1": 57.0},
    ...                      {"accuracy": 60.0, "weighted_f1": 57.0}])
    >>> s["accuracy"]
    {'mean': 59.0, 'std': 1.4142135623730951, 'per_seed': [58.0, 60.0]}
    >>> s["weighted_f1"]["std"]
    0.0
    """
    if not per_seed:
        raise ValueError("summarise_seeds needs at least one per-seed metrics dict")
    for i, d in enumerate(per_seed):
        if not isinstance(d, dict):
            raise ValueError(f"per_seed[{i}] is {type(d).__name__}, not a dict")
    return _summarise(per_seed, path="")


def _summarise(dicts: list[dict], path: str) -> dict:
    out: dict[str, Any] = {}
    first = dicts[0]
    for key, value in first.items():
        if key == "seed" and not path:
            continue
        where = f"{path}{key}"
        if _is_number(value) or isinstance(value, dict):
            missing = [i for i, d in enumerate(dicts) if key not in d]
            if missing:
                raise ValueError(f"metric {where!r} is missing from seed runs {missing}")
        if _is_number(value):
            values = [d[key] for d in dicts]
            bad = [i for i, v in enumerate(values) if not _is_number(v)]
            if bad:
                raise ValueError(f"metric {where!r} is not a number in seed runs {bad}")
            out[key] = seed_stats([float(v) for v in values])
        elif isinstance(value, dict):
            subs = [d[key] for d in dicts]
            if not all(isinstance(s, dict) for s in subs):
                raise ValueError(f"metric {where!r} is not a dict in every seed run")
            nested = _summarise(subs, path=where + ".")
            if nested:
                out[key] = nested
    return out


# --------------------------------------------------------------------------- builder

def build_result(*, dataset: str, label_set: str | None, n_utterances: int, model: str,
                 method: str, variant: str, features: Any, seeds: list[int], metrics: dict,
                 train_seconds: float, config: dict, limit: int | None = None,
                 split: str = "test", selection_split: str = "valid", **extra: Any) -> dict:
    """A result with every required key: what was measured (the arguments) and its
    provenance (peak memory, git commit, library versions), plus method-specific ``extra``
    keys. Scores are percents (the unit of every result file)."""
    from lantern.models.base import library_versions

    result = {"dataset": dataset, "label_set": label_set, "split": split,
              "n_utterances": int(n_utterances), "model": model, "method": method,
              "variant": variant, "features": features, "selection_split": selection_split,
              "seeds": list(seeds), "metrics": metrics, **extra,
              "train_seconds": train_seconds, "peak_memory_mb": peak_memory_mb(),
              "git_commit": git_commit(), "config": config, "versions": library_versions(),
              "limit": limit}
    validate_result(result)
    return result


def result_name(result: dict) -> str:
    """``<dataset>-<label set>-<model>-<method>-<variant>`` (+ ``-limit<N>``), the file stem
    of every result the stages write."""
    stem = "-".join(str(result[k]) for k in ("dataset", "label_set", "model", "method", "variant"))
    return stem + (f"-limit{result['limit']}" if result.get("limit") is not None else "")


def save_result(result: dict, results_dir: str | Path) -> Path:
    """Write ``result`` as :func:`result_name` ``.json`` and record the path in it."""
    path = write_result(result, results_dir, name=result_name(result))
    result["result_file"] = str(path)
    return path


# ---------------------------------------------------------------------------- files

def validate_result(result: dict) -> None:
    """Raise ValueError naming every missing required key (and malformed metrics)."""
    if not isinstance(result, dict):
        raise ValueError(f"a result must be a dict, not {type(result).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise ValueError(f"result is missing required keys: {', '.join(missing)}")
    metrics = result["metrics"]
    if not isinstance(metrics, dict):
        raise ValueError("result['metrics'] must be a dict")
    problems = []
    # a multi-label result (EMOTIC, BoLD) is scored by mAP: accuracy has no meaning there
    for name in (("mAP",) if result.get("multi_label") else REQUIRED_METRICS):
        m = metrics.get(name)
        if not isinstance(m, dict):
            problems.append(f"metrics.{name}")
            continue
        problems += [f"metrics.{name}.{s}" for s in ("mean", "std") if s not in m]
    if problems:
        raise ValueError(f"result is missing required keys: {', '.join(problems)}")


def result_slug(result: dict) -> str:
    """File stem ``dataset-label_set-model-method-variant``, lower case, filesystem safe.

    >>> result_slug({"dataset": "IEMOCAP", "label_set": "iemocap6", "model": "dialoguernn",
    ...              "method": "vanilla", "variant": "text+audio"})
    'iemocap-iemocap6-dialoguernn-vanilla-text+audio'
    """
    parts = [str(result.get(k, "")) for k in ("dataset", "label_set", "model", "method", "variant")]
    slug = "-".join(re.sub(r"[^a-z0-9._+]+", "_", p.strip().lower()).strip("_") for p in parts)
    return slug or "result"


def _jsonable(value: Any) -> Any:
    """Plain JSON: numpy scalars/arrays to Python, tuples to lists, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if _is_number(value):
        return _jsonable(float(value))
    if isinstance(value, Path):
        return str(value)
    return str(value)


def write_result(result: dict, results_dir: str | Path = "benchmarks/results",
                 name: str | None = None) -> Path:
    """Validate ``result``, add ``created`` (UTC ISO 8601) and write it atomically as JSON
    to ``<results_dir>/<name or result_slug(result)>.json``. Returns the path.

    >>> import tempfile
    >>> r = {k: "x" for k in REQUIRED_KEYS}
    >>> r["metrics"] = {"accuracy": {"mean": 50.0, "std": 1.0},
    ...                 "weighted_f1": {"mean": 49.0, "std": 2.0}}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = write_result(r, d, name="demo")
    ...     loaded = load_results(d)[0]
    >>> path.name, loaded["_file"], loaded["created"].endswith("+00:00")
    ('demo.json', 'demo.json', True)
    >>> write_result({"dataset": "d"}, "/nonexistent")
    Traceback (most recent call last):
    ...
    ValueError: result is missing required keys: label_set, split, n_utterances, model, method, variant, features, selection_split, seeds, metrics, train_seconds, peak_memory_mb, git_commit, config, versions
    """
    validate_result(result)
    stem = name if name is not None else result_slug(result)
    if stem.endswith(".json"):
        stem = stem[:-5]
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        raise ValueError(f"invalid result name {name!r}")
    payload = _jsonable(dict(result))
    payload["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = Path(results_dir) / f"{stem}.json"
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path


def load_results(results_dir: str | Path = "benchmarks/results") -> list[dict]:
    """Every ``*.json`` result in ``results_dir`` (sorted by file name; [] if the folder is
    absent). Each dict gets ``_file``, its file name. Unreadable JSON raises ValueError."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable JSON result ({e})") from e
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a result file must hold a JSON object")
        data["_file"] = path.name
        out.append(data)
    return out

"""What the offline ``observations`` describer costs per image (issue #13), measured on FER2013.

    python scripts/bench_describe.py [--models qwen2.5-coder-1.5b,smollm2-135m] [--per-class 4]
        [--data-root DIR] [--results-dir DIR] [--descriptions-dir DIR]

Per embedded model: its prompt-processing and generation speed, measured in the same run
(``lantern llm check``'s two requests), then ``lantern describe --writer llm`` on the first
``--per-class`` test images of each FER2013 class (this project's folds), uncached, one at a
time. The template writer (no LLM call) runs on the same images, so the LLM's share is apparent.
Costs are stated as tokens, seconds and the ratio of the seconds to what the tokens cost at the
measured speeds (machines differ in speed; the ratio carries over). Writes
``describe-cost-fer2013.json`` and the LLM's descriptions (image paths relative to the data
root) as ``fer2013-observations-llm-<model>-sample.jsonl`` for the record.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lantern.evaluation.describe_cost import DESCRIBE_COST  # noqa: E402


def sample_images(data_root: Path, per_class: int) -> tuple[list[Path], list[str]]:
    """The first ``per_class`` test images of each class (by id), and the classes."""
    from lantern.data import load_dataset
    from lantern.describe.cli import prompt_classes

    ds = load_dataset("fer2013", data_root=str(data_root))
    taken: dict[int, list] = {}
    for u in sorted(ds.utterances("test"), key=lambda u: u.id):
        if len(taken.setdefault(u.label, [])) < per_class:
            taken[u.label].append(u)
    chosen = [u for label in sorted(taken) for u in taken[label]]
    return [Path(u.media["image"]) for u in chosen], prompt_classes(ds.label_set.name)   # as `lantern describe`


def describe(images: list[Path], classes: list[str], writer: str, model: str | None = None):
    """(descriptions, the LLM's speed report or None): every image described afresh."""
    from lantern.describe.describers import ObservationsDescriber, describe_images
    from lantern.llm.cli import check

    describer = ObservationsDescriber(model=model, writer=writer)
    try:
        speed = check(describer.llm) if writer == "llm" else None
        return describe_images(images, describer, classes, cache=None), speed
    finally:
        describer.close()


def summary(descriptions, speed: dict | None) -> dict:
    """Seconds and tokens per image, failures, and the seconds' ratio to what the tokens cost at
    ``speed``'s rates."""
    seconds = [d.seconds for d in descriptions]
    out = {"images": len(descriptions), "failed": sum(d.status != "ok" for d in descriptions),
           "seconds_per_image": {"mean": statistics.mean(seconds), "median": statistics.median(seconds),
                                 "max": max(seconds)}}
    if speed is None:
        return out
    prompt = [d.prompt_tokens for d in descriptions]
    completion = [d.completion_tokens for d in descriptions]
    expected = [p / speed["prompt_tokens_per_s"] + c / speed["generation_tokens_per_s"]
                for p, c in zip(prompt, completion)]
    return {**out, "prompt_tokens_per_image": statistics.mean(prompt),
            "completion_tokens_per_image": statistics.mean(completion),
            "prompt_tokens_per_s": speed["prompt_tokens_per_s"],
            "generation_tokens_per_s": speed["generation_tokens_per_s"],
            "seconds_vs_token_cost": statistics.mean(seconds) / statistics.mean(expected),
            "model_load_seconds": speed.get("load_seconds")}


def write_sample(descriptions, data_root: Path, path: Path) -> None:
    from lantern.paths import atomic_write_text

    lines = []
    for d in descriptions:
        row = {k: v for k, v in d.to_dict().items() if k not in ("notes", "cached")}
        row["image"] = str(Path(d.image).resolve().relative_to(data_root.resolve()))
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + "\n")


def main(argv=None) -> int:
    from lantern.evaluation.results import git_commit, peak_memory_mb, write_result
    from lantern.models.base import library_versions
    from lantern.paths import data_root as default_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="qwen2.5-coder-1.5b,smollm2-135m")
    ap.add_argument("--per-class", type=int, default=4)
    ap.add_argument("--data-root")
    ap.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--descriptions-dir", default=str(REPO / "benchmarks" / "descriptions"))
    args = ap.parse_args(argv)
    root = Path(default_root(args.data_root))
    images, classes = sample_images(root, args.per_class)
    start = time.perf_counter()
    template, _ = describe(images, classes, "template")
    writers = {"template": summary(template, None)}
    for model in args.models.split(","):
        described, speed = describe(images, classes, "llm", model)
        writers[f"llm:{described[0].model or model}"] = summary(described, speed)
        sample = Path(args.descriptions_dir) / f"fer2013-observations-llm-{model}-sample.jsonl"
        write_sample(described, root, sample)
        print(f"{model}: {json.dumps(writers[next(reversed(writers))])}", flush=True)
    none = {"mean": None, "std": None}   # a cost measurement: nothing is scored
    result = {"dataset": "fer2013", "label_set": "fer7", "split": "test", "n_utterances": len(images),
              "model": "observations", "method": DESCRIBE_COST, "variant": "observations",
              "features": [], "selection_split": "none", "seeds": [], "train_seconds": 0.0,
              "metrics": {"accuracy": none, "weighted_f1": none}, "writers": writers,
              "images_per_class": args.per_class, "wall_seconds": time.perf_counter() - start,
              "peak_memory_mb": peak_memory_mb(), "git_commit": git_commit(),
              "versions": library_versions(),
              "config": {"models": args.models.split(","), "per_class": args.per_class, "cache": False,
                         "threads": 2, "box": None, "classes": classes}}
    path = write_result(result, args.results_dir, name="describe-cost-fer2013")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

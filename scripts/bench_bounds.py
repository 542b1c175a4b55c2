"""Peak memory and time of `lantern predict` on the largest conversation file its default
bounds allow (issue 9.5: a 50 MB single-utterance file once took 7.3 GB and 121 s).

    python scripts/bench_bounds.py [--out benchmarks/predict-bounds.json]

The input is built to be the worst the bounds let through, in a temporary folder (never in
the repository): ``DEFAULT_MAX_UTTERANCES`` utterances, each with a text of exactly
``DEFAULT_MAX_TEXT_CHARS`` characters (English-like words, every one long enough to fill the
text model's 256 word pieces), padded with an extra key up to just under
``DEFAULT_MAX_INPUT_BYTES``. Texts and padding are ASCII plus one emoji each, so that Python
holds them with 4 bytes per character (the most memory a string of this file can take).
It runs ``lantern predict --llm off`` in a child process with a fresh cache (features are
computed, not read from a cache) and records the child's peak resident memory (``wait4``),
its wall time and the stage timings of the prediction document. The LLM is off: its cost is
per receptive field and is measured by ``scripts/bench_predict.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ("I can't believe you did that again after everything we talked about last week "
         "honestly it makes me so angry and tired but maybe we can still fix it together "
         "tomorrow morning before the meeting starts").split()
EMOJI = "\U0001f600"


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = [EMOJI]
    length = 1
    while length < chars:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:chars]


def build_input(path: Path, utterances: int, text_chars: int, max_bytes: int) -> dict:
    """Write the worst-case conversation file; returns what it holds."""
    rng = random.Random(0)
    texts = [_text(rng, text_chars) for _ in range(utterances)]
    lines = [json.dumps({"speaker": f"S{i % 2}", "text": t, "pad": ""}, ensure_ascii=False)
             for i, t in enumerate(texts)]
    used = sum(len(line.encode("utf-8")) + 1 for line in lines)
    per_line = (max_bytes - used) // utterances - len(EMOJI.encode("utf-8")) - 1
    pad = EMOJI + "x" * max(per_line, 0)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"speaker": f"S{i % 2}", "text": t, "pad": pad},
                                ensure_ascii=False) + "\n")
    return {"bytes": path.stat().st_size, "utterances": utterances,
            "text_chars_each": text_chars, "pad_chars_each": len(pad)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "predict-bounds.json"))
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    import lantern
    from lantern.evaluation.results import git_commit
    from lantern.predict.inputs import (DEFAULT_MAX_INPUT_BYTES, DEFAULT_MAX_TEXT_CHARS,
                                        DEFAULT_MAX_UTTERANCES)

    with tempfile.TemporaryDirectory(prefix="lantern-bench-bounds-") as tmp:
        work = Path(tmp)
        talk = work / "worst.jsonl"
        built = build_input(talk, DEFAULT_MAX_UTTERANCES, DEFAULT_MAX_TEXT_CHARS,
                            DEFAULT_MAX_INPUT_BYTES)
        env = {**os.environ, "LANTERN_CACHE_DIR": str(work / "cache"), "OMP_NUM_THREADS": "2",
               "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, "-m", "lantern.cli", "predict", str(talk), "--out", str(work / "out"),
               "--llm", "off", "--no-progress"]
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
        output = child.stdout.read().decode("utf-8", "replace")
        child.stdout.close()
        load_after = os.getloadavg()
        if os.waitstatus_to_exitcode(status) != 0:
            print(output, file=sys.stderr)
            raise SystemExit(f"lantern predict failed (exit {os.waitstatus_to_exitcode(status)})")
        doc = json.loads((work / "out" / "predictions.json").read_text(encoding="utf-8"))
        sizes = {p.name: p.stat().st_size for p in (work / "out").iterdir() if p.is_file()}

    result = {
        "case": "predict-bounds",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "lantern_version": lantern.__version__,
        "command": "lantern predict worst.jsonl --llm off --no-progress (fresh cache)",
        "bounds": {"max_utterances": DEFAULT_MAX_UTTERANCES,
                   "max_text_chars": DEFAULT_MAX_TEXT_CHARS,
                   "max_input_bytes": DEFAULT_MAX_INPUT_BYTES},
        "input": built,
        "utterances_predicted": len(doc["utterances"]),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),       # Linux: kilobytes
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "timings": {k: doc["timings"][k] for k in ("transcription", "features", "vanilla", "llm",
                                                   "report", "total")},
        "output_bytes": sizes,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after]},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

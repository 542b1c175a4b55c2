"""Results of ``scripts/bench_describe.py`` (issue #13): what the offline ``observations``
describer costs per image with each writer, and their BENCHMARKS.md section."""

from __future__ import annotations

#: ``method`` of a describer-cost result
DESCRIBE_COST = "describe-cost"


def render_describe_cost(rows: list[dict]) -> str:
    """One table row per writer of each result.

    >>> print(render_describe_cost([{"dataset": "fer2013", "split": "test", "git_commit": "abc",
    ...     "writers": {"llm:m": {"images": 2, "failed": 0, "seconds_per_image": {"mean": 5.0, "median": 4.0},
    ...     "prompt_tokens_per_image": 150, "completion_tokens_per_image": 90.5, "prompt_tokens_per_s": 60,
    ...     "generation_tokens_per_s": 20, "seconds_vs_token_cost": 1.1}}}]).splitlines()[-1])
    | fer2013 test | llm:m | 2 | 5.00 (4.00) | 150.0 | 90.5 | 60.0 | 20.0 | 1.10 | 0 | abc |
    """
    from lantern.evaluation.benchmarks_md import _cell, _commit, _fixed, _integer

    header = ["data", "writer", "images", "s/image mean (median)", "prompt tokens", "generated tokens",
              "prompt tok/s", "generation tok/s", "s ÷ token cost", "failed", "commit"]
    lines = ["\n## Context descriptions · describer cost per image\n",
             "`scripts/bench_describe.py`: the offline `observations` describer on FER2013 test "
             "images, uncached, one at a time, 2 threads. `template` sets out the observations in "
             "fixed sentences (no LLM); `llm:` writers are the embedded models. The speeds are "
             "measured in the same run, and `s ÷ token cost` is the seconds per image over what its "
             "tokens cost at those speeds (above 1: the observations and overheads).\n",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: str(r.get("dataset"))):
        for writer, w in (r.get("writers") or {}).items():
            s = w.get("seconds_per_image") or {}
            cells = [_cell(f"{r.get('dataset')} {r.get('split')}"), _cell(writer.partition("@")[0]),
                     _integer(w.get("images")),
                     f"{_fixed(s.get('mean'), 2)} ({_fixed(s.get('median'), 2)})",
                     *[_fixed(w.get(k), 1) for k in ("prompt_tokens_per_image", "completion_tokens_per_image",
                                                     "prompt_tokens_per_s", "generation_tokens_per_s")],
                     _fixed(w.get("seconds_vs_token_cost"), 2), _integer(w.get("failed")),
                     _cell(_commit(r.get("git_commit")))]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

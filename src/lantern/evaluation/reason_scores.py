"""Results of the reason judge (``scripts/judge_reasons.py``, issue #12): a trained model's
``[reason]`` answers and the template baseline, scored by an LLM judge on held-out clips, and
their BENCHMARKS.md section."""

from __future__ import annotations

#: ``method`` of a reason-judge result
REASON_JUDGE = "reason-judge"
#: the systems a reason-judge result scores, and the two EMER scores (1-10)
SYSTEMS = ("emotion-llama", "template")
SCORES = ("clue_overlap", "label_overlap")


def render_reason_judge(rows: list[dict]) -> str:
    """One table: per judged run, each system's mean ± std over seeds of both scores, the
    paired-bootstrap difference (model - template) and the labels' accuracy on those clips.

    >>> print(render_reason_judge([{"dataset": "ravdess", "split": "test", "variant": "v",
    ...     "n_utterances": 120, "seeds": [0, 1], "judge_model": "qwen", "git_commit": "abc",
    ...     "metrics": {"emotion-llama.clue_overlap": {"mean": 6, "std": 1}},
    ...     "paired_bootstrap": {"clue_overlap": {"delta": 1.5, "low": 0.5, "high": 2.5}}}]).splitlines()[-1])
    | ravdess test | v | qwen | 120 | 2 | 6.00 ± 1.00 | — | — | — | +1.50 [+0.50, +2.50] | — | — | abc |
    """
    from lantern.evaluation.benchmarks_md import MISSING, _cell, _commit, _gain, _integer, _mean_std, _n_seeds

    header = ["data", "run", "judge", "clips", "seeds"] + [
        f"{s} {k.split('_')[0]}" for s in SYSTEMS for k in SCORES] + [
        "Δ clue [95 % CI]", "Δ label [95 % CI]", "label accuracy", "commit"]
    lines = ["\n## Reasons judged (EMER-style, 1-10)\n",
             "An LLM judge scores each held-out clip's reason against the clip's clues (face, tone, "
             "words) and its gold label: clue overlap and label overlap, 1-10. `template` is MERR's "
             "coarse caption filled with the same model's `[emotion]` label; it repeats the clues "
             "word for word, so its clue overlap is high by design, while the model's reason is a "
             "separate answer that may conclude otherwise. Mean ± std over seeds of each system's "
             "mean over the clips the judge answered; Δ is the model's seed-averaged score minus "
             "the template's over the clips judged for both, paired bootstrap over clips. The "
             "judge is named; where it also wrote the training reasons it may favour text like "
             "its own.\n",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: (str(r.get("dataset")), str(r.get("variant")))):
        m = r.get("metrics") if isinstance(r.get("metrics"), dict) else {}
        boot = r.get("paired_bootstrap") if isinstance(r.get("paired_bootstrap"), dict) else {}
        lines.append("| " + " | ".join(
            [f"{_cell(r.get('dataset'))} {_cell(r.get('split'))}", _cell(r.get("variant", MISSING)),
             _cell(str(r.get("judge_model") or MISSING).split("@")[0]), _integer(r.get("n_utterances")), _n_seeds(r.get("seeds"))]
            + [_mean_std(m.get(f"{s}.{k}")) for s in SYSTEMS for k in SCORES]
            + [_gain(boot.get(k)) for k in SCORES] + [_mean_std(m.get("accuracy")), _commit(r.get("git_commit"))]
        ) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["REASON_JUDGE", "SYSTEMS", "SCORES", "render_reason_judge"]

"""Model selection by cross-validation: a candidate's held-out predictions over every fold,
pooled, scored per seed (``scripts/cv_select.py`` runs the folds; this module scores them).

Each (candidate, fold, seed) keeps the confusion matrix of its held-out group
(:mod:`lantern.data.folds`: scored once, not used to stop). Summing a seed's matrices over
the folds gives the confusion matrix of predicting every pooled train+valid utterance once,
by a model that neither trained nor stopped on it; accuracy and weighted F1 of that matrix
are the seed's score, and the candidate's is their mean ± std over seeds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

CV_SELECTION = "cv-selection"   # the ``method`` of a selection result file


def confusion_scores(confusion: Sequence[Sequence[int]]) -> dict[str, float]:
    """Accuracy and support-weighted F1 (percent) of a confusion matrix (row = true class).

    >>> s = confusion_scores([[1, 1], [0, 2]])
    >>> s["accuracy"], round(s["weighted_f1"], 2)
    (75.0, 73.33)
    """
    cm = np.asarray(confusion, dtype=float)
    total = cm.sum()
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or total <= 0:
        raise ValueError(f"a confusion matrix must be square with counts, got shape {cm.shape}")
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return {"accuracy": float(100.0 * tp.sum() / total), "weighted_f1": 100.0 * float((f1 * support).sum() / total)}


def candidate_score(folds: dict[str, dict], n_folds: int) -> dict | None:
    """Pooled scores of one candidate from ``{fold: {"confusion": {seed: matrix}}}``, or None
    until exactly the folds ``0 .. n_folds-1`` are done. Seeds are those every fold has;
    mean, sample std and per-seed values as in every result file."""
    from lantern.evaluation.results import summarise_seeds

    if set(folds) != {str(k) for k in range(n_folds)}:
        return None
    seeds = sorted(set.intersection(*(set(f["confusion"]) for f in folds.values())), key=int)
    if not seeds:
        return None
    per_seed = [confusion_scores(sum(np.asarray(f["confusion"][s]) for f in folds.values()))
                for s in seeds]
    return {**summarise_seeds(per_seed), "seeds": [int(s) for s in seeds]}


def ranked(candidates: dict[str, dict], n_folds: int) -> list[tuple[str, dict]]:
    """(name, score) of the candidates with every fold done, best pooled weighted F1 first
    (ties: better accuracy, then name)."""
    done = [(name, candidate_score(c.get("folds") or {}, n_folds)) for name, c in candidates.items()]
    done = [(n, s) for n, s in done if s is not None]
    return sorted(done, key=lambda x: (-round(x[1]["weighted_f1"]["mean"], 6),
                                       -round(x[1]["accuracy"]["mean"], 6), x[0]))


def render_cv_selection(r: dict) -> str:
    """The BENCHMARKS.md section of a selection result: candidates ranked by pooled CV
    weighted F1 (robust to partial runs and hand-edited files, like the other sections)."""
    from lantern.evaluation.benchmarks_md import MISSING, _cell, _commit, _fixed, _integer, _mean_std

    cands = {k: v for k, v in (r.get("candidates") or {}).items() if isinstance(v, dict)} \
        if isinstance(r.get("candidates"), dict) else {}
    folds = r.get("folds") if isinstance(r.get("folds"), int) else None
    chosen = r.get("chosen")
    try:
        order = [name for name, _ in ranked(cands, folds)] if folds else []
    except (TypeError, ValueError, KeyError, AttributeError):   # a hand-edited file: no ranking
        order = []
    order += sorted(set(cands) - set(order))
    header = ["candidate", "model", "folds done", "CV accuracy", "CV weighted F1",
              "valid wF1 (12 dialogues)", "test wF1 (not used)", "commit"]
    lines = [f"\n## Model selection · {_cell(r.get('dataset'))} {_cell(r.get('label_set'))} · "
             f"{_cell(folds)}-fold cross-validation over sessions\n",
             f"Every {_cell(r.get('dataset'))} {_cell(r.get('label_set'))} vanilla result above, "
             "retrained once per fold: a fold holds out one recording session "
             f"(`{_cell(r.get('group'))}`) of the train+valid dialogues, trains on the other "
             "sessions' train dialogues and stops early on their valid dialogues. A seed's score "
             f"is that of its held-out predictions over all folds ({_integer(r.get('n_utterances'))} "
             "utterances); mean ± std over seeds. The highest CV weighted F1 is chosen"
             + (f": **{_cell(chosen)}**." if chosen else "; not every fold has run yet.") + "\n",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in order:
        c = cands[name]
        cv = c.get("cv") if isinstance(c.get("cv"), dict) else {}
        done = c.get("folds") if isinstance(c.get("folds"), dict) else {}
        commits = sorted({str(f.get("git_commit")) for f in done.values()
                          if isinstance(f, dict) and f.get("git_commit")})
        test = c.get("test") if isinstance(c.get("test"), dict) else {}
        lines.append("| " + " | ".join([
            f"**{_cell(name)}**" if name == chosen else _cell(name), _cell(c.get("model", MISSING)),
            f"{len(done)}/{_cell(folds)}", _mean_std(cv.get("accuracy")), _mean_std(cv.get("weighted_f1")),
            _fixed(c.get("valid_weighted_f1"), 2), _fixed(test.get("weighted_f1"), 2),
            _cell(", ".join(_commit(x) for x in commits) or MISSING)]) + " |")
    return "\n".join(lines) + "\n"

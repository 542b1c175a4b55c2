"""Per-speaker feature normalisation (``feature_norm: speaker`` in a training config).

Each feature is z-scored within each speaker, over all of that speaker's utterances in every
split. It uses no labels, but it does use the *test* speakers' unlabelled utterances (their
mean and spread), so it is transductive: a result that uses it says so in its config, and it
applies only where a speaker id names one person across the dataset (RAVDESS actors, not
IEMOCAP's per-dialogue ``M``/``F``). Speech-emotion papers often normalise this way because a
voice's pitch and loudness vary more between speakers than between emotions.

>>> import numpy as np
>>> from lantern.data.dialogues import Utterance
>>> us = [Utterance(f"u{i}", s, "", features={"f": np.array([v], np.float32)})
...       for i, (s, v) in enumerate([("a", 1), ("a", 3), ("b", 10), ("b", 30)])]
>>> normalise_per_speaker(us, ["f"])
{'speakers': 2, 'features': ['f']}
>>> [float(u.features["f"][0]) for u in us]
[-1.0, 1.0, -1.0, 1.0]
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from lantern.errors import ConfigError

MODES = ("speaker",)
#: fewest utterances of a speaker whose statistics ``lantern predict`` trusts
MIN_PER_SPEAKER = 4


def normalise_per_speaker(utterances, names) -> dict:
    """Replace ``u.features[name]`` by its z-score within ``u.speaker``'s utterances (new
    arrays: cached vectors shared between utterances are not changed in place)."""
    by_speaker: dict[str, list] = defaultdict(list)
    for u in utterances:
        by_speaker[u.speaker].append(u)
    for name in names:
        for everyone in by_speaker.values():
            group = [u for u in everyone if name in u.features]   # an optional modality may be absent
            if not group:
                continue
            x = np.stack([np.asarray(u.features[name], np.float64) for u in group])
            mean, std = x.mean(axis=0), x.std(axis=0)
            std[std < 1e-6] = 1.0  # a constant feature (or a speaker with one utterance) stays centred
            for u, row in zip(group, (x - mean) / std):
                u.features[name] = row.astype(np.float32)
    return {"speakers": len(by_speaker), "features": list(names)}


def normalise_for_model(spec, utterances) -> None:
    """Apply a saved model's per-speaker normalisation (``spec.speaker_norm``) to new input:
    each speaker needs :data:`MIN_PER_SPEAKER` utterances, since their mean and spread are
    what the model reads against."""
    if not spec.speaker_norm:
        return
    from collections import Counter

    counts = Counter(u.speaker for u in utterances)
    few = sorted(s for s, n in counts.items() if n < MIN_PER_SPEAKER)
    if few:
        raise ConfigError(f"this model normalises features within each speaker (trained with "
                          f"feature_norm: speaker) and needs at least {MIN_PER_SPEAKER} clips of "
                          f"every speaker; {', '.join(few)} has fewer (give a folder of that "
                          f"speaker's clips, or use a model trained without it)")
    normalise_per_speaker(utterances, list(spec.modalities.values()))


def apply_feature_norm(mode: str | None, utterances, names) -> dict | None:
    """The ``feature_norm:`` of a config applied to ``utterances`` (None: nothing to do)."""
    if mode in (None, "", "none"):
        return None
    if mode not in MODES:
        raise ConfigError(f"feature_norm must be one of {list(MODES)} or none, got {mode!r}")
    return {"mode": mode, **normalise_per_speaker(utterances, names)}

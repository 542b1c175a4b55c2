"""``lantern predict``: emotions in your own conversation, from a transcript, audio or video.

The stages follow the package's data flow, one module each:

input (:mod:`.inputs`: conversation file, folder of clips, or one recording transcribed by
Whisper) -> features (the registered extractors the model was trained on) -> the vanilla
model shipped with the package (:mod:`.pretrained`) -> receptive fields + LLM answers
(:mod:`lantern.refine`, embedded llama.cpp by default, any OpenAI-compatible server, or off)
-> the prediction document, CSV and HTML report (:mod:`.outputs`,
:mod:`lantern.report`). ``docs/predict-output.md`` documents the outputs. ``--system
emotion-llama`` and ``--system context`` (images, :mod:`.context`) use a saved model of
their own kind instead and have no refinement stage.

LLM answers go through the persistent SQLite cache, so predicting the same input twice
makes no second LLM call, and an interrupted run resumes where it stopped. The chosen LLM
is checked first (an OpenAI-compatible server must answer, the embedded runtime must be
installed), so a run that cannot refine fails before any transcription or feature.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lantern.errors import ConfigError
from lantern.llm.base import EMBEDDED, LLM_CHOICES, LLM_OFF, OPENAI
from lantern.predict.inputs import (DEFAULT_MAX_DURATION_S, DEFAULT_MAX_INPUT_BYTES,
                                    DEFAULT_MAX_TEXT_CHARS, DEFAULT_MAX_UTTERANCES,
                                    DEFAULT_SPEAKER)
from lantern.receptive_fields import DEFAULT_STRIDE, DEFAULT_WINDOW
from lantern.records import PredictionRow

#: what ``--system`` chooses: the vanilla model + Lantern's LLM refinement, Emotion-LLaMA
#: (a saved ``emotion-llama`` model: label and probabilities read from its LLM, plus a reason),
#: or context descriptions (images: a description each, read with the image by a saved
#: ``context-qformer`` model; :mod:`.context`)
SYSTEMS = ("lantern", "emotion-llama", "context")
#: the model type each system other than lantern needs
SYSTEM_MODEL = {"emotion-llama": "emotion-llama", "context": "context-qformer"}


@dataclass
class PredictSettings:
    """Everything ``lantern predict`` can be told. Defaults: shipped model, embedded LLM."""

    model: str | None = None          # a saved vanilla model folder; None: the shipped one
    llm: str = EMBEDDED               # embedded | openai | off
    llm_model: str | None = None      # embedded: a lantern LLM name or .gguf; openai: server model
    base_url: str | None = None       # openai backend: e.g. http://127.0.0.1:8080/v1
    window: int = DEFAULT_WINDOW      # receptive field length ...
    stride: int = DEFAULT_STRIDE      # ... and stride: every utterance is in t = window/stride fields
    include_vad: bool = True
    max_duration_s: float = DEFAULT_MAX_DURATION_S   # longer recordings are refused unless this is raised
    language: str | None = None       # Whisper language code; None: detect
    task: str = "auto"                # auto (translate non-English to English) | transcribe | translate
    speaker: str = DEFAULT_SPEAKER    # speaker name for recordings and folders (no diarisation)
    report: bool = True
    progress: bool = True
    llm_cache: str | None = None      # SQLite cache file; None: cache_dir()/llm.sqlite
    llm_options: dict[str, Any] = field(default_factory=dict)
    display_name: str | None = None   # the input's name in outputs (the web app's upload name)
    # Bounds of a conversation file (None: unbounded); see lantern.predict.inputs.
    max_text_chars: int | None = DEFAULT_MAX_TEXT_CHARS
    max_utterances: int | None = DEFAULT_MAX_UTTERANCES
    max_input_bytes: int | None = DEFAULT_MAX_INPUT_BYTES
    media_paths: bool = True          # False (web app): refuse media paths inside the input
    system: str = "lantern"           # lantern | emotion-llama (see SYSTEMS)
    reason_tokens: int = 48           # emotion-llama: the reason's token cap

    def __post_init__(self):
        if self.system not in SYSTEMS:
            raise ConfigError(f"unknown system {self.system!r}; choose one of {', '.join(SYSTEMS)}")
        if not self.model:
            from lantern.predict.pretrained import default_model

            default_model(self.system)   # raises when this system ships no model
        if self.llm not in LLM_CHOICES:
            raise ConfigError(f"unknown llm {self.llm!r}; choose one of {', '.join(LLM_CHOICES)}")
        if self.llm == OPENAI and not self.base_url and "base_url" not in self.llm_options:
            raise ConfigError("llm 'openai' needs base_url (e.g. http://127.0.0.1:8080/v1)")
        if self.max_duration_s <= 0:
            raise ConfigError(f"max_duration_s must be positive, got {self.max_duration_s}")
        for name in ("max_text_chars", "max_utterances", "max_input_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ConfigError(f"{name} must be a positive whole number or None, got {value!r}")


@dataclass
class PredictResult:
    document: dict
    json_path: Path
    csv_path: Path
    report_path: Path | None


def make_llm(settings: PredictSettings):
    """The LLM the settings ask for (None when refinement is off)."""
    from lantern.llm import get_llm

    if settings.llm == LLM_OFF:
        return None
    options = dict(settings.llm_options)
    if settings.llm == OPENAI and settings.base_url:
        options["base_url"] = settings.base_url
    return get_llm(settings.llm, model=settings.llm_model, **options)


def check_llm(llm) -> None:
    """Fail fast (LLMError) when ``llm`` cannot answer: a server is asked once for its models;
    for the embedded backend (whose model file is checked when it is made) the llama.cpp
    runtime must import. Wrappers without either hook are trusted."""
    check = getattr(llm, "check_available", None)
    if callable(check):
        check()
    elif getattr(llm, "backend", None) == EMBEDDED and getattr(llm, "loaded", True) is False:
        from lantern.llm.embedded import import_llama_cpp
        import_llama_cpp()


def predict(input_path: str | Path, out_dir: str | Path, settings: PredictSettings | None = None,
            llm=None) -> PredictResult:
    """Predict the emotion of every utterance of ``input_path``; write JSON, CSV and report.

    ``llm``: an already open LLM to use instead of the one the settings name (the web app
    keeps one open across requests); it is not closed here. Either way it is checked before
    any other work (:func:`check_llm`). A failed run removes the WAVs it extracted; the
    outputs of an earlier run in ``out_dir`` stay as they were, unless it fails while writing
    its own, which leaves no ``manifest.json`` (see :mod:`lantern.predict.outputs`).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "talk.jsonl").write_text('{"speaker": "A", "text": "I am so happy!"}\\n')
    >>> r = predict(d / "talk.jsonl", d / "out", PredictSettings(llm="off", progress=False))
    >>> r.document["utterances"][0]["vanilla"]["label"] in r.document["classes"]
    True
    """
    from lantern.features.llm_embed import drop_prefetched
    from lantern.predict.outputs import build_document, render_outputs, write_outputs
    from lantern.predict.pretrained import default_model, load_bundle

    settings, out_dir = settings or PredictSettings(), Path(out_dir)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if settings.system in SYSTEM_MODEL:   # no refinement stage (context: the describer's LLM)
        from dataclasses import replace

        settings, llm = replace(settings, llm=LLM_OFF), None
    own_llm = llm is None and settings.llm != LLM_OFF
    if own_llm:
        llm = make_llm(settings)
    try:
        _prefetch(settings)   # the 1.5B feature model loads while torch does (load_bundle)
        if llm is not None:
            check_llm(llm)   # before hours of transcription and features, not after
        bundle = load_bundle(settings.model or default_model(settings.system))
        label_set, vad_scale, model_info = bundle.label_set, bundle.vad_scale, bundle.info()
        _check_system(bundle, settings)
        inp = _read_input(input_path, settings, out_dir, label_set)
        try:
            timings["transcription"] = inp.seconds
            if settings.system == "emotion-llama":
                _audio_of_videos(inp.dialogues)
            descriptions = None
            if settings.system == "context":
                from lantern.predict.context import describe_inputs

                timings["description"], descriptions = describe_inputs(inp, bundle, settings.llm_model)
            timings["features"], feature_stats = _timed(_features, inp.dialogues, bundle,
                                                        settings.progress, inp.kind)
            timings["vanilla"], rows = _timed(lambda: list(bundle.prediction_rows(inp.dialogues)))
            reasons = None
            if settings.system == "emotion-llama":
                timings["reasons"], reasons = _timed(_reasons, inp.dialogues, bundle, settings.reason_tokens)

            refined, llm_summary = None, None
            timings["llm"] = 0.0
            if settings.llm != LLM_OFF:
                timings["llm"], (refined, llm_summary) = _timed(
                    _refine, rows, label_set, settings, llm, model_info)

            document = build_document(rows, inp, label_set, vad_scale, model_info, refined,
                                      llm_summary, timings, settings.display_name or input_path,
                                      reasons=reasons, system=settings.system,
                                      descriptions=descriptions)
            document["features"] = feature_stats
            report_start = time.perf_counter()
            render_outputs(document, report=settings.report)   # timed; rendered again below
            timings["report"] = time.perf_counter() - report_start
            timings["total"] = time.perf_counter() - start
            document["timings"] = _timing_block(timings, len(rows))
            paths = write_outputs(document, out_dir, report=settings.report)
        except BaseException:
            inp.remove_work_files()   # a failed run leaves no extracted audio behind
            raise
    finally:
        drop_prefetched()   # a run that failed before its features leaves no model loaded
        if own_llm:
            llm.close()
    return PredictResult(document, *paths)


def _check_system(bundle, settings: PredictSettings) -> None:
    """An emotion-llama model goes with ``--system emotion-llama``, a context-qformer with
    ``--system context``, any other with lantern."""
    kind = bundle.model.model_type
    wanted = {v: k for k, v in SYSTEM_MODEL.items()}.get(kind, "lantern")
    if wanted != settings.system:
        raise ConfigError(f"{settings.model or 'the shipped model'} is a {kind!r} model; "
                          f"use --system {wanted}")


def _read_input(input_path, settings: PredictSettings, out_dir: Path, label_set):
    """Images for ``--system context``; a conversation, clips or a recording otherwise."""
    from lantern.predict.context import load_images
    from lantern.predict.inputs import load_input

    if settings.system == "context":
        return load_images(input_path, label_set, settings.max_utterances)
    return load_input(input_path, max_duration_s=settings.max_duration_s,
                      language=settings.language, task=settings.task, speaker=settings.speaker,
                      progress=settings.progress, workdir=out_dir / "work",
                      label_set=label_set.name, max_text_chars=settings.max_text_chars,
                      max_utterances=settings.max_utterances,
                      max_input_bytes=settings.max_input_bytes, media_paths=settings.media_paths)


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def _prefetch(settings: PredictSettings) -> None:
    """Start loading the embedded-LLM feature models of the model to be used (a
    ``text:qwen-dialogue`` model reads every turn with the 1.5B model), so that the load
    overlaps importing torch and loading the rest; :func:`predict` closes what was not used."""
    from lantern.features import prefetch_extractors
    from lantern.models.bundle import read_metadata
    from lantern.predict.pretrained import default_model, model_dir

    meta = read_metadata(model_dir(settings.model or default_model(settings.system)))
    names = list(((meta.get("feature_spec") or {}).get("modalities") or {}).values())
    prefetch_extractors(names, meta.get("feature_options") or {})


def _features(dialogues, bundle, progress: bool, kind: str = "conversation") -> dict:
    from lantern.features import attach_features
    from lantern.features.llm_embed import drop_prefetched

    from lantern.features.normalise import normalise_for_model

    names = bundle.feature_names
    optional = [bundle.spec.modalities[m] for m in bundle.spec.optional]   # a clip may lack these
    options = bundle.feature_options_for(names)
    if kind == "recording":   # the segments share one WAV: each reads its own [start, end]
        options = _segment_options(names, options)
    stats = attach_features(dialogues, names, options=options, progress=progress, optional=optional)
    drop_prefetched()   # a model whose inputs were all cached was never taken over
    normalise_for_model(bundle.spec, [u for d in dialogues for u in d.utterances])
    return stats


def _segment_options(names, options: dict) -> dict:
    """``segment=True`` for the audio extractors that can cut a segment out of a file."""
    import inspect

    from lantern.features import FEATURES

    out = {k: dict(v) for k, v in options.items()}
    for name in names:
        try:
            takes = "segment" in inspect.signature(FEATURES.get(name)).parameters
        except (TypeError, ValueError):
            takes = False
        if takes:
            out.setdefault(name, {})["segment"] = True
    return out


def _audio_of_videos(dialogues) -> None:
    """A video's audio features read the 16 kHz track extracted from it (``meta["wav"]``)."""
    for d in dialogues:
        for u in d.utterances:
            if "audio" not in u.media and u.meta.get("wav"):
                u.media["audio"] = u.meta["wav"]


def _reasons(dialogues, bundle, max_tokens: int) -> dict:
    from lantern.models.emotion_llama import explain_dialogues   # torch loads only for this system

    return explain_dialogues(bundle, dialogues, max_tokens)


def _refine(rows: list[PredictionRow], label_set, settings: PredictSettings, llm,
            model_info: dict | None = None):
    """LLM answers for every receptive field, merged per utterance by the merger shipped for
    this vanilla model and LLM (:mod:`.merger`), else by the mean over its fields (the
    ``uniform`` merger). ``llm`` is open and stays open (the caller closes what it opened)."""
    from dataclasses import replace

    from lantern.fusion import make_merger
    from lantern.fusion.inputs import FusionInputs
    from lantern.llm.cache import LLMCache
    from lantern.predict.merger import find_shipped_merger
    from lantern.records import group_answers
    from lantern.refine import RefineSettings, refine

    with LLMCache(settings.llm_cache) as cache:
        records, summary = refine(
            rows, list(label_set.classes), llm,
            RefineSettings(window=settings.window, stride=settings.stride,
                           include_vad=settings.include_vad),
            label_set.descriptions, cache, settings.progress)
    summary.update(backend=settings.llm, model_id=llm.model_id)
    grouped = group_answers(records)
    shipped = None
    if model_info and settings.include_vad:
        shipped = find_shipped_merger(model_info["path"], llm, summary["answer"], settings.window,
                                      settings.stride)
    # Gold labels play no part in merging (and a user's file may name classes the model lacks).
    inputs = FusionInputs.from_records([replace(r, label=None) for r in rows], grouped,
                                       classes=list(label_set.classes))
    if shipped is not None:
        fused = shipped.fuse(inputs)
        summary["merger"] = shipped.describe()
    else:
        fused = make_merger("uniform").predict_proba(inputs)
        summary["merger"] = {"name": "mean of the fields' answers", "type": "uniform",
                             "why": "no merger is shipped for this vanilla model, LLM and settings"}
    refined = {}
    for row, probs in zip(rows, fused):
        recs = grouped[row.key]
        refined[row.key] = {"probs": dict(zip(label_set.classes, probs.tolist())),
                            "fields": len(recs), "valid_fields": sum(r.valid for r in recs)}
    return refined, summary


def _timing_block(timings: dict[str, float], n: int) -> dict:
    block: dict[str, Any] = {k: round(v, 4) for k, v in timings.items()}
    block["utterances"] = n
    block["seconds_per_utterance"] = {k: round(v / max(n, 1), 4) for k, v in timings.items()}
    return block

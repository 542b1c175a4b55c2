"""MERR-lite annotation (Emotion-LLaMA's MERR pipeline, offline): per clip the AU timeline, the
peak frame and its AU phrases, a tone phrase from prosody, the transcript, a coarse caption
from a template, and a fine-grained reason written by an LLM given the clues *and the label*,
with refusals and contradictions filtered out.

What cannot be done offline is said in the output, not faked: no vision-language model exists
in any registry package, so ``visual_description`` is None with a note; a clip without video
(RAVDESS speech) has empty AU lists and says so.

Output (:func:`annotate`): ``annotations.jsonl`` under the output folder, one
:class:`ClipAnnotation` per line, appended and flushed as each clip finishes, so an interrupted
run resumes where it stopped (finished clips are skipped; LLM answers are cached as well);
then ``merr.json`` (the MERR layout: an object keyed by clip name) and ``summary.json``
(counts, seconds per clip, LLM tokens, filter counts), both written atomically.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lantern.features.action_units import AUTimeline, au_phrases, au_scores, pseudo_label
from lantern.annotate.tone import ProsodyNorms, prosody_of, tone_phrases
from lantern.paths import atomic_write_text

#: bump when the clues, the caption template or the reason prompt change
PROMPT_VERSION = 1
NO_VLM = ("no vision-language model is available offline (none exists in any registry "
          "package), so no visual description was written")
REASON_CHARS = 400
_REFUSAL = re.compile(r"\b(i cannot|i can't|i am unable|i'm unable|as an ai|i'm sorry|i am sorry|"
                      r"cannot determine|not possible to)\b", re.I)


@dataclass
class ClipAnnotation:
    """One clip in the MERR layout (``AU_list`` ... ``text``) plus what lantern adds: the
    label given to the reason writer, the notes on what was missing, the reason's status."""

    name: str
    text: str
    label: str | None
    AU_list: list[str] = field(default_factory=list)
    visual_prior_list: list[str] = field(default_factory=list)
    audio_prior_list: list[str] = field(default_factory=list)
    peak_index: int | None = None
    peak_AU_list: list[str] = field(default_factory=list)
    pseu_emotion: str | None = None
    caption: str = ""
    smp_reason_caption: str | None = None
    visual_description: str | None = None
    reason_status: str = "skipped"    # ok | refusal | contradiction | failed | skipped
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    prompt_version: int = PROMPT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClipAnnotation":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def coarse_caption(label: str | None, visual: Sequence[str], tone: Sequence[str], text: str,
                   has_video: bool) -> str:
    """MERR's coarse template.

    >>> coarse_caption("angry", [], ["loud"], "Dogs are sitting by the door.", False)
    'This person in the video is angry; expression and actions include: no video (audio only); the tone is loud; saying: "Dogs are sitting by the door."'
    """
    who = f"This person in the video is {label}" if label else "This person in the video"
    if visual:
        seen = ", ".join(visual)
    else:
        seen = "no face found" if has_video else "no video (audio only)"
    said = f'; saying: "{text.strip()}"' if text.strip() else ""
    return f"{who}; expression and actions include: {seen}; the tone is {', '.join(tone)}{said}"


def clue_text(ann: ClipAnnotation) -> str:
    """A clip's clues as the reason writer and the reason judge read them."""
    if ann.visual_prior_list:
        face = ", ".join(ann.visual_prior_list)
    else:
        face = "no face found" if ann.peak_index is None and ann.AU_list == [] and any(
            n.startswith("video:") for n in ann.notes) else "not visible (audio only)"
    return (f"Facial expression at the peak frame: {face}.\n"
            f"Tone of voice: {', '.join(ann.audio_prior_list)}.\n"
            f'Words spoken: "{ann.text.strip()}"')


def reason_messages(ann: ClipAnnotation, label: str) -> list[dict[str, str]]:
    """The reason writer's prompt: the clues and the label (MERR gives the LLM both)."""
    clues = clue_text(ann)
    return [
        {"role": "system", "content": "You explain emotions in short video clips from the clues "
                                      "you are given. Answer in JSON."},
        {"role": "user", "content": f"{clues}\nThe person's emotion is: {label}.\n"
                                    f"In one or two sentences, explain how these clues show that "
                                    f"the person is {label}. Use only the clues above."},
    ]


#: word forms of label words that the regular endings below do not give
_IRREGULAR = {"angry": {"anger", "angrily", "mad"}, "anger": {"angry", "angrily", "mad"},
              "happy": {"happiness", "happily", "joy", "joyful"}, "fearful": {"fear", "afraid", "scared"},
              "fear": {"fearful", "afraid", "scared"}, "surprised": {"surprise"}, "surprise": {"surprised"},
              "disgust": {"disgusted"}, "sad": {"sadness", "sadly"}, "worried": {"worry", "worries"}}


def label_forms(label: str) -> set[str]:
    """Whole-word forms of a label word (``angry``: angry, anger, angrily, mad, ...).

    >>> sorted(label_forms("sad"))
    ['sad', 'sadly', 'sadness']
    """
    w = label.lower()
    forms = {w, w + "ness", w + "ly"}
    if w.endswith("y"):
        forms |= {w[:-1] + "iness", w[:-1] + "ily"}
    return forms | _IRREGULAR.get(w, set())   # a few non-words (angryly) never match: harmless


def check_reason(reason: str, label: str, other_labels: Sequence[str]) -> str:
    """``ok``, ``refusal`` (the writer declined) or ``contradiction`` (it names another
    class of the label set and never the given one). A filter on text the LLM wrote for a
    label it was given, not a way of reading labels."""
    if not reason.strip() or _REFUSAL.search(reason):
        return "refusal"
    words = set(re.findall(r"[a-z]+", reason.lower()))

    def mentions(name: str) -> bool:
        return bool(label_forms(name) & words)

    if not mentions(label) and any(mentions(o) for o in other_labels
                                   if label_forms(o) & label_forms(label) == set()):
        return "contradiction"
    return "ok"


def _reason_schema():
    from pydantic import BaseModel, Field

    class Reason(BaseModel):
        reason: str = Field(max_length=REASON_CHARS)

    return Reason


def _norms(prosody: np.ndarray, speakers: list[str], min_clips: int = 4) -> tuple[dict, ProsodyNorms]:
    """Per-speaker norms for speakers with at least ``min_clips`` clips, and corpus norms."""
    corpus = ProsodyNorms.fit(prosody)
    per = {}
    for s in set(speakers):
        rows = prosody[[i for i, x in enumerate(speakers) if x == s]]
        if len(rows) >= min_clips:
            per[s] = ProsodyNorms.fit(rows)
    return per, corpus


def _timeline(face, video: Path, uid: str) -> AUTimeline:
    from lantern.features.face import BLENDSHAPES

    frames = face._read_video_frames(video, uid)
    timeline = AUTimeline()
    for frame in frames:
        vec = face.analyze_image(frame)
        timeline.frames.append(None if vec is None else au_scores(dict(zip(BLENDSHAPES, vec[:len(BLENDSHAPES)]))))
    return timeline


def read_done(path: Path, prompt_version: int = PROMPT_VERSION) -> dict[str, ClipAnnotation]:
    """Finished clips of an earlier run with this prompt version. A line torn by a kill
    mid-write (even inside a multi-byte character) is cut off the file, so the next record
    starts on a line of its own; records of another prompt version are redone."""
    done: dict[str, ClipAnnotation] = {}
    if not path.exists():
        return done
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]      # drop the torn tail
        with open(path, "r+b") as f:
            f.truncate(len(data))
    for raw in data.splitlines():
        try:
            record = json.loads(raw.decode("utf-8"))
            ann = ClipAnnotation.from_dict(record)
        except (ValueError, TypeError):
            continue
        if record.get("prompt_version") == prompt_version:
            done[ann.name] = ann
    return done


def _clues(u, label: str | None, extractor, norms: ProsodyNorms | None,
           corpus: ProsodyNorms | None) -> ClipAnnotation:
    """One clip's clues and coarse caption (everything but the LLM's reason)."""
    ann = ClipAnnotation(u.id, u.text or "", label)
    video = u.media.get("video")
    if video and extractor is not None:
        timeline = _timeline(extractor, Path(video), u.id)
        ann.AU_list = timeline.frequent()
        ann.peak_index = timeline.peak_index()
        if ann.peak_index is None:
            ann.notes.append("video: no face found in any sampled frame")
        else:
            ann.peak_AU_list = timeline.active_at(ann.peak_index)
            ann.visual_prior_list = au_phrases(ann.peak_AU_list)
            ann.pseu_emotion = pseudo_label(set(ann.peak_AU_list))
    else:
        ann.notes.append("no video: no action units (audio only)")
    if u.media.get("audio"):
        if norms is None:
            ann.notes.append(f"tone against the corpus norms ({corpus.n} clips): "
                             f"fewer than 4 clips of speaker {u.speaker}")
        ann.audio_prior_list = tone_phrases(prosody_of(u.features["audio:egemaps"]), norms or corpus)
    else:
        ann.audio_prior_list = ["unknown (no audio)"]
    ann.notes.append(NO_VLM)
    ann.caption = coarse_caption(label or ann.pseu_emotion, ann.visual_prior_list,
                                 ann.audio_prior_list, ann.text, bool(video))
    return ann


def annotate(utterances: Sequence, label_names: Sequence[str | None], out_dir: str | Path, *,
             classes: Sequence[str] = (), llm=None, cache=None, face: bool = True,
             progress: bool = True) -> dict[str, Any]:
    """Annotate ``utterances`` (each with ``media["audio"]`` and/or ``media["video"]``);
    ``label_names`` holds each clip's label word (None: unknown; then the AU pseudo-label is
    given to the reason writer, or no reason is written). ``llm``: the reason writer (None:
    captions only). Returns the summary."""
    from tqdm import tqdm

    from lantern.features import attach_features

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = out_dir / "annotations.jsonl"
    done = read_done(lines)
    todo = [(u, lab) for u, lab in zip(utterances, label_names) if u.id not in done]
    audio = [u for u in utterances if u.media.get("audio")]
    norms_by, corpus = {}, None
    if audio:   # prosody norms over every clip of the run, finished or not (the same norms on resume)
        attach_features(audio, ["audio:egemaps"], progress=progress)
        prosody = prosody_of(np.stack([u.features["audio:egemaps"] for u in audio]))
        norms_by, corpus = _norms(prosody, [u.speaker for u in audio])
    extractor = None
    if face and any(u.media.get("video") for u, _ in todo):
        from lantern.features.face import FaceExtractor

        extractor = FaceExtractor(fps=4.0, max_frames=24)
    stats = {"refusal": 0, "contradiction": 0, "failed": 0, "ok": 0, "skipped": 0}
    tokens = {"prompt": 0, "completion": 0, "llm_seconds": 0.0, "cache_hits": 0}
    t_run = time.perf_counter()
    with open(lines, "a", encoding="utf-8") as sink:
        for u, label in tqdm(todo, desc="annotate", unit="clip", disable=not progress):
            t0 = time.perf_counter()
            ann = _clues(u, label, extractor, norms_by.get(u.speaker), corpus)
            given = label or ann.pseu_emotion
            if llm is not None and given:
                ann.reason_status = _write_reason(ann, given, classes, llm, cache, tokens)
            stats[ann.reason_status] += 1
            ann.seconds = round(time.perf_counter() - t0, 3)
            sink.write(json.dumps(ann.to_dict(), ensure_ascii=False) + "\n")
            sink.flush()
            done[ann.name] = ann
    if extractor is not None:
        extractor.close()
    order = [u.id for u in utterances]
    merr = {name: {k: v for k, v in done[name].to_dict().items() if k != "name"} for name in order}
    atomic_write_text(out_dir / "merr.json", json.dumps(merr, indent=1, ensure_ascii=False))
    seconds = [done[n].seconds for n in order]
    summary = {"clips": len(order), "annotated_now": len(todo), "resumed": len(order) - len(todo),
               "reasons": {k: sum(done[n].reason_status == k for n in order) for k in stats},
               "seconds_per_clip": round(float(np.mean(seconds)), 3) if seconds else None,
               "run_seconds": round(time.perf_counter() - t_run, 3), "llm": tokens,
               "llm_model": getattr(llm, "model_id", None), "prompt_version": PROMPT_VERSION,
               "visual_description": NO_VLM}
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


def _write_reason(ann: ClipAnnotation, label: str, classes: Sequence[str], llm, cache, tokens) -> str:
    from lantern.llm.structured import structured_chat

    parsed, call = structured_chat(llm, reason_messages(ann, label), _reason_schema(), cache=cache,
                                   template_hash=f"merr-reason-v{PROMPT_VERSION}", max_tokens=200,
                                   max_length=REASON_CHARS)
    tokens["prompt"] += call.prompt_tokens
    tokens["completion"] += call.completion_tokens
    tokens["llm_seconds"] = round(tokens["llm_seconds"] + call.seconds, 3)
    tokens["cache_hits"] += call.cache_hits
    if parsed is None:
        return "failed"
    status = check_reason(parsed.reason, label, classes)
    if status == "ok":
        ann.smp_reason_caption = parsed.reason.strip()
    return status


__all__ = ["ClipAnnotation", "annotate", "clue_text", "coarse_caption", "check_reason", "reason_messages",
           "read_done", "PROMPT_VERSION", "NO_VLM"]

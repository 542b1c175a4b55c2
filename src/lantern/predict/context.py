"""``lantern predict --system context IMAGE|FOLDER``: context descriptions (issue #13).

Each image becomes one utterance whose text is its description, written by the describer
the model was trained with (its saved ``text_source``: the offline ``observations``
describer with the ``template`` or ``llm`` writer); the ``context-qformer`` model then reads
the description's tokens and the image's patch tokens. The document gives every utterance
its ``description`` beside the label and probabilities, and the report shows it.
"""

from __future__ import annotations

import time
from pathlib import Path

from lantern.data.dialogues import Dialogue, Utterance
from lantern.errors import ConfigError, DataError
from lantern.features.images import IMAGE_SUFFIXES

__all__ = ["load_images", "describe_inputs", "describer_for"]


def load_images(path: str | Path, label_set, max_images: int | None = None):
    """An image file or a folder of images as a :class:`~lantern.predict.inputs.PredictInput`
    of kind ``images`` (one dialogue, an utterance per image, in name order)."""
    from lantern.predict.inputs import PredictInput, natural_key

    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: natural_key(p.name))
        if not files:
            raise DataError(f"no images in this folder (supported: {' '.join(IMAGE_SUFFIXES)})", path=path)
    elif path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"--system context reads images ({' '.join(IMAGE_SUFFIXES)})", path=path)
        files = [path]
    else:
        raise DataError("input not found: give an image or a folder of images", path=path)
    if max_images is not None and len(files) > max_images:
        raise DataError(f"{len(files)} images; at most {max_images} (raise max_utterances)", path=path)
    name = path.resolve().stem or "images"
    utterances = [Utterance(f"{name}_{i}", "image", "", media={"image": str(f.resolve())},
                            meta={"file": f.name}) for i, f in enumerate(files)]
    return PredictInput(path, "images", [Dialogue(name, utterances, "test")], label_set)


def describer_for(bundle, llm_model: str | None = None):
    """The describer a context model's training texts came from (its ``text_source``)."""
    from lantern.describe.describers import ObservationsDescriber

    source = bundle.text_source or {}
    describers, writers = source.get("describers") or [], source.get("writers") or []
    if describers != ["observations"] or len(writers) != 1:
        raise ConfigError(f"{bundle.directory}: this model was trained on descriptions by "
                          f"{describers or 'no describer'} (writers {writers}); predict can write "
                          "them only with the offline observations describer and one writer")
    return ObservationsDescriber(model=llm_model, writer=writers[0])


def describe_inputs(inp, bundle, llm_model: str | None = None) -> tuple[float, dict]:
    """Describe every image of ``inp`` (cached like ``lantern describe``), set each utterance's
    text to its description; return (seconds, {(dialogue id, utterance id): description})."""
    from lantern.describe.describers import describe_images
    from lantern.llm.cache import LLMCache

    t0 = time.perf_counter()
    utterances = [(d.id, u) for d in inp.dialogues for u in d.utterances]
    describer = describer_for(bundle, llm_model)
    try:
        with LLMCache() as cache:
            describer.cache = cache
            out = describe_images([u.media["image"] for _, u in utterances], describer,
                                  list(bundle.label_set.classes), cache=cache)
    finally:
        describer.close()
    found = {}
    for (dialogue_id, u), d in zip(utterances, out):
        if d.status != "ok":
            raise DataError("the describer gave no usable description", path=u.media["image"])
        u.text = d.text
        found[(dialogue_id, u.id)] = {"text": d.text, "describer": d.describer, "notes": d.notes,
                                      "prompt_tokens": d.prompt_tokens,
                                      "completion_tokens": d.completion_tokens, "cached": d.cached}
    return time.perf_counter() - t0, found

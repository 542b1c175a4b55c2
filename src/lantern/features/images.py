"""Reading an image for a describer or an image encoder, with a clear error or a stated
fallback for bad input.

- unreadable or not an image: :class:`DataError` naming the file;
- more than :data:`MAX_PIXELS` pixels (a 20000x20000 image, a decompression bomb): refused
  before decoding;
- CMYK, palette, 16-bit or grey: converted to RGB (stated in ``notes``);
- animated (GIF, WebP, APNG): the first frame is used (stated);
- smaller than :data:`MIN_SIDE` on a side (a 1x1 pixel): used, but stated, since no face or
  object can be seen in it.

>>> from PIL import Image
>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "cmyk.jpg")
>>> Image.new("CMYK", (40, 30)).save(p)
>>> img, notes = load_image(p)
>>> img.mode, img.size, notes
('RGB', (40, 30), ['converted from CMYK to RGB'])
"""

from __future__ import annotations

from pathlib import Path

from lantern.errors import DataError

#: the image files a folder input is read for (lantern describe, predict --system context)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 40_000_000      # 40 MP: bigger than any camera photo a user uploads, far below a bomb
MIN_SIDE = 16


def image_sha256(path: str | Path) -> str:
    from lantern.llm import sha256_file

    path = Path(path)
    if not path.is_file():
        raise DataError("image not found", path=path, field="image")
    return sha256_file(path)


def load_image(path: str | Path):
    """``(RGB PIL image, notes)``; see the module docstring for what is refused or converted."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError("image not found", path=path, field="image")
    notes: list[str] = []
    try:
        with Image.open(path) as probe:          # reads the header only
            w, h = probe.size
            if w * h > MAX_PIXELS:
                raise DataError(f"image of {w}x{h} pixels; at most {MAX_PIXELS // 1_000_000} MP",
                                path=path, field="image")
            frames = getattr(probe, "n_frames", 1)
            if frames > 1:
                notes.append(f"animated image ({frames} frames): the first frame was used")
                probe.seek(0)
            mode = probe.mode
            img = probe.convert("RGB") if mode != "RGB" else probe.copy()
    except DataError:
        raise
    except Image.DecompressionBombError as exc:   # PIL refuses > 179 MP at open already
        raise DataError(f"image too large ({exc}); at most {MAX_PIXELS // 1_000_000} MP",
                        path=path, field="image") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read the image ({exc.__class__.__name__}: {exc})", path=path,
                        field="image") from None
    if mode != "RGB":
        notes.append(f"converted from {mode} to RGB")
    if min(img.size) < MIN_SIDE:
        notes.append(f"tiny image ({img.size[0]}x{img.size[1]}): nothing in it can be recognised")
    return img, notes


def draw_box(img, box, width: int = 3):
    """A copy of ``img`` with ``box`` (x1, y1, x2, y2) drawn in red, as the paper shows the
    subject to the vision-language model."""
    from PIL import ImageDraw

    out = img.copy()
    ImageDraw.Draw(out).rectangle([float(v) for v in box], outline=(255, 0, 0), width=width)
    return out


__all__ = ["load_image", "draw_box", "image_sha256", "MAX_PIXELS", "MIN_SIDE"]

"""One fixed colour per class, used everywhere on the page, and the few non-class colours.

Classes take the colour-blind-friendly Okabe-Ito palette (then Paul Tol's muted one, then
golden-angle hues); the chart lines and the confusion-matrix shading use inks that can never
be mistaken for a class.
"""

from __future__ import annotations

import colorsys
from typing import Sequence

# Okabe & Ito (2008), the colour-blind-safe qualitative palette, plus its grey.
_OKABE_ITO = {"orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
              "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#999999"}
# Paul Tol's muted palette, for label sets with more than eight classes.
_EXTRA = ("#882255", "#44AA99", "#332288", "#999933", "#AA4499", "#117733", "#DDCC77", "#88CCEE")
# Emotions get a colour that suits them where the palette allows (first free one wins).
_PREFERRED = {
    **dict.fromkeys(("hap", "happy", "happiness", "joy", "joyful"), ("orange", "yellow")),
    **dict.fromkeys(("exc", "excited", "excitement"), ("yellow", "orange")),
    **dict.fromkeys(("surprise", "surprised"), ("sky", "yellow")),
    **dict.fromkeys(("sad", "sadness"), ("blue", "sky")),
    **dict.fromkeys(("neu", "neutral"), ("grey",)),
    **dict.fromkeys(("ang", "anger", "angry", "mad"), ("vermillion",)),
    **dict.fromkeys(("fru", "frustrated", "frustration"), ("purple",)),
    **dict.fromkeys(("disgust", "disgusted"), ("purple", "green")),
    **dict.fromkeys(("fear", "scared", "afraid", "fearful"), ("green", "sky")),
    **dict.fromkeys(("peaceful", "calm", "relaxed"), ("green", "sky")),
    **dict.fromkeys(("powerful", "proud"), ("yellow", "sky")),
}
UNKNOWN_COLOR = "#FFFFFF"          # a label that is not one of `classes`
VALENCE_COLOR = "#111827"          # line colours: ink, so they never read as a class
AROUSAL_COLOR = "#6B7280"
HEAT_RGB = (67, 56, 202)           # confusion-matrix shading (indigo, not a class colour)


def class_colors(classes: Sequence[str]) -> dict[str, str]:
    """One distinct ``#RRGGBB`` colour per class, deterministic for a given class list.

    Known emotions keep a fitting Okabe-Ito colour (neutral grey, sad blue, angry
    vermillion, ...); other classes take the free palette colours in order.

    >>> class_colors(["hap", "sad", "neu", "ang", "exc", "fru"])["neu"]
    '#999999'
    >>> len(set(class_colors([f"class{i}" for i in range(20)]).values()))
    20
    """
    names = [str(c) for c in classes]
    colors: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:                                   # pass 1: fitting colours
        for pref in _PREFERRED.get(name.lower(), ()):
            col = _OKABE_ITO[pref]
            if col not in taken:
                colors[name] = col
                taken.add(col)
                break
    pool = [c for c in (*_OKABE_ITO.values(), *_EXTRA) if c not in taken]
    extra = 0
    for name in names:                                   # pass 2: the rest, in palette order
        if name in colors:
            continue
        if pool:
            col = pool.pop(0)
        else:                                            # beyond 16 classes: golden-angle hues
            while True:
                r, g, b = colorsys.hls_to_rgb((extra * 0.618034) % 1.0, 0.55, 0.55)
                extra += 1
                col = f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"
                if col not in taken:
                    break
        colors[name] = col
        taken.add(col)
    return colors


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _luminance(hex_color: str) -> float:
    def lin(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = _rgb(hex_color)
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def text_on(hex_color: str) -> str:
    """Black or white text, whichever contrasts more with the background (WCAG ratio)."""
    lum = _luminance(hex_color)
    return "#111111" if (lum + 0.05) / (0.0056 + 0.05) >= 1.05 / (lum + 0.05) else "#FFFFFF"

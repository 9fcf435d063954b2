"""Characters of other scripts drawn from pen strokes: the closest stand-in for CROSR's Omniglot
("Characters") that can be obtained here. Evaluation only: no glyph source ever enters training.

The glyphs are the vector strokes of the Hershey fonts (PyPI `hershey-fonts`): Greek, Cyrillic,
Japanese kana and kanji, script and gothic Latin, and astrological symbols. Each image is drawn the way
a pen draws: the stroke points jittered a little, the glyph turned by up to 10 degrees, the strokes
drawn with a round pen whose width is MNIST-like (1.5-2.5 px once the glyph is fitted), then put in
MNIST form (`mnist_style`). Image i comes from `numpy.random.default_rng([seed, i])` and glyph
i mod n, so a smaller count is a prefix of a larger one.

Glyphs drawn like a digit are marked (`DIGIT_LIKE`) and reported apart, as for the letters.
"""
from __future__ import annotations

import math
import string
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from .cli import UserError
from .generated import image_rng
from .letters import DIGIT_LIKE as LATIN_DIGIT_LIKE
from .mnist_style import BOX, normalise_ink

LATIN = string.ascii_uppercase + string.ascii_lowercase
# Font -> (script, the character slots used). Slots are ASCII characters; each font maps them to its own
# glyphs. Digit slots are never used where they hold digits; slots holding a marker or a placeholder
# (filled shapes, the diamonds of the Japanese font) are left out.
FONTS = {
    "greek": ("Greek", "ABCDEFGHIKLMNOPQRSTUWXYZabcdefghiklmnopqrstuwxyz"),   # J V j v: markers, not letters
    "greekc": ("Greek", "ABCDEFGHIJKLMNOPQRSTUVWXabcdefghijklmnopqrstuvwx"),
    "cyrillic": ("Cyrillic", LATIN),
    "cyrilc_1": ("Cyrillic", LATIN),
    "japanese": ("Japanese", "\"#$%&'()*+,-./0123456789:" + string.ascii_uppercase + "[\\]^_`abcdefghijklmnopqrs"
                 + "xyz{|}~"),
    "scripts": ("script Latin", LATIN),
    "scriptc": ("script Latin", LATIN),
    "gothiceng": ("gothic Latin", LATIN),
    "gothicger": ("gothic Latin", LATIN),
    "gothicita": ("gothic Latin", LATIN),
    "astrology": ("astrological symbols", "#$%&'*+-/:;<>?@[]^_`{|}~"),
}
# (font, slot) -> the digit it is drawn like. The criterion is the letters' one (letters.DIGIT_LIKE): a
# glyph whose handwritten strokes are those of a digit: a closed oval (0), a single upright stroke (1), a
# zig-zag (2), two bowls open to the left (3), an open or crossed 4-shape (4), an S-curve (5), a loop under
# a rising stem (6), a bar over a stem (7), two stacked loops (8), a loop over a descending tail (9).
# Latin fonts inherit the letters' table by slot; the others were marked by looking at every glyph.
DIGIT_LIKE: dict[tuple[str, str], str] = {
    **{("greek", s): d for s, d in {"O": "0", "Q": "0", "I": "1", "Z": "2", "B": "8",
                                    "o": "0", "i": "1", "d": "6", "b": "8"}.items()},
    **{("greekc", s): d for s, d in {"B": "8", "F": "2", "H": "0", "I": "1", "O": "0",
                                     "b": "8", "d": "6", "i": "1", "o": "0"}.items()},
    # cyrillic: C/c Э э, J/j Ч ч, Z/z З з; cyrilc_1: C/c В в, H/h З з, X/x Ч ч.
    **{("cyrillic", s): d for s, d in {"B": "6", "C": "3", "J": "4", "O": "0", "Z": "3",
                                       "b": "6", "c": "3", "j": "4", "o": "0", "z": "3"}.items()},
    **{("cyrilc_1", s): d for s, d in {"B": "6", "C": "8", "H": "3", "O": "0", "X": "4",
                                       "b": "6", "c": "8", "h": "3", "o": "0", "x": "4"}.items()},
    # japanese: Q ち, i ら (S-curves), k る, m ろ (bowls open to the left).
    **{("japanese", s): d for s, d in {"Q": "5", "i": "5", "k": "3", "m": "3"}.items()},
    # astrology: # the Sun and & the Earth (circles), * Jupiter (a 4).
    **{("astrology", s): d for s, d in {"#": "0", "&": "0", "*": "4"}.items()},
    **{(font, s): d for font, (script, _) in FONTS.items() if script.endswith("Latin")
       for s, d in LATIN_DIGIT_LIKE.items()},
}
GLYPHS = [(font, slot) for font, (_, slots) in FONTS.items() for slot in slots]
PEN_WIDTH = (1.5, 2.5)   # px, once the glyph's longer side is 20 px (MNIST's box)
JITTER = 0.012           # std of the stroke-point jitter, as a fraction of the glyph's longer side
MAX_DEGREES = 10.0
CANVAS = 200             # the glyph's longer side while drawing, px


@lru_cache(maxsize=None)
def font_strokes(font: str) -> dict[str, tuple]:
    """slot -> the pen strokes of its glyph in `font` (font units, y down), for the slots FONTS uses."""
    try:
        from HersheyFonts import HersheyFonts
    except ImportError as err:
        raise UserError("the characters set needs the package hershey-fonts (pip install hershey-fonts)") from err
    reader = HersheyFonts()
    reader.load_default_font(font)  # decompresses the font: done once per font
    glyphs = {}
    for slot in FONTS[font][1]:
        strokes = tuple(tuple((float(x), float(y)) for x, y in s) for s in reader.strokes_for_text(slot))
        if not any(strokes):
            raise ValueError(f"Hershey font {font!r} has no glyph at {slot!r}")
        glyphs[slot] = strokes
    return glyphs


def draw(strokes, rng: np.random.Generator) -> np.ndarray:
    """Pen strokes -> uint8 (28, 28) in MNIST form, with this image's jitter, turn and pen width."""
    points = np.concatenate([np.asarray(s) for s in strokes])
    low, high = points.min(0), points.max(0)
    extent = max(float((high - low).max()), 1e-6)
    angle = math.radians(rng.uniform(-MAX_DEGREES, MAX_DEGREES))
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pen = rng.uniform(*PEN_WIDTH) * CANVAS / BOX
    margin = pen + 4
    scale = CANVAS / extent
    side = int(CANVAS * 1.5 + 2 * margin)
    canvas = Image.new("L", (side, side), 0)
    ink = ImageDraw.Draw(canvas)
    centre = (low + high) / 2
    for stroke in strokes:
        p = np.asarray(stroke) + rng.normal(0, JITTER * extent, (len(stroke), 2))
        p = (p - centre) @ turn.T * scale + side / 2
        xy = [tuple(q) for q in p]
        if len(xy) > 1:
            ink.line(xy, fill=255, width=max(1, round(pen)), joint="curve")
        for x, y in xy:  # round caps and joints
            ink.ellipse([x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2], fill=255)
    return normalise_ink(canvas)


def generate(count: int, seed: int, indices=None) -> list[dict]:
    """`count` characters cycling through GLYPHS (or those of `indices`, in their order); each a record with its
    uint8 (28, 28) "image"."""
    samples = []
    for index in (range(count) if indices is None else indices):
        font, slot = GLYPHS[index % len(GLYPHS)]
        looks_like = DIGIT_LIKE.get((font, slot), "")
        samples.append({"index": index, "font": font, "script": FONTS[font][0], "slot": slot,
                        "digit_like": bool(looks_like), "looks_like": looks_like,
                        "image": draw(font_strokes(font)[slot], image_rng(seed, index))})
    return samples

"""Synthetic letters A-Z and a-z, rendered and normalised the way MNIST's digits were.

Each glyph is drawn white on black on a large canvas (font, size, stroke width and a small
rotation drawn at random), then put in MNIST form (`mnist_style`: cropped to its ink, fitted into
20x20 with the aspect kept, centred by mass in 28x28).

Every random choice for image `i` comes from `numpy.random.default_rng([seed, i])`, as for the
other generated sets in `data.py`: the same seed and fonts give byte-identical images, and a
smaller `count` gives a prefix of a larger one.
"""
from __future__ import annotations

import csv
import io
import logging
import string
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from .cli import UserError
from .generated import image_rng
from .io import csv_text
from .mnist_style import SIDE, normalise_ink

log = logging.getLogger("osr")

LETTERS = string.ascii_uppercase + string.ascii_lowercase
DEFAULT_FONT = "pillow-default"  # Pillow's bundled FreeType font, present wherever Pillow is
SYSTEM_FONT_ROOT = Path("/usr/share/fonts")
# DejaVu variants that add little beyond their siblings (condensed widths, mono weights) or are
# not a text face (the maths font); what is left is ~10 faces spanning sans/serif/mono,
# light/regular/bold and upright/slanted.
_SKIPPED_DEJAVU = ("Condensed", "MathTeXGyre", "Display", "SansMono-")

MANIFEST_FILE = "manifest.csv"
MANIFEST_COLUMNS = ("file", "char", "case", "font", "digit_like", "looks_like")

# Glyphs that in common fonts are drawn with the same strokes as a digit, so that a digit
# classifier could fairly take them for it: a closed oval (0), a single upright stroke (1), a
# zig-zag (2), an S-curve (5), a loop under a rising stem (6), a loop over a descending tail (9),
# two stacked bowls (8), a cross-barred apex (4), a bar over a stem (7). Results are reported both
# with and without them, since calling them "unknown" is arguable.
DIGIT_LIKE: dict[str, str] = {
    "O": "0", "o": "0", "D": "0", "Q": "0",
    "I": "1", "l": "1", "i": "1", "j": "1",
    "Z": "2", "z": "2",
    "A": "4",
    "S": "5", "s": "5",
    "b": "6", "G": "6",
    "T": "7",
    "B": "8",
    "g": "9", "q": "9",
}

SIZES = (40, 72)  # font sizes in points, inclusive; only stroke weight relative to size matters
# Extra stroke width in pixels at that size, inclusive. Kept small: at width 0 letters already
# carry ~15% more ink than MNIST digits, and heavier strokes would let a detector tell letters
# from digits by weight rather than by shape.
STROKES = (0, 1)
MAX_DEGREES = 10.0
_MISSING_PROBE = "\U0010fffd"  # a private-use code point no text font maps: renders as .notdef


def available_fonts(font_dir: str | Path | None = None) -> list[str]:
    """Pillow's default font, the installed DejaVu faces, then every .ttf/.otf in `font_dir`."""
    fonts = [DEFAULT_FONT] + _system_fonts()
    if font_dir is not None:
        fonts += _user_fonts(Path(font_dir))
    return fonts


def _system_fonts() -> list[str]:
    by_name = {}
    for path in sorted(SYSTEM_FONT_ROOT.glob("**/DejaVu*.ttf")):
        if not any(part in path.name for part in _SKIPPED_DEJAVU):
            by_name.setdefault(path.name, str(path))  # the same face may be installed twice
    return [by_name[name] for name in sorted(by_name)]


def _user_fonts(font_dir: Path) -> list[str]:
    if not font_dir.is_dir():
        raise UserError(f"--font-dir {font_dir} is not a folder")
    candidates = sorted(p for p in font_dir.iterdir() if p.suffix.lower() in (".ttf", ".otf") and p.is_file())
    fonts = []
    for path in candidates:
        try:
            ImageFont.truetype(str(path), 20)
        except OSError as err:
            log.warning(f"skipping font {path}: {err}")
            continue
        fonts.append(str(path))
    if not fonts:
        raise UserError(f"--font-dir {font_dir} holds no .ttf/.otf font that Pillow can load")
    return fonts


def font_name(font: str) -> str:
    return font if font == DEFAULT_FONT else Path(font).name


@lru_cache(maxsize=512)
def _load_font(font: str, size: int) -> ImageFont.FreeTypeFont:
    if font == DEFAULT_FONT:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(font, size)


def render_letter(char: str, font: str, size: int, stroke: int, angle: float) -> np.ndarray:
    """uint8 (28, 28), MNIST-style; all zeros when the font has no glyph for `char`."""
    face = _load_font(font, size)
    if _lacks_glyph(face, char):
        return np.zeros((SIDE, SIDE), np.uint8)
    canvas = _draw_centred(char, face, stroke).rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=0)
    return normalise_ink(canvas)


def _lacks_glyph(face: ImageFont.FreeTypeFont, char: str) -> bool:
    # A font without the character draws its .notdef box, which would pass for ink.
    return bytes(face.getmask(char)) == bytes(face.getmask(_MISSING_PROBE))


def _draw_centred(char: str, face: ImageFont.FreeTypeFont, stroke: int) -> Image.Image:
    left, top, right, bottom = face.getbbox(char, stroke_width=stroke)
    # Room for the ink rotated by up to 45 degrees around the canvas centre, where its box is centred.
    side = int(1.5 * max(right - left, bottom - top, 1)) + 8
    canvas = Image.new("L", (side, side), 0)
    origin = (side / 2 - (left + right) / 2, side / 2 - (top + bottom) / 2)
    ImageDraw.Draw(canvas).text(origin, char, fill=255, font=face, stroke_width=stroke, stroke_fill=255)
    return canvas


def generate(count: int, seed: int, font_dir: str | Path | None = None, progress: bool = False,
             indices=None) -> list[dict]:
    """`count` letters cycling A-Z, a-z (or those of `indices`, in their order); each a manifest row plus its uint8
    (28, 28) "image"."""
    fonts = available_fonts(font_dir)
    chosen = range(count) if indices is None else indices
    return [_sample(index, seed, fonts) for index in tqdm(chosen, disable=not progress, desc="letters")]


def _sample(index: int, seed: int, fonts: list[str]) -> dict:
    rng = image_rng(seed, index)
    char = LETTERS[index % len(LETTERS)]
    size = int(rng.integers(SIZES[0], SIZES[1] + 1))
    stroke = int(rng.integers(STROKES[0], STROKES[1] + 1))
    angle = float(rng.uniform(-MAX_DEGREES, MAX_DEGREES))
    # Fonts in a random order: the first is the draw, the others stand in if it lacks the glyph.
    for font_index in rng.permutation(len(fonts)):
        font = fonts[font_index]
        image = render_letter(char, font, size, stroke, angle)
        if image.any():
            return {
                "file": f"letter_{index:05d}_{char}.png",
                "char": char,
                "case": "upper" if char.isupper() else "lower",
                "font": font_name(font),
                "digit_like": char in DIGIT_LIKE,
                "looks_like": DIGIT_LIKE.get(char, ""),
                "image": image,
            }
    raise UserError(f"none of the {len(fonts)} fonts renders {char!r}")


def png_bytes(image: np.ndarray) -> bytes:
    """Deterministic PNG: Pillow writes no time stamp or text chunk unless asked to."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def manifest_text(samples: list[dict]) -> str:
    rows = ([s[c] if c != "digit_like" else int(s[c]) for c in MANIFEST_COLUMNS] for s in samples)
    return csv_text(MANIFEST_COLUMNS, rows)


def read_manifest(folder: str | Path) -> dict[str, dict]:
    """file name -> manifest row (strings, except `digit_like`: bool); {} when there is no manifest."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path} lacks column(s) {', '.join(missing)}; re-run generate_letters.py")
        return {row["file"]: {**row, "digit_like": row["digit_like"].strip().lower() in ("1", "true")} for row in reader}

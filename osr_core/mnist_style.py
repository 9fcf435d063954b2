"""MNIST's own normalisation, for every image that does not come from MNIST's files: crop to the ink,
scale so the longer side is 20 px with the aspect ratio kept (anti-aliased), and place it in 28x28 so
that its centre of mass falls on pixel (14, 14). MNIST's digits were made this way (LeCun et al.), and
their centres of mass all round to (14, 14) in row/column index coordinates. Whether anything is written at all is
writing.py's question; the fast kernels the reading uses are kernels.py's.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

from .kernels import high_percentile, median3
from .writing import INK_FLOOR, STROKE, has_writing, rows_and_columns

SIDE = 28
BOX = 20  # MNIST fits each digit in a 20x20 box before centring it in 28x28
CENTRE = 14


def fit_box(ink: Image.Image) -> np.ndarray:
    """An image cropped to its ink (mode L or F) -> array whose longer side is 20 px, aspect kept;
    uint8 for L, float32 for F."""
    width, height = ink.size
    scale = BOX / max(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = ink.resize(target, Image.Resampling.LANCZOS)
    if ink.mode == "F":
        return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)  # Lanczos overshoots slightly
    return np.asarray(resized, dtype=np.uint8)


def centre_by_mass(glyph: np.ndarray) -> np.ndarray:
    """Pastes `glyph` (h, w), h and w <= 28, into 28x28 with its centre of mass on pixel (14, 14)."""
    height, width = glyph.shape
    weights = glyph.astype(np.float64)
    total = weights.sum()
    out = np.zeros((SIDE, SIDE), glyph.dtype)
    if total <= 0:
        return out
    rows, cols = np.arange(height), np.arange(width)
    com_row = (weights.sum(axis=1) * rows).sum() / total
    com_col = (weights.sum(axis=0) * cols).sum() / total
    # Clamped so no ink is cut off: only a glyph whose mass sits at the very edge of its 20 px box
    # ends up off centre.
    top = int(np.clip(np.floor(CENTRE - com_row + 0.5), 0, SIDE - height))
    left = int(np.clip(np.floor(CENTRE - com_col + 0.5), 0, SIDE - width))
    out[top:top + height, left:left + width] = glyph
    return out


def normalise_ink(canvas: Image.Image) -> np.ndarray:
    """White-on-black image (L or F) -> 28x28 in MNIST form; all zeros when it holds no ink."""
    bbox = canvas.getbbox()
    if bbox is None:
        return np.zeros((SIDE, SIDE), np.float32 if canvas.mode == "F" else np.uint8)
    return centre_by_mass(fit_box(canvas.crop(bbox)))


INVERT_CHOICES = ("auto", "yes", "no")
DENOISE_FROM = 56  # images at least this many pixels on their shorter side get a 3x3 median filter first
GRAIN_SIGMAS = 6   # ink must stand this many noise deviations above the paper: grain alone never does
# Paper's grain (sensor noise, JPEG) stays far below this pixel-to-pixel deviation (forms.py draws up to 0.04; uniform
# noise has 0.31): an image with nothing above its grain that is this rough is texture all over (noise, cloth),
# with no paper to take off and no ink to find. It is shown to the model whole, never called blank.
TEXTURE = 0.15
MIN_CONTRAST = 0.1  # ... and this far above it on a 0-1 scale


def borders(grays: np.ndarray) -> np.ndarray:
    """The outer ring of each image of a stack (N, H, W), 1/10 of its shorter side wide (at least 1 px): where the
    background shows. (N, pixels of the ring)."""
    n, w = len(grays), max(1, min(grays.shape[1:]) // 10)
    return np.concatenate([grays[:, :w].reshape(n, -1), grays[:, -w:].reshape(n, -1),
                           grays[:, w:-w, :w].reshape(n, -1), grays[:, w:-w, -w:].reshape(n, -1)], axis=1)


def border(gray: np.ndarray) -> np.ndarray:
    """The outer ring of one image (H, W): borders() of a stack of one."""
    return borders(gray[None])[0]


def ink_is_dark(rings: np.ndarray):
    """Dark ink on light paper: the border (a ring from border(), or rings from borders()), which shows the
    background, is mostly light. One bool per ring."""
    return np.median(rings, axis=-1) > 0.5


def mnist_shaped(grays: np.ndarray) -> np.ndarray:
    """For a stack (N, H, W): which are 28x28, white ink on a black background, ink within a 20-px box, as MNIST's
    own digits all are."""
    if grays.shape[1:] != (SIDE, SIDE):
        return np.zeros(len(grays), bool)
    ink = grays != 0
    extent = lambda m: np.where(m.any(1), SIDE - np.argmax(m[:, ::-1], 1) - np.argmax(m, 1), 0)  # (N,) rows or cols
    return (np.median(borders(grays), axis=1) <= 0) & (np.maximum(extent(ink.any(2)), extent(ink.any(1))) <= BOX)


def is_mnist_shaped(gray: np.ndarray) -> bool:
    """mnist_shaped() of one image (H, W)."""
    return bool(mnist_shaped(gray[None])[0])


def already_in_mnist_form(grays: np.ndarray, invert: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """For a stack of 28x28 images (N, 28, 28) float in [0, 1]: which of them to_mnist_form would return as they
    are (after making the ink white), and the stack with the ink made white: to_mnist_form's own tests (ink_is_dark,
    mnist_shaped), on the whole stack at once."""
    grays = np.asarray(grays, dtype=np.float32)
    dark = np.full(len(grays), invert == "yes") if invert != "auto" else ink_is_dark(borders(grays))
    turned = np.where(dark[:, None, None], 1.0 - grays, grays).astype(np.float32)
    return mnist_shaped(turned), turned


class Form(NamedTuple):
    """An image read into MNIST form: the 28x28 image, and whether anything is written in it (False: blank paper,
    dust or only a form's printed lines; the image is then all black)."""
    image: np.ndarray
    written: bool


def as_it_is(image: np.ndarray) -> Form:
    """An image already in MNIST form, read as it is: written when it has any ink."""
    return Form(image, bool(image.any()))


def nothing_written() -> Form:
    """A blank image: all black (a new array each time, so callers may change it)."""
    return Form(np.zeros((SIDE, SIDE), np.float32), False)


def to_mnist_form(gray: np.ndarray, invert: str = "auto") -> np.ndarray:
    """read_form's image alone."""
    return read_form(gray, invert).image


def read_form(gray: np.ndarray, invert: str = "auto") -> Form:
    """Any grayscale image (H, W) float in [0, 1] -> float32 (28, 28) as MNIST is, and whether anything is written.

    Ink is made white on black (`invert`: auto detects dark ink from the border, yes/no force it), the
    background level is taken off and the ink stretched to full white (an image with nothing above its grain is
    blank, unless it is rough all over, texture with no paper to take off: then it is shown whole, whole_image),
    grain is filtered out of large images,
    faint residue (below INK_FLOOR) is cleared, and the ink is cropped (to the box of its strong strokes plus a
    margin), fitted into 20x20 with the aspect kept and centred by mass (normalise_ink). An image that is
    already MNIST-shaped (is_mnist_shaped) is returned unchanged, written when it has any ink. A blank image is
    all black; `written` is where that is decided, and what every later step reads (never the pixels).
    """
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {invert!r}")
    gray = np.asarray(gray, dtype=np.float32)
    ring = border(gray)
    if invert == "yes" or (invert == "auto" and ink_is_dark(ring)):
        gray, ring = 1.0 - gray, 1.0 - ring  # the same ring as border(1 - gray), element for element
    if is_mnist_shaped(gray):
        return as_it_is(gray)
    background = float(np.median(ring))
    grain = 1.4826 * float(np.median(np.abs(ring - background)))  # the paper's noise, robustly
    peak = high_percentile(gray, 99.9)
    if peak - background < max(MIN_CONTRAST, GRAIN_SIGMAS * grain):  # nothing darker than the paper's own grain
        return Form(whole_image(gray), True) if roughness(gray) > TEXTURE else nothing_written()
    ink = np.clip((gray - background) / (peak - background), 0.0, 1.0)
    if not has_writing(ink):  # before the grain filter, which would erase a printed line 1 px thin
        return nothing_written()
    pad = max(1, round(0.03 * max(ink.shape)))  # the strokes' soft edges around the strong part
    if min(ink.shape) >= DENOISE_FROM:  # sensor grain and JPEG specks; strokes there are several pixels wide
        ink = _median3_near_strokes(ink, reach=pad)
    ink[ink < INK_FLOOR] = 0.0
    rows, cols = rows_and_columns(ink >= STROKE)
    if rows.size == 0:  # the grain filter took what strong ink there was
        return nothing_written()
    box = ink[max(rows[0] - pad, 0):rows[-1] + pad + 1, max(cols[0] - pad, 0):cols[-1] + pad + 1]
    out = normalise_ink(Image.fromarray(np.ascontiguousarray(box)))  # float32 -> mode F
    top = out.max()
    return Form(out / top, True) if top > 0 else nothing_written()  # a thin stroke shrunk to 20 px stays as bright as MNIST's


def roughness(gray: np.ndarray) -> float:
    """How much neighbouring pixels differ, as the standard deviation of independent noise that would give it (the
    median absolute difference of horizontal neighbours, made robust and divided by sqrt 2): paper's grain is a few
    hundredths, uniform noise 0.31; lines and edges are too few to move a median."""
    steps = np.abs(np.diff(gray, axis=1))
    return 1.4826 * float(np.median(steps)) / np.sqrt(2) if steps.size else 0.0


def whole_image(gray: np.ndarray) -> np.ndarray:
    """An image with no paper to take off (TEXTURE), as the model sees it: the whole frame shrunk (or grown) to
    28x28, its polarity as to_mnist_form set it. Not blank: whatever it is, it was not left empty."""
    if gray.shape == (SIDE, SIDE):
        return np.clip(gray, 0.0, 1.0).astype(np.float32)
    resized = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32)).resize((SIDE, SIDE), Image.Resampling.BOX)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _median3_near_strokes(ink: np.ndarray, reach: int) -> np.ndarray:
    """median3(ink) within `reach` pixels of the box of the strong strokes, zero elsewhere: the crop that follows
    gets the same values for a fraction of the work on a large page. The filter cannot move that box outwards (a
    pixel outside it has at most three strong neighbours of nine, so its median stays below STROKE), so the crop
    (the box after filtering plus `reach`) lies within the region filtered here, each pixel of it filtered with
    its true neighbours (one pixel more on each side; the image's own edges replicated, as median3 does)."""
    rows, cols = rows_and_columns(ink >= STROKE)
    out = np.zeros_like(ink)
    if rows.size == 0:
        return out
    height, width = ink.shape
    top, bottom = max(rows[0] - reach, 0), min(rows[-1] + reach + 1, height)
    left, right = max(cols[0] - reach, 0), min(cols[-1] + reach + 1, width)
    above, before = min(top, 1), min(left, 1)  # neighbours taken from the image where it goes on
    window = ink[top - above:min(bottom + 1, height), left - before:min(right + 1, width)]
    out[top:bottom, left:right] = median3(window)[above:above + bottom - top, before:before + right - left]
    return out



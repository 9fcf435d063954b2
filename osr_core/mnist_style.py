"""MNIST's own normalisation, for every image that does not come from MNIST's files: crop to the ink,
scale so the longer side is 20 px with the aspect ratio kept (anti-aliased), and place it in 28x28 so
that its centre of mass falls on pixel (14, 14). MNIST's digits were made this way (LeCun et al.), and
their centres of mass all round to (14, 14) in row/column index coordinates.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

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
INK_FLOOR = 0.2   # after background removal: paper texture, JPEG ringing and shadows stay below this
STROKE = 0.5      # the crop box is where ink is this strong, so a speck of grain cannot stretch it
DENOISE_FROM = 56  # images at least this many pixels on their shorter side get a 3x3 median filter first


def border(gray: np.ndarray) -> np.ndarray:
    """The outer ring of an image, 1/10 of its shorter side wide (at least 1 px): where the background shows."""
    w = max(1, min(gray.shape) // 10)
    return np.concatenate([gray[:w].ravel(), gray[-w:].ravel(), gray[w:-w, :w].ravel(), gray[w:-w, -w:].ravel()])


def ink_is_dark(gray: np.ndarray) -> bool:
    """Dark ink on light paper: the border, which shows the background, is mostly light."""
    return float(np.median(border(gray))) > 0.5


def is_mnist_shaped(gray: np.ndarray) -> bool:
    """28x28, white ink on a black background, ink within a 20-px box: what MNIST's own digits all are."""
    if gray.shape != (SIDE, SIDE) or np.median(border(gray)) > 0:
        return False
    rows, cols = np.nonzero(gray)
    return rows.size == 0 or max(np.ptp(rows), np.ptp(cols)) + 1 <= BOX


def to_mnist_form(gray: np.ndarray, invert: str = "auto") -> np.ndarray:
    """Any grayscale image (H, W) float in [0, 1] -> float32 (28, 28) as MNIST is.

    Ink is made white on black (`invert`: auto detects dark ink from the border, yes/no force it), the
    background level is taken off and the ink stretched to full white, grain is filtered out of large images,
    faint residue (below INK_FLOOR) is cleared, and the ink is cropped (to the box of its strong strokes plus a
    margin), fitted into 20x20 with the aspect kept and centred by mass (normalise_ink). An image that is
    already MNIST-shaped (is_mnist_shaped) is returned unchanged.
    """
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {invert!r}")
    gray = np.asarray(gray, dtype=np.float32)
    if invert == "yes" or (invert == "auto" and ink_is_dark(gray)):
        gray = 1.0 - gray
    if is_mnist_shaped(gray):
        return gray
    background = float(np.median(border(gray)))
    peak = float(np.percentile(gray, 99.9))
    if peak - background < 1e-3:  # no ink at all
        return np.zeros((SIDE, SIDE), np.float32)
    ink = np.clip((gray - background) / (peak - background), 0.0, 1.0)
    if min(ink.shape) >= DENOISE_FROM:  # sensor grain and JPEG specks; strokes there are several pixels wide
        ink = np.array(Image.fromarray(ink).filter(ImageFilter.MedianFilter(3)), np.float32)
    ink[ink < INK_FLOOR] = 0.0
    rows, cols = np.nonzero(ink >= STROKE)
    if rows.size == 0:
        return np.zeros((SIDE, SIDE), np.float32)
    pad = max(1, round(0.03 * max(ink.shape)))  # the strokes' soft edges around the strong part
    box = ink[max(rows.min() - pad, 0):rows.max() + pad + 1, max(cols.min() - pad, 0):cols.max() + pad + 1]
    out = normalise_ink(Image.fromarray(np.ascontiguousarray(box)))  # float32 -> mode F
    top = out.max()
    return out / top if top > 0 else out  # a thin stroke shrunk to 20 px stays as bright as MNIST's

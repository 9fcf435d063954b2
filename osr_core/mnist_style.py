"""MNIST's own normalisation, for every image that does not come from MNIST's files: crop to the ink,
scale so the longer side is 20 px with the aspect ratio kept (anti-aliased), and place it in 28x28 so
that its centre of mass falls on pixel (14, 14). MNIST's digits were made this way (LeCun et al.), and
their centres of mass all round to (14, 14) in row/column index coordinates.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

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

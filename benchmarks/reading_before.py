"""The per-image reading path as it was before it was made fast (commit cfa26f8, with Pillow's median filter, which
the preprocessing used when the reading-speed target was set): the reference that `make bench` measures the fast
path against and that tests/test_no_digit.py checks it gives the same images as. Kept as it was on purpose; do not
speed it up. It reuses the helpers the fast path did not change."""
from __future__ import annotations

import numpy as np
from PIL import Image

from osr_core.kernels import median3_pil
from osr_core.mnist_style import (DENOISE_FROM, GRAIN_SIGMAS, MIN_CONTRAST, SIDE, Form, border, is_mnist_shaped,
                                  normalise_ink)
from osr_core.writing import INK_FLOOR, STROKE, has_writing


def to_mnist_form(gray: np.ndarray, invert: str = "auto") -> np.ndarray:
    gray = np.asarray(gray, dtype=np.float32)
    if invert == "yes" or (invert == "auto" and float(np.median(border(gray))) > 0.5):
        gray = 1.0 - gray
    if is_mnist_shaped(gray):
        return gray
    ring = border(gray)
    background = float(np.median(ring))
    grain = 1.4826 * float(np.median(np.abs(ring - background)))
    peak = float(np.percentile(gray, 99.9))
    if peak - background < max(MIN_CONTRAST, GRAIN_SIGMAS * grain):
        return np.zeros((SIDE, SIDE), np.float32)
    ink = np.clip((gray - background) / (peak - background), 0.0, 1.0)
    if not has_writing(ink):
        return np.zeros((SIDE, SIDE), np.float32)
    if min(ink.shape) >= DENOISE_FROM:
        ink = median3_pil(ink)
    ink[ink < INK_FLOOR] = 0.0
    rows, cols = np.nonzero(ink >= STROKE)
    if rows.size == 0:
        return np.zeros((SIDE, SIDE), np.float32)
    pad = max(1, round(0.03 * max(ink.shape)))
    box = ink[max(rows.min() - pad, 0):rows.max() + pad + 1, max(cols.min() - pad, 0):cols.max() + pad + 1]
    out = normalise_ink(Image.fromarray(np.ascontiguousarray(box)))
    top = out.max()
    return out / top if top > 0 else out


def read_form(gray: np.ndarray, invert: str = "auto") -> Form:
    """to_mnist_form's image in the form mnist_style.read_form gives (written: any ink), to stand in for it."""
    image = to_mnist_form(gray, invert)
    return Form(image, bool(image.any()))

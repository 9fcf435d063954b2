"""Images with no digit in them, as a stack of form fields holds them: an evaluation set of unknowns.

The commonest thing a form field holds is nothing: blank paper of any size, level and grain, a speck of dust, or
only the printed parts of the form (ruling lines, a box, a comb of tick marks). None of them may be named a digit.
Each image is drawn as a scan or photo shows paper (dark print on light paper, sensor noise, JPEG at quality
50-95), with some blank images of any level and either polarity, at any size from 28x28 up. Image i is a
function of (seed, i) alone. Evaluation only: it plays no part in training or selection.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .generated import image_rng

KINDS = ("blank", "speck", "ruling", "box", "comb")


def _paper(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    paper = np.full((height, width), rng.uniform(0.7, 1.0), np.float32)
    return paper + rng.normal(0, rng.uniform(0, 0.04), paper.shape).astype(np.float32)


def _ink(rng: np.random.Generator, paper: np.ndarray) -> float:
    return float(rng.uniform(0.0, 0.5)) * float(np.median(paper))


def _blank(rng, height, width) -> np.ndarray:
    if rng.random() < 0.3:  # a flat image of any level, as arrays and screenshots hold them
        return np.full((height, width), rng.choice([0.0, 1.0, rng.uniform(0, 1)]), np.float32)
    return _paper(rng, height, width)


def _speck(rng, height, width) -> np.ndarray:
    sheet = _paper(rng, height, width)
    for _ in range(int(rng.integers(1, 4))):
        side = int(rng.integers(1, 4))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        sheet[top:top + side, left:left + side] = _ink(rng, sheet)
    return sheet


def _ruling(rng, height, width) -> np.ndarray:
    """One to three printed lines across the field (its baseline, a ruled notebook), maybe a margin line."""
    sheet = _paper(rng, height, width)
    for _ in range(int(rng.integers(1, 4))):
        thick = int(rng.integers(1, 4))
        row = int(rng.integers(height // 5, height - thick))
        sheet[row:row + thick, :] = _ink(rng, sheet)
    if rng.random() < 0.3:
        col = int(rng.integers(0, width // 4))
        sheet[:, col:col + int(rng.integers(1, 3))] = _ink(rng, sheet)
    return sheet


def _box(rng, height, width) -> np.ndarray:
    """The outline of a printed box, inside the field or at its very edge."""
    sheet = _paper(rng, height, width)
    thick = int(rng.integers(1, 4))
    inset = int(rng.integers(0, max(1, min(height, width) // 6)))
    ink = _ink(rng, sheet)
    top, left, bottom, right = inset, inset, height - inset, width - inset
    sheet[top:top + thick, left:right] = ink
    sheet[bottom - thick:bottom, left:right] = ink
    sheet[top:bottom, left:left + thick] = ink
    sheet[top:bottom, right - thick:right] = ink
    return sheet


def _comb(rng, height, width) -> np.ndarray:
    """A comb field: a baseline with short upright ticks that divide it into cells."""
    sheet = _paper(rng, height, width)
    ink, thick = _ink(rng, sheet), int(rng.integers(1, 3))
    base = int(rng.integers(height * 2 // 3, height - thick))
    tick = int(rng.integers(height // 6, height // 3 + 1))
    sheet[base:base + thick, :] = ink
    cells = int(rng.integers(1, 5))
    for x in np.linspace(0, width - thick, cells + 1).astype(int):
        sheet[base - tick:base, x:x + thick] = ink
    return sheet


DRAW = {"blank": _blank, "speck": _speck, "ruling": _ruling, "box": _box, "comb": _comb}


def no_digit_image(seed: int, index: int) -> tuple[np.ndarray, str]:
    """(grayscale image in [0, 1], its kind): image `index` of the set made from `seed`."""
    rng = image_rng(seed, index)
    kind = KINDS[int(rng.integers(len(KINDS)))]
    height = int(rng.integers(28, 201))
    width = int(height * rng.uniform(0.6, 2.5)) if rng.random() < 0.8 else height
    sheet = np.clip(DRAW[kind](rng, height, max(width, 28)), 0, 1)
    if rng.random() < 0.7:
        buf = io.BytesIO()
        Image.fromarray(np.rint(sheet * 255).astype(np.uint8)).save(buf, "JPEG", quality=int(rng.integers(50, 96)))
        sheet = np.asarray(Image.open(buf).convert("L"), np.float32) / 255
    return sheet, kind


def no_digit_images(n: int, seed: int, indices=None) -> tuple[list[np.ndarray], list[str]]:
    """Images 0 .. n-1 of the set (or those of `indices`, in their order), and their kinds."""
    made = [no_digit_image(seed, i) for i in (range(n) if indices is None else indices)]
    return [m[0] for m in made], [m[1] for m in made]

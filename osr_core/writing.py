"""Is anything written? Telling writing from what a form field holds when it is empty: the paper's dust, and the
printed parts of the form (lines across the field, the sides of a box, the ticks of a comb).

Works on ink already taken off its paper ((H, W) in [0, 1], paper at 0; mnist_style.to_mnist_form makes it)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

INK_FLOOR = 0.2   # after background removal: paper texture, JPEG ringing and shadows stay below this
STROKE = 0.5      # strong ink: what a pen leaves, and what the crop box is made of, so a speck of grain cannot stretch it
SPECK_PX, SPECK_FRACTION = 4, 0.08  # a blot shorter than this (px, or share of the shorter side) is dust
LINE_FRACTION = 0.6  # a straight run of ink this long (share of the side it runs along) is a printed line
TICK_FRACTION = 0.35  # an upright mark on a printed line, at most this share of the height, is a comb's tick


def rows_and_columns(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the rows and of the columns of `mask` (H, W) that hold a True."""
    return np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))


def _long_runs(mask: np.ndarray, length: float) -> np.ndarray:
    """The pixels of `mask` (H, W) that lie in a horizontal run of at least `length` consecutive pixels."""
    out = np.zeros_like(mask)
    candidates = np.flatnonzero(mask.sum(axis=1) >= length)  # a row with fewer inked pixels holds no such run
    if candidates.size == 0:
        return out
    edges = np.diff(np.pad(mask[candidates], ((0, 0), (1, 1))).astype(np.int8), axis=1)
    (rows, starts), (_, ends) = np.nonzero(edges == 1), np.nonzero(edges == -1)  # row-major: paired in order
    for r, a, b in zip(candidates[rows], starts, ends):
        if b - a >= length:
            out[r, a:b] = True
    return out


def _crosses_the_field(upright: np.ndarray, printed: np.ndarray) -> bool:
    """Whether the upright lines run through (nearly) the whole height and on both sides of a printed line."""
    rows = np.flatnonzero(upright.any(axis=1))
    lines = np.flatnonzero(printed.any(axis=1))
    height = upright.shape[0]
    return rows[-1] - rows[0] + 1 >= 0.95 * height and bool(((lines > rows[0]) & (lines < rows[-1])).any())


def _a_strong_stroke_spans(strong: np.ndarray, length: float) -> bool:
    """Whether the strong ink alone holds a connected stroke at least `length` long or tall. Such a stroke lies in a
    mark (strong ink is marked ink) that is no speck and holds strong ink, so with no printed line it is writing;
    found on the box of the strong ink only, not the whole page."""
    rows, cols = rows_and_columns(strong)
    if rows.size == 0 or max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 < length:
        return False
    labels, _ = ndimage.label(strong[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], structure=np.ones((3, 3)))
    return any(max(r.stop - r.start, c.stop - c.start) >= length for r, c in ndimage.find_objects(labels))


def has_writing(ink: np.ndarray) -> bool:
    """Whether the ink of an image ((H, W) in [0, 1], paper at 0) holds anything written, rather than only dust and
    the printed parts of a form: lines across the field (ruling, a baseline), the sides of a box around it, the
    ticks of a comb. A single upright line is kept as writing (it may be a 1), unless it runs from edge to edge
    across a printed line (a notebook's margin); two far apart are a box's sides."""
    strong = ink >= STROKE
    height, width = strong.shape
    printed = _long_runs(strong, LINE_FRACTION * width)
    upright = _long_runs(strong.T, LINE_FRACTION * height).T
    columns = np.flatnonzero(upright.any(axis=0))
    if columns.size and (columns[-1] - columns[0] >= width / 2 or _crosses_the_field(upright, printed)):
        printed |= upright
    speck = max(SPECK_PX, SPECK_FRACTION * min(height, width))
    if not printed.any() and _a_strong_stroke_spans(strong, speck):  # the common case of a written digit, quickly
        return True
    # A mark is traced through its faint ink too, so a stroke that scanned as a row of dots stays one mark; it
    # must hold strong ink somewhere.
    marks = ink >= INK_FLOOR
    if printed.any():
        marks &= ~ndimage.binary_dilation(printed)
        near_print = ndimage.binary_dilation(printed, iterations=2)
    labels, _ = ndimage.label(marks, structure=np.ones((3, 3)))
    for index, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        mark = labels[rows, cols] == index
        tall, wide = rows.stop - rows.start, cols.stop - cols.start
        if max(tall, wide) < speck or not strong[rows, cols][mark].any():
            continue
        tick = printed.any() and tall <= TICK_FRACTION * height and wide < speck and near_print[rows, cols][mark].any()
        if not tick:
            return True
    return False

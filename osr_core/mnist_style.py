"""MNIST's own normalisation, for every image that does not come from MNIST's files: crop to the ink,
scale so the longer side is 20 px with the aspect ratio kept (anti-aliased), and place it in 28x28 so
that its centre of mass falls on pixel (14, 14). MNIST's digits were made this way (LeCun et al.), and
their centres of mass all round to (14, 14) in row/column index coordinates.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

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
GRAIN_SIGMAS = 6   # ink must stand this many noise deviations above the paper: grain alone never does
# Paper's grain (sensor noise, JPEG) stays far below this pixel-to-pixel deviation (forms.py draws up to 0.04; uniform
# noise has 0.31): an image with nothing above its grain that is this rough is texture all over (noise, cloth),
# with no paper to take off and no ink to find. It is shown to the model whole, never called blank.
TEXTURE = 0.15
MIN_CONTRAST = 0.1  # ... and this far above it on a 0-1 scale
SPECK_PX, SPECK_FRACTION = 4, 0.08  # a blot shorter than this (px, or share of the shorter side) is dust
LINE_FRACTION = 0.6  # a straight run of ink this long (share of the side it runs along) is a printed line
TICK_FRACTION = 0.35  # an upright mark on a printed line, at most this share of the height, is a comb's tick


def border(gray: np.ndarray) -> np.ndarray:
    """The outer ring of an image, 1/10 of its shorter side wide (at least 1 px): where the background shows."""
    w = max(1, min(gray.shape) // 10)
    return np.concatenate([gray[:w].ravel(), gray[-w:].ravel(), gray[w:-w, :w].ravel(), gray[w:-w, -w:].ravel()])


def ink_is_dark(ring: np.ndarray) -> bool:
    """Dark ink on light paper: the border (`ring`, from border()), which shows the background, is mostly light."""
    return float(np.median(ring)) > 0.5


def is_mnist_shaped(gray: np.ndarray) -> bool:
    """28x28, white ink on a black background, ink within a 20-px box: what MNIST's own digits all are."""
    if gray.shape != (SIDE, SIDE) or np.median(border(gray)) > 0:
        return False
    rows, cols = np.nonzero(gray)
    return rows.size == 0 or max(np.ptp(rows), np.ptp(cols)) + 1 <= BOX


def already_in_mnist_form(grays: np.ndarray, invert: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """For a stack of 28x28 images (N, 28, 28) float in [0, 1]: which of them to_mnist_form would return as they
    are (after making the ink white), and the stack with the ink made white. The same tests as to_mnist_form's
    (ink_is_dark, is_mnist_shaped), on the whole stack at once."""
    w = max(1, SIDE // 10)
    ring = lambda g: np.concatenate([g[:, :w].reshape(len(g), -1), g[:, -w:].reshape(len(g), -1),
                                     g[:, w:-w, :w].reshape(len(g), -1), g[:, w:-w, -w:].reshape(len(g), -1)], axis=1)
    grays = np.asarray(grays, dtype=np.float32)
    dark = np.full(len(grays), invert == "yes") if invert != "auto" else np.median(ring(grays), axis=1) > 0.5
    turned = np.where(dark[:, None, None], 1.0 - grays, grays).astype(np.float32)
    ink = turned != 0
    rows, cols = ink.any(axis=2), ink.any(axis=1)                                  # (N, 28) each
    extent = lambda m: np.where(m.any(1), SIDE - np.argmax(m[:, ::-1], 1) - np.argmax(m, 1), 0)
    fits = np.maximum(extent(rows), extent(cols)) <= BOX
    return (np.median(ring(turned), axis=1) <= 0) & fits, turned


def high_percentile(values: np.ndarray, q: float) -> float:
    """float(np.percentile(values, q)), bit for bit, for a float32 array and a q near 100, read from the top of the
    values only: np.percentile partitions a copy of the whole image, which is most of its cost. Everything below a
    floor that leaves enough values above it is set aside, and the two values np.percentile interpolates between are
    found among the rest, then interpolated as NumPy does (its "linear" method, in float32 for a Python float q)."""
    flat = values.ravel()
    n = flat.size
    virtual = (n - 1) * np.true_divide(q, 100)  # the rank np.percentile interpolates at
    below = int(np.floor(virtual))
    if n < 1024 or below + 1 >= n:
        return float(np.percentile(values, q))
    sample = flat[::8]
    k = int(0.98 * (sample.size - 1))
    top = flat[flat >= np.partition(sample, k)[k]]  # about the top 2%: far more than the 0.1% needed
    rank = below - (n - top.size)  # its rank among the values kept
    if rank < 0:  # the floor was too high (a sample can mislead): the whole image, then
        return float(np.percentile(values, q))
    top.partition((rank, rank + 1))
    low, high = top[rank], top[rank + 1]
    gamma, step = float(virtual - below), high - low
    return float(high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma)


def to_mnist_form(gray: np.ndarray, invert: str = "auto") -> np.ndarray:
    """Any grayscale image (H, W) float in [0, 1] -> float32 (28, 28) as MNIST is.

    Ink is made white on black (`invert`: auto detects dark ink from the border, yes/no force it), the
    background level is taken off and the ink stretched to full white (an image with nothing above its grain is
    blank, unless it is rough all over, texture with no paper to take off: then it is shown whole, whole_image),
    grain is filtered out of large images,
    faint residue (below INK_FLOOR) is cleared, and the ink is cropped (to the box of its strong strokes plus a
    margin), fitted into 20x20 with the aspect kept and centred by mass (normalise_ink). An image that is
    already MNIST-shaped (is_mnist_shaped) is returned unchanged.
    """
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {invert!r}")
    gray = np.asarray(gray, dtype=np.float32)
    ring = border(gray)
    if invert == "yes" or (invert == "auto" and ink_is_dark(ring)):
        gray, ring = 1.0 - gray, 1.0 - ring  # the same ring as border(1 - gray), element for element
    if is_mnist_shaped(gray):
        return gray
    background = float(np.median(ring))
    grain = 1.4826 * float(np.median(np.abs(ring - background)))  # the paper's noise, robustly
    peak = high_percentile(gray, 99.9)
    if peak - background < max(MIN_CONTRAST, GRAIN_SIGMAS * grain):  # nothing darker than the paper's own grain
        return whole_image(gray) if roughness(gray) > TEXTURE else np.zeros((SIDE, SIDE), np.float32)
    ink = np.clip((gray - background) / (peak - background), 0.0, 1.0)
    if not has_writing(ink):  # before the grain filter, which would erase a printed line 1 px thin
        return np.zeros((SIDE, SIDE), np.float32)
    pad = max(1, round(0.03 * max(ink.shape)))  # the strokes' soft edges around the strong part
    if min(ink.shape) >= DENOISE_FROM:  # sensor grain and JPEG specks; strokes there are several pixels wide
        ink = _median3_near_strokes(ink, reach=pad)
    ink[ink < INK_FLOOR] = 0.0
    rows, cols = _rows_and_columns(ink >= STROKE)
    if rows.size == 0:  # the grain filter took what strong ink there was
        return np.zeros((SIDE, SIDE), np.float32)
    box = ink[max(rows[0] - pad, 0):rows[-1] + pad + 1, max(cols[0] - pad, 0):cols[-1] + pad + 1]
    out = normalise_ink(Image.fromarray(np.ascontiguousarray(box)))  # float32 -> mode F
    top = out.max()
    return out / top if top > 0 else out  # a thin stroke shrunk to 20 px stays as bright as MNIST's


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


def _rows_and_columns(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the rows and of the columns of `mask` (H, W) that hold a True."""
    return np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))


def _median3_near_strokes(ink: np.ndarray, reach: int) -> np.ndarray:
    """median3(ink) within `reach` pixels of the box of the strong strokes, zero elsewhere: the crop that follows
    gets the same values for a fraction of the work on a large page. The filter cannot move that box outwards (a
    pixel outside it has at most three strong neighbours of nine, so its median stays below STROKE), so the crop
    (the box after filtering plus `reach`) lies within the region filtered here, each pixel of it filtered with
    its true neighbours (one pixel more on each side; the image's own edges replicated, as median3 does)."""
    rows, cols = _rows_and_columns(ink >= STROKE)
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


def median3(ink: np.ndarray) -> np.ndarray:
    """3x3 median filter of a float32 image, edges replicated: the same values, bit for bit, as Pillow's
    ImageFilter.MedianFilter(3) (median3_pil), several times faster.

    Each vertical triple is sorted once and shared by the three windows beside it; the median of a window is then
    the middle of (the largest of its three lows, the middle of its three middles, the smallest of its three highs).
    The work is done on the padded image flattened, so every step is one contiguous pass: a window's left and right
    neighbours are the flat elements before and after it, and the values that wrap around a row end are dropped."""
    height, width = ink.shape
    step = width + 2
    flat = np.pad(ink, 1, mode="edge").ravel()
    n = height * step  # windows centred on rows 1..height of the padded image, every column
    above, centre, below = flat[:n], flat[step:step + n], flat[2 * step:]
    low, high = np.minimum(above, centre), np.maximum(above, centre)
    middle = np.minimum(high, below)
    np.maximum(high, below, out=high)
    low, middle = np.minimum(low, middle), np.maximum(low, middle)
    left, mid, right = slice(0, n - 2), slice(1, n - 1), slice(2, n)  # centred on the flat element after `left`
    lows = np.maximum(low[left], low[mid])
    np.maximum(lows, low[right], out=lows)
    highs = np.minimum(high[left], high[mid])
    np.minimum(highs, high[right], out=highs)
    middles = _middle_of_three(middle[left], middle[mid], middle[right])
    out = np.empty(n, ink.dtype)
    out[:n - 2] = _middle_of_three(lows, middles, highs)
    return out.reshape(height, step)[:, :width].copy()  # window (r, c) is flat element r * step + c


def _middle_of_three(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    low, high = np.minimum(a, b), np.maximum(a, b)
    np.minimum(high, c, out=high)
    return np.maximum(low, high, out=low)


def median3_pil(ink: np.ndarray) -> np.ndarray:
    """Pillow's 3x3 median filter: the reference median3 is tested against (and what the preprocessing used)."""
    return np.array(Image.fromarray(ink).filter(ImageFilter.MedianFilter(3)), np.float32)


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
    rows, cols = _rows_and_columns(strong)
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

"""Fast image kernels for reading scans, each equal bit for bit to the reference it replaces (tests/test_no_digit.py
checks them against Pillow's and NumPy's): a 3x3 median filter and a high percentile."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


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

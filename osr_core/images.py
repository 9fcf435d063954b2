"""Reading images from the outside world (files, folders, glob patterns) into MNIST form, skipping what
cannot be read.

Every entry is either loaded or listed in `skipped` with a one-line reason; nothing can crash the
reader, hang it (FIFOs are never opened) or make it decode a decompression bomb. Each image goes through
MNIST's own preprocessing (`mnist_style.read_form`): ink made white on black (detected from the
border, or forced with invert="yes"/"no"), cropped to the ink, fitted into 20x20 with the aspect kept,
centred by mass in 28x28. Images already in MNIST form pass through unchanged. Whether anything is written at all
is decided there, once, and travels with the images as `blank` to the answer.

Choices a user may need to know:
- Hidden entries (names starting with ".", e.g. `.DS_Store` or the output manifest that
  `io.StageOutputs` keeps) are ignored, not listed as skipped.
- Colour images become grayscale by ITU-R 601-2 luma (Pillow's `convert("L")`). Alpha is
  ignored: a pixel keeps its stored colour whatever its transparency, so strokes stored as colour
  on a transparent background survive, while a drawing that exists only in the alpha channel does not.
- 16-bit images are scaled by 65535, 32-bit integer and float images by the smallest of 255,
  65535 (integers) or 1.0 (floats) that holds their maximum, else by their maximum: a uniform
  mid-grey image stays mid-grey instead of being stretched to white.
- Multi-frame files (GIF, TIFF) contribute their first frame.
- Folders are read one level deep: their sub-folders are listed as skipped, not searched.
"""
from __future__ import annotations

import glob
import logging
import multiprocessing
import os
import signal
import stat
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .cli import UserError
from .mnist_style import INVERT_CHOICES, SIDE, Form, already_in_mnist_form, as_it_is, read_form

log = logging.getLogger("osr")

# Refused before decoding: far above any sensible digit image, far below what exhausts memory.
MAX_PIXELS = 4096 * 4096


@dataclass
class Read:
    """Images read into MNIST form."""
    images: torch.Tensor  # float32 (N, 1, 28, 28) in [0, 1]
    blank: np.ndarray     # (N,) bool: nothing written (the image is all black); the answer is unknown, "blank"

    @classmethod
    def of(cls, forms: Sequence[Form]) -> "Read":
        return cls(torch.from_numpy(np.stack([f.image for f in forms])).unsqueeze(1),
                   np.array([not f.written for f in forms], dtype=bool))


@dataclass
class ImageFolder(Read):
    files: list[str]  # one per image: names relative to the folder (one folder read), else paths as given
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, one-line reason)
    converted: int = 0  # images that were not already in MNIST form


class _Unreadable(Exception):
    """An entry that is not a usable image; its message is the reason shown to the user."""


def load_image_folder(folder: str | Path, ignore: frozenset[str] = frozenset(), invert: str = "auto") -> ImageFolder:
    """`ignore`: names known not to be images (a manifest beside them), left out without a warning."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"image folder not found: {folder}")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of images")
    entries = [(name, folder / name) for name in _visible_entries(folder) if name not in ignore]
    return _read_all(entries, str(folder), invert)


def load_images(inputs: Sequence[str | Path], invert: str = "auto", ignore: frozenset[str] = frozenset()) -> ImageFolder:
    """Image files, folders (read as load_image_folder does) and glob patterns, in the order given. With a single
    folder the names are relative to it; otherwise they are the paths as given (folder/name for folder entries)."""
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        return load_image_folder(inputs[0], ignore, invert)
    entries = []
    for item in map(str, inputs):
        matches = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
        if not matches:
            raise UserError(f"no file matches {item}")
        for match in matches:
            path = Path(match)
            if path.is_dir():
                entries += [(str(path / n), path / n) for n in _visible_entries(path) if n not in ignore]
            elif path.exists() or path.is_symlink():
                entries.append((match, path))
            else:
                raise UserError(f"image not found: {match}")
    return _read_all(entries, ", ".join(map(str, inputs)), invert)


def _read_all(entries: list[tuple[str, Path]], where: str, invert: str) -> ImageFolder:
    forms, files, skipped, converted = [], [], [], 0
    for (name, _), read in zip(entries, parallel_map(partial(_try_read_image, invert=invert), [p for _, p in entries])):
        if isinstance(read, str):
            skipped.append((name, read))
            continue
        forms.append(read[0])
        files.append(name)
        converted += read[1]
    if not forms:
        raise UserError(f"{where} holds no readable images; {len(skipped)} entries skipped")
    _warn_summary(where, len(forms), converted, skipped)
    read = Read.of(forms)
    return ImageFolder(read.images, read.blank, files, skipped, converted)


PARALLEL_FROM = 32  # images per worker: fewer are done in the calling process, where a pool costs more than it saves


def parallel_map(fn, items: Sequence, min_per_worker: int = PARALLEL_FROM) -> list:
    """[fn(item) for item in items], in order, on every core when there are at least `min_per_worker` items for each.

    Worker processes, not threads: reading an image is many small NumPy, SciPy and Pillow calls with Python between
    them, so threads wait on one another for the GIL (measured: two threads read slower than one). The workers are
    forked, so they start in milliseconds and inherit `fn` and `items` instead of having them pickled; only the
    28x28 results travel back. Where fork is not available (Windows, macOS, a daemonic process) the work is done
    in the calling process. Exceptions are raised as in a plain loop; Ctrl-C stops the workers."""
    workers = min(_usable_cores(), len(items) // min_per_worker)
    if workers > 1 and _can_fork():
        return _map_in_forked_workers(fn, items, workers)
    return [fn(item) for item in items]


_WORK: tuple | None = None  # in a worker: the (fn, items) of its pool, handed over at the fork, never pickled
# Python 3.12+ warns that forking a process with threads (torch's idle thread pool) may deadlock the child. The
# workers run only NumPy, SciPy, Pillow and Matplotlib code, never torch, so none of those threads' locks is ever
# taken in them.
# The filter is added once, here: saving and restoring the process-wide filters around each call (catch_warnings)
# would race when two threads read at once.
warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning,
                        module="multiprocessing")


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _can_fork() -> bool:
    # Linux only: macOS's system libraries are not fork-safe, Windows has no fork. A daemonic process (a
    # multiprocessing or DataLoader worker) may not have children of its own.
    return sys.platform.startswith("linux") and not multiprocessing.current_process().daemon


def _map_in_forked_workers(fn, items: Sequence, workers: int) -> list:
    step = max(1, -(-len(items) // (workers * 8)))  # a few chunks per worker, so one slow chunk cannot idle the rest
    chunks = [(start, min(start + step, len(items))) for start in range(0, len(items), step)]
    # A worker that dies (killed, out of memory) fails the call with BrokenProcessPool instead of hanging it.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker,
                               initargs=(fn, items))
    try:
        done = pool.map(_run_chunk, chunks)  # forks the workers and hands out every chunk
        return [result for chunk in done for result in chunk]
    finally:  # also on Ctrl-C or an exception: what has not started is dropped, what runs ends within its chunk
        pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(fn, items: Sequence) -> None:
    global _WORK
    _WORK = (fn, items)
    # Ctrl-C reaches every process in the terminal's group; the parent alone handles it (and stops the workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_chunk(bounds: tuple[int, int]) -> list:
    fn, items = _WORK
    return [fn(items[i]) for i in range(*bounds)]


def _visible_entries(folder: Path) -> list[str]:
    try:
        names = os.listdir(folder)
    except OSError as err:
        raise UserError(f"cannot list {folder}: {err.strerror}") from err
    return sorted(n for n in names if not n.startswith("."))


def _try_read_image(path: Path, invert: str) -> tuple[Form, bool] | str:
    """_read_image's result, or the one-line reason why the file is no usable image."""
    try:
        return _read_image(path, invert)
    except _Unreadable as err:
        return str(err)


def _read_image(path: Path, invert: str) -> tuple[Form, bool]:
    """One file -> its Form (float32 (28, 28) in [0, 1] in MNIST form, and whether anything is written), and whether
    it had to be converted."""
    _check_regular_file(path)
    img = _decode(path)
    gray = _to_unit_gray(img)
    form = read_form(gray, invert)
    return form, not (img.mode == "L" and form.image is gray)


def _check_regular_file(path: Path) -> None:
    # stat() follows symlinks, so broken links and loops surface here as OSError; only regular
    # files go further, because opening a FIFO or a device would block or read forever.
    try:
        info = path.stat()
    except OSError as err:
        raise _Unreadable(err.strerror or type(err).__name__) from err
    if stat.S_ISDIR(info.st_mode):
        raise _Unreadable("is a folder (folders are not searched)")
    if not stat.S_ISREG(info.st_mode):
        raise _Unreadable("not a regular file")
    if info.st_size == 0:
        raise _Unreadable("empty file")


def _decode(path: Path) -> Image.Image:
    # Pillow parses untrusted bytes and can fail with many exception types (OSError, SyntaxError,
    # ValueError, EOFError, zlib.error, struct.error, ...): any failure here means "not a usable
    # image". Our own conversion code runs outside this block, so its bugs still raise. A file far larger than
    # MAX_PIXELS is refused from its header below (Pillow's own DecompressionBombError, for the absurdly large, is
    # caught like any other failure).
    try:
        with Image.open(path) as img:
            # Image.open reads only the header, so the size is known before any pixel is decoded.
            if img.width * img.height > MAX_PIXELS:
                raise _Unreadable(f"{img.width}x{img.height} is over the {MAX_PIXELS:,}-pixel limit (refused undecoded)")
            img.load()  # decodes now, inside the try, so a truncated file is caught here
            return ImageOps.exif_transpose(img)  # a photo taken sideways keeps its upright view
    except _Unreadable:
        raise
    except UnidentifiedImageError as err:
        raise _Unreadable("not an image Pillow can read") from err
    except Exception as err:  # noqa: BLE001 - see comment above
        raise _Unreadable(_one_line(err)) from err


def _to_unit_gray(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 (H, W) in [0, 1]."""
    if img.mode.startswith("I;16"):
        return np.asarray(img, dtype=np.float32) / 65535.0
    if img.mode in ("I", "F"):
        return _scale_wide(np.asarray(img, dtype=np.float64), is_float=img.mode == "F")
    try:
        gray = img.convert("L")  # luma for colour, palette lookup for P, 0/255 for 1-bit
    except ValueError as err:
        raise _Unreadable(f"unsupported image mode {img.mode}") from err
    return np.asarray(gray, dtype=np.float32) / 255.0


def _scale_wide(values: np.ndarray, is_float: bool) -> np.ndarray:
    top = float(values.max()) if values.size else 0.0
    ranges = (1.0,) if is_float else (255.0, 65535.0)
    scale = next((r for r in ranges if top <= r), top)
    return np.clip(values / scale, 0.0, 1.0).astype(np.float32)


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _warn_summary(folder: str, loaded: int, converted: int, skipped: list[tuple[str, str]]) -> None:
    if not converted and not skipped:
        return
    examples = "; ".join(f"{name}: {reason}" for name, reason in skipped[:3])
    more = f"; ... {len(skipped) - 3} more" if len(skipped) > 3 else ""
    detail = f" ({examples}{more})" if skipped else ""
    log.warning(f"{folder}: {loaded} images read, {converted} converted to MNIST form, "
                f"{len(skipped)} entries skipped{detail}")


# ----------------------------------------------------------------------------------- in-memory images
ARRAY_SHAPES = "(H, W), (N, H, W) or (N, 1, H, W)"


def as_batch(images, invert: str = "auto") -> torch.Tensor:
    """read_batch's images alone."""
    return read_batch(images, invert).images


def read_batch(images, invert: str = "auto") -> Read:
    """What people hold -> float32 (N, 1, 28, 28) in MNIST form, each image through mnist_style.read_form, with
    which of them are blank.

    Accepts a path (str or Path) to an image file, a PIL image, a NumPy array or a torch tensor of shape
    (H, W), (N, H, W) or (N, 1, H, W) (uint8 in 0-255, bool, or float in [0, 1]), or a list or tuple of
    any of these. Anything else is a ValueError that names what it got and what is expected. Large inputs are
    read on every core; images already in MNIST form are recognised a whole array at a time.
    """
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {invert!r}")
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("no images: got an empty list")
        units = [unit for item in images for unit in _units(item)]
    else:
        units = _units(images)
    forms: list[Form | None] = [None] * len(units)
    square = [i for i, u in enumerate(units) if isinstance(u, np.ndarray) and u.shape == (SIDE, SIDE)]
    if square:  # MNIST-shaped arrays pass through unchanged: recognised a whole stack at a time
        ready, turned = already_in_mnist_form(np.stack([units[i] for i in square]), invert)
        for i, formed in zip(np.asarray(square)[ready], turned[ready]):
            forms[i] = as_it_is(formed)
    todo = [i for i, f in enumerate(forms) if f is None]
    for i, formed in zip(todo, parallel_map(partial(_unit_form, invert=invert), [units[i] for i in todo])):
        forms[i] = formed
    return Read.of(forms)


def _units(item) -> list:
    """One item -> what is put in MNIST form one at a time: the path, the PIL image, or each image of an array
    (float32 (H, W) in [0, 1]). Wrong input raises ValueError."""
    if isinstance(item, (str, Path, Image.Image)):
        return [item]
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu().numpy()
    if not isinstance(item, np.ndarray):
        raise ValueError(f"expected a path, a PIL image, a NumPy array or a torch tensor, got {type(item).__name__}")
    _check_shape(item)
    return list(_unit_range(item).reshape(-1, *item.shape[-2:]))


def _unit_form(unit, invert: str) -> Form:
    """One unit of _units -> its Form."""
    if isinstance(unit, np.ndarray):
        return read_form(unit, invert)
    if isinstance(unit, Image.Image):
        return read_form(_to_unit_gray(unit), invert)
    path = Path(unit)
    try:
        _check_regular_file(path)
        return read_form(_to_unit_gray(_decode(path)), invert)
    except _Unreadable as err:
        raise ValueError(f"cannot read image {path}: {err}") from None


def _check_shape(a: np.ndarray) -> bool:
    if a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] > 4 and a.shape[1] > 4:
        raise ValueError(f"got shape {a.shape}, which looks like one colour image (H, W, C); pass grayscale "
                         f"{ARRAY_SHAPES}, or the PIL image, which is converted to grayscale")
    if a.ndim not in (2, 3, 4) or (a.ndim == 4 and a.shape[1] != 1):
        raise ValueError(f"expected an array of shape {ARRAY_SHAPES}, got {a.shape}")
    if a.size == 0:
        raise ValueError(f"no images: got an array of shape {a.shape}")
    return True


def _unit_range(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        low, high = float(np.nanmin(a)), float(np.nanmax(a))
        if not np.isfinite(a).all() or low < 0.0 or high > 1.0:
            raise ValueError(f"float images must lie in [0, 1], got values from {low:g} to {high:g} "
                             "(pass 0-255 images as uint8)")
        return a.astype(np.float32)
    raise ValueError(f"expected uint8, bool or float images, got dtype {a.dtype}")

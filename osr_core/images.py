"""Reading an arbitrary folder of images into MNIST-shaped tensors, skipping what cannot be read.

Every entry of the folder is either loaded or listed in `skipped` with a one-line reason; nothing
in the folder can crash the reader, hang it (FIFOs are never opened) or make it decode a
decompression bomb. Images are taken as given (white strokes on black, as in MNIST): no
automatic inversion, because a reader cannot tell a dark-on-light letter from a light-on-dark one.

Choices a user may need to know:
- Hidden entries (names starting with ".", e.g. `.DS_Store` or the output manifest that
  `io.StageOutputs` keeps) are ignored, not listed as skipped.
- Colour images become grayscale by ITU-R 601-2 luma (Pillow's `convert("L")`). Alpha is
  ignored: a pixel keeps its stored colour whatever its transparency, so strokes stored as colour
  on a transparent background survive, while a drawing that exists only in the alpha channel does not.
- 16-bit images are scaled by 65535, 32-bit integer and float images by the smallest of 255,
  65535 (integers) or 1.0 (floats) that holds their maximum, else by their maximum: a uniform
  mid-grey image stays mid-grey instead of being stretched to white.
- Any other size is resized to 28x28 (Lanczos on the grayscale image); the aspect ratio is not
  kept, as a user folder of digit crops is expected to be roughly square already.
- Multi-frame files (GIF, TIFF) contribute their first frame.
"""
from __future__ import annotations

import logging
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .cli import UserError

log = logging.getLogger("osr")

SIDE = 28
# Refused before decoding: far above any sensible digit image, far below what exhausts memory.
MAX_PIXELS = 4096 * 4096


@dataclass
class ImageFolder:
    images: torch.Tensor  # float32 (N, 1, 28, 28) in [0, 1]
    files: list[str]  # names relative to the folder, sorted, one per image
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, one-line reason)
    converted: int = 0  # images that were not already 28x28 8-bit grayscale


class _Unreadable(Exception):
    """An entry that is not a usable image; its message is the reason shown to the user."""


def load_image_folder(folder: str | Path, ignore: frozenset[str] = frozenset()) -> ImageFolder:
    """`ignore`: names known not to be images (a manifest beside them), left out without a warning."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"image folder not found: {folder}")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of images")
    arrays, files, skipped, converted = [], [], [], 0
    for name in _visible_entries(folder):
        if name in ignore:
            continue
        try:
            array, was_converted = _read_image(folder / name)
        except _Unreadable as err:
            skipped.append((name, str(err)))
            continue
        arrays.append(array)
        files.append(name)
        converted += was_converted
    if not arrays:
        raise UserError(f"{folder} holds no readable images; {len(skipped)} entries skipped")
    _warn_summary(folder, len(arrays), converted, skipped)
    images = torch.from_numpy(np.stack(arrays)).unsqueeze(1)  # (N, 1, 28, 28)
    return ImageFolder(images=images, files=files, skipped=skipped, converted=converted)


def _visible_entries(folder: Path) -> list[str]:
    try:
        names = os.listdir(folder)
    except OSError as err:
        raise UserError(f"cannot list {folder}: {err.strerror}") from err
    return sorted(n for n in names if not n.startswith("."))


def _read_image(path: Path) -> tuple[np.ndarray, bool]:
    """One file -> float32 (28, 28) in [0, 1], and whether it had to be converted."""
    _check_regular_file(path)
    img = _decode(path)
    converted = not (img.mode == "L" and img.size == (SIDE, SIDE))
    gray = _to_unit_gray(img)
    if gray.shape != (SIDE, SIDE):
        gray = _resize(gray)
    return gray, converted


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
    # image". Our own conversion code runs outside this block, so its bugs still raise.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
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


def _resize(gray: np.ndarray) -> np.ndarray:
    resized = Image.fromarray(gray).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)  # Lanczos overshoots slightly


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _warn_summary(folder: Path, loaded: int, converted: int, skipped: list[tuple[str, str]]) -> None:
    if not converted and not skipped:
        return
    examples = "; ".join(f"{name}: {reason}" for name, reason in skipped[:3])
    more = f"; ... {len(skipped) - 3} more" if len(skipped) > 3 else ""
    detail = f" ({examples}{more})" if skipped else ""
    log.warning(f"{folder}: {loaded} images read, {converted} converted to 28x28 grayscale, "
                f"{len(skipped)} entries skipped{detail}")

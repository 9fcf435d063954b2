"""What every stage script shares: common flags, seeding, device choice, logging, exit codes."""
from __future__ import annotations

import argparse
import logging
import random
import sys
from typing import Callable, Sequence

import numpy as np
import torch

log = logging.getLogger("osr")

DEFAULT_DATA_DIR = "data"
DEFAULT_CHECKPOINT = "artifacts/model.pt"
DEFAULT_THRESHOLDS = "artifacts/reconstruction_errors.txt"
DEFAULT_LETTERS_DIR = "artifacts/letters"


class UserError(Exception):
    """A mistake the user can fix (missing file, wrong format, mismatched checkpoint).

    Scripts turn it into one line on stderr and exit code 2; anything else is a bug and raises.
    """


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    return torch.device(name)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs natively: a CUDA device with bf16, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where it is native (see bf16_is_fast), else 'fp32'."""
    if name == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return name


def number(kind: type, low: float | None = None, high: float | None = None, low_open: bool = False):
    """An argparse type: a number of `kind` within [low, high] ((low, high] with low_open), else a clear error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
        if value != value or (low is not None and (value <= low if low_open else value < low)) \
                or (high is not None and value > high):
            bounds = f"{'>' if low_open else '>='} {low}" if high is None else f"in {'(' if low_open else '['}{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value
    return parse


def add_common_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Adds the flags shared across scripts, each with the same name, default and meaning."""
    specs = {
        "data_dir": ("--data-dir", dict(default=DEFAULT_DATA_DIR, help="where data sets live (default: %(default)s)")),
        "checkpoint": ("--checkpoint", dict(default=DEFAULT_CHECKPOINT, help="model checkpoint (default: %(default)s)")),
        "thresholds": ("--thresholds", dict(default=DEFAULT_THRESHOLDS, help="per-class thresholds file (default: %(default)s)")),
        "letters_dir": ("--letters-dir", dict(default=DEFAULT_LETTERS_DIR, help="folder of images (default: %(default)s)")),
        "device": ("--device", dict(default="auto", choices=["auto", "cpu", "cuda"], help="(default: %(default)s)")),
        "seed": ("--seed", dict(type=int, default=0, help="random seed (default: %(default)s)")),
        "batch_size": ("--batch-size", dict(type=number(int, 1), default=256, help="images per batch (default: %(default)s)")),
    }
    for name in names:
        flag, kwargs = specs[name]
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")


def progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", force=True)


def return_freed_memory() -> None:
    """Hands memory freed since the last call back to the system (glibc's malloc_trim; a no-op elsewhere).
    glibc keeps large freed tensors in its heap once its mmap threshold has risen, so a stage that makes and
    drops one data set after another grows by each of them: called between them, evaluate_osr.py's peak fell by
    about 300 MB when measured. (Fixing the threshold low instead cost 35% more time in page faults.)"""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run(main_body: Callable[[argparse.Namespace], int | None], parser: argparse.ArgumentParser,
        argv: Sequence[str] | None) -> int:
    """Parses argv, runs the stage, and maps user errors to one stderr line and exit code 2, Ctrl-C to one
    line and exit code 130."""
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    try:
        return main_body(args) or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Every file is written atomically and stage outputs are staged, so nothing is left half-written.
        print("interrupted: earlier outputs are unchanged", file=sys.stderr)
        return 130

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


def add_common_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Adds the flags shared across scripts, each with the same name, default and meaning."""
    specs = {
        "data_dir": ("--data-dir", dict(default=DEFAULT_DATA_DIR, help="where data sets live (default: %(default)s)")),
        "checkpoint": ("--checkpoint", dict(default=DEFAULT_CHECKPOINT, help="model checkpoint (default: %(default)s)")),
        "thresholds": ("--thresholds", dict(default=DEFAULT_THRESHOLDS, help="per-class thresholds file (default: %(default)s)")),
        "letters_dir": ("--letters-dir", dict(default=DEFAULT_LETTERS_DIR, help="folder of images (default: %(default)s)")),
        "device": ("--device", dict(default="auto", choices=["auto", "cpu", "cuda"], help="(default: %(default)s)")),
        "seed": ("--seed", dict(type=int, default=0, help="random seed (default: %(default)s)")),
        "batch_size": ("--batch-size", dict(type=int, default=256, help="images per batch (default: %(default)s)")),
    }
    for name in names:
        flag, kwargs = specs[name]
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")


def progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", force=True)


def run(main_body: Callable[[argparse.Namespace], int | None], parser: argparse.ArgumentParser,
        argv: Sequence[str] | None) -> int:
    """Parses argv, runs the stage, and maps user errors to one stderr line and exit code 2."""
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    try:
        return main_body(args) or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

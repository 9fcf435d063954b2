"""Stage 4: render synthetic letters A-Z, a-z as MNIST-style 28x28 PNGs, with a manifest.

Usage: python generate_letters.py [--count 2600] [--font-dir FONTS/] [--seed 0] [--out-dir artifacts/letters] [--quiet]

Writes one PNG per letter and manifest.csv (file, char, case, font, digit_like, looks_like).
A re-run replaces the set it wrote before and leaves any other file in --out-dir alone.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from osr_core.cli import DEFAULT_LETTERS_DIR, add_common_flags, number, progress_enabled, run
from osr_core.io import StageOutputs
from osr_core.letters import LETTERS, MANIFEST_FILE, generate, manifest_text, png_bytes

log = logging.getLogger("osr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=number(int, 1), default=50 * len(LETTERS),
                        help="images to render, cycling A-Z, a-z (default: %(default)s, 50 per glyph)")
    parser.add_argument("--font-dir", default=None,
                        help="extra .ttf/.otf fonts, used besides Pillow's default and any installed DejaVu fonts")
    parser.add_argument("--out-dir", default=DEFAULT_LETTERS_DIR, help="(default: %(default)s)")
    add_common_flags(parser, "seed")
    return parser


def generate_letters(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    with StageOutputs(args.out_dir) as outputs:  # from here on, the folder is this run's
        samples = generate(args.count, args.seed, args.font_dir, progress=progress_enabled(args.quiet))
        for sample in samples:
            outputs.write_bytes(sample["file"], png_bytes(sample["image"]))
        outputs.write_text(MANIFEST_FILE, manifest_text(samples))
        outputs.finish()
    fonts = sorted({s["font"] for s in samples})
    digit_like = sum(s["digit_like"] for s in samples)
    log.info(f"wrote {len(samples)} letters to {args.out_dir} in {time.perf_counter() - start:.1f} s: "
             f"{len(fonts)} fonts ({', '.join(fonts)}), {digit_like} digit-like")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(generate_letters, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

"""Stage 5: answer, for each image, which digit it is or "unknown" (the generated letters by default).

Usage: python test_letters.py [IMAGE_OR_FOLDER_OR_GLOB ...] [--letters-dir artifacts/letters]
                              [--invert auto|yes|no] [--json] [--show 20] [--out-dir artifacts/letters_test]

Any images work (files, folders, glob patterns; any size, mode or polarity): each is put in MNIST form
(ink white on black, cropped, fitted into 20x20, centred by mass); unreadable files are skipped and
listed. An image with nothing written in it (blank paper, dust, only a form's printed lines) is unknown,
reason "blank". Prints one line per image (`file  digit 7 (score ... <= threshold ...)`, `file  unknown
(nearest 8, score ... > ...)` or `file  unknown (blank: nothing written)`), or with --json one JSON object
per line, then a summary (per letter when the folder has a manifest.csv). Writes scores.csv, the
flagged-image panels, most_anomalous.png and index.html (every image, sortable and filterable; sprite.png beside).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from osr_core import cli, page
from osr_core.dumps import answer_line, answer_record, dump_flagged, scores_csv
from osr_core.images import load_images
from osr_core.io import StageOutputs
from osr_core.letters import MANIFEST_FILE, read_manifest
from osr_core.mnist_style import INVERT_CHOICES
from osr_core.pipeline import decide, load_calibration, load_trained

log = logging.getLogger("osr")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="*", help="image files, folders or glob patterns (default: --letters-dir)")
    p.add_argument("--invert", choices=INVERT_CHOICES, default="auto",
                   help="make dark ink on light paper white on black: auto (from the border), yes or no")
    p.add_argument("--json", action="store_true", help="print one JSON object per image instead of lines")
    p.add_argument("--show", type=cli.number(int, 0), default=20,
                   help="print the answer for at most this many images (default: %(default)s; all of them in scores.csv)")
    p.add_argument("--out-dir", default="artifacts/letters_test")
    p.add_argument("--max-panels", type=cli.number(int, 0), default=1000, help="at most this many flagged-image PNGs")
    p.add_argument("--sheet-size", type=cli.number(int, 1), default=64, help="images on the most-anomalous contact sheet")
    cli.add_common_flags(p, "letters_dir", "checkpoint", "thresholds", "device", "batch_size")
    return p


def summary(files: list[str], flagged: np.ndarray, blank: np.ndarray, manifest: dict) -> str:
    blanks = f", {blank.sum()} of them blank" if blank.any() else ""
    lines = [f"unknown: {flagged.sum()} of {len(files)} images ({100 * flagged.mean():.2f}%{blanks}); "
             f"named as digits: {len(files) - flagged.sum()}"]
    if manifest:
        per_char: dict[str, list[bool]] = defaultdict(list)
        digit_like = []
        for f, is_flagged in zip(files, flagged):
            row = manifest.get(f)
            if row:
                per_char[row["char"]].append(bool(is_flagged))
                if row["digit_like"]:  # parsed once, by letters.read_manifest
                    digit_like.append(bool(is_flagged))
        others = flagged.sum() - sum(digit_like)
        lines.append(f"digit-like glyphs flagged: {sum(digit_like)} of {len(digit_like)}; "
                     f"others: {others} of {len(files) - len(digit_like)}")
        lines.append("per letter (flagged / n): " + "  ".join(
            f"{c}:{sum(v)}/{len(v)}" for c, v in sorted(per_char.items())))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    trained = load_trained(args.checkpoint, cli.resolve_device(args.device))
    cal = load_calibration(trained, args.thresholds)
    inputs = args.images or [args.letters_dir]
    with StageOutputs(args.out_dir) as outputs:  # from here on, the folder is this run's
        folder = load_images(inputs, invert=args.invert, ignore=frozenset({MANIFEST_FILE}))
        for name, reason in folder.skipped:
            log.warning("skipped %s: %s", name, reason)
        decisions = decide(trained, cal, folder.images, args.batch_size, folder.blank, keep_recon=True,
                           show_progress=cli.progress_enabled(args.quiet))
        stems = [Path(f).name.rsplit(".", 1)[0] for f in folder.files]
        outputs.write_text("scores.csv", scores_csv("file", folder.files, decisions))
        if folder.skipped:
            outputs.write_text("skipped.txt", "".join(f"{n}\t{r}\n" for n, r in folder.skipped))
        dump_flagged(outputs, folder.images.squeeze(1).numpy(), decisions, stems, args.max_panels, args.sheet_size)
        page.write_scored(outputs, "images", ", ".join(inputs), cal.score, page.Column("file", "file", "text"),
                          folder.files, decisions, folder.images.squeeze(1).numpy())
        outputs.finish()
    single_folder = len(inputs) == 1 and Path(inputs[0]).is_dir()
    manifest = read_manifest(inputs[0]) if single_folder else {}
    if args.json:  # stdout carries the records alone; the summary goes to the log
        for i, name in enumerate(folder.files):
            print(json.dumps(answer_record(name, decisions, i)))
        log.info(summary(folder.files, decisions.is_unknown, decisions.blank, manifest))
    else:
        for i, name in enumerate(folder.files[:args.show]):
            print(answer_line(name, decisions, i))
        if len(folder.files) > args.show:
            print(f"... {len(folder.files) - args.show} more in {args.out_dir}/scores.csv (--show N for more)")
        print(summary(folder.files, decisions.is_unknown, decisions.blank, manifest))
    if folder.skipped:
        log.warning("skipped %d unreadable file(s); listed in %s/skipped.txt", len(folder.skipped), args.out_dir)
    return 0


def main(argv=None) -> int:
    return cli.run(run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

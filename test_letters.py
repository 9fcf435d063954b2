"""Stage 5: score every image in a folder (the generated letters by default) as known digit or unknown.

Usage: python test_letters.py [--letters-dir artifacts/letters] [--out-dir artifacts/letters_test]

Any folder of images works: each is converted to 28x28 grayscale (with a warning), unreadable
files are skipped and listed. Writes scores.csv, the flagged-image panels and most_anomalous.png,
and prints how many were flagged, per letter when the folder has a manifest.csv.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict

import numpy as np

from osr_core import cli
from osr_core.dumps import dump_flagged, scores_csv
from osr_core.images import load_image_folder
from osr_core.io import StageOutputs
from osr_core.letters import MANIFEST_FILE, read_manifest
from osr_core.pipeline import decide, load_calibration, load_trained

log = logging.getLogger("osr")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default="artifacts/letters_test")
    p.add_argument("--max-panels", type=int, default=1000, help="at most this many flagged-image PNGs")
    p.add_argument("--sheet-size", type=int, default=64, help="images on the most-anomalous contact sheet")
    cli.add_common_flags(p, "letters_dir", "checkpoint", "thresholds", "device", "batch_size")
    return p


def summary(files: list[str], flagged: np.ndarray, manifest: dict) -> str:
    lines = [f"flagged unknown: {flagged.sum()} of {len(files)} images ({100 * flagged.mean():.2f}%)"]
    if manifest:
        per_char: dict[str, list[bool]] = defaultdict(list)
        digit_like = []
        for f, is_flagged in zip(files, flagged):
            row = manifest.get(f)
            if row:
                per_char[row["char"]].append(bool(is_flagged))
                if str(row["digit_like"]).lower() in ("1", "true"):
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
    folder = load_image_folder(args.letters_dir, ignore=frozenset({MANIFEST_FILE}))
    for name, reason in folder.skipped:
        log.warning("skipped %s: %s", name, reason)
    decisions = decide(trained, cal, folder.images, args.batch_size, keep_recon=True,
                       show_progress=cli.progress_enabled(args.quiet))
    stems = [f.rsplit(".", 1)[0] for f in folder.files]
    with StageOutputs(args.out_dir) as outputs:
        outputs.write_text("scores.csv", scores_csv("file", folder.files, decisions))
        if folder.skipped:
            outputs.write_text("skipped.txt", "".join(f"{n}\t{r}\n" for n, r in folder.skipped))
        dump_flagged(outputs, folder.images.squeeze(1).numpy(), decisions, stems, args.max_panels, args.sheet_size)
        outputs.finish()
    print(summary(folder.files, decisions.is_unknown, read_manifest(args.letters_dir)))
    if folder.skipped:
        print(f"skipped {len(folder.skipped)} unreadable file(s); listed in {args.out_dir}/skipped.txt")
    return 0


def main(argv=None) -> int:
    return cli.run(run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

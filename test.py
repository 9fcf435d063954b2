"""Stage 3: score the MNIST test set against the per-class thresholds and dump what is flagged.

Usage: python test.py [--checkpoint artifacts/model.pt] [--thresholds artifacts/reconstruction_errors.txt]

Prints closed-set accuracy, how many test images are flagged unknown and the false-alarm rate of
each class; writes artifacts/test/scores.csv, one PNG per flagged image under flagged/ (input,
reconstruction, error map), most_anomalous.png, and index.html (every digit, sortable and filterable, with
sprite.png beside it). A re-run replaces the previous dump.
"""
from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from osr_core import cli, page
from osr_core.dumps import dump_flagged, scores_csv
from osr_core.io import StageOutputs
from osr_core.pipeline import decide, known_test_digits, load_calibration, load_trained

log = logging.getLogger("osr")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default="artifacts/test")
    p.add_argument("--max-panels", type=cli.number(int, 0), default=1000, help="at most this many flagged-image PNGs")
    p.add_argument("--sheet-size", type=cli.number(int, 1), default=64, help="images on the most-anomalous contact sheet")
    cli.add_common_flags(p, "data_dir", "checkpoint", "thresholds", "device", "batch_size")
    return p


def summary(labels: np.ndarray, decisions, known: list[int], target_acceptance: float) -> str:
    pred, flagged = decisions.scored.pred, decisions.is_unknown
    lines = [f"closed-set accuracy: {100 * (pred == labels).mean():.2f}% on {len(labels)} MNIST test images",
             f"flagged unknown:     {flagged.sum()} ({100 * flagged.mean():.2f}%; "
             f"target false-alarm rate {100 * (1 - target_acceptance):.1f}%)",
             "class     n  flagged  false-alarm %"]
    for c in known:
        mask = labels == c
        lines.append(f"{c:>5} {mask.sum():>5} {flagged[mask].sum():>7} {100 * flagged[mask].mean():>12.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    trained = load_trained(args.checkpoint, cli.resolve_device(args.device))
    cal = load_calibration(trained, args.thresholds)
    with StageOutputs(args.out_dir) as outputs:  # from here on, the folder is this run's
        images, labels, index = known_test_digits(trained, args.data_dir)
        decisions = decide(trained, cal, images, args.batch_size, keep_recon=True,
                           show_progress=cli.progress_enabled(args.quiet))
        names = [f"idx{i}_label{l}" for i, l in zip(index, labels)]
        outputs.write_text("scores.csv", scores_csv("index", index.tolist(), decisions, labels))
        dump_flagged(outputs, images.squeeze(1).numpy(), decisions, names, args.max_panels, args.sheet_size)
        page.write_scored(outputs, "MNIST test digits", f"{args.checkpoint} and {args.thresholds}", cal.score,
                          page.Column("index", "index", "text", "index in MNIST test"), index.tolist(), decisions,
                          images.squeeze(1).numpy(), [(page.Column("label", "label", "text", "the true digit"),
                                                       [str(int(l)) for l in labels])], ("answer", "reason", "pred", "label"))
        outputs.finish()
    print(summary(labels, decisions, trained.known_classes, cal.target_acceptance))
    log.info("wrote %s/scores.csv, flagged/, most_anomalous.png and index.html", args.out_dir)
    return 0


def main(argv=None) -> int:
    return cli.run(run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

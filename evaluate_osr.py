"""Stage 6: the open-set evaluation: every unknown set, every metric, the pictures, the report.

Usage: python evaluate_osr.py [--extra NAME=DIR ...] [--protocol standard|unseen-digits]

Writes artifacts/osr/metrics.json (schema in docs/metrics.md), report.md with its PNGs beside it, and index.html
(what each set rejected and what slipped through, sortable and filterable; sprite.png beside it).
`--protocol unseen-digits` first trains (or reuses) one model per standard 6-known-digit split,
calibrates each on its validation split, measures its 4 held-out digits, and adds the result.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

from osr_core import cli, figures, page, protocol
from osr_core.evaluation import covariate_shift, evaluate, metrics_document, validation_reference
from osr_core.io import StageOutputs
from osr_core.pipeline import known_test_digits, load_calibration, load_trained
from osr_core.recipe import PRESETS
from osr_core.report import render
from osr_core.unknown_sets import unknown_sets



def parse_extra(text: str) -> tuple[str, str]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder or not name.replace("_", "").replace("-", "").isalnum():
        raise argparse.ArgumentTypeError(f"expected NAME=DIR with a plain NAME, got {text!r}")
    return name, folder


def parse_compare(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=METRICS_JSON, got {text!r}")
    return name.strip(), path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default="artifacts/osr")
    p.add_argument("--extra", type=parse_extra, action="append", default=[], metavar="NAME=DIR",
                   help="an extra folder of unknown images (repeatable)")
    p.add_argument("--compare", type=parse_compare, action="append", default=[], metavar="NAME=METRICS_JSON",
                   help="another model's metrics.json to set beside this one in the report (repeatable)")
    p.add_argument("--n-generated", type=cli.number(int, 1), default=10000,
                   help="images per generated set (noise, crops, distorted digits, ...; at most 2,000 scans and "
                        "images without a digit, and 4 per character glyph)")
    p.add_argument("--no-embeddings", action="store_true", help="skip the t-SNE and PCA pictures")
    p.add_argument("--no-pictures", action="store_true",
                   help="numbers only: metrics.json and report.md, no pictures and no index.html")
    p.add_argument("--bootstrap", type=cli.number(int, 1), default=200, help="resamples for the AUROC intervals (default: %(default)s)")
    p.add_argument("--protocol", choices=["standard", "unseen-digits"], default="standard")
    p.add_argument("--splits-dir", default="artifacts/unseen_digits",
                   help="checkpoints and summary of the unseen-digit protocol (default: %(default)s)")
    p.add_argument("--split-preset", choices=list(PRESETS), default="default",
                   help="train.py's preset the protocol's split models are trained with (default: %(default)s)")
    p.add_argument("--split-epochs", type=cli.number(int, 1), default=None,
                   help="epochs per split model in the unseen-digit protocol (default: the preset's, as train.py)")
    p.add_argument("--methods", default="artifacts/methods/methods.json",
                   help="benchmarks/methods.py's summary, shown in the report when it exists (default: %(default)s)")
    p.add_argument("--jobs", type=cli.number(int, 1), default=os.cpu_count() or 1,
                   help="splits of the protocol trained at once, each in its own process (default: the core count, "
                        "%(default)s)")
    cli.add_common_flags(p, "data_dir", "checkpoint", "thresholds", "letters_dir", "device", "seed", "batch_size")
    return p


def check_inputs(args: argparse.Namespace) -> None:
    """Named inputs that are missing end the run before any work, leaving the previous report alone."""
    for name, folder in args.extra:
        if not Path(folder).is_dir():
            raise cli.UserError(f"--extra {name}={folder}: no such folder")
    for name, path in args.compare:
        if not Path(path).is_file():
            raise cli.UserError(f"--compare {name}={path}: no such file (make benchmark-crosr writes artifacts/dhrnet/osr/metrics.json)")


def run(args: argparse.Namespace) -> int:
    check_inputs(args)
    with StageOutputs(args.out_dir) as outputs:  # from here on, the folder is this run's
        metrics = evaluate_into(outputs, args)
    print(f"closed-set accuracy {100 * metrics['closed_set_accuracy']:.2f}%, false alarms "
          f"{100 * metrics['false_alarm_rate']:.2f}%; report: {args.out_dir}/report.md")
    return 0


def evaluate_into(outputs: StageOutputs, args: argparse.Namespace) -> dict:
    """The whole evaluation, its three views staged into `outputs`; returns metrics.json's content."""
    if args.protocol == "unseen-digits":
        protocol.run_unseen_digits(protocol.Settings(
            args.data_dir, args.splits_dir, args.device, epochs=args.split_epochs, seed=args.seed,
            batch_size=args.batch_size, bootstrap=args.bootstrap, quiet=args.quiet, preset=args.split_preset), args.jobs)
    trained = load_trained(args.checkpoint, cli.resolve_device(args.device))
    cal, cal_source = load_calibration(trained, args.thresholds), f"file {args.thresholds}"
    images, labels, _ = known_test_digits(trained, args.data_dir)
    show = not args.no_pictures
    # First, so that its distorted copies of the test digits are gone before the unknown sets are made.
    shifted = covariate_shift(trained, cal, images, labels, args.seed, args.batch_size, args.n_generated, show)
    cli.return_freed_memory()
    reference = validation_reference(trained, args.data_dir, args.seed, args.batch_size, args.n_generated)
    sets = unknown_sets(args.data_dir, args.letters_dir, trained.known_classes, args.seed, args.n_generated,
                        dict(args.extra))  # made one at a time as the evaluation reaches them
    result = evaluate(trained, cal, images, labels, itertools.chain(reference.proxies, sets), args.seed, args.batch_size,
                      reference=reference, n_boot=args.bootstrap, show=show)
    result.covariate = shifted
    metrics = metrics_document(trained, cal, cal_source, args.bootstrap, result.to_metrics(), args.compare,
                               Path(args.splits_dir) / protocol.SUMMARY, Path(args.methods))
    # Three views of the one result: the figures, the report with its pictures, and the page.
    outputs.write_json("metrics.json", metrics)
    outputs.write_text("report.md", render(metrics, pictures=show))
    if show:
        figures.write(outputs, result, trained.known_classes, args.seed, with_embeddings=not args.no_embeddings)
        page.write_evaluation(outputs, result, cal.score)
    outputs.finish()
    return metrics


def main(argv=None) -> int:
    return cli.run(run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

"""Stage 6: the open-set evaluation: every unknown set, every metric, the pictures, the report.

Usage: python evaluate_osr.py [--extra NAME=DIR ...] [--protocol standard|unseen-digits]

Writes artifacts/osr/metrics.json (schema in README.md), report.md with its PNGs beside it, and index.html
(what each set rejected and what slipped through, sortable and filterable; sprite.png beside it).
`--protocol unseen-digits` first trains (or reuses) one model per standard 6-known-digit split,
calibrates each on its validation split, measures its 4 held-out digits, and adds the result.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch

import compute_class_reconstruction_errors
import train
from osr_core import cli, data, figures, page
from osr_core.evaluation import covariate_shift, evaluate, validation_reference
from osr_core.io import StageOutputs, write_json
from osr_core.pipeline import known_test_digits, load_calibration, load_trained
from osr_core.report import render
from osr_core.recipe import reusable_checkpoint
from osr_core.unknown_sets import held_out_digits, unknown_sets

log = logging.getLogger("osr")
UNSEEN_SUMMARY = "summary.json"


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


def comparison(name: str, path: str) -> dict:
    """Another model's evaluation (its metrics.json) for the report's side-by-side table."""
    try:
        other = json.loads(Path(path).read_text())
        sets = {n: {k: s[k] for k in ("auroc", "detection_rate", "macro_f1")}
                for n, s in other["sets"].items() if s.get("available")}
        return {"available": True, "source": path, "closed_set_accuracy": other["closed_set_accuracy"],
                "false_alarm_rate": other["false_alarm_rate"], "score": other["calibration"]["score"],
                "arch": other.get("arch", "?"), "sets": sets}
    except (OSError, ValueError, KeyError, TypeError) as err:
        return {"available": False, "source": path, "reason": f"{path} is not a metrics.json of this project ({err})"}


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
    p.add_argument("--split-epochs", type=cli.number(int, 1), default=train.build_parser().get_default("epochs"),
                   help="epochs per split model in the unseen-digit protocol (default: %(default)s, as train.py)")
    p.add_argument("--methods", default="artifacts/methods/methods.json",
                   help="benchmarks/methods.py's summary, shown in the report when it exists (default: %(default)s)")
    p.add_argument("--jobs", type=cli.number(int, 1), default=os.cpu_count() or 1,
                   help="splits of the protocol trained at once, each in its own process (default: the core count, "
                        "%(default)s)")
    cli.add_common_flags(p, "data_dir", "checkpoint", "thresholds", "letters_dir", "device", "seed", "batch_size")
    return p


def split_flags(known: list[int], args: argparse.Namespace) -> list[str]:
    """train.py's flags for one split of the protocol: the split's classes, otherwise train.py's defaults."""
    return ["--known-classes", ",".join(map(str, known)), "--epochs", str(args.split_epochs), "--seed", str(args.seed)]


def run_split(i: int, known: list[int], args: argparse.Namespace, threads: int) -> dict:
    """One split of the protocol: train (or reuse) its model, calibrate it, measure its held-out digits."""
    torch.set_num_threads(threads)
    split_dir = Path(args.splits_dir) / f"split{i}"
    checkpoint, thresholds = split_dir / "model.pt", split_dir / "reconstruction_errors.txt"
    common = ["--data-dir", args.data_dir, "--device", args.device] + (["--quiet"] if args.quiet else [])
    flags = split_flags(known, args)
    recipe = train.recipe_of(train.build_parser().parse_args(flags), cli.resolve_device(args.device))
    if reusable_checkpoint(checkpoint, recipe) is None:
        log.info("unseen digits, split %d: training on %s", i, sorted(known))
        if train.main([*flags, "--out", str(checkpoint), *common]) != 0:
            raise cli.UserError(f"training split {i} failed")
    # Calibrated afresh every time (its leave-classes-out models are reused while their recipe matches): a
    # thresholds file of an earlier run may come from an earlier way of choosing the score.
    if compute_class_reconstruction_errors.main(["--checkpoint", str(checkpoint), "--out", str(thresholds),
                                                 "--seed", str(args.seed), *common]) != 0:
        raise cli.UserError(f"calibrating split {i} failed")
    trained = load_trained(checkpoint, cli.resolve_device(args.device))
    cal = load_calibration(trained, thresholds)
    images, labels, _ = known_test_digits(trained, args.data_dir)
    result = evaluate(trained, cal, images, labels, [held_out_digits(args.data_dir, trained.known_classes)],
                      args.seed, args.batch_size, n_boot=args.bootstrap, show=False).to_metrics()
    s = result["sets"]["held_out_digits"]
    log.info("split %d: AUROC %.4f  macro-F1 %.3f (score %s)", i, s["auroc"], s["macro_f1"], cal.score)
    near = (cal.selection or {}).get("candidates", {}).get(cal.score, {}).get("leave_classes_out")
    return {"known_classes": sorted(known), "closed_set_accuracy": result["closed_set_accuracy"],
            "false_alarm_rate": result["false_alarm_rate"], "auroc": s["auroc"], "macro_f1": s["macro_f1"],
            "score": cal.score, "leave_classes_out_auroc": near, "ablation": s["ablation"], "checkpoint": str(checkpoint)}


def _quiet_worker(quiet: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to answer: it stops the workers
    cli.setup_logging(quiet)


def run_unseen_digits(args: argparse.Namespace) -> dict:
    """Every split, in `--jobs` processes at once (each with its share of the cores as torch threads), then the
    summary. The same threads per split give the same numbers, bit for bit, whatever the number of jobs."""
    splits = data.UNSEEN_DIGIT_SPLITS
    jobs = min(args.jobs, len(splits))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    if jobs == 1:
        results = [run_split(i, known, args, threads) for i, known in enumerate(splits)]
    else:
        log.info("unseen digits: %d splits in %d processes, %d torch thread(s) each", len(splits), jobs, threads)
        pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_quiet_worker, initargs=(args.quiet,))
        try:
            pending = [pool.apply_async(run_split, (i, known, args, threads)) for i, known in enumerate(splits)]
            results = [p.get() for p in pending]
            pool.close()
        finally:
            pool.terminate()  # after an error or Ctrl-C, no split goes on in the background
            pool.join()
    aurocs, f1s = [s["auroc"] for s in results], [s["macro_f1"] for s in results]
    summary = {"splits": results, "auroc_mean": float(np.mean(aurocs)), "auroc_std": float(np.std(aurocs)),
               "auroc_min": float(np.min(aurocs)),
               "macro_f1_mean": float(np.mean(f1s)), "macro_f1_std": float(np.std(f1s)),
               "epochs": args.split_epochs, "seed": args.seed, "jobs": jobs, "threads_per_job": threads}
    write_json(Path(args.splits_dir) / UNSEEN_SUMMARY, summary)
    return summary


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
        run_unseen_digits(args)
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
    metrics = report_metrics(args, trained, cal, cal_source, result.to_metrics())
    # Three views of the one result: the figures, the report with its pictures, and the page.
    outputs.write_json("metrics.json", metrics)
    outputs.write_text("report.md", render(metrics, pictures=show))
    if show:
        figures.write(outputs, result, trained.known_classes, args.seed, with_embeddings=not args.no_embeddings)
        page.write_evaluation(outputs, result, cal.score)
    outputs.finish()
    return metrics


def report_metrics(args: argparse.Namespace, trained, cal, cal_source: str, result: dict) -> dict:
    """metrics.json: the evaluation's result with what produced it (schema in README.md)."""
    metrics = {
        "checkpoint_sha256": trained.sha256,
        "arch": trained.checkpoint["model_config"]["arch"],
        "bootstrap_resamples": args.bootstrap,
        "known_classes": trained.known_classes,
        "calibration": {"score": cal.score, "rule": cal.rule, "rule_param": cal.rule_param,
                        "target_acceptance": cal.target_acceptance, "source": cal_source, "selection": cal.selection},
        **result,
    }
    metrics["comparisons"] = {name: comparison(name, path) for name, path in args.compare}
    summary = Path(args.splits_dir) / UNSEEN_SUMMARY
    if summary.is_file():
        metrics["unseen_digits"] = json.loads(summary.read_text())
    if Path(args.methods).is_file():
        metrics["methods"] = json.loads(Path(args.methods).read_text())
    return metrics


def main(argv=None) -> int:
    return cli.run(run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

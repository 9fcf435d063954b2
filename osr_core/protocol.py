"""The unseen-digit protocol: for each of the literature's five splits, a model trained on its 6 known digits with
train.py's default recipe (or another preset's), calibrated on their validation digits as stage 2 calibrates, and
measured on the 4 held-out digits of MNIST test. The splits run in `jobs` processes at once, each with its share of
the cores as torch threads: the same threads per split give the same numbers, bit for bit, whatever the number of
jobs (another number of threads adds floating-point sums in another order)."""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import cli, data
from .evaluation import evaluate
from .gates import AUTO
from .io import StageOutputs, folder_lock, save_checkpoint, write_json
from .pipeline import calibrate_on_validation, known_test_digits, load_calibration, load_trained, write_calibration
from .recipe import PRESETS, Recipe, reusable_checkpoint
from .training import fit
from .unknown_sets import held_out_digits

log = logging.getLogger("osr")
SUMMARY = "summary.json"


@dataclass(frozen=True)
class Settings:
    """What every split shares."""
    data_dir: str
    splits_dir: str
    device: str = "auto"
    epochs: int | None = None   # None: the preset's
    seed: int = 0
    batch_size: int = 256
    bootstrap: int = 200
    quiet: bool = False
    preset: str = "default"     # train.py's preset the splits are trained with (recipe.PRESETS)


def split_recipe(known, settings: Settings) -> Recipe:
    """train.py's recipe of the protocol's preset on the split's known classes, its epochs and seed as the protocol
    asks."""
    device = cli.resolve_device(settings.device)
    recipe = replace(Recipe(**PRESETS[settings.preset]), known_classes=tuple(known), seed=settings.seed,
                     precision=cli.resolve_precision("auto", device))
    return recipe if settings.epochs is None else replace(recipe, epochs=settings.epochs)


def run_split(i: int, known, settings: Settings, threads: int) -> dict:
    """One split: train (or reuse) its model, calibrate it as stage 2 does, measure its held-out digits."""
    torch.set_num_threads(threads)
    device = cli.resolve_device(settings.device)
    split_dir = Path(settings.splits_dir) / f"split{i}"
    checkpoint, thresholds = split_dir / "model.pt", split_dir / Path(cli.DEFAULT_THRESHOLDS).name
    recipe = split_recipe(known, settings)
    if reusable_checkpoint(checkpoint, recipe) is None:
        log.info("unseen digits, split %d: training on %s", i, sorted(known))
        with folder_lock(split_dir):
            save_checkpoint(checkpoint, fit(recipe, settings.data_dir, device))
    trained = load_trained(checkpoint, device)
    # Calibrated afresh every time (its leave-classes-out models are reused while their recipe matches): a
    # thresholds file of an earlier run may come from an earlier way of choosing the score.
    with StageOutputs(split_dir) as outputs:
        cal = calibrate_on_validation(trained, settings.data_dir, AUTO, "quantile", None, 0.99, settings.batch_size,
                                      seed=settings.seed, folds_dir=split_dir / "leave_out")
        write_calibration(outputs, thresholds.name, cal)
        outputs.finish()
    cal = load_calibration(trained, thresholds)
    images, labels, _ = known_test_digits(trained, settings.data_dir)
    result = evaluate(trained, cal, images, labels, [held_out_digits(settings.data_dir, trained.known_classes)],
                      settings.seed, settings.batch_size, n_boot=settings.bootstrap, show=False).to_metrics()
    s = result["sets"]["held_out_digits"]
    log.info("split %d: AUROC %.4f  macro-F1 %.3f (score %s)", i, s["auroc"], s["macro_f1"], cal.score)
    near = (cal.selection or {}).get("candidates", {}).get(cal.score, {}).get("leave_classes_out")
    return {"known_classes": sorted(known), "closed_set_accuracy": result["closed_set_accuracy"],
            "false_alarm_rate": result["false_alarm_rate"], "auroc": s["auroc"], "macro_f1": s["macro_f1"],
            "score": cal.score, "leave_classes_out_auroc": near, "ablation": s["ablation"], "checkpoint": str(checkpoint)}


def _quiet_worker(quiet: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to answer: it stops the workers
    cli.setup_logging(quiet)


def run_unseen_digits(settings: Settings, jobs: int) -> dict:
    """Every split, in `jobs` processes at once, then the summary (written to the splits folder, and returned)."""
    splits = data.UNSEEN_DIGIT_SPLITS
    jobs = min(jobs, len(splits))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    if jobs == 1:
        results = [run_split(i, known, settings, threads) for i, known in enumerate(splits)]
    else:
        log.info("unseen digits: %d splits in %d processes, %d torch thread(s) each", len(splits), jobs, threads)
        pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_quiet_worker, initargs=(settings.quiet,))
        try:
            pending = [pool.apply_async(run_split, (i, known, settings, threads)) for i, known in enumerate(splits)]
            results = [p.get() for p in pending]
            pool.close()
        finally:
            pool.terminate()  # after an error or Ctrl-C, no split goes on in the background
            pool.join()
    aurocs, f1s = [s["auroc"] for s in results], [s["macro_f1"] for s in results]
    summary = {"splits": results, "auroc_mean": float(np.mean(aurocs)), "auroc_std": float(np.std(aurocs)),
               "auroc_min": float(np.min(aurocs)),
               "macro_f1_mean": float(np.mean(f1s)), "macro_f1_std": float(np.std(f1s)),
               "preset": settings.preset, "epochs": split_recipe(splits[0], settings).epochs, "seed": settings.seed,
               "jobs": jobs, "threads_per_job": threads}
    write_json(Path(settings.splits_dir) / SUMMARY, summary)
    return summary


"""Why outlier exposure breaks the classifier: short trainings that differ only in their negatives or their mechanism.

Usage: python benchmarks/outlier_exposure.py [--data-dir data] [--out-dir artifacts/outlier_exposure]
                                             [--train-limit 10000] [--epochs 2]

Every run is train.py's default recipe on the first --train-limit training digits for --epochs, seed 0; they differ
only in what outlier exposure (a quarter of every batch, `--oe-fraction 0.25`) is shown and how:
- no outlier exposure;
- the negatives train.py makes (outliers.training_negatives: chimeras and overlays, half each);
- chimeras alone; overlays alone;
- pixel-shuffled training digits (every pixel moved at random: surely no digit), the same mechanism;
- training digits mirrored or turned so that no digit remains (outliers.poses: whole strokes, no digit);
- the usual negatives, and the posed digits, normalised with the whole batch's statistics instead of the digits'
  (the mechanism changed; train.py's own since this diagnosis: training.negatives_normalisation);
- the usual negatives at a tenth of the weight.
Every row with negatives but the two "whole batch" ones normalises them with the digits' statistics alone, outlier
exposure's mechanism when this diagnosis was made, so that its rows reproduce.
For each: validation accuracy of the finished model (its batch norms recalibrated on clean digits, as every
checkpoint's are) and as training left it (the last epoch's running statistics: the figure train.py logs), and on fixed negatives made from the validation digits (outliers.negatives_from) the
share the model gives the class of the digit each was made from, and the share below the 99% quantile of the
validation digits' energy (negatives a threshold on the classifier's energy would accept). A model trained without
outlier exposure says how digit-like the negatives are. Validation data only. Writes outlier_exposure.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from osr_core import data, outliers, training  # noqa: E402
from osr_core.io import write_json  # noqa: E402
from osr_core.models import model_from_checkpoint, statistics_from_first  # noqa: E402
from osr_core.recipe import Recipe  # noqa: E402
from osr_core.scores import score_images  # noqa: E402

OE_FRACTION = 0.25
MEASURED_NEGATIVES = 2000


def pixel_shuffles(x, labels, n, generator):
    """Training digits with every pixel moved at random: a transformation of the training split that is no digit."""
    flat = x[torch.randint(len(x), (n,), generator=generator)].flatten(1)
    return flat.gather(1, torch.argsort(torch.rand(flat.shape, generator=generator), dim=1)).view(-1, 1, 28, 28)


def digits_statistics(model, rows):
    """Negatives normalised with the statistics of the batch's digits alone: outlier exposure's mechanism until this
    diagnosis (models.statistics_from_first)."""
    return statistics_from_first(model, rows)


# name, negatives (None: train.py's own), how a batch with negatives is normalised (None: train.py's own, the whole
# batch), weight of their loss
RUNS = [
    ("no outlier exposure", None, None, None),
    ("chimeras and overlays (train.py's negatives)", None, digits_statistics, 0.5),
    ("chimeras alone", partial(outliers.training_negatives, families=(outliers.chimeras,)), digits_statistics, 0.5),
    ("overlays alone", partial(outliers.training_negatives, families=(outliers.overlays,)), digits_statistics, 0.5),
    ("pixel-shuffled digits", pixel_shuffles, digits_statistics, 0.5),
    ("digits in a pose that leaves no digit (mirrored or turned)", outliers.posed_negatives, digits_statistics, 0.5),
    ("chimeras and overlays, normalised with the whole batch", None, None, 0.5),
    ("digits in a pose that leaves no digit, normalised with the whole batch", outliers.posed_negatives, None, 0.5),
    ("chimeras and overlays, a tenth of the weight", None, digits_statistics, 0.05),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="data")
    p.add_argument("--out-dir", default="artifacts/outlier_exposure")
    p.add_argument("--train-limit", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=2)
    return p


def measure(recipe: Recipe, negatives, statistics, data_dir: str, val: torch.Tensor, val_labels: torch.Tensor,
            probe: torch.Tensor) -> dict:
    saved = training.training_negatives, training.negatives_normalisation
    training.training_negatives = negatives or saved[0]
    training.negatives_normalisation = statistics or saved[1]
    try:
        started = time.perf_counter()
        checkpoint = training.fit(recipe, data_dir, torch.device("cpu"))
        seconds = time.perf_counter() - started
    finally:
        training.training_negatives, training.negatives_normalisation = saved
    model = model_from_checkpoint(checkpoint, torch.device("cpu"))
    classes = list(range(10))
    digits = score_images(model, val, classes, torch.device("cpu"))
    negatives = score_images(model, probe, classes, torch.device("cpu"))
    threshold = np.quantile(digits.components["energy"], 0.99)
    return {"val_accuracy": float((digits.pred == val_labels.numpy()).mean()),
            "val_accuracy_before_recalibration": checkpoint["metrics"]["val_accuracy"],
            "train_accuracy": checkpoint["metrics"]["history"][-1]["train_accuracy"],
            "negatives_named_their_first_digit": float((negatives.pred == val_labels[:len(probe)].numpy()).mean()),
            "negatives_accepted_by_energy_99": float((negatives.components["energy"] <= threshold).mean()),
            "seconds": round(seconds, 1)}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    images, labels = data.load_mnist(args.data_dir, train=True)
    val_u8, val_labels = data.validation_digits(images, labels, data.validation_indices(len(images)), tuple(range(10)))
    val = data.to_float(val_u8)
    probe = outliers.negatives_from(val[:MEASURED_NEGATIVES], val_labels[:MEASURED_NEGATIVES], seed=0)
    base = Recipe(train_limit=args.train_limit, epochs=args.epochs)
    rows = []
    print("| negatives | validation acc. | as training left it | negatives named the digit they were made from | "
          "negatives accepted at the 99% energy threshold |\n|---|---|---|---|---|")
    for name, negatives, statistics, weight in RUNS:
        recipe = base if weight is None else replace(base, oe_fraction=OE_FRACTION, oe_weight=weight)
        row = {"run": name, **measure(recipe, negatives, statistics, args.data_dir, val, val_labels, probe)}
        rows.append(row)
        print(f"| {name} | {row['val_accuracy']:.4f} | {row['val_accuracy_before_recalibration']:.4f} | "
              f"{100 * row['negatives_named_their_first_digit']:.1f}% | "
              f"{100 * row['negatives_accepted_by_energy_99']:.1f}% |", flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "outlier_exposure.json", {"train_limit": args.train_limit, "epochs": args.epochs,
                                                "oe_fraction": OE_FRACTION, "runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())

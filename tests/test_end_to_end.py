"""The whole pipeline on real MNIST: a few thousand images, one epoch, through every stage's main()
(the session fixtures in conftest.py run train.py, compute_class_reconstruction_errors.py,
generate_letters.py and evaluate_osr.py)."""
from __future__ import annotations

import json


def test_real_mnist_classifier_beats_90_percent_and_detects_noise(evaluated_run):
    metrics = json.loads((evaluated_run["out"] / "metrics.json").read_text())
    assert metrics["closed_set_accuracy"] > 0.90
    assert metrics["sets"]["noise"]["auroc"] > 0.99
    # Calibrated at 99% on about 500 validation digits per class: the quantile's own sampling error and the
    # 10,000 test digits' give a standard deviation near 0.15 points, so 1.0% +- 0.45 is three of them (two
    # would fail one run in twenty by chance alone; a broken calibration lands far outside either).
    assert 0.0055 <= metrics["false_alarm_rate"] <= 0.0145

"""The whole pipeline on real MNIST: a few thousand images, one epoch, through every stage's main()."""
from __future__ import annotations

import json

import evaluate_osr
import test as test_stage


def test_real_mnist_classifier_beats_90_percent_and_detects_noise(trained_run, letters_dir, data_dir, tmp_path):
    common = ["--checkpoint", str(trained_run["checkpoint"]), "--thresholds", str(trained_run["thresholds"]),
              "--data-dir", data_dir, "--device", "cpu", "--quiet"]
    assert test_stage.main([*common, "--out-dir", str(tmp_path / "test")]) == 0
    assert evaluate_osr.main([*common, "--out-dir", str(tmp_path / "osr"), "--letters-dir", str(letters_dir),
                              "--n-generated", "1000", "--no-embeddings", "--splits-dir", str(tmp_path / "s")]) == 0
    metrics = json.loads((tmp_path / "osr" / "metrics.json").read_text())
    assert metrics["closed_set_accuracy"] > 0.90
    assert metrics["sets"]["noise"]["auroc"] > 0.99
    assert abs(metrics["false_alarm_rate"] - 0.01) < 0.02

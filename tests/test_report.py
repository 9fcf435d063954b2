"""The report's quality-targets table reads metrics.json faithfully: met, missed, or not measured."""
from __future__ import annotations

from osr_core.report import targets_table


def row(table: str, label: str) -> list[str]:
    line = next(l for l in table.splitlines() if l.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_targets_are_met_missed_or_not_measured():
    sets = {name: {"auroc": 0.99995, "macro_f1": 0.99} for name in
            ("fashion_mnist", "noise", "mnist_noise", "natural_crops", "letters_no_digit_like", "letters")}
    sets["noise"]["auroc"] = 0.999895       # just under 0.9999: must not display as 0.99990 and pass
    sets["letters"]["macro_f1"] = 0.80
    table = targets_table({"closed_set_accuracy": 0.9963, "false_alarm_rate": 0.0140, "sets": sets})
    assert row(table, "closed-set accuracy, MNIST test")[1:] == ["99.63%", ">= 99.6%", "met"]
    assert row(table, "false-alarm rate at the calibrated thresholds")[3] == "**missed**"   # 1.4% > 1.3%
    assert row(table, "AUROC, noise")[1:] == ["0.999895", ">= 0.9999", "**missed**"]
    assert row(table, "AUROC, MNIST-Noise")[3] == "met"
    assert row(table, "macro-F1 (CROSR protocol), letters")[3] == "**missed**"
    assert row(table, "AUROC, unseen-digit protocol, mean of 5 splits")[1] == "not measured in this run"

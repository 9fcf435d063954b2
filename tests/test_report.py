"""The report's quality-targets table reads metrics.json faithfully: met, missed, or not measured."""
from __future__ import annotations

from osr_core.report import targets_table


def row(table: str, label: str) -> list[str]:
    line = next(l for l in table.splitlines() if l.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_targets_are_met_missed_or_not_measured():
    sets = {name: {"auroc": 0.99995, "macro_f1": 0.99, "detection_rate": 0.95, "named_a_digit": 0.05} for name in
            ("fashion_mnist", "noise", "mnist_noise", "natural_crops", "letters_no_digit_like", "letters", "no_digit")}
    sets["no_digit"]["named_a_digit"] = 0.0085
    sets["noise"]["auroc"] = 0.999895       # just under 0.9999: must not display as 0.99990 and pass
    sets["mnist_noise"]["named_a_digit"] = 0.0
    sets["letters"]["macro_f1"] = 0.80
    sets["letters_no_digit_like"]["detection_rate"] = 0.899
    table = targets_table({"closed_set_accuracy": 0.9963, "false_alarm_rate": 0.0140, "sets": sets,
                           "covariate_shift": {"rotation": {"rejection_rate": 0.05}},
                           "unseen_digits": {"auroc_mean": 0.9971, "auroc_min": 0.9899}})
    assert row(table, "closed-set accuracy, MNIST test")[1:] == ["99.63%", ">= 99.6%", "met"]
    assert row(table, "false-alarm rate at the calibrated thresholds")[3] == "**missed**"   # 1.4% > 1.3%
    assert row(table, "AUROC, noise")[1:] == ["0.999895", ">= 0.9999", "**missed**"]
    assert row(table, "AUROC, MNIST-Noise")[3] == "met"
    assert row(table, "macro-F1 (CROSR protocol), letters, all")[3] == "**missed**"
    assert row(table, "letters without digit-like glyphs detected")[1:] == ["89.90%", ">= 90% (80% in issue 23)",
                                                                             "**missed**"]
    assert row(table, "noise named a digit")[1:] == ["5.00%", "0%", "**missed**"]
    assert row(table, "MNIST-Noise named a digit")[1:] == ["0.00%", "0%", "met"]
    assert row(table, "rotated digits (up to 30 degrees) rejected")[1:] == ["5.00%", "<= 5%", "met"]
    assert row(table, "AUROC, unseen-digit protocol, mean of 5 splits")[1:] == ["0.997100", ">= 0.997", "met"]
    assert row(table, "AUROC, unseen-digit protocol, worst split")[3] == "**missed**"
    assert row(table, "AUROC, stroke-drawn characters")[1] == "not measured in this run"
    assert row(table, "images without a digit (no_digit) named a digit")[1:] == ["0.85%", "<= 1%", "met"]
    assert row(table, "scans of digits classified right (accepted or not)")[1] == "not measured in this run"


def test_missed_auroc_targets_name_the_best_ablation_row_and_what_validation_said_of_it():
    from osr_core.report import missed_target_notes

    chosen = "mean+(pixel_recon,energy,mahalanobis)"
    selection = {"candidates": {chosen: {"leave_classes_out": 0.987, "failed_floors": []},
                                "mahalanobis": {"leave_classes_out": 0.97, "failed_floors": ["blur", "acceptance"]}}}
    m = {"calibration": {"score": chosen, "selection": selection}, "sets": {
        "natural_crops": {"available": True, "auroc": 0.9967,
                          "ablation": {chosen: 0.9978, "mahalanobis": 0.9998, "decision_margin": 0.9967}},
        "fashion_mnist": {"available": True, "auroc": 0.9995, "ablation": {chosen: 0.999}},   # met: no note
        "letters_no_digit_like": {"available": True, "auroc": 0.9884, "ablation": {chosen: 0.9872}},
        # the chosen score's bare ranking a little above the decision's: still no other score does better
        "characters": {"available": True, "auroc": 0.9840, "ablation": {chosen: 0.9846, "mahalanobis": 0.97}},
    }}
    notes = missed_target_notes(m)
    assert "**natural_crops**" in notes and "`mahalanobis` reaches 0.999800" in notes
    assert ("on validation data it scored leave-classes-out 0.9700, floors failed: blur, acceptance, "
            f"the chosen `{chosen}` leave-classes-out 0.9870, floors failed: none") in notes
    assert "fashion_mnist" not in notes
    assert "**letters_no_digit_like**" in notes and "no other score or fusion in the ablation does better" in notes
    assert f"**characters**: the decision reaches 0.984000 (target >= 0.993); no other score or fusion in the " \
           f"ablation does better (best `{chosen}`, 0.984600)" in notes


def test_missed_macro_f1_and_unseen_digit_targets_are_explained():
    from osr_core.report import missed_target_notes

    splits = [{"auroc": a, "ablation": {"energy": e, "mahalanobis": 0.95, "decision_margin": a}}
              for a, e in ((0.97, 0.99), (0.98, 0.97))]
    m = {"calibration": {"score": "energy"},
         "sets": {"letters": {"available": True, "auroc": 0.9, "macro_f1": 0.8, "detection_rate": 0.5, "ablation": {}},
                  "letters_no_digit_like": {"available": True, "auroc": 0.999, "detection_rate": 0.75,
                                            "ablation": {}}},
         "baselines": {"energy": {"sets": {"letters": {"macro_f1": 0.78}}}},
         "unseen_digits": {"auroc_mean": 0.975, "splits": splits}}
    notes = missed_target_notes(m)
    assert "letters, macro-F1** 0.800" in notes and "50.00% of all letters are rejected" in notes
    assert "(75.00% of those not drawn like a digit)" in notes and "Best baseline: energy, 0.780" in notes
    assert "mean AUROC 0.975000" in notes and "`energy` at 0.980000" in notes


def test_what_was_tried_table_has_a_row_per_method_with_validation_figures_first_and_every_set():
    from osr_core.report import methods_section
    methods = [{"method": "default", "score": "energy", "val_accuracy": 0.995, "train_seconds": 201.4,
                "leave_classes_out": 0.99, "leave_classes_out_ci95": [0.985, 0.993], "far_min": 0.998, "acceptance": 0.985,
                "closed_set_accuracy": 0.996, "sets": {"noise": 1.0, "letters": 0.9, "validation_proxy_pose": 0.98},
                "scans": {"named_right": 0.987, "rejection_rate": 0.01}, "unseen_digits_split0": {"auroc": 0.97}},
               {"method": "outlier exposure", "score": "mahalanobis", "val_accuracy": 0.99, "train_seconds": None,
                "leave_classes_out": 0.95, "leave_classes_out_ci95": [0.94, 0.96], "far_min": 0.999,
                "closed_set_accuracy": 0.98, "sets": {"noise": 0.99}, "unseen_digits_split0": None}]
    text = methods_section({"methods": methods, "rule": "the rule", "chosen": "default", "preset_rule": "the preset rule",
                            "preset": None})
    header = next(l for l in text.splitlines() if l.startswith("| method"))
    assert header.split("|")[11:14] == [" letters ", " noise ", " validation_proxy_pose "]  # reported sets first
    assert row(text, "**default** (kept)")[1:] == ["`energy`", "0.9950", "201 s", "0.9900 [0.9850, 0.9930]", "0.9980",
                                                   "98.50%", "99.60%", "98.70% / 1.00%", "0.9700", "0.9000", "1.0000",
                                                   "0.9800"]
    assert row(text, "outlier exposure")[3:] == ["-", "0.9500 [0.9400, 0.9600]", "0.9990", "-", "98.00%", "- / -", "-",
                                                 "-", "0.9900", "-"]  # not timed, no scans, no split, a set not measured
    assert "the rule" in text and "the preset rule: none qualified." in text

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


def test_what_was_tried_table_shows_each_recipes_seed_spread_paired_difference_and_the_resolution():
    from osr_core.report import methods_section

    def spread(mean, low, high):
        return {"mean": mean, "sd": 0.001, "min": low, "max": high, "per_seed": [low, mean, high]}

    def method(name, difference, ci, full=None, ratio=1.0):
        op = {"held_out_named_a_digit": spread(0.3, 0.25, 0.4), "acceptance": spread(0.985, 0.98, 0.99),
              "far_rejected": spread(0.999, 0.995, 1.0)}
        return {"method": name, "time_ratio": ratio, "full": full,
                "screen": {"near": "energy", "val_accuracy": spread(0.995, 0.994, 0.996),
                           "auroc": spread(0.985, 0.983, 0.987), "operating_point": op,
                           "vs_default": {"difference": difference, "ci95": ci, "better": ci[0] > 0}}}
    summary = {"seeds": [0, 1, 2], "rule": "the rule", "chosen": "default",
               "screen": {"resolution": {"seeds": [[0, 1, 2], [3, 4, 5]], "difference": 0.0004, "half_width": 0.0015}},
               "methods": [method("default", 0.0, [0.0, 0.0]),
                           method("longer", 0.003, [0.001, 0.005], ratio=2.0,
                                  full={"vs_default": {"difference": 0.002, "ci95": [-0.001, 0.004], "better": False}})]}
    text = methods_section(summary)
    assert row(text, "**default** (kept)")[1:] == ["`energy`", "0.9950 +- 0.0010", "0.9850 (0.9830-0.9870)",
                                                   "+0.0000 [+0.0000, +0.0000]", "30.00% (25.00%-40.00%)", "98.50%",
                                                   "99.50%", "1.00x", "-"]
    assert row(text, "longer")[4] == "+0.0030 [+0.0010, +0.0050] **better**" and row(text, "longer")[8] == "2.00x"
    assert row(text, "longer")[9] == "+0.0020 [-0.0010, +0.0040]"  # not better on the full judge
    assert "Resolution of the screen: +-0.0015" in text and "the rule" in text and "seed(s) a recipe" not in text
    summary.update(full_seeds=[0], full_resolution={"seeds": [[0], [1]], "difference": -0.0002, "half_width": 0.0011},
                   agreement={"recipes": 1, "same_sign": 1, "pairs": [[0.003, 0.002]]})
    text = methods_section(summary)
    assert "trains 1 seed(s) a recipe" in text and "Resolution of the full judge: +-0.0011" in text
    assert "agree on the sign of 1 of 1 recipes" in text

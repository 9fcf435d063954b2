"""metrics.py on hand-built inputs whose answers are known. Margins: higher = more unknown,
rejected as unknown when margin > 0."""
import numpy as np
import pytest

from osr_core import metrics
from osr_core.metrics import UNKNOWN_LABEL

PERFECT_KNOWN = np.array([-3.0, -2.0, -1.0])
PERFECT_UNKNOWN = np.array([1.0, 2.0, 3.0])


def test_perfect_separation():
    k, u = PERFECT_KNOWN, PERFECT_UNKNOWN
    assert metrics.auroc(k, u) == 1.0
    assert metrics.aupr_in(k, u) == 1.0
    assert metrics.aupr_out(k, u) == 1.0
    assert metrics.fpr_at_95_tpr(k, u) == 0.0
    assert metrics.oscr(np.ones(3, bool), k, u) == 1.0


def test_reversed_separation():
    k, u = PERFECT_UNKNOWN, PERFECT_KNOWN  # every unknown looks more known than every known
    assert metrics.auroc(k, u) == 0.0
    assert metrics.fpr_at_95_tpr(k, u) == 1.0
    assert metrics.oscr(np.ones(3, bool), k, u) == 0.0


def test_identical_scores_are_chance():
    s = np.array([0.1, 0.5, 0.9, 0.9])
    assert metrics.auroc(s, s.copy()) == 0.5


def test_auroc_is_scikit_learns_on_ties_and_on_images_unknown_by_rule():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    for n_known, n_unknown in ((50, 7), (400, 400), (3, 1)):
        known = np.round(rng.normal(0, 1, n_known), 1)       # rounded: many ties, within and across the groups
        unknown = np.round(rng.normal(0.7, 1, n_unknown), 1)
        unknown[0], known[-1] = np.inf, np.inf                # blank: unknown by rule, ranked above every margin
        finite_known, finite_unknown = metrics.ranked(known, unknown)
        truth = np.r_[np.zeros(n_known), np.ones(n_unknown)]
        assert metrics.auroc(known, unknown) == pytest.approx(roc_auc_score(truth, np.r_[finite_known, finite_unknown]),
                                                              rel=0, abs=1e-12)
    with pytest.raises(ValueError):
        metrics.auroc(np.array([0.1, np.nan]), np.array([0.2]))
    with pytest.raises(ValueError):
        metrics.auroc(np.array([]), np.array([0.2]))


def test_fpr95_worked_example():
    known = np.arange(20) / 20  # 0.00, 0.05, ..., 0.95
    # Accepting 95% of the knowns (19 of 20) means accepting margins <= 0.90. Of the 8 unknowns,
    # exactly three lie at or below 0.90 (0.12, 0.47 and 0.90, the last tied with a known):
    # FPR95 = 3 / 8.
    unknown = np.array([0.12, 0.47, 0.90, 0.93, 0.97, 1.5, 2.0, 3.0])
    assert metrics.fpr_at_95_tpr(known, unknown) == 3 / 8


# A 2-known-class + unknown example used below. Classes 0 and 1; margin > 0 rejects.
CLASSES = [0, 1]
KNOWN_LABELS = np.array([0, 0, 1, 1])
KNOWN_PRED = np.array([0, 1, 1, 1])                 # sample 1 misclassified
KNOWN_MARGIN = np.array([-1.0, -0.5, -2.0, 0.5])    # sample 3 rejected (false alarm)
UNKNOWN_PRED = np.array([0, 1, 0, 1])
UNKNOWN_MARGIN = np.array([1.0, 2.0, -0.25, 3.0])   # sample 2 accepted as class 0 (missed)
# Open-set predictions: knowns -> [0, 1, 1, unknown]; unknowns -> [unknown, unknown, 0, unknown]
#   y_true = [0, 0, 1, 1, U, U, U, U]
#   y_pred = [0, 1, 1, U, U, U, 0, U]


def test_macro_f1_worked_example():
    # Equal known/unknown counts: the 1:1 mix keeps every sample.
    ki, ui = metrics.one_to_one_mix(4, 4, seed=0)
    assert ki.tolist() == [0, 1, 2, 3] and ui.tolist() == [0, 1, 2, 3]
    # class 0: TP 1 (#0), FP 1 (unknown #2), FN 1 (#1)       -> F1 = 2*1 / (2*1 + 1 + 1) = 1/2
    # class 1: TP 1 (#2), FP 1 (#1),          FN 1 (#3)       -> F1 = 1/2
    # unknown: TP 3,      FP 1 (known #3),    FN 1 (unk. #2)  -> F1 = 2*3 / (2*3 + 1 + 1) = 3/4
    expected = (1 / 2 + 1 / 2 + 3 / 4) / 3
    got = metrics.macro_f1_open(KNOWN_LABELS, KNOWN_PRED, KNOWN_MARGIN, UNKNOWN_PRED, UNKNOWN_MARGIN, CLASSES)
    assert got == pytest.approx(expected, abs=1e-12)


def test_macro_f1_counts_a_known_class_absent_from_the_mix_as_zero():
    # Classes 0, 1, 2; no known of class 2 is in the mix and nothing is predicted 2, so its F1 is 0 (not dropped).
    labels, pred, margin = np.array([0, 1]), np.array([0, 1]), np.array([-1.0, -1.0])   # both right, accepted
    unknown_pred, unknown_margin = np.array([0, 1]), np.array([1.0, 1.0])               # both rejected
    got = metrics.macro_f1_open(labels, pred, margin, unknown_pred, unknown_margin, [0, 1, 2])
    assert got == pytest.approx((1 + 1 + 0 + 1) / 4, abs=1e-12)


def test_macro_f1_one_to_one_mix_subsamples_the_larger_side():
    ki, ui = metrics.one_to_one_mix(10, 3, seed=0)
    assert len(ki) == len(ui) == 3 and ui.tolist() == [0, 1, 2]
    assert len(set(ki.tolist())) == 3 and ki.max() < 10
    # All knowns perfect and accepted, all unknowns rejected: F1 = 1 whatever the mix draws.
    labels = np.array([0, 1] * 5)
    f1 = metrics.macro_f1_open(labels, labels, -np.ones(10), np.zeros(3, int), np.ones(3), CLASSES)
    assert f1 == 1.0


def test_oscr_worked_example_with_a_misclassified_known_and_a_tie():
    # Knowns: A margin 0.0 classified correctly, B margin -1.0 misclassified.
    # Unknowns: U1 margin 0.0 (tied with A), U2 margin 2.0.
    # Sweeping the acceptance threshold t upward (accept margin <= t), points (FPR, CCR):
    #   start                    (0,   0)
    #   t = -1: B accepted       (0,   0)    B is wrong, so CCR does not rise
    #   t =  0: A and U1 at once (0.5, 0.5)  a tie: no threshold separates them, so the curve
    #                                        goes diagonally, never via (0, 0.5) or (0.5, 0)
    #   t =  2: U2 accepted      (1,   0.5)
    # Trapezoids: 0..0.5 under the diagonal = 0.5 * (0 + 0.5) / 2 = 0.125; 0.5..1 at 0.5 = 0.25.
    known_correct = np.array([True, False])
    known = np.array([0.0, -1.0])
    unknown = np.array([0.0, 2.0])
    assert metrics.oscr(known_correct, known, unknown) == pytest.approx(0.375, abs=1e-12)
    # Without the tie the curve is a staircase. U1 just above A: A first, (0, 0.5), then U1, U2 along
    # CCR = 0.5, area 1 * 0.5 = 0.5. U1 just below A: (0.5, 0) then up to (0.5, 0.5), area 0.5 * 0.5 = 0.25.
    # The tie lies half way between the two orders.
    assert metrics.oscr(known_correct, known, np.array([0.1, 2.0])) == pytest.approx(0.5, abs=1e-12)
    assert metrics.oscr(known_correct, known, np.array([-0.1, 2.0])) == pytest.approx(0.25, abs=1e-12)


def test_oscr_counts_only_correct_knowns():
    # Perfectly separated, but half the knowns misclassified: the CCR never exceeds 1/2.
    assert metrics.oscr(np.array([True, False, True, False]), np.array([-4.0, -3, -2, -1]),
                        PERFECT_UNKNOWN) == 0.5


def test_open_confusion_matrix_counts():
    cm = metrics.open_confusion_matrix(KNOWN_LABELS, KNOWN_PRED, KNOWN_MARGIN, UNKNOWN_PRED, UNKNOWN_MARGIN, CLASSES)
    # rows: true 0, 1, unknown; columns: predicted 0, 1, unknown
    assert cm.shape == (3, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0],
                                       [0, 1, 1],
                                       [1, 0, 3]])


def test_open_set_predictions_reject_only_positive_margins():
    got = metrics.open_set_predictions(np.array([4, 5, 6]), np.array([0.0, 1e-9, -1.0]))
    assert got.tolist() == [4, UNKNOWN_LABEL, 6]


def test_set_metrics_keys_and_hand_computed_rates():
    m = metrics.set_metrics(KNOWN_LABELS, KNOWN_PRED, KNOWN_MARGIN, UNKNOWN_PRED, UNKNOWN_MARGIN, CLASSES)
    assert set(m) == {"n", "auroc", "auroc_ci95", "aupr_in", "aupr_out", "fpr95", "detection_rate",
                      "false_alarm_rate", "macro_f1", "oscr", "mnist_accuracy", "ood_accuracy", "total_accuracy"}
    assert m["n"] == 4
    assert m["detection_rate"] == 3 / 4          # unknowns 0, 1, 3 rejected
    assert m["false_alarm_rate"] == 1 / 4        # known 3 rejected
    assert m["ood_accuracy"] == 3 / 4
    assert m["mnist_accuracy"] == 2 / 4          # knowns 0 and 2: correct and accepted
    assert m["total_accuracy"] == (2 + 3) / 8
    assert m["macro_f1"] == pytest.approx((1 / 2 + 1 / 2 + 3 / 4) / 3, abs=1e-12)
    # 16 known/unknown pairs, no ties: unknowns 1, 2, 3 are above all four knowns (12 pairs);
    # unknown -0.25 is above knowns -1, -0.5, -2 but below 0.5 (3 pairs). AUROC = 15/16.
    pairs = [(k, u) for k in KNOWN_MARGIN for u in UNKNOWN_MARGIN]
    assert m["auroc"] == sum(u > k for k, u in pairs) / len(pairs) == 15 / 16
    lo, hi = m["auroc_ci95"]
    assert lo <= m["auroc"] <= hi
    assert all(isinstance(v, float) for k, v in m.items() if k not in ("n", "auroc_ci95"))


def test_bootstrap_ci_contains_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    known, unknown = rng.normal(0, 1, 60), rng.normal(1, 1, 60)
    point = metrics.auroc(known, unknown)
    lo, hi = metrics.bootstrap_auroc_ci(known, unknown, n_boot=100, seed=3)
    assert lo < point < hi and 0.0 <= lo and hi <= 1.0
    assert hi - lo < 0.4  # an interval, not [0, 1]
    assert metrics.bootstrap_auroc_ci(known, unknown, n_boot=100, seed=3) == (lo, hi)
    assert metrics.bootstrap_auroc_ci(known, unknown, n_boot=100, seed=4) != (lo, hi)

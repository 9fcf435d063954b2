"""Open-set metrics. Inputs use the project's convention: `margin` = score - threshold of the
predicted class, higher = more unknown; a sample is rejected as unknown when margin > 0.

Unknowns are the positive class for AUROC and AUPR-out; knowns for AUPR-in and for the
95% TPR of FPR95 (as ODIN defines it).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, roc_curve

UNKNOWN_LABEL = -1


def ranked(known: np.ndarray, unknown: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The margins with +inf (an image unknown by rule: nothing written) put just above every finite margin, so
    rank-based metrics order them last, as the decision does."""
    known, unknown = np.asarray(known, np.float64), np.asarray(unknown, np.float64)
    both = np.r_[known, unknown]
    if np.isfinite(both).all():
        return known, unknown
    top = np.max(both[np.isfinite(both)], initial=0.0) + 1.0
    return np.where(np.isposinf(known), top, known), np.where(np.isposinf(unknown), top, unknown)


def _labels(n_known: int, n_unknown: int) -> np.ndarray:
    return np.r_[np.zeros(n_known), np.ones(n_unknown)]


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """The share of (known, unknown) pairs ordered right, ties counting one half: the area under the ROC curve,
    unknowns as positives, equal to scikit-learn's roc_auc_score (tests/test_metrics.py holds them equal). Counted
    here because stage 2's selection and the report's ablation ask for it about a thousand times a run, and
    roc_auc_score's checks of its input cost ten times the count itself."""
    known, unknown = np.asarray(known, np.float64), np.asarray(unknown, np.float64)
    if len(known) == 0 or len(unknown) == 0:
        raise ValueError(f"AUROC needs knowns and unknowns (got {len(known)} and {len(unknown)})")
    if np.isnan(known).any() or np.isnan(unknown).any():
        raise ValueError("AUROC of scores that hold NaN")
    once = lambda n: np.ones((1, n), np.int32)  # the one resample that draws every image once
    return float(resampled_aurocs(known, unknown, once(len(known)), once(len(unknown)))[0])


def aupr_in(known: np.ndarray, unknown: np.ndarray) -> float:
    known, unknown = ranked(known, unknown)
    return float(average_precision_score(1 - _labels(len(known), len(unknown)), -np.r_[known, unknown]))


def aupr_out(known: np.ndarray, unknown: np.ndarray) -> float:
    known, unknown = ranked(known, unknown)
    return float(average_precision_score(_labels(len(known), len(unknown)), np.r_[known, unknown]))


def fpr_at_95_tpr(known: np.ndarray, unknown: np.ndarray) -> float:
    """Fraction of unknowns accepted at the threshold that accepts 95% of knowns."""
    known, unknown = ranked(known, unknown)
    fpr, tpr, _ = roc_curve(1 - _labels(len(known), len(unknown)), -np.r_[known, unknown])
    return float(fpr[np.searchsorted(tpr, 0.95, side="left")])


def resample_counts(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    """(draws, n): how many times each of n items appears in each of `draws` resamples with replacement."""
    picks = rng.integers(0, n, (draws, n)) + n * np.arange(draws)[:, None]  # row b counts into bins b*n .. b*n+n-1
    # int32: resampled_aurocs gathers and sums these (B, n) tables for every candidate, at half the memory traffic
    return np.bincount(picks.ravel(), minlength=draws * n).reshape(draws, n).astype(np.int32)


def resampled_aurocs(known: np.ndarray, unknown: np.ndarray, known_counts: np.ndarray,
                     unknown_counts: np.ndarray) -> np.ndarray:
    """The AUROC of every resample at once: known_counts (B, n_known) and unknown_counts (B, n_unknown) say how many
    times each image appears in each of B resamples. The share of (known, unknown) pairs ordered right, ties
    counting one half, as auroc counts it; O(B n)."""
    known, unknown = ranked(known, unknown)
    order = np.argsort(known, kind="stable")
    sorted_known = known[order]
    below = np.searchsorted(sorted_known, unknown, side="left")     # knowns strictly lower than each unknown
    upto = np.searchsorted(sorted_known, unknown, side="right")     # ... lower or equal
    cum = np.zeros((len(known_counts), len(known) + 1), dtype=known_counts.dtype)  # whole counts: summed exactly,
    np.cumsum(known_counts[:, order], axis=1, out=cum[:, 1:])                     # and without a cast (3x faster)
    pairs = cum[:, below] + 0.5 * (cum[:, upto] - cum[:, below])    # (B, n_unknown)
    return (unknown_counts * pairs).sum(1) / (known_counts.sum(1, dtype=np.float64) * unknown_counts.sum(1))


def bootstrap_auroc_ci(known: np.ndarray, unknown: np.ndarray, n_boot: int = 200, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of AUROC, resampling knowns and unknowns separately (with replacement)."""
    rng = np.random.default_rng(seed)
    known_counts = resample_counts(rng, len(known), n_boot)
    values = resampled_aurocs(known, unknown, known_counts, resample_counts(rng, len(unknown), n_boot))
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def oscr(known_correct: np.ndarray, known: np.ndarray, unknown: np.ndarray) -> float:
    """Open-Set Classification Rate (Dhamija et al. 2018): area under correct-classification
    rate of knowns against false-positive rate of unknowns, as the acceptance threshold sweeps."""
    margins = np.concatenate(ranked(known, unknown))
    is_known = np.r_[np.ones(len(known), bool), np.zeros(len(unknown), bool)]
    correct = np.r_[known_correct.astype(bool), np.zeros(len(unknown), bool)]
    order = np.argsort(margins, kind="stable")
    ccr = np.cumsum(correct[order]) / max(len(known), 1)
    fpr = np.cumsum(~is_known[order]) / max(len(unknown), 1)
    # Only thresholds between distinct margins are realisable: keep the last point of each tie group.
    last_of_group = np.r_[margins[order][1:] != margins[order][:-1], True]
    ccr, fpr = np.r_[0.0, ccr[last_of_group]], np.r_[0.0, fpr[last_of_group]]
    return float(np.trapezoid(ccr, fpr))


def open_set_predictions(pred: np.ndarray, margin: np.ndarray) -> np.ndarray:
    return np.where(margin > 0, UNKNOWN_LABEL, pred)


def one_to_one_mix(n_known: int, n_unknown: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices for the CROSR protocol's equal mix: as many knowns as unknowns, drawn without replacement."""
    n = min(n_known, n_unknown)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_known, n, replace=False)), np.sort(rng.choice(n_unknown, n, replace=False))


def macro_f1_open(known_labels, known_pred, known_margin, unknown_pred, unknown_margin, classes: list[int],
                  seed: int = 0) -> float:
    """Macro-F1 over the N known classes plus 'unknown' on a 1:1 mix of knowns and unknowns."""
    ki, ui = one_to_one_mix(len(known_labels), len(unknown_pred), seed)
    y_true = np.r_[known_labels[ki], np.full(len(ui), UNKNOWN_LABEL)]
    y_pred = np.r_[open_set_predictions(known_pred[ki], known_margin[ki]),
                   open_set_predictions(unknown_pred[ui], unknown_margin[ui])]
    return float(f1_score(y_true, y_pred, labels=[*classes, UNKNOWN_LABEL], average="macro", zero_division=0))


def open_confusion_matrix(known_labels, known_pred, known_margin, unknown_pred, unknown_margin,
                          classes: list[int]) -> np.ndarray:
    """(N+1) x (N+1) counts; the last row and column are 'unknown'."""
    y_true = np.r_[known_labels, np.full(len(unknown_pred), UNKNOWN_LABEL)]
    y_pred = np.r_[open_set_predictions(known_pred, known_margin), open_set_predictions(unknown_pred, unknown_margin)]
    return confusion_matrix(y_true, y_pred, labels=[*classes, UNKNOWN_LABEL])


def set_metrics(known_labels: np.ndarray, known_pred: np.ndarray, known_margin: np.ndarray,
                unknown_pred: np.ndarray, unknown_margin: np.ndarray, classes: list[int], seed: int = 0,
                n_boot: int = 200) -> dict:
    """Every per-set figure of the report for one unknown set against the known test set."""
    known_correct = known_pred == known_labels
    known_accepted = known_margin <= 0
    unknown_rejected = unknown_margin > 0
    lo, hi = bootstrap_auroc_ci(known_margin, unknown_margin, n_boot=n_boot, seed=seed)
    return {
        "n": int(len(unknown_margin)),
        "auroc": auroc(known_margin, unknown_margin),
        "auroc_ci95": [lo, hi],
        "aupr_in": aupr_in(known_margin, unknown_margin),
        "aupr_out": aupr_out(known_margin, unknown_margin),
        "fpr95": fpr_at_95_tpr(known_margin, unknown_margin),
        "detection_rate": float(unknown_rejected.mean()),
        "false_alarm_rate": float((~known_accepted).mean()),
        "macro_f1": macro_f1_open(known_labels, known_pred, known_margin, unknown_pred, unknown_margin, classes, seed),
        "oscr": oscr(known_correct, known_margin, unknown_margin),
        # The seeds' figures: knowns right only if classified correctly and accepted; unknowns if rejected.
        "mnist_accuracy": float((known_correct & known_accepted).mean()),
        "ood_accuracy": float(unknown_rejected.mean()),
        "total_accuracy": float(((known_correct & known_accepted).sum() + unknown_rejected.sum())
                                / (len(known_margin) + len(unknown_margin))),
    }

"""Choosing the decision score in code, on validation data alone, by a rule the far families cannot dominate.

Every candidate (each score component, and the one-sided mean of every subset of the fusable ones) is measured
two ways:
- **far families** (`outliers.FAR_FAMILIES`, made from the checkpoint's validation digits): pixel shuffles,
  blurs and negatives. Every sensible score tells them from digits, so they are a floor, not a ranking: a
  candidate must reach FAR_FLOOR on each of them.
- **leave-classes-out** (leave_out.py): validation digits of classes that auxiliary models were trained
  without, against the validation digits of the classes they kept; the AUROC averaged over the folds.

The rule: among the candidates at or above the floor on every far family, the best leave-classes-out AUROC
leads; every candidate whose difference from the leader is within the noise (the leader is not better in at
least 95% of paired bootstrap resamples of the folds' validation digits) is as good, and of those the simplest
wins (fewest components, then the order of candidate_scores). No reported
set is read; calibration.json records the folds, the table and the rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import metrics
from .leave_out import Fold
from .scores import Scored, candidate_scores, decision_score

FAR_FLOOR = 0.995
BOOTSTRAP = 200
CONFIDENCE = 0.95
NEAR = "leave_classes_out"
RULE = (f"every far family (digits with their pixels shuffled, blurred, in negative) at AUROC >= {FAR_FLOOR}; then "
        f"the best leave-classes-out AUROC (mean over the folds), where any candidate that the best does not beat in "
        f"{CONFIDENCE:.0%} of {BOOTSTRAP} paired bootstrap resamples counts as equal, and the simplest of the equals "
        "wins (fewest components)")
FALLBACK_RULE = "no leave-classes-out folds (fewer than 4 known classes): the best mean AUROC over the far families"


@dataclass
class Selection:
    chosen: str
    table: dict[str, dict]          # candidate -> {family: AUROC, ..., NEAR: AUROC, "per_fold": [...], ...}
    families: list[str]             # the far families
    folds: list[dict] = field(default_factory=list)
    rule: str = RULE

    def to_json(self) -> dict:
        return {"chosen": self.chosen, "rule": self.rule, "far_floor": FAR_FLOOR, "families": self.families,
                "near_family": NEAR if self.folds else None, "folds": self.folds, "candidates": self.table}


def fold_scores(folds: list[Fold], name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(known, unknown) decision scores of a candidate in each fold, normalised with the fold model's own statistics."""
    return [(decision_score(f.known, name, f.normalisation), decision_score(f.unknown, name, f.normalisation))
            for f in folds]


def near_bootstrap(folds: list[Fold], names: list[str], seed: int) -> dict[str, np.ndarray]:
    """Each candidate's leave-classes-out AUROC (mean over folds) in BOOTSTRAP resamples; every candidate sees the
    same resamples (paired), knowns and unknowns of each fold resampled apart, with replacement."""
    rng = np.random.default_rng(seed)
    draws = [[(np.bincount(rng.integers(0, len(f.known), len(f.known)), minlength=len(f.known)),
               np.bincount(rng.integers(0, len(f.unknown), len(f.unknown)), minlength=len(f.unknown)))
              for f in folds] for _ in range(BOOTSTRAP)]
    result = {}
    for name in names:
        weighted = [metrics.weighted_auroc(k, u) for k, u in fold_scores(folds, name)]
        result[name] = np.array([np.mean([w(*counts) for w, counts in zip(weighted, draw)]) for draw in draws])
    return result


def select_score(known: Scored, far: dict[str, Scored], normalisation: dict[str, tuple[float, float]],
                 folds: list[Fold] | None = None, seed: int = 0) -> Selection:
    """known: the validation digits, scored; far: far family name -> its images, scored; normalisation: validation
    statistics of every fusable component; folds: the leave-classes-out folds (None or empty: far families only)."""
    names = candidate_scores(known.components)
    table = {}
    for name in names:
        k = decision_score(known, name, normalisation)
        row = {family: metrics.auroc(k, decision_score(s, name, normalisation)) for family, s in far.items()}
        row["far_min"] = min(row[f] for f in far)
        row["far_mean"] = float(np.mean([row[f] for f in far]))
        row["passes_floor"] = row["far_min"] >= FAR_FLOOR
        if folds:
            per_fold = [metrics.auroc(k_, u_) for k_, u_ in fold_scores(folds, name)]
            row["per_fold"] = per_fold
            row[NEAR] = float(np.mean(per_fold))
        table[name] = row
    if not folds:
        chosen = max(names, key=lambda n: table[n]["far_mean"])  # max keeps the first (simplest) of equals
        return Selection(chosen, table, list(far), rule=FALLBACK_RULE)

    eligible = [n for n in names if table[n]["passes_floor"]]
    if not eligible:  # nothing reaches the floor: the candidates closest to it compete
        best_floor = max(table[n]["far_min"] for n in names)
        eligible = [n for n in names if table[n]["far_min"] == best_floor]
    leader = max(eligible, key=lambda n: table[n][NEAR])
    resampled = near_bootstrap(folds, eligible, seed)
    for n in names:
        if n in resampled:
            wins = float(np.mean(resampled[leader] > resampled[n]))
            table[n]["leader_better_share"] = wins
            table[n]["near_ci95"] = [float(v) for v in np.percentile(resampled[n], [2.5, 97.5])]
            table[n]["within_noise"] = n == leader or wins < CONFIDENCE
        else:
            table[n]["within_noise"] = False
    # candidate_scores lists the simplest first: components, then fusions of two, of three...
    chosen = next(n for n in eligible if table[n]["within_noise"])
    return Selection(chosen, table, list(far), [f.to_json() for f in folds])

"""Choosing the decision score in code, on the validation proxy alone.

Every candidate (each score component, and the mean of every subset of the fusable ones) is scored on
the validation digits (known) and on each family of the validation proxy (`outliers.PROXY_FAMILIES`,
made from the same digits). The candidate with the highest AUROC averaged over the families decides;
ties go to the earlier candidate. No reported set is read, and the table travels in calibration.json.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics
from .scores import Scored, candidate_scores, decision_score

CRITERION = "AUROC of validation digits against each proxy family, averaged over the families"


@dataclass
class Selection:
    chosen: str
    table: dict[str, dict[str, float]]  # candidate -> {family: AUROC, ..., "mean": average}
    families: list[str]

    def to_json(self) -> dict:
        return {"chosen": self.chosen, "criterion": CRITERION, "families": self.families, "candidates": self.table}


def select_score(known: Scored, proxy: dict[str, Scored], normalisation: dict[str, tuple[float, float]]) -> Selection:
    """known: the validation digits, scored; proxy: family name -> its images, scored; normalisation:
    validation statistics of every fusable component."""
    table = {}
    for name in candidate_scores(known.components):
        k = decision_score(known, name, normalisation)
        row = {family: metrics.auroc(k, decision_score(s, name, normalisation)) for family, s in proxy.items()}
        row["mean"] = float(np.mean(list(row.values())))
        table[name] = row
    chosen = max(table, key=lambda name: table[name]["mean"])  # max keeps the first of equals
    return Selection(chosen, table, list(proxy))

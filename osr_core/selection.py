"""Choosing the decision in code, on validation data alone: a near part, then the gates beside it.

Two steps, each on the evidence for its own job. No reported set is read; calibration.json records the folds,
every candidate's figures and the rule.

1. **The near part** (gates.candidate_scores: each component, and the one-sided mean of every subset of the
   fusable ones) is chosen on the near-digit signal: leave-classes-out folds (leave_out.py), validation digits of
   classes that auxiliary models were trained without. The best mean AUROC over the folds wins; a simpler candidate
   (fewer components) within NEAR_TOLERANCE of it counts as equal, and the simplest of the equals wins. Each
   candidate's interval and the share of BOOTSTRAP paired resamples in which the best beats it are reported (each
   resample draws the folds, then each fold's digits, with replacement: which classes were held out is as uncertain
   as which digits were drawn), but they choose nothing here: on the design partitions (benchmarks/folds.py) the
   best of the folds was the truly best or within 0.0004 of it in every partition and under every fold scheme,
   while "the simplest within the bootstrap noise" chose Mahalanobis alone, 0.008 to 0.027 below the best, in one
   or two partitions of three.
2. **The gates** (gates.GATES, each off or at an offset of gates.OFFSETS) beside the chosen near part are chosen
   for protection. Floors first: every far family (outliers.FAR_FAMILIES, made from validation digits) at AUROC >=
   FAR_AUROC_FLOOR and rejected >= FAR_DETECTION_FLOOR at the thresholds, and the acceptance family
   (acceptance.py: validation digits with another pen, a slant, soft focus, scanned) accepted >=
   ACCEPTANCE_FLOOR. Of the configurations that clear every floor, those that the best of them (by the near-digit
   figure) does not beat in CONFIDENCE of the paired resamples, or beats by at most NEAR_TOLERANCE, are equal (a
   gate that fires a little sooner changes nearly identical decisions, and there the paired bootstrap is sharp),
   and of the equals the one whose gates fire soonest wins: both gates before one before none, then the smallest
   offsets. A far gate that costs nothing measurable on the near digits is kept
   as protection against unknowns no family foresaw; the floors and the near figure stop it from costing more.

The thresholds behind the floors are those stage 2 writes by default: each predicted class's `target` quantile
of the decision on the validation digits. Without folds (fewer than 4 known classes), step 1 takes the best
mean far-family AUROC and step 2 the most protective configuration that clears the floors.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, product

import numpy as np

from . import gates, metrics
from .calibration import calibrate, threshold_table
from .gates import decide_normalised
from .judge import BOOTSTRAP, CONFIDENCE, Judge
from .scores import Scored

FAR_AUROC_FLOOR = 0.995
FAR_DETECTION_FLOOR = 0.99
ACCEPTANCE_FLOOR = 0.97
# A difference in leave-classes-out AUROC this small is no difference: the paired bootstrap resolves gaps of a few
# ten-thousandths between near-identical decisions, far below what folds can tell about unseen classes.
NEAR_TOLERANCE = 0.001
NEAR = "leave_classes_out"
ACCEPTANCE = "acceptance"
RULE = (f"(1) the near part: the best leave-classes-out AUROC (mean over the folds); a simpler candidate within "
        f"{NEAR_TOLERANCE} of it counts as equal, and the simplest of the equals wins (fewest components). (2) the gates "
        f"beside it: every far family at AUROC >= {FAR_AUROC_FLOOR} and rejected >= {FAR_DETECTION_FLOOR:.0%} at the "
        f"thresholds, the acceptance family accepted >= {ACCEPTANCE_FLOOR:.0%}; of the configurations that clear "
        f"them, those that the best leave-classes-out AUROC among them does not beat in {CONFIDENCE:.0%} of {BOOTSTRAP} "
        f"paired bootstrap resamples (folds and their digits drawn with replacement), or beats by at most "
        f"{NEAR_TOLERANCE}, are equal, and the one whose gates fire soonest wins (both gates, then one, then none; "
        "then the smallest offsets)")
FALLBACK_RULE = ("no leave-classes-out folds (fewer than 4 known classes): the near part with the best mean far-family "
                 "AUROC, then the most protective gates that clear the far and acceptance floors")


@dataclass
class Evidence:
    """The scored validation data the selection reads, and the near-digit judge (None: there is none)."""
    known: Scored                  # the validation digits
    far: dict[str, Scored]         # far family -> its images, made from the validation digits
    acceptance: Scored             # validation digits as users send them
    judge: "Judge | None" = None


@dataclass
class Selection:
    chosen: str
    near: str                      # the near part of the chosen decision
    table: dict[str, dict]         # candidate -> its figures (see select_decision)
    families: list[str]            # the far families
    floors: dict                   # each floor: its level and how many candidates it removed
    judge: dict | None = None      # where the near-digit figures came from (Judge.describe)
    rule: str = RULE

    def to_json(self) -> dict:
        judge = self.judge or {}
        return {"chosen": self.chosen, "near": self.near, "rule": self.rule, "families": self.families,
                "floors": self.floors, "near_family": NEAR if self.judge else None, "folds": judge.get("folds", []),
                "judge": judge, "bootstrap": {"resamples": BOOTSTRAP, "confidence": CONFIDENCE, "folds_resampled": True},
                "candidates": self.table}


def gate_plans(near: str, components) -> list[tuple[tuple[str, float], ...]]:
    """Every configuration of far gates beside a near part, none first: each gate of gates.GATES that the model
    has and that is not the near part itself, off or at each offset."""
    available = [g for g in gates.GATES if g in components and g != near]
    plans: list[tuple[tuple[str, float], ...]] = [()]
    for r in range(1, len(available) + 1):
        for chosen in combinations(available, r):
            plans += [tuple(zip(chosen, offsets)) for offsets in product(gates.OFFSETS, repeat=r)]
    return plans


def protection_order(plan) -> tuple[int, float]:
    """Gates that fire soonest first: more gates on, then smaller offsets."""
    return -len(plan), sum(offset for _, offset in plan)


class _Normalised:
    """Every part's rank-normal values on every validation set of the evidence, each computed once."""

    def __init__(self, evidence: Evidence, parts: list[str]):
        knots = gates.fit_normalisation(evidence.known, parts)
        table = lambda scored, k: {p: gates.normalised_part(scored, p, k) for p in parts}
        self.known = table(evidence.known, knots)
        self.far = {f: table(s, knots) for f, s in evidence.far.items()}
        self.acceptance = table(evidence.acceptance, knots)


def _figures(evidence: Evidence, z: _Normalised, near: str, plan, classes: list[int], target: float) -> dict:
    """One candidate's figures: per far family AUROC and share rejected at the thresholds, the acceptance family's
    share accepted, and the leave-classes-out AUROC per fold and their mean."""
    known = decide_normalised(z.known, near, plan)
    table = threshold_table(calibrate(known, evidence.known.pred, classes, "quantile", None, target))
    row: dict = {}
    for family, scored in evidence.far.items():
        values = decide_normalised(z.far[family], near, plan)
        row[family] = {"auroc": metrics.auroc(known, values),
                       "detected": float((values > table[scored.pred]).mean())}
    accepted = decide_normalised(z.acceptance, near, plan) <= table[evidence.acceptance.pred]
    row[ACCEPTANCE] = float(accepted.mean())
    row["far_min"] = min(row[f]["auroc"] for f in evidence.far)
    row["far_mean"] = float(np.mean([row[f]["auroc"] for f in evidence.far]))
    row["failed_floors"] = [f for f in evidence.far if row[f]["auroc"] < FAR_AUROC_FLOOR
                            or row[f]["detected"] < FAR_DETECTION_FLOOR]
    if row[ACCEPTANCE] < ACCEPTANCE_FLOOR:
        row["failed_floors"].append(ACCEPTANCE)
    row["passes_floors"] = not row["failed_floors"]
    if evidence.judge:
        row["per_fold"] = evidence.judge.per_fold(near, plan)
        row[NEAR] = float(np.mean(row["per_fold"]))
    return row


def _equals(names: list[str], plans: dict, judge: Judge, table: dict, step: str, use_bootstrap: bool) -> list[str]:
    """The candidates equal to the best of `names` (by the leave-classes-out AUROC): within NEAR_TOLERANCE of it,
    or, with `use_bootstrap`, not beaten by it in CONFIDENCE of the paired resamples; the best among them. Each row
    gets its interval and, under `step`, the share of resamples in which the step's best beats it and whether it
    counts as equal."""
    leader = max(names, key=lambda n: table[n][NEAR])
    resampled = {n: judge.resampled(*plans[n]) for n in names}
    equal = []
    for n in names:
        wins = float(np.mean(resampled[leader] > resampled[n]))
        close = table[leader][NEAR] - table[n][NEAR] <= NEAR_TOLERANCE
        table[n]["near_ci95"] = [float(v) for v in np.percentile(resampled[n], [2.5, 97.5])]
        table[n][step] = {"leader": leader, "leader_better_share": wins,
                          "within_noise": n == leader or close or (use_bootstrap and wins < CONFIDENCE)}
        if table[n][step]["within_noise"]:
            equal.append(n)
    return equal


def choose_near(judge: Judge, nears: list[str], table: dict) -> str:
    """Step 1: the near part, by the judge alone (table: each candidate's row, with its NEAR figure)."""
    equal = _equals(nears, {n: (n, ()) for n in nears}, judge, table, "near_step", use_bootstrap=False)
    return next(n for n in nears if n in equal)  # candidate_scores lists the simplest first


def near_part(judge: Judge, components) -> str:
    """Step 1 on a judge alone, for a model with these components: the near part the selection chooses."""
    nears = gates.candidate_scores(components)
    return choose_near(judge, nears, {n: {NEAR: float(np.mean(judge.per_fold(n, ())))} for n in nears})


def select_decision(evidence: Evidence, classes: list[int], target: float = 0.99, seed: int = 0) -> Selection:
    """The decision chosen by the rule above (RULE), with every candidate's figures."""
    components = evidence.known.components
    nears = gates.candidate_scores(components)
    parts = gates.with_components(nears + [g for g in gates.GATES if g in components])
    z = _Normalised(evidence, parts)
    judge = evidence.judge
    figures = lambda near, plan: _figures(evidence, z, near, plan, classes, target)

    # Step 1: the near part.
    table = {n: figures(n, ()) for n in nears}
    if judge:
        near = choose_near(judge, nears, table)
    else:
        near = max(nears, key=lambda n: table[n]["far_mean"])  # max keeps the first (simplest) of equals

    # Step 2: the gates beside it.
    configs = {gates.gates_name(near, plan): (near, plan) for plan in gate_plans(near, components)}
    for name, (_, plan) in configs.items():
        table[name] = table.get(name) or figures(near, plan)
    names = list(configs)
    passing = [n for n in names if table[n]["passes_floors"]]
    if not passing:  # nothing clears every floor: the configurations that fail the fewest compete
        fewest = min(len(table[n]["failed_floors"]) for n in names)
        passing = [n for n in names if len(table[n]["failed_floors"]) == fewest]
    if judge:
        passing = _equals(passing, configs, judge, table, "gate_step", use_bootstrap=True)
    chosen = min(passing, key=lambda n: protection_order(configs[n][1]))  # min keeps the first of equals

    floors = floor_summary(table, nears, names, list(evidence.far))
    return Selection(chosen, near, table, list(evidence.far), floors, judge.describe() if judge else None,
                     RULE if judge else FALLBACK_RULE)


def floor_summary(table: dict, nears: list[str], configs: list[str], families: list[str]) -> dict:
    """Each floor: its level, how many near parts alone fail it and how many gate configurations it removed."""
    summary = {}
    for floor in families + [ACCEPTANCE]:
        level = ({"accepted": ACCEPTANCE_FLOOR} if floor == ACCEPTANCE
                 else {"auroc": FAR_AUROC_FLOOR, "detected": FAR_DETECTION_FLOOR})
        summary[floor] = {**level, "near_parts_failing": sum(floor in table[n]["failed_floors"] for n in nears),
                          "near_parts": len(nears),
                          "configurations_removed": sum(floor in table[n]["failed_floors"] for n in configs),
                          "configurations": len(configs)}
    return summary

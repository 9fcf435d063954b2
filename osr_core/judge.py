"""The near-digit judge: what leave-classes-out folds say about a decision, and about one recipe against another.

A fold (leave_out.Fold) is a model trained without some classes, scored on the validation digits of its own classes
(known) and of the held-out ones (unknown): the judge's evidence. A judge may hold several folds with the same held-out
classes, trained with other seeds: a fold's figure is then the mean over its seeds, so that one seed's luck (which moves
a model's near-digit figures by more than the gains a recipe is judged on) averages out.

Every interval is a bootstrap of **Resamples**: each resample draws the folds with replacement (which classes were held
out is as uncertain as which digits were drawn), then each fold's known and unknown digits with replacement. A fold's
digits are the same for every seed and every recipe (the validation split and the classes fix them), so one draw serves
all of them: two candidates, or two recipes, are compared on the same resamples, and the interval is of their
*difference* (paired). An unpaired interval of one against the other's is blind to the gains that matter here
(0.001-0.004); a paired one sees them.

The judge's **resolution** is the half-width of the paired interval of a recipe against itself with other seeds: the
smallest difference it can tell from seed noise (resolution()).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import gates, metrics
from .gates import decide_normalised
from .leave_out import Fold

BOOTSTRAP = 200
CONFIDENCE = 0.95


@dataclass
class Resamples:
    """BOOTSTRAP resamples of a judge's folds: each fold's share of a resample (B, F), and per fold how many times each
    of its known and unknown digits is drawn ((B, n_known), (B, n_unknown))."""
    fold_weights: np.ndarray
    known: list[np.ndarray]
    unknown: list[np.ndarray]

    @classmethod
    def draw(cls, sizes: list[tuple[int, int]], seed: int, draws: int | None = None) -> "Resamples":
        """Resamples of folds with (n_known, n_unknown) digits each: the same `sizes` and `seed` draw the same."""
        rng = np.random.default_rng(seed)
        draws = draws or BOOTSTRAP
        weights = metrics.resample_counts(rng, len(sizes), draws) / len(sizes)
        counts = [(metrics.resample_counts(rng, k, draws), metrics.resample_counts(rng, u, draws)) for k, u in sizes]
        return cls(weights, [k for k, _ in counts], [u for _, u in counts])


class Judge:
    """What the selection asks of a near-digit judge: a candidate's leave-classes-out AUROC per fold, and its mean over
    the folds in each of the BOOTSTRAP paired resamples."""

    def per_fold(self, near: str, plan) -> list[float]:
        raise NotImplementedError

    def resampled(self, near: str, plan) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError


class FoldJudge(Judge):
    """The judge of leave-classes-out folds (leave_out.py), each fold model normalised by its own validation digits.
    Folds with the same held-out classes are one fold of the judge, trained with several seeds."""

    def __init__(self, folds: list[Fold], seed: int = 0, scheme: dict | None = None):
        components = folds[0].known.components
        parts = gates.with_components(gates.candidate_scores(components) + [g for g in gates.GATES if g in components])
        self.held_out: list[tuple[int, ...]] = list(dict.fromkeys(tuple(f.held_out) for f in folds))
        self.seeds = sorted({f.recipe.seed for f in folds})
        self.groups = [[f for f in folds if tuple(f.held_out) == h] for h in self.held_out]
        self.sizes = [(len(g[0].known), len(g[0].unknown)) for g in self.groups]
        if any((len(f.known), len(f.unknown)) != size for g, size in zip(self.groups, self.sizes) for f in g):
            raise ValueError("the folds of one held-out group were scored on different validation digits")
        if any(len({f.recipe.seed for f in g}) != len(g) for g in self.groups):
            raise ValueError("two folds hold out the same classes with the same training seed")
        self.folds_json = [f.to_json() for f in folds]
        self.scheme = scheme
        self.tables = [[self._normalised(f, parts) for f in group] for group in self.groups]
        self.resamples = Resamples.draw(self.sizes, seed)

    @staticmethod
    def _normalised(fold: Fold, parts: list[str]):
        own = gates.fit_normalisation(fold.known, parts)
        return ({p: gates.normalised_part(fold.known, p, own) for p in parts},
                {p: gates.normalised_part(fold.unknown, p, own) for p in parts})

    def per_fold_and_seed(self, near: str, plan) -> list[list[float]]:
        """Each fold's AUROC for each of its seeds."""
        return [[metrics.auroc(decide_normalised(k, near, plan), decide_normalised(u, near, plan)) for k, u in group] for group in self.tables]

    def per_fold(self, near: str, plan) -> list[float]:
        return [float(np.mean(seeds)) for seeds in self.per_fold_and_seed(near, plan)]

    def resampled(self, near: str, plan, resamples: Resamples | None = None) -> np.ndarray:
        r = resamples or self.resamples
        per_fold = np.stack([np.mean([metrics.resampled_aurocs(decide_normalised(k, near, plan), decide_normalised(u, near, plan), kc, uc)
                                      for k, u in group], axis=0)
                             for group, kc, uc in zip(self.tables, r.known, r.unknown)], axis=1)  # (B, F)
        return (per_fold * r.fold_weights).sum(1)

    def describe(self) -> dict:
        return {"source": "folds trained for this checkpoint's recipe", "scheme": self.scheme, "folds": self.folds_json,
                "seeds": self.seeds}


class ShippedJudge(Judge):
    """A judgement computed once for a recipe and shipped with the code (judgement.py): the same figures, looked
    up by the candidate's name."""

    def __init__(self, judgement: dict, where: str):
        self.judgement, self.where = judgement, where

    def _row(self, near: str, plan) -> dict:
        return self.judgement["candidates"][gates.gates_name(near, plan)]

    def per_fold(self, near: str, plan) -> list[float]:
        return list(self._row(near, plan)["per_fold"])

    def resampled(self, near: str, plan) -> np.ndarray:
        return np.asarray(self._row(near, plan)["resampled"], dtype=np.float64)

    def describe(self) -> dict:
        return {"source": f"shipped judgement {self.where}", "recipe_key": self.judgement["recipe_key"],
                "scheme": self.judgement["scheme"], "folds": self.judgement["folds"]}


# ----------------------------------------------------------------------------------- one recipe against another
@dataclass
class Comparison:
    """`other` against `base` on the same folds and validation digits: the difference of their leave-classes-out AUROC
    (other minus base), per fold and as the mean over the folds, with its paired bootstrap interval."""
    base: str                      # the decision judged for each
    other: str
    per_fold: list[float]
    difference: float
    resampled: np.ndarray          # (B,) the difference in each paired resample
    ci95: tuple[float, float]

    @property
    def half_width(self) -> float:
        return (self.ci95[1] - self.ci95[0]) / 2

    @property
    def better(self) -> bool:
        """The whole interval lies above zero: `other` is better, beyond the noise of folds, digits and seeds."""
        return self.ci95[0] > 0

    def to_json(self) -> dict:
        return {"base": self.base, "other": self.other, "per_fold": self.per_fold, "difference": self.difference,
                "ci95": list(self.ci95), "better": self.better}


def compare(base: FoldJudge, other: FoldJudge, base_decision: tuple[str, tuple], other_decision: tuple[str, tuple],
            seed: int = 0) -> Comparison:
    """`other` against `base`, paired: the same held-out classes, the same validation digits, the same resamples. Each
    judge's decision is (near part, gates): a recipe is judged on the decision chosen for it (selection.near_part)."""
    if other.held_out != base.held_out or other.sizes != base.sizes:
        raise ValueError(f"a paired comparison needs the same folds: {base.held_out} against {other.held_out}")
    resamples = Resamples.draw(base.sizes, seed)
    per_fold = [o - b for o, b in zip(other.per_fold(*other_decision), base.per_fold(*base_decision))]
    diffs = other.resampled(*other_decision, resamples) - base.resampled(*base_decision, resamples)
    lo, hi = np.percentile(diffs, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    return Comparison(gates.gates_name(*base_decision), gates.gates_name(*other_decision), per_fold,
                      float(np.mean(per_fold)), diffs, (float(lo), float(hi)))


def resolution(folds: list[Fold], seeds_a: list[int], seeds_b: list[int], decision: tuple[str, tuple],
               seed: int = 0) -> Comparison:
    """A recipe against itself with other seeds: its folds of `seeds_b` judged against those of `seeds_a`, on one
    decision. The half-width of the interval is the judge's resolution with len(seeds_a) seeds a recipe."""
    pick = lambda seeds: FoldJudge([f for f in folds if f.recipe.seed in seeds], seed)
    return compare(pick(seeds_a), pick(seeds_b), decision, decision, seed)

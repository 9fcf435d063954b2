"""A deep ensemble's scores from its members' (Lakshminarayanan et al. 2017): models of one recipe trained from other
seeds, read as one.

Members trained from other seeds put their features, distances and errors on scales of their own, so raw scores
cannot be averaged. Each member's every component is first rank-normalised on that member's own known validation
digits (gates.rank_normalise, the units every decision reads), and the ensemble's component is the members' mean
there: one rule for the classifier's uncertainty, the feature distances and the reconstruction errors alike. The
mean is put back into the kind of units the component has, so that the decisions treat it like a member's: for a
part normalised on a log scale (errors, distances) its exponential, whose log is the mean itself.
"""
from __future__ import annotations

import numpy as np

from . import gates
from .scores import Scored


def combine(members: list[Scored], references: list[Scored]) -> Scored:
    """The ensemble's scores on some images. members[i]: member i's scores on them; references[i]: member i's scores
    on its own known validation digits. The predicted class is the members' vote; where no class has more votes than
    another, the first member's among the tied."""
    if not members or len(members) != len(references) or len({len(m) for m in members}) != 1:
        raise ValueError("an ensemble needs one reference per member and every member's scores on the same images")
    names = [n for n in members[0].components if all(n in m.components for m in members)]
    components = {}
    for name in names:
        z = np.mean([gates.rank_normalise(m.components[name], name, gates.fit_knots(r.components[name], name))
                     for m, r in zip(members, references)], axis=0)
        components[name] = np.exp(z) if name in gates.LOG_SCALED else z
    return Scored(pred=vote(np.stack([m.pred for m in members])), components=components)


def vote(preds: np.ndarray) -> np.ndarray:
    """(M, N) members' predicted classes -> (N,) the class most of them name (ties: the earliest member's)."""
    agreeing = (preds[:, None, :] == preds[None, :, :]).sum(axis=1)  # (M, N): members naming member i's class
    return preds[agreeing.argmax(axis=0), np.arange(preds.shape[1])]

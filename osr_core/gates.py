"""How the score components become one decision: rank normalisation, fusions and gates.

A decision score is named by what it reads, one convention throughout (higher = more unknown):
- a **component**: `energy`, `pixel_recon`, ... (scores.COMPONENTS), used as it is;
- a **fusion**: `mean+(energy,mahalanobis)`, the mean of the positive parts of the rank-normalised components (a
  component may add evidence, never cancel another's); `mean(...)`, the plain mean, by name only;
- **gates**: `max(mean+(energy,mahalanobis),pixel_recon-1.5,mahalanobis-1)`. Each part (a component or a fusion)
  is rank-normalised on the validation digits, less its offset, and the maximum decides. The first part is the
  near part (offset 0, built for unknowns that look like digits); the others are gates that can each reject an
  image alone, however sure the other parts are. A mean lets one part dilute another: the classifier is as sure of
  uniform noise as of a digit, and in a mean that halves the feature distance that alone tells noise from digits.

**Rank normalisation.** A part's value is mapped to a standard normal through its quantiles on the validation
digits at Z_KNOTS (a standard normal there), interpolated between them and continued in a straight line beyond the
outer ones, with the slope of the outer unit of z, so an image further out than any validation digit scores
further still (on a log scale for the positive, heavy-tailed errors and distances). A z-score would let one heavy
tail dwarf the other parts; ranks put every part on the same footing where the digits are.

Each image's **reason** names the part that decided it (the largest, once its offset is taken off): REASONS.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.stats import norm

from .scores import COMPONENTS, FUSABLE, Scored

Z_KNOTS = np.linspace(-3.0, 3.0, 25)  # where each part's validation quantiles are kept: z = -3, -2.75, ..., 3
P_KNOTS = norm.cdf(Z_KNOTS)
TAIL_Z = 1.0  # the straight line beyond the outer knots has the slope of the outermost unit of z
LOG_SCALED = {"pixel_recon", "feature_recon", "mahalanobis"}  # positive and right-skewed: extrapolated on a log scale
FUSIONS = ("mean", "mean+")
# The far gates the selection offers beside a near part, and their offsets (in z; none: the gate is off).
GATES = ("pixel_recon", "mahalanobis")
OFFSETS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
AUTO = "auto"  # stage 2: choose the decision on validation data (selection.py)

# Why an image is unknown, by the evidence of the part that decided it.
BETWEEN = "between digits"
REASONS = {
    "max_softmax": BETWEEN, "entropy": BETWEEN, "energy": BETWEEN, "max_logit": BETWEEN,
    "pixel_recon": "unlike any digit",
    "feature_recon": "unusual features",
    "mahalanobis": "far from every class",
    "openmax": "openmax",
}


# ----------------------------------------------------------------------------------- names
def fusion_name(parts, kind: str = "mean+") -> str:
    return f"{kind}(" + ",".join(parts) + ")"


def parse_fusion(name: str) -> tuple[str, tuple[str, ...]] | None:
    """(kind, components) of a fusion name such as `mean+(energy,mahalanobis)`; None for anything else."""
    kind, sep, rest = name.partition("(")
    if sep and kind in FUSIONS and rest.endswith(")"):
        parts = tuple(rest[:-1].split(","))
        if len(parts) >= 2 and len(set(parts)) == len(parts) and all(p in FUSABLE for p in parts):
            return kind, parts
    return None


def _is_part(name: str) -> bool:
    return name in COMPONENTS or parse_fusion(name) is not None


def _top_level_split(text: str) -> list[str]:
    """`a,b(c,d),e` -> ['a', 'b(c,d)', 'e']: commas inside parentheses do not split."""
    pieces, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    return pieces + [text[start:]]


def parse_gates(name: str) -> list[tuple[str, float]]:
    """The parts of a decision score with their offsets: [(part, offset), ...]. A component or a fusion is one part
    at offset 0; `max(near,gate-offset,...)` is its near part (offset 0) and each gate with its offset. Raises
    ValueError for any other name."""
    if _is_part(name):
        return [(name, 0.0)]
    if name.startswith("max(") and name.endswith(")"):
        pieces = _top_level_split(name[4:-1])
        parts = [(pieces[0], 0.0)]
        for piece in pieces[1:]:
            part, sep, offset = piece.rpartition("-")
            try:
                value = float(offset)
            except ValueError:
                value = -1.0
            if not sep or value < 0 or not np.isfinite(value):
                parts = []
                break
            parts.append((part, value))
        names = [p for p, _ in parts]
        if len(parts) >= 2 and all(_is_part(p) for p in names) and len(set(names)) == len(names):
            return parts
    raise ValueError(f"unknown score {name!r}: a component ({', '.join(COMPONENTS)}); mean(a,b,...) or mean+(a,b,...) "
                     f"of two or more of {', '.join(FUSABLE)}; or max(near,gate-offset,...) of such parts, each gate "
                     "with an offset >= 0 (for example max(mean+(energy,mahalanobis),pixel_recon-1.5))")


def gates_name(near: str, gates) -> str:
    """`max(near,gate-offset,...)` for gates [(part, offset), ...]; the near part alone when there are none."""
    if not gates:
        return near
    return "max(" + ",".join([near] + [f"{part}-{offset:g}" for part, offset in gates]) + ")"


def score_parts(name: str) -> tuple[str, ...]:
    """The components a decision score reads, each once, in order of appearance."""
    seen: list[str] = []
    for part, _ in parse_gates(name):
        fusion = parse_fusion(part)
        for c in (fusion[1] if fusion else (part,)):
            if c not in seen:
                seen.append(c)
    return tuple(seen)


def with_components(parts) -> list[str]:
    """The parts and every component of a fused one, each once, components first: the order they are fitted in."""
    needed: list[str] = []
    for part in parts:
        fusion = parse_fusion(part)
        needed += [n for n in (*(fusion[1] if fusion else ()), part) if n not in needed]
    return [n for n in needed if n in COMPONENTS] + [n for n in needed if n not in COMPONENTS]


def normalised_names(name: str) -> list[str]:
    """What a decision score needs rank-normalised: a fusion's components; for gates, every part and every
    component of a fused part. A lone component needs nothing."""
    parts = parse_gates(name)
    if len(parts) > 1:
        return with_components([p for p, _ in parts])
    fusion = parse_fusion(name)
    return list(fusion[1]) if fusion else []


def reason_of(part: str) -> str:
    """Why an image that `part` rejected is unknown, in words."""
    return BETWEEN if parse_fusion(part) else REASONS.get(part, part)


def candidate_scores(components) -> list[str]:
    """Every near score the selection weighs, simplest first: each component, then the one-sided mean of every
    subset of two, three, ... fusable components. Plain means are no candidates: a development run chose one and
    accepted a third of the uniform-noise set (README.md tells it)."""
    singles = [c for c in COMPONENTS if c in components]
    fusable = [c for c in FUSABLE if c in components]
    return singles + [fusion_name(sub) for r in range(2, len(fusable) + 1) for sub in combinations(fusable, r)]


# ----------------------------------------------------------------------------------- rank normalisation
def _scale(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.log(np.maximum(values, 1e-12)) if name in LOG_SCALED else values


def fit_knots(values: np.ndarray, name: str) -> list[float]:
    """The validation quantiles of a part at P_KNOTS, strictly increasing (ties, as at a softmax of exactly 1, are
    split by a hair so the map stays one-to-one), in the part's own units."""
    scaled = np.quantile(_scale(values, name), P_KNOTS)
    hair = 1e-9 * max(1.0, float(np.abs(scaled).max()))
    for i in range(1, len(scaled)):
        scaled[i] = max(scaled[i], scaled[i - 1] + hair)
    return (np.exp(scaled) if name in LOG_SCALED else scaled).tolist()


def rank_normalise(values: np.ndarray, name: str, knots) -> np.ndarray:
    """Values of a part -> standard-normal units of the validation digits (see the module's docstring)."""
    x, k = _scale(values, name), _scale(np.asarray(knots), name)
    inner = np.searchsorted(Z_KNOTS, Z_KNOTS[-1] - TAIL_Z)  # the knot one unit of z inside the top one
    outer = np.searchsorted(Z_KNOTS, Z_KNOTS[0] + TAIL_Z)
    slope_hi = TAIL_Z / (k[-1] - k[inner])
    slope_lo = TAIL_Z / (k[outer] - k[0])
    z = np.interp(x, k, Z_KNOTS)
    z = np.where(x > k[-1], Z_KNOTS[-1] + (x - k[-1]) * slope_hi, z)
    return np.where(x < k[0], Z_KNOTS[0] + (x - k[0]) * slope_lo, z)


def fit_normalisation(scored: Scored, names) -> dict[str, list[float]]:
    """Knots of every named part (components before the fusions that read them) on the scored validation digits."""
    knots: dict[str, list[float]] = {}
    for name in names:
        if name not in knots:
            knots[name] = fit_knots(_raw_part(scored, name, knots), name)
    return knots


def normalisation_for(scored: Scored, scores) -> dict[str, list[float]]:
    """Knots of everything the given decision scores need, fitted on `scored` (the validation digits)."""
    needed: list[str] = []
    for s in scores:
        needed += [n for n in normalised_names(s) if n not in needed]
    return fit_normalisation(scored, with_components(needed))


# ----------------------------------------------------------------------------------- decisions
def _raw_part(scored: Scored, part: str, knots: dict) -> np.ndarray:
    """A part in its own units: a component as scored, a fusion as the mean over its rank-normalised components."""
    fusion = parse_fusion(part)
    if fusion is None:
        return scored.components[part]
    kind, names = fusion
    z = np.stack([rank_normalise(scored.components[n], n, knots[n]) for n in names])
    return np.mean(np.maximum(z, 0.0) if kind == "mean+" else z, axis=0)


def normalised_part(scored: Scored, part: str, knots: dict) -> np.ndarray:
    """A part (a component or a fusion) in standard-normal units of the validation digits."""
    return rank_normalise(_raw_part(scored, part, knots), part, knots[part])


def gate_values(scored: Scored, score: str, knots: dict) -> np.ndarray:
    """(P, N): each part of a gated score, rank-normalised, less its offset (one row for a score without gates,
    in its own units)."""
    parts = parse_gates(score)
    if len(parts) == 1:
        return _raw_part(scored, score, knots)[None]
    return np.stack([normalised_part(scored, p, knots) - offset for p, offset in parts])


def decide(scored: Scored, score: str, knots: dict) -> tuple[np.ndarray, np.ndarray]:
    """The decision: for every image, the largest of its gate values (gate_values) and which part that was (its index
    in parse_gates(score)). Calibration, stage 2's selection, scoring and the reasons all read it from here."""
    return largest(gate_values(scored, score, knots))


def decide_normalised(z: dict[str, np.ndarray], near: str, plan) -> np.ndarray:
    """The same decision from parts already rank-normalised (`z`: part -> values), for the selection and the judge,
    which weigh many gate configurations (`plan`: [(gate, offset), ...]) over the same parts."""
    return largest([z[near]] + [z[gate] - offset for gate, offset in plan])[0]


def largest(values) -> tuple[np.ndarray, np.ndarray]:
    """The largest of P arrays of N values (a part each, its offset taken off), and which part it was: the gates'
    maximum, the one rule by which a decision is made."""
    stacked = np.stack(list(values))
    return stacked.max(axis=0), stacked.argmax(axis=0)


def part_reasons(score: str) -> list[str]:
    """The reason each part of a decision score gives when it decides."""
    return [reason_of(p) for p, _ in parse_gates(score)]

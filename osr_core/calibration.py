"""Per-class thresholds calibrated on the validation split, and the thresholds file that carries them.

A sample is unknown when its decision score exceeds the threshold of its *predicted* class. Rules:
`quantile` (threshold = the target-acceptance quantile of the class's validation scores),
`mean-std` (mean + k * std) and `mean-factor` (k * mean, the seeds' "2 x class mean" rule).
The file also carries what the decision needs besides the model: each part's rank normalisation (gates.py), as
its validation quantiles at gates.Z_KNOTS.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .cli import UserError
from .gates import Z_KNOTS, normalised_names, parse_fusion, parse_gates
from .scores import COMPONENTS

RULES = ("quantile", "mean-std", "mean-factor")
DEFAULT_RULE_PARAM = {"quantile": None, "mean-std": 2.326, "mean-factor": 2.0}  # 2.326: the normal's 99% point
FILE_MAGIC = "# osr per-class thresholds v2"
OLD_MAGIC = "# osr per-class thresholds v1"  # one averaged score, z-scores of mean and std: not read any more
CALIBRATION_JSON = "calibration.json"  # beside the thresholds file: the same, plus how the score was chosen
COLUMNS = ("class", "n", "mean", "std", "p50", "p95", "p99", "threshold")
MIN_CLASS_SAMPLES = 20  # fewer than this and a class borrows the threshold of all classes pooled


@dataclass
class ClassStats:
    cls: int
    n: int
    mean: float
    std: float
    p50: float
    p95: float
    p99: float
    threshold: float


@dataclass
class Calibration:
    checkpoint_sha256: str
    score: str
    rule: str
    rule_param: float | None
    target_acceptance: float
    normalisation: dict[str, list[float]] = field(default_factory=dict)  # part -> its knots (gates.py)
    classes: list[ClassStats] = field(default_factory=list)
    validation_acceptance: float | None = None  # measured when calibrating; not kept in the text file
    selection: dict | None = None  # how the score was chosen (selection.Selection.to_json); calibration.json only
    header_line: int | None = field(default=None, repr=False)  # where the hash stands in the file read
    row_lines: list[int] = field(default_factory=list, repr=False)  # where each class row stands in the file read

    def thresholds_for(self, pred: np.ndarray) -> np.ndarray:
        """The threshold of each image's predicted class (a table lookup: no Python loop over images)."""
        missing = set(np.unique(pred).tolist()) - {c.cls for c in self.classes}
        if missing:
            raise UserError(f"thresholds file has no row for predicted class(es) {sorted(missing)}")
        return threshold_table(self.classes)[np.asarray(pred, dtype=np.int64)]

    def to_json(self) -> dict:
        d = asdict(self)
        d["normalisation"] = {k: list(v) for k, v in self.normalisation.items()}
        d["decision_parts"] = [{"part": p, "offset": o} for p, o in parse_gates(self.score)]
        d.pop("header_line")
        d.pop("row_lines")
        return d


def threshold_of(values: np.ndarray, rule: str, param: float | None, target: float) -> float:
    if rule == "quantile":
        return float(np.quantile(values, target if param is None else param))
    if rule == "mean-std":
        return float(values.mean() + param * values.std())
    if rule == "mean-factor":
        return float(param * values.mean())
    raise ValueError(rule)


def threshold_table(rows: list[ClassStats]) -> np.ndarray:
    """(10,) each class's threshold, NaN for a class without a row: index it with the predicted classes."""
    table = np.full(10, np.nan)
    table[[c.cls for c in rows]] = [c.threshold for c in rows]
    return table


def calibrate(scores: np.ndarray, pred: np.ndarray, classes: list[int], rule: str, param: float | None,
              target: float) -> list[ClassStats]:
    """Per-class statistics of validation scores, grouped by predicted class, with thresholds."""
    if rule == "mean-factor" and (scores <= 0).any():
        raise UserError("--rule mean-factor needs a score that is always positive, e.g. --score pixel_recon")
    pooled = threshold_of(scores, rule, param, target)
    rows = []
    for c in classes:
        v = scores[pred == c]
        n = len(v)
        if n == 0:
            rows.append(ClassStats(c, 0, *([math.nan] * 5), pooled))
            continue
        p50, p95, p99 = np.quantile(v, [0.5, 0.95, 0.99])
        threshold = threshold_of(v, rule, param, target) if n >= MIN_CLASS_SAMPLES else pooled
        rows.append(ClassStats(c, n, float(v.mean()), float(v.std()), float(p50), float(p95), float(p99), threshold))
    return rows


# ----------------------------------------------------------------------------------- the file
def format_thresholds(cal: Calibration) -> str:
    lines = [
        FILE_MAGIC,
        f"# checkpoint_sha256: {cal.checkpoint_sha256}",
        f"# score: {cal.score}",
        f"# rule: {cal.rule}",
        f"# rule_param: {'none' if cal.rule_param is None else repr(cal.rule_param)}",
        f"# target_acceptance: {cal.target_acceptance!r}",
    ]
    if cal.normalisation:
        lines.append(f"# each 'normalise' line: a part's validation quantiles at z = {Z_KNOTS[0]:g}, "
                     f"{Z_KNOTS[1]:g}, ..., {Z_KNOTS[-1]:g} (its rank normalisation)")
    for name, knots in cal.normalisation.items():
        lines.append(f"# normalise: {name} " + " ".join(repr(float(k)) for k in knots))
    lines.append("# " + " ".join(COLUMNS))
    for c in cal.classes:
        lines.append(f"{c.cls} {c.n} {c.mean:.6f} {c.std:.6f} {c.p50:.6f} {c.p95:.6f} {c.p99:.6f} {c.threshold!r}")
    return "\n".join(lines) + "\n"


def _number(text: str, path: Path, lineno: int, what: str, allow_nan: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{path}:{lineno}: {what} is not a number: {text!r}") from None
    if not allow_nan and not math.isfinite(value):
        raise UserError(f"{path}:{lineno}: {what} must be a finite number, got {text!r}")
    return value


def _knots(value: str, path: Path, lineno: int) -> tuple[str, list[float]]:
    """`<part> <k1> ... <kn>` of a 'normalise:' line: a part and its knots, one per gates.Z_KNOTS, increasing."""
    cells = value.split()
    if len(cells) != 1 + len(Z_KNOTS) or not (cells[0] in COMPONENTS or parse_fusion(cells[0])):
        raise UserError(f"{path}:{lineno}: expected 'normalise: <component or fusion> <{len(Z_KNOTS)} quantiles>'")
    knots = [_number(v, path, lineno, f"quantile {i + 1} of {cells[0]}") for i, v in enumerate(cells[1:])]
    if any(b <= a for a, b in zip(knots, knots[1:])):
        raise UserError(f"{path}:{lineno}: the quantiles of {cells[0]} must increase from left to right")
    return cells[0], knots


def parse_thresholds(text: str, path: Path) -> Calibration:
    lines = text.splitlines()
    if lines and lines[0].strip() == OLD_MAGIC:
        raise UserError(f"{path}:1: a thresholds file of an earlier version (one averaged score, no gates); re-run "
                        "compute_class_reconstruction_errors.py to calibrate this checkpoint again")
    if not lines or lines[0].strip() != FILE_MAGIC:
        raise UserError(f"{path}:1: not a thresholds file of this project (expected {FILE_MAGIC!r}); "
                        "run compute_class_reconstruction_errors.py")
    header: dict[str, str] = {}
    header_line: dict[str, int] = {}
    normalisation: dict[str, list[float]] = {}
    rows: list[ClassStats] = []
    row_lines: list[int] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].strip().partition(":")
            if not sep:
                continue
            if key == "normalise":
                name, knots = _knots(value, path, lineno)
                normalisation[name] = knots
            else:
                header[key.strip()] = value.strip()
                header_line[key.strip()] = lineno
            continue
        cells = line.split()
        if len(cells) != len(COLUMNS):
            raise UserError(f"{path}:{lineno}: expected {len(COLUMNS)} columns ({' '.join(COLUMNS)}), found {len(cells)}")
        try:
            cls, n = int(cells[0]), int(cells[1])
        except ValueError:
            raise UserError(f"{path}:{lineno}: class and n must be whole numbers") from None
        stats = [_number(v, path, lineno, name, allow_nan=True) for v, name in zip(cells[2:7], COLUMNS[2:7])]
        rows.append(ClassStats(cls, n, *stats, _number(cells[7], path, lineno, "threshold")))
        row_lines.append(lineno)
    for key in ("checkpoint_sha256", "score", "rule", "rule_param", "target_acceptance"):
        if key not in header:
            raise UserError(f"{path}: header line '# {key}: ...' is missing")
    try:
        needed = normalised_names(header["score"])
    except ValueError as err:
        raise UserError(f"{path}:{header_line['score']}: {err}") from None
    if header["rule"] not in RULES:
        raise UserError(f"{path}:{header_line['rule']}: unknown rule {header['rule']!r} (one of {', '.join(RULES)})")
    first_line: dict[int, int] = {}
    for c, lineno in zip(rows, row_lines):
        if c.cls in first_line:
            raise UserError(f"{path}:{lineno}: class {c.cls} has a second row (the first is line {first_line[c.cls]})")
        first_line[c.cls] = lineno
    missing = [n for n in needed if n not in normalisation]
    if missing:
        raise UserError(f"{path}:{header_line['score']}: score {header['score']} needs a 'normalise:' line for each of "
                        f"{', '.join(missing)}")
    param = (None if header["rule_param"] == "none"
             else _number(header["rule_param"], path, header_line["rule_param"], "rule_param"))
    target = _number(header["target_acceptance"], path, header_line["target_acceptance"], "target_acceptance")
    return Calibration(header["checkpoint_sha256"], header["score"], header["rule"], param, target, normalisation,
                       rows, header_line=header_line["checkpoint_sha256"], row_lines=row_lines)


def read_thresholds(path: str | Path, checkpoint_sha256: str, known_classes: list[int]) -> Calibration:
    """Reads and checks a thresholds file against the checkpoint it must belong to."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"thresholds file not found: {path} (run compute_class_reconstruction_errors.py first)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read thresholds file {path}: {err}") from err
    cal = parse_thresholds(text, path)
    if cal.checkpoint_sha256 != checkpoint_sha256:
        raise UserError(f"{path}:{cal.header_line}: calibrated for another checkpoint (SHA-256 {cal.checkpoint_sha256[:12]}..., "
                        f"this one is {checkpoint_sha256[:12]}...); re-run compute_class_reconstruction_errors.py")
    missing = set(known_classes) - {c.cls for c in cal.classes}
    if missing:
        where = f"lines {cal.row_lines[0]}-{cal.row_lines[-1]}" if cal.row_lines else "none"
        raise UserError(f"{path} has no row for class(es) {sorted(missing)} (the checkpoint knows {known_classes}; "
                        f"class rows: {where})")
    return cal

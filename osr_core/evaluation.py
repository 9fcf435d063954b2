"""The open-set evaluation, computed once: every set scored and decided, every metric, and the images the views
draw. Its result is rendered by three views that never reach back into the scoring: metrics.json (to_metrics),
report.md with its pictures (report.py, figures.py) and index.html (page.py)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from . import generated, metrics, outliers
from .calibration import Calibration
from .cli import return_freed_memory
from .images import read_batch
from .pipeline import Decisions, Trained, calibrate_scored, decide, decide_scored, validation_images
from . import gates
from .gates import candidate_scores, normalisation_for
from .scores import Scored, score_images
from .unknown_sets import UnknownSet

log = logging.getLogger("osr")
SHOWN_PER_SIDE = 250  # per set, the most confidently rejected and the most confidently accepted images the views draw
# Other detectors on the same model and data, each calibrated on the validation split by its own rule.
BASELINES = {
    "seed-style feature AE, 2 x class mean": ("feature_recon", "mean-factor", 2.0),
    "seed-style pixel AE, 2 x class mean": ("pixel_recon", "mean-factor", 2.0),
    "max-softmax (Hendrycks & Gimpel 2017), 99% quantile": ("max_softmax", "quantile", None),
    "energy (Liu et al. 2020), 99% quantile": ("energy", "quantile", None),
    "Mahalanobis (Lee et al. 2018), 99% quantile": ("mahalanobis", "quantile", None),
}


@dataclass
class ValidationReference:
    """What the evaluation takes from the validation split alone."""
    scored: Scored                 # the split itself, scored once (baselines calibrate on it)
    proxies: Iterator[UnknownSet]  # the selection proxy's families and the training negatives', made as they are read
    normalisation: dict            # rank-normalises every component, for the fusion rows of the ablation


def validation_reference(trained: Trained, data_dir: str, seed: int, batch_size: int,
                         n_generated: int | None = None) -> ValidationReference:
    """The validation split scored, and its proxy families made from its first `n_generated` digits (all by default),
    each when the evaluation reaches it (its proxies can be read once)."""
    images, labels = validation_images(trained, data_dir)
    scored = score_images(trained.model, images, trained.known_classes, trained.device, batch_size)
    images, labels = images[:n_generated], labels[:n_generated]
    role = {family: "a far family the decision score had to clear" if family in outliers.FAR_FAMILIES
            else "not read by the selection" for family in outliers.PROXY_FAMILIES}

    def proxies():
        for family, unknowns in outliers.validation_proxy_families(images, labels, seed):
            yield UnknownSet(f"validation_proxy_{family}", f"{outliers.PROXY_DESCRIPTIONS[family]}, made from the "
                             f"validation split ({role[family]}): validation data, so not unseen", unknowns,
                             seen_in_training=True)
        yield UnknownSet("training_negatives", "chimeras and overlays (the families outlier exposure trains on), "
                         "made from the validation split; not unseen", outliers.negatives_from(images, labels, seed),
                         seen_in_training=True)
    return ValidationReference(scored, proxies(), normalisation_for(scored, candidate_scores(scored.components)))


def ablation(known: Decisions, unknown: Decisions, fusion_normalisation: dict | None) -> dict[str, float]:
    """AUROC of every candidate decision score (each component alone, each fusion), beside the decision margin."""
    names = candidate_scores(known.scored.components) if fusion_normalisation else list(known.scored.components)
    rows = {name: metrics.auroc(gates.decide(known.scored, name, fusion_normalisation or {})[0],
                                gates.decide(unknown.scored, name, fusion_normalisation or {})[0]) for name in names}
    rows["decision_margin"] = metrics.auroc(known.margin, unknown.margin)
    return rows


def reason_shares(d: Decisions) -> dict[str, float]:
    """The share of a set's images rejected for each reason ("far from every class", "blank", ...)."""
    reasons = np.array(d.reasons, dtype=object)
    return {str(r): float((reasons == r).mean()) for r in sorted(set(d.reasons) - {""})}


@dataclass
class Shown:
    """The images of a set that the views draw, as the model saw them, with their reconstructions."""
    index: np.ndarray     # (k,) positions in the set: the most confidently rejected, then the most confidently accepted
    images: np.ndarray    # (k, 28, 28)
    recon: np.ndarray     # (k, 28, 28)
    rejected: int         # how many of them (the first ones) were rejected

    @classmethod
    def of(cls, trained: Trained, images: torch.Tensor, d: Decisions, per_side: int = SHOWN_PER_SIDE) -> "Shown":
        rejected = np.flatnonzero(d.is_unknown)
        accepted = np.flatnonzero(~d.is_unknown)
        index = np.concatenate([rejected[np.argsort(-d.margin[rejected], kind="stable")][:per_side],
                                accepted[np.argsort(d.margin[accepted], kind="stable")][:per_side]])
        picked = images[torch.from_numpy(index)] if len(index) else images[:0]
        recon = score_images(trained.model, picked, trained.known_classes, trained.device, keep_recon=True).recon
        return cls(index, picked.squeeze(1).numpy(), recon, int(min(len(rejected), per_side)))


@dataclass
class SetResult:
    """One evaluated set: its decisions, its figures (the metrics.json entry) and what the views draw."""
    name: str
    kind: str                           # "known", "unknown" or "covariate shift"
    entry: dict                         # the metrics.json entry
    decisions: Decisions | None = None  # None when the set is unavailable
    shown: Shown | None = None
    labels: np.ndarray | None = None    # true digits (known digits and their distortions)
    names: list[str] | None = None      # per-image names (files), if any

    def image_name(self, i: int) -> str:
        return self.names[i] if self.names else str(i)


@dataclass
class EvaluationResult:
    known: SetResult
    sets: dict[str, SetResult] = field(default_factory=dict)       # unknown sets, in order, available or not
    covariate: dict[str, SetResult] = field(default_factory=dict)  # known digits under covariate shift
    baselines: dict = field(default_factory=dict)

    def to_metrics(self) -> dict:
        """The figures of metrics.json that the evaluation computes (its schema is in README.md)."""
        return {**self.known.entry, "sets": {n: s.entry for n, s in self.sets.items()}, "baselines": self.baselines,
                "covariate_shift": {n: s.entry for n, s in self.covariate.items()}}


def baselines(trained: Trained, validation: Scored, known: Decisions, known_labels: np.ndarray,
              scored_sets: dict[str, Decisions], target: float, seed: int) -> dict:
    """Each baseline's false-alarm rate and, per set, AUROC, detection rate and macro-F1."""
    results = {}
    for name, (score, rule, param) in BASELINES.items():
        cal = calibrate_scored(trained, validation, score, rule, param, target)
        k = decide_scored(known.scored, cal, known.blank)
        per_set = {}
        for set_name, d in scored_sets.items():
            u = decide_scored(d.scored, cal, d.blank)
            per_set[set_name] = {
                "auroc": metrics.auroc(k.margin, u.margin), "detection_rate": float(u.is_unknown.mean()),
                "macro_f1": metrics.macro_f1_open(known_labels, k.scored.pred, k.margin, u.scored.pred, u.margin,
                                                  trained.known_classes, seed)}
        results[name] = {"score": score, "rule": rule, "rule_param": param,
                         "false_alarm_rate": float(k.is_unknown.mean()), "sets": per_set}
    return results


SCANS = 2000  # digits re-rendered as scans: enough for rates to 1 point, about 3 s to make and read


def covariate_shift(trained: Trained, cal: Calibration, digits: torch.Tensor, labels: np.ndarray, seed: int,
                    batch_size: int, n_generated: int | None = None, show: bool = True) -> dict[str, SetResult]:
    """Known digits under noise and rotation, and as scans of paper read through the user preprocessing (beside
    the same digits in MNIST form): how accurate, and how many get rejected. The first `n_generated` digits (all
    by default), and at most SCANS of them as scans."""
    digits = digits[:n_generated]
    shifted = dict(generated.distorted_digits(digits, seed))
    n = min(SCANS, len(digits))
    u8 = (digits[:n, 0] * 255).round().to(torch.uint8).numpy()
    # Made and read a few hundred at a time: thousands of sheet-sized arrays at once fragment the heap.
    scans = [read_batch(generated.scanned_digits(u8[i:i + 250], seed, range(i, min(i + 250, n))))
             for i in range(0, n, 250)]
    shifted["scans"] = torch.cat([r.images for r in scans])
    blank = {"scans": np.concatenate([r.blank for r in scans])}  # only the scans were read as a user's images are
    shifted["scans_in_mnist_form"] = digits[:n]
    results = {}
    for name, images in shifted.items():
        truth = labels[:len(images)]
        d = decide(trained, cal, images, batch_size, blank.get(name))
        correct = d.scored.pred == truth
        entry = {"n": int(len(truth)), "accuracy": float(correct.mean()), "rejection_rate": float(d.is_unknown.mean()),
                 "named_right": float((correct & ~d.is_unknown).mean()), "rejected_by": reason_shares(d),
                 "accuracy_of_accepted": float(correct[~d.is_unknown].mean()) if (~d.is_unknown).any() else None,
                 # The acceptance floor that chooses the gates reads validation digits through the same scan generator.
                 "seen_by_selection": name == "scans"}
        results[name] = SetResult(name, "covariate shift", entry, d, Shown.of(trained, images, d) if show else None,
                                  truth)
    return results


def evaluate(trained: Trained, cal: Calibration, known_images: torch.Tensor, known_labels: np.ndarray,
             sets: Iterable[UnknownSet], seed: int, batch_size: int, reference: ValidationReference | None = None,
             n_boot: int = 200, show: bool = True) -> EvaluationResult:
    """Scores the known digits and every available set, and computes every figure. With the validation `reference`,
    also the fusion rows of the ablation and the baselines. With `show`, keeps per set the images the views draw
    (Shown). The sets are consumed: each one's images are dropped once it is scored, so they are never all held."""
    classes = trained.known_classes
    known = decide(trained, cal, known_images, batch_size, keep_features=show)
    result = EvaluationResult(SetResult("known_digits", "known", {
        "closed_set_accuracy": float((known.scored.pred == known_labels).mean()),
        "named_right": float(((known.scored.pred == known_labels) & ~known.is_unknown).mean()),
        "false_alarm_rate": float(known.is_unknown.mean()), "false_alarms_by_reason": reason_shares(known),
        "n_known": int(len(known_labels))},
        known, Shown.of(trained, known_images, known) if show else None, known_labels))
    for s in sets:
        entry = {"available": s.available, "description": s.description, "seen_in_training": s.seen_in_training}
        if not s.available:
            entry["reason"] = s.reason or "no images"
            result.sets[s.name] = SetResult(s.name, "unknown", entry)
            continue
        # Features only where the views draw them (figures.embeddings: unseen sets): 0.5 KB an image, 50 MB for all.
        d = decide(trained, cal, s.images, batch_size, s.blank, keep_features=show and not s.seen_in_training)
        entry.update(metrics.set_metrics(known_labels, known.scored.pred, known.margin, d.scored.pred, d.margin,
                                         classes, seed, n_boot))
        entry["named_a_digit"] = 1.0 - entry["detection_rate"]
        entry["rejected_by"] = reason_shares(d)
        entry["ablation"] = ablation(known, d, reference.normalisation if reference else None)
        log.info("%-22s n=%-6d named a digit %6.2f%%  AUROC %.4f  macro-F1 %.3f", s.name, entry["n"],
                 100 * entry["named_a_digit"], entry["auroc"], entry["macro_f1"])
        result.sets[s.name] = SetResult(s.name, "unknown", entry, d, Shown.of(trained, s.images, d) if show else None,
                                        names=s.names)
        s.images = None  # scored and drawn: its images are not needed again (tens of MB a set)
        return_freed_memory()
    if reference:
        scored = {n: r.decisions for n, r in result.sets.items() if r.decisions is not None}
        result.baselines = baselines(trained, reference.scored, known, known_labels, scored, cal.target_acceptance, seed)
    return result


# ----------------------------------------------------------------------------------- metrics.json
def comparison(name: str, path: str) -> dict:
    """Another model's evaluation (its metrics.json) for the report's side-by-side table."""
    try:
        other = json.loads(Path(path).read_text())
        sets = {n: {k: s[k] for k in ("auroc", "detection_rate", "macro_f1")}
                for n, s in other["sets"].items() if s.get("available")}
        return {"available": True, "source": path, "closed_set_accuracy": other["closed_set_accuracy"],
                "false_alarm_rate": other["false_alarm_rate"], "score": other["calibration"]["score"],
                "arch": other.get("arch", "?"), "sets": sets}
    except (OSError, ValueError, KeyError, TypeError) as err:
        return {"available": False, "source": path, "reason": f"{path} is not a metrics.json of this project ({err})"}


def metrics_document(trained: Trained, cal: Calibration, cal_source: str, bootstrap: int, result: dict,
                     compare: list[tuple[str, str]], unseen_summary: Path, methods: Path) -> dict:
    """metrics.json: the evaluation's result with what produced it (schema in docs/metrics.md), the other models'
    evaluations set beside it, and the protocol's and the recipe benchmark's summaries where they have run."""
    document = {
        "checkpoint_sha256": trained.sha256,
        "arch": trained.checkpoint["model_config"]["arch"],
        "preset": trained.preset,
        "bootstrap_resamples": bootstrap,
        "known_classes": trained.known_classes,
        "calibration": {"score": cal.score, "rule": cal.rule, "rule_param": cal.rule_param,
                        "target_acceptance": cal.target_acceptance, "source": cal_source, "selection": cal.selection},
        **result,
    }
    document["comparisons"] = {name: comparison(name, path) for name, path in compare}
    if unseen_summary.is_file():
        document["unseen_digits"] = json.loads(unseen_summary.read_text())
    if methods.is_file():
        document["methods"] = json.loads(methods.read_text())
    return document

"""The open-set evaluation: every metric for every unknown set, the ablation, and the pictures."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from . import data, metrics, outliers, plots
from .calibration import Calibration
from .cli import return_freed_memory
from .dumps import SHEET_LEGEND
from .images import as_batch
from .io import StageOutputs
from .pipeline import Decisions, Trained, calibrate_scored, decide, decide_scored, validation_images
from .scores import Scored, candidate_scores, decision_score, normalisation_stats, score_images
from .unknown_sets import UnknownSet

log = logging.getLogger("osr")
SHEET_SIZE = 32
# Other detectors on the same model and data, each calibrated on the validation split by its own rule.
BASELINES = {
    "seed-style feature AE, 2 x class mean": ("feature_recon", "mean-factor", 2.0),
    "seed-style pixel AE, 2 x class mean": ("pixel_recon", "mean-factor", 2.0),
    "max-softmax (Hendrycks & Gimpel 2017), 99% quantile": ("max_softmax", "quantile", None),
    "energy (Liu et al. 2020), 99% quantile": ("energy", "quantile", None),
    "Mahalanobis (Lee et al. 2018), 99% quantile": ("mahalanobis", "quantile", None),
}
EMBED_KNOWN, EMBED_PER_SET = 1000, 200  # t-SNE on ~3,000 points: a readable picture in a few seconds


@dataclass
class ValidationReference:
    """What the evaluation takes from the validation split alone."""
    scored: Scored                 # the split itself, scored once (baselines calibrate on it)
    proxies: list[UnknownSet]      # the selection proxy's families and the training negatives' families
    normalisation: dict            # standardises every fusable component, for the fusion rows of the ablation


def validation_reference(trained: Trained, data_dir: str, seed: int, batch_size: int,
                         n_generated: int | None = None) -> ValidationReference:
    """The validation split scored, and its proxy families made from its first `n_generated` digits (all by default)."""
    images, labels = validation_images(trained, data_dir)
    scored = score_images(trained.model, images, trained.known_classes, trained.device, batch_size)
    images, labels = images[:n_generated], labels[:n_generated]
    role = {family: "a far family the decision score had to clear" if family in outliers.FAR_FAMILIES
            else "not read by the selection" for family in outliers.PROXY_FAMILIES}
    proxies = [UnknownSet(f"validation_proxy_{family}", f"{outliers.PROXY_DESCRIPTIONS[family]}, made from the "
                          f"validation split ({role[family]}): validation data, so not unseen", unknowns,
                          seen_in_training=True)
               for family, unknowns in outliers.validation_proxy(images, labels, seed).items()]
    proxies.append(UnknownSet("training_negatives", "chimeras and overlays (the families outlier exposure trains on), "
                              "made from the validation split; not unseen",
                              outliers.negatives_from(images, labels, seed), seen_in_training=True))
    return ValidationReference(scored, proxies, normalisation_stats(scored.components))


def ablation(known: Decisions, unknown: Decisions, fusion_normalisation: dict | None) -> dict[str, float]:
    """AUROC of every candidate decision score (each component alone, each fusion), beside the decision margin."""
    names = candidate_scores(known.scored.components) if fusion_normalisation else list(known.scored.components)
    rows = {name: metrics.auroc(decision_score(known.scored, name, fusion_normalisation or {}),
                                decision_score(unknown.scored, name, fusion_normalisation or {})) for name in names}
    rows["decision_margin"] = metrics.auroc(known.margin, unknown.margin)
    return rows


def baselines(trained: Trained, validation: Scored, known: Decisions, known_labels: np.ndarray,
              scored_sets: dict[str, Decisions], target: float, seed: int) -> dict:
    """Each baseline's false-alarm rate and, per set, AUROC, detection rate and macro-F1."""
    results = {}
    for name, (score, rule, param) in BASELINES.items():
        cal = calibrate_scored(trained, validation, score, rule, param, target)
        k = decide_scored(known.scored, cal)
        per_set = {}
        for set_name, d in scored_sets.items():
            u = decide_scored(d.scored, cal)
            per_set[set_name] = {
                "auroc": metrics.auroc(k.margin, u.margin), "detection_rate": float(u.is_unknown.mean()),
                "macro_f1": metrics.macro_f1_open(known_labels, k.scored.pred, k.margin, u.scored.pred, u.margin,
                                                  trained.known_classes, seed)}
        results[name] = {"score": score, "rule": rule, "rule_param": param,
                         "false_alarm_rate": float(k.is_unknown.mean()), "sets": per_set}
    return results


SCANS = 2000  # digits re-rendered as scans: enough for rates to 1 point, about 3 s to make and read


def covariate_shift(trained: Trained, cal: Calibration, digits: torch.Tensor, labels: np.ndarray, seed: int,
                    batch_size: int, n_generated: int | None = None) -> dict:
    """Known digits under noise and rotation, and as scans of paper read through the user preprocessing (beside
    the same digits in MNIST form): how accurate, and how many get rejected. The first `n_generated` digits (all
    by default), and at most SCANS of them as scans."""
    digits = digits[:n_generated]
    shifted = dict(data.distorted_digits(digits, seed))
    n = min(SCANS, len(digits))
    u8 = (digits[:n, 0] * 255).round().to(torch.uint8).numpy()
    # Made and read a few hundred at a time: thousands of sheet-sized arrays at once fragment the heap.
    shifted["scans"] = torch.cat([as_batch(data.scanned_digits(u8[i:i + 250], seed, first=i)) for i in range(0, n, 250)])
    shifted["scans_in_mnist_form"] = digits[:n]
    results = {}
    for name, images in shifted.items():
        truth = labels[:len(images)]
        d = decide(trained, cal, images, batch_size)
        correct = d.scored.pred == truth
        results[name] = {"n": int(len(truth)), "accuracy": float(correct.mean()),
                         "rejection_rate": float(d.is_unknown.mean()),
                         "accuracy_of_accepted": float(correct[~d.is_unknown].mean()) if (~d.is_unknown).any() else None}
    return results


def _sheet(trained: Trained, images: torch.Tensor, decisions: Decisions, order: np.ndarray,
           names: list[str] | None) -> bytes:
    """A contact sheet of the first SHEET_SIZE images in `order`, reconstructed again here: keeping every
    reconstruction of ~90,000 scored images would cost 280 MB for the 64 per set the sheets show."""
    order = order[:SHEET_SIZE]
    shown = images[order]
    recon = score_images(trained.model, shown, trained.known_classes, trained.device, keep_recon=True).recon
    caption = lambda i: f"{names[i] if names else i} p{decisions.scored.pred[i]} {decisions.margin[i]:+.2f}"
    return plots.contact_sheet_png(shown.squeeze(1).numpy(), recon, [caption(i) for i in order], legend=SHEET_LEGEND)


def embeddings(known: Decisions, known_labels: np.ndarray, unknowns: dict[str, Decisions], seed: int) -> dict[str, bytes]:
    """t-SNE and PCA of the encoder's features for a sample of knowns and of each unknown set."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    pick = lambda n, k: np.sort(rng.choice(n, min(n, k), replace=False))
    ki = pick(len(known_labels), EMBED_KNOWN)
    feats, groups = [known.scored.features[ki]], [f"digit {l}" for l in known_labels[ki]]
    for name, d in unknowns.items():
        ui = pick(len(d.score), EMBED_PER_SET)
        feats.append(d.scored.features[ui])
        groups += [f"unknown: {name}"] * len(ui)
    x = np.concatenate(feats).astype(np.float64)
    pca = PCA(n_components=2, random_state=seed).fit_transform(x)
    tsne = TSNE(n_components=2, init="pca", perplexity=30, random_state=seed).fit_transform(x)
    return {"features_pca.png": plots.embedding_png(pca, groups, "PCA of encoder features"),
            "features_tsne.png": plots.embedding_png(tsne, groups, "t-SNE of encoder features")}


def evaluate(trained: Trained, cal: Calibration, known_images: torch.Tensor, known_labels: np.ndarray,
             sets: Iterable[UnknownSet], seed: int, batch_size: int, outputs: StageOutputs | None,
             with_embeddings: bool = True, reference: ValidationReference | None = None, n_boot: int = 200) -> dict:
    """Scores knowns and every available set; writes pictures through `outputs` (None: numbers only).
    With the validation `reference`, also the fusion rows of the ablation and the baselines. The sets are
    consumed: each one's images are dropped once it is scored and drawn, so that they are never all held."""
    classes = trained.known_classes
    known = decide(trained, cal, known_images, batch_size, keep_features=True)
    result = {
        "closed_set_accuracy": float((known.scored.pred == known_labels).mean()),
        "false_alarm_rate": float(known.is_unknown.mean()),
        "n_known": int(len(known_labels)),
        "sets": {},
    }
    scored_sets: dict[str, Decisions] = {}
    for s in sets:
        entry = {"available": s.available, "description": s.description, "seen_in_training": s.seen_in_training}
        if not s.available:
            entry["reason"] = s.reason or "no images"
            result["sets"][s.name] = entry
            continue
        d = decide(trained, cal, s.images, batch_size, keep_features=True)
        scored_sets[s.name] = d
        entry.update(metrics.set_metrics(known_labels, known.scored.pred, known.margin, d.scored.pred, d.margin,
                                         classes, seed, n_boot))
        entry["ablation"] = ablation(known, d, reference.normalisation if reference else None)
        result["sets"][s.name] = entry
        log.info("%-22s n=%-6d AUROC %.4f  detection %.3f  macro-F1 %.3f", s.name, entry["n"], entry["auroc"],
                 entry["detection_rate"], entry["macro_f1"])
        if outputs is not None:
            labels = [str(c) for c in classes] + ["unknown"]
            cm = metrics.open_confusion_matrix(known_labels, known.scored.pred, known.margin, d.scored.pred,
                                               d.margin, classes)
            outputs.write_bytes(f"confusion_{s.name}.png", plots.confusion_matrix_png(cm, labels, f"MNIST test + {s.name}"))
            blanks = f"; {int(d.blank.sum())} blank, unknown by rule, not drawn" if d.blank.any() else ""
            outputs.write_bytes(f"hist_{s.name}.png", plots.score_histograms_png(
                known.margin, d.margin, 0.0, f"decision margin: MNIST test vs {s.name}", unknown_label=s.name + blanks))
            rejected = np.flatnonzero(d.is_unknown)
            slipped = np.flatnonzero(~d.is_unknown)
            outputs.write_bytes(f"rejected_{s.name}.png",
                                _sheet(trained, s.images, d, rejected[np.argsort(-d.margin[rejected], kind="stable")],
                                       s.names))
            outputs.write_bytes(f"slipped_{s.name}.png",
                                _sheet(trained, s.images, d, slipped[np.argsort(d.margin[slipped], kind="stable")],
                                       s.names))
        s.images = None  # scored and drawn: its images are not needed again (tens of MB a set)
        return_freed_memory()
    result["baselines"] = baselines(trained, reference.scored, known, known_labels, scored_sets,
                                    cal.target_acceptance, seed) if reference else {}
    if outputs is not None and scored_sets:
        outputs.write_bytes("roc.png", plots.roc_curves_png(
            {n: (known.margin, d.margin) for n, d in scored_sets.items()}, "ROC: MNIST test (known) vs each unknown set"))
        if with_embeddings:
            unseen = {n: d for n, d in scored_sets.items() if not result["sets"][n]["seen_in_training"]}
            for name, png in embeddings(known, known_labels, unseen, seed).items():
                outputs.write_bytes(name, png)
    return result

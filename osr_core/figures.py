"""The report's pictures, drawn from an evaluation's result (evaluation.EvaluationResult): per unknown set its
confusion matrix, margin histograms and contact sheets of what was rejected and what slipped through; the ROC
curves of every set; t-SNE and PCA of the encoder's features. report.md links them by these names."""
from __future__ import annotations

import functools

import numpy as np

from . import metrics, plots
from .dumps import SHEET_LEGEND
from .evaluation import EvaluationResult, SetResult
from .images import parallel_map

SHEET_SIZE = 32
EMBED_KNOWN, EMBED_PER_SET = 1000, 200  # t-SNE on ~3,000 points: a readable picture in a few seconds


def _sheet(s: SetResult, rows: np.ndarray) -> bytes:
    """A contact sheet of shown images (rows index s.shown), captioned with name, nearest digit and margin."""
    shown, d = s.shown, s.decisions
    caption = lambda i: f"{s.image_name(i)} p{d.scored.pred[i]} {d.margin[i]:+.2f}"
    return plots.contact_sheet_png(shown.images[rows], shown.recon[rows], [caption(i) for i in shown.index[rows]],
                                   legend=SHEET_LEGEND)


def set_pictures(result: EvaluationResult, s: SetResult, classes: list[int]) -> dict[str, bytes]:
    """The four pictures of one available unknown set."""
    known, d = result.known.decisions, s.decisions
    labels = [str(c) for c in classes] + ["unknown"]
    cm = metrics.open_confusion_matrix(result.known.labels, known.scored.pred, known.margin, d.scored.pred, d.margin,
                                       classes)
    blanks = f"; {int(d.blank.sum())} blank, unknown by rule, not drawn" if d.blank.any() else ""
    rejected = np.arange(s.shown.rejected)
    slipped = np.arange(s.shown.rejected, len(s.shown.index))
    return {
        f"confusion_{s.name}.png": plots.confusion_matrix_png(cm, labels, f"MNIST test + {s.name}"),
        f"hist_{s.name}.png": plots.score_histograms_png(known.margin, d.margin, 0.0,
                                                         f"decision margin: MNIST test vs {s.name}",
                                                         unknown_label=s.name + blanks),
        f"rejected_{s.name}.png": _sheet(s, rejected[:SHEET_SIZE]),
        f"slipped_{s.name}.png": _sheet(s, slipped[:SHEET_SIZE]),
    }


def embeddings(result: EvaluationResult, seed: int) -> dict[str, bytes]:
    """t-SNE and PCA of the encoder's features for a sample of knowns and of each unseen unknown set."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    pick = lambda n, k: np.sort(rng.choice(n, min(n, k), replace=False))
    labels = result.known.labels
    ki = pick(len(labels), EMBED_KNOWN)
    feats, groups = [result.known.decisions.scored.features[ki]], [f"digit {l}" for l in labels[ki]]
    for name, s in result.sets.items():
        if s.decisions is None or s.entry["seen_in_training"]:
            continue
        ui = pick(len(s.decisions.score), EMBED_PER_SET)
        feats.append(s.decisions.scored.features[ui])
        groups += [f"unknown: {name}"] * len(ui)
    x = np.concatenate(feats).astype(np.float64)
    pca = PCA(n_components=2, random_state=seed).fit_transform(x)
    tsne = TSNE(n_components=2, init="pca", perplexity=30, random_state=seed).fit_transform(x)
    return {"features_pca.png": plots.embedding_png(pca, groups, "PCA of encoder features"),
            "features_tsne.png": plots.embedding_png(tsne, groups, "t-SNE of encoder features")}


def write(outputs, result: EvaluationResult, classes: list[int], seed: int, with_embeddings: bool = True) -> None:
    """Stages every picture through the stage's outputs (io.StageOutputs)."""
    available = {n: s for n, s in result.sets.items() if s.decisions is not None}
    # Drawing is Matplotlib's Python, a second a set: on every core, one set at a time (NumPy arrays in, PNGs out).
    for pictures in parallel_map(functools.partial(set_pictures, result, classes=classes), list(available.values()),
                                 min_per_worker=2):
        for name, png in pictures.items():
            outputs.write_bytes(name, png)
    if available:
        known = result.known.decisions.margin
        outputs.write_bytes("roc.png", plots.roc_curves_png({n: (known, s.decisions.margin) for n, s in available.items()},
                                                            "ROC: MNIST test (known) vs each unknown set"))
        if with_embeddings:
            for name, png in embeddings(result, seed).items():
                outputs.write_bytes(name, png)

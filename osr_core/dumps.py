"""What test.py and test_letters.py write about a scored set: the score table and the image dumps."""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from .io import StageOutputs, csv_text
from .pipeline import Decisions
from .plots import anomaly_panel_png, contact_sheet_png

log = logging.getLogger("osr")
FLAGGED_DIR = "flagged"
SHEET_LEGEND = ("each cell: the image as the model saw it | its reconstruction | error map (bright = badly rebuilt); "
                "caption: name, pN = nearest digit N, margin = score - threshold (above 0: unknown)")


def scores_csv(id_column: str, ids: Sequence, decisions: Decisions, labels: np.ndarray | None = None) -> str:
    """One row per image: id, [label], answer, pred, score, threshold, margin, is_unknown, reason, then every
    component (columns and signs documented in README.md). A blank image's margin is inf."""
    comps = decisions.scored.components
    answers, reasons, margin = decisions.answers, decisions.reasons, decisions.margin
    header = [id_column, *(["label"] if labels is not None else []), "answer", "pred", "score", "threshold", "margin",
              "is_unknown", "reason", *comps]
    rows = (
        [ids[i], *([int(labels[i])] if labels is not None else []), answers[i], int(decisions.scored.pred[i]),
         float(decisions.score[i]), float(decisions.threshold[i]), float(margin[i]),
         int(decisions.is_unknown[i]), reasons[i], *(float(comps[c][i]) for c in comps)]
        for i in range(len(ids))
    )
    return csv_text(header, rows)


def verdict(decisions: Decisions, i: int) -> str:
    """Why image i got its answer: `score 0.21 <= threshold 1.55`, `score 4.51 > 1.55`, or `blank: nothing written`."""
    if decisions.blank[i]:
        return "blank: nothing written"
    score, threshold = decisions.score[i], decisions.threshold[i]
    return f"score {score:.3g} > {threshold:.3g}" if decisions.is_unknown[i] else f"score {score:.3g} <= threshold {threshold:.3g}"


def answer_line(name: str, decisions: Decisions, i: int) -> str:
    """`name  digit 7 (score 0.21 <= threshold 1.55)`, `name  unknown (far from every class: nearest 8, score 4.51 >
    1.55)` or `name  unknown (blank: nothing written)`."""
    if decisions.blank[i]:
        return f"{name}  unknown ({verdict(decisions, i)})"
    if decisions.is_unknown[i]:
        return (f"{name}  unknown ({decisions.reasons[i]}: nearest {int(decisions.scored.pred[i])}, "
                f"{verdict(decisions, i)})")
    return f"{name}  digit {int(decisions.scored.pred[i])} ({verdict(decisions, i)})"


def answer_record(name: str, decisions: Decisions, i: int) -> dict:
    """The same as one JSON-ready object, with every component score (higher = more unknown). JSON has no
    infinity: a blank image's margin is null, and its reason says why."""
    margin = float(decisions.margin[i])
    return {"file": name, "answer": decisions.answers[i], "reason": decisions.reasons[i],
            "nearest": int(decisions.scored.pred[i]), "score": float(decisions.score[i]),
            "threshold": float(decisions.threshold[i]), "margin": margin if np.isfinite(margin) else None,
            "components": {c: float(v[i]) for c, v in decisions.scored.components.items()}}


def dump_flagged(outputs: StageOutputs, images: np.ndarray, decisions: Decisions, names: Sequence[str],
                 max_panels: int, sheet_size: int) -> int:
    """One PNG per flagged image (most anomalous first, by margin over its class threshold), and one
    contact sheet of the most anomalous. images: (N, 28, 28). Returns the number of panels written."""
    flagged = np.flatnonzero(decisions.is_unknown)
    flagged = flagged[np.argsort(-decisions.margin[flagged], kind="stable")]
    recon, pred = decisions.scored.recon, decisions.scored.pred
    for rank, i in enumerate(flagged[:max_panels]):
        title = f"{names[i]}  pred {pred[i]}  {verdict(decisions, i)}"
        outputs.write_bytes(f"{FLAGGED_DIR}/{rank:05d}_{names[i]}.png", anomaly_panel_png(images[i], recon[i], title))
    top = flagged[:sheet_size]
    captions = [f"{names[i]} p{pred[i]} {decisions.margin[i]:+.2f}" for i in top]
    outputs.write_bytes("most_anomalous.png", contact_sheet_png(images[top], recon[top], captions, legend=SHEET_LEGEND))
    if len(flagged) > max_panels:
        log.warning("%d images flagged; wrote panels for the %d most anomalous (raise --max-panels for more)",
                    len(flagged), max_panels)
    return min(len(flagged), max_panels)

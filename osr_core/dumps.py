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


def scores_csv(id_column: str, ids: Sequence, decisions: Decisions, labels: np.ndarray | None = None) -> str:
    """One row per image: id, [label], pred, score, threshold, margin, is_unknown, then every component."""
    comps = decisions.scored.components
    header = [id_column, *(["label"] if labels is not None else []), "pred", "score", "threshold", "margin",
              "is_unknown", *comps]
    rows = (
        [ids[i], *([int(labels[i])] if labels is not None else []), int(decisions.scored.pred[i]),
         float(decisions.score[i]), float(decisions.threshold[i]), float(decisions.margin[i]),
         int(decisions.is_unknown[i]), *(float(comps[c][i]) for c in comps)]
        for i in range(len(ids))
    )
    return csv_text(header, rows)


def dump_flagged(outputs: StageOutputs, images: np.ndarray, decisions: Decisions, names: Sequence[str],
                 max_panels: int, sheet_size: int) -> int:
    """One PNG per flagged image (most anomalous first, by margin over its class threshold), and one
    contact sheet of the most anomalous. images: (N, 28, 28). Returns the number of panels written."""
    flagged = np.flatnonzero(decisions.is_unknown)
    flagged = flagged[np.argsort(-decisions.margin[flagged], kind="stable")]
    recon, pred = decisions.scored.recon, decisions.scored.pred
    for rank, i in enumerate(flagged[:max_panels]):
        title = f"{names[i]}  pred {pred[i]}  score {decisions.score[i]:.3g} > thr {decisions.threshold[i]:.3g}"
        outputs.write_bytes(f"{FLAGGED_DIR}/{rank:05d}_{names[i]}.png", anomaly_panel_png(images[i], recon[i], title))
    top = flagged[:sheet_size]
    captions = [f"{names[i]} p{pred[i]} {decisions.margin[i]:+.2f}" for i in top]
    outputs.write_bytes("most_anomalous.png", contact_sheet_png(images[top], recon[top], captions))
    if len(flagged) > max_panels:
        log.warning("%d images flagged; wrote panels for the %d most anomalous (raise --max-panels for more)",
                    len(flagged), max_panels)
    return min(len(flagged), max_panels)

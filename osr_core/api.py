"""The Python front door: a trained model with its thresholds, answering for any images.

    from osr_core import OpenSetRecognizer

    recognizer = OpenSetRecognizer.load("artifacts/model.pt", "artifacts/reconstruction_errors.txt")
    result = recognizer.predict(["scan_of_a_7.png", "photo_of_a_letter.jpg"])
    result.answers      # ['7', 'unknown']

It is as thin as the scripts: the same preprocessing (images.read_batch), the same scores and the same
decision (pipeline.decide), so a file scored by test_letters.py and by predict() gets the same answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import cli
from .images import read_batch
from .pipeline import Decisions, Trained, decide, load_calibration, load_trained
from .calibration import Calibration


@dataclass
class Predictions:
    """One entry per image, in the order given."""
    answers: list[str]               # "0"-"9", or "unknown"
    reasons: list[str]               # why unknown: "blank" (nothing written), or the evidence of the part that
                                     # decided ("far from every class", "unlike any digit", "between digits"); "" for digits
    nearest: np.ndarray              # (N,) the closest known digit, also for unknowns
    scores: np.ndarray               # (N,) the decision score, higher = more unknown
    thresholds: np.ndarray           # (N,) the threshold of the nearest digit's class
    margins: np.ndarray              # (N,) score - threshold, above 0 = unknown; inf for a blank image
    components: dict[str, np.ndarray]  # every component score, each (N,), higher = more unknown
    images: torch.Tensor             # (N, 1, 28, 28): each image as the model saw it

    @property
    def is_unknown(self) -> np.ndarray:
        return self.margins > 0

    @property
    def digits(self) -> np.ndarray:
        """(N,) the answer as a number: the digit, or -1 for unknown."""
        return np.where(self.is_unknown, -1, self.nearest)

    def __len__(self) -> int:
        return len(self.answers)


class OpenSetRecognizer:
    """A checkpoint and its calibrated thresholds; `predict` says which digit, or unknown."""

    def __init__(self, trained: Trained, calibration: Calibration):
        self.trained, self.calibration = trained, calibration

    @classmethod
    def load(cls, checkpoint: str | Path = cli.DEFAULT_CHECKPOINT, thresholds: str | Path = cli.DEFAULT_THRESHOLDS,
             device: str = "auto") -> "OpenSetRecognizer":
        """Raises cli.UserError (with the fix in its message) for a missing or mismatched file."""
        trained = load_trained(checkpoint, cli.resolve_device(device))
        return cls(trained, load_calibration(trained, thresholds))

    @property
    def known_classes(self) -> list[int]:
        return self.trained.known_classes

    @property
    def score(self) -> str:
        """The decision score the thresholds were calibrated for."""
        return self.calibration.score

    def predict(self, images, invert: str = "auto", batch_size: int = 256) -> Predictions:
        """images: a path, a PIL image, an array or tensor of shape (H, W), (N, H, W) or (N, 1, H, W) (uint8, or
        float in [0, 1]), or a list of these; any size and polarity (invert: auto, yes or no). Each goes
        through MNIST's preprocessing. Wrong input raises ValueError."""
        read = read_batch(images, invert)
        d: Decisions = decide(self.trained, self.calibration, read.images, batch_size, read.blank)
        return Predictions(d.answers, d.reasons, d.scored.pred.copy(), d.score, d.threshold, d.margin,
                           d.scored.components, read.images)

"""Steps that several stages share: loading a trained model with its calibration and scoring images."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import acceptance, data, gates, judgement, outliers
from .cli import UserError
from .calibration import CALIBRATION_JSON, Calibration, calibrate, format_thresholds, read_thresholds
from .gates import AUTO, normalisation_for, part_reasons, score_parts
from .io import StageOutputs, load_checkpoint, sha256_file
from .leave_out import DEFAULT, FoldScheme, has_folds, leave_classes_out
from .models import OSRNet, model_from_checkpoint
from .scores import Scored, score_images
from .judge import FoldJudge
from .selection import Evidence, Selection, select_decision
from .recipe import preset_of, recorded_recipe


@dataclass
class Trained:
    model: OSRNet
    checkpoint: dict
    sha256: str
    device: torch.device

    @property
    def known_classes(self) -> list[int]:
        return list(self.checkpoint["known_classes"])

    @property
    def preset(self) -> str | None:
        """The train.py preset the model was trained with, or None for a recipe of other flags (or none recorded)."""
        recipe = recorded_recipe(self.checkpoint)
        return None if recipe is None else preset_of(recipe)


def load_trained(checkpoint_path: str | Path, device: torch.device) -> Trained:
    checkpoint = load_checkpoint(checkpoint_path)
    return Trained(model_from_checkpoint(checkpoint, device), checkpoint, sha256_file(checkpoint_path), device)


def load_calibration(trained: Trained, thresholds_path: str | Path) -> Calibration:
    """The thresholds file, with how its score was chosen when calibration.json beside it says so."""
    cal = read_thresholds(thresholds_path, trained.sha256, trained.known_classes)
    try:
        beside = json.loads((Path(thresholds_path).parent / CALIBRATION_JSON).read_text())
    except (OSError, ValueError):
        return cal
    if isinstance(beside, dict) and beside.get("checkpoint_sha256") == cal.checkpoint_sha256 \
            and beside.get("score") == cal.score and isinstance(beside.get("selection"), dict):
        cal.selection = beside["selection"]
    return cal


def validation_images(trained: Trained, data_dir: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The checkpoint's own validation split, known classes only: (float images, labels)."""
    images, labels = data.validation_digits(*data.load_mnist(data_dir, train=True), trained.checkpoint["val_indices"],
                                            trained.known_classes)
    return data.to_float(images), labels


def known_test_digits(trained: Trained, data_dir: str | Path) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """MNIST test digits of the checkpoint's known classes: (float images, labels, index in MNIST test)."""
    images, labels = data.load_mnist(data_dir, train=False)
    index = data.select_classes(labels, trained.known_classes)
    return data.to_float(images[index]), labels[index].numpy(), index.numpy()


BLANK = "blank"  # the reason given for an image with nothing written in it


@dataclass
class Decisions:
    """A scored set with its decision: score, the threshold of the predicted class, the margin, and which part of
    the decision was the largest (gates.py). An image the reading found blank (nothing written once the paper, dust
    and printed lines were taken off: images.Read.blank) is unknown whatever its score: its margin is +inf and its
    reason "blank"; any other unknown's reason names the evidence of the part that decided it ("far from every
    class", ...)."""
    scored: Scored
    score: np.ndarray
    threshold: np.ndarray
    deciding: np.ndarray        # (N,) index of the deciding part in gates.parse_gates(score name)
    part_reasons: list[str]     # the reason each part gives
    blank: np.ndarray           # (N,) bool, as the reading decided it

    @property
    def margin(self) -> np.ndarray:
        return np.where(self.blank, np.inf, self.score - self.threshold)

    @property
    def is_unknown(self) -> np.ndarray:
        return self.margin > 0

    @property
    def reasons(self) -> list[str]:
        """Per image, why it is unknown: "blank", the deciding part's reason, or "" for a digit."""
        return [BLANK if b else self.part_reasons[p] if u else "" for b, u, p in
                zip(self.blank, self.is_unknown, self.deciding)]

    @property
    def answers(self) -> list[str]:
        """Per image: the digit ("0"-"9") or "unknown"."""
        return ["unknown" if u else str(int(p)) for p, u in zip(self.scored.pred, self.is_unknown)]


def decide(trained: Trained, cal: Calibration, images: torch.Tensor, batch_size: int, blank: np.ndarray | None = None,
           keep_recon: bool = False, keep_features: bool = False, show_progress: bool = False) -> Decisions:
    """`blank`: which images the reading found blank (images.Read.blank); None for images that were never read from
    outside (MNIST's, generated ones), none of which is blank."""
    scored = score_images(trained.model, images, trained.known_classes, trained.device, batch_size,
                          keep_recon=keep_recon, keep_features=keep_features, show_progress=show_progress)
    return decide_scored(scored, cal, blank)


def decide_scored(scored: Scored, cal: Calibration, blank: np.ndarray | None = None) -> Decisions:
    """The decision of a calibration on images already scored (any calibration of the same model); `blank` as for
    decide."""
    score, deciding = gates.decide(scored, cal.score, cal.normalisation)
    blank = np.zeros(len(scored), bool) if blank is None else np.asarray(blank, bool)
    if len(blank) != len(scored):
        raise ValueError(f"{len(blank)} blank flags for {len(scored)} images")
    return Decisions(scored, score, cal.thresholds_for(scored.pred), deciding, part_reasons(cal.score), blank)


def calibrate_on_validation(trained: Trained, data_dir: str | Path, score: str, rule: str, param: float | None,
                            target: float, batch_size: int, show_progress: bool = False, seed: int = 0,
                            folds_dir: str | Path | None = None, scheme: FoldScheme = DEFAULT,
                            use_shipped: bool = True) -> Calibration:
    """Stage 2's work: thresholds from the checkpoint's validation split, and nothing else. With score 'auto', the
    decision is first chosen on validation data (select_on_validation); leave-classes-out models are kept in
    `folds_dir` (None: no leave-classes-out, the far families alone choose); `use_shipped`: a shipped judgement of the
    checkpoint's recipe stands in for them (judgement.py)."""
    images, labels = validation_images(trained, data_dir)
    scored = score_images(trained.model, images, trained.known_classes, trained.device, batch_size,
                          show_progress=show_progress)
    selection = None
    if score == AUTO:
        selection = select_on_validation(trained, scored, images, labels, data_dir, folds_dir, scheme, seed, batch_size,
                                         target, use_shipped)
        score = selection.chosen
    cal = calibrate_scored(trained, scored, score, rule, param, target)
    cal.selection = selection.to_json() if selection else None
    return cal


def select_on_validation(trained: Trained, validation: Scored, images: torch.Tensor, labels: torch.Tensor,
                         data_dir: str | Path, folds_dir: str | Path | None, scheme: FoldScheme, seed: int,
                         batch_size: int, target: float = 0.99, use_shipped: bool = True) -> Selection:
    """The decision chosen by selection.py's rule: the near-digit judge of the checkpoint's recipe (its shipped
    judgement, or leave-classes-out folds trained now) for the near part; the far families and the acceptance
    family, made from the validation digits, as floors. A checkpoint whose validation split is not the one this
    code holds out gets folds of its own, which refuse it (leave_out.leave_classes_out)."""
    score = lambda x: score_images(trained.model, x, trained.known_classes, trained.device, batch_size)
    proxy = outliers.validation_proxy(images, labels, seed)
    far = {family: score(proxy[family]) for family in outliers.FAR_FAMILIES}
    del proxy
    users, _ = acceptance.users_digits(images[:acceptance.SIZE], seed)
    judge = None
    recipe = recorded_recipe(trained.checkpoint)
    if folds_dir is not None and has_folds(trained.known_classes, scheme.size):
        if recipe is None:
            raise UserError("the checkpoint records no training recipe, so no leave-classes-out models can be trained "
                            "like it; retrain it with train.py")
        judge = judgement.shipped(recipe, scheme) if use_shipped else None
        if judge is None or not torch.equal(trained.checkpoint["val_indices"], data.validation_indices()):
            folds = leave_classes_out(recipe, trained.checkpoint["val_indices"], data_dir, folds_dir, scheme,
                                      trained.device, seed, batch_size)
            judge = FoldJudge(folds, seed, scheme.to_json())
    return select_decision(Evidence(validation, far, score(users), judge), trained.known_classes, target, seed)


def calibrate_scored(trained: Trained, validation: Scored, score: str, rule: str, param: float | None,
                     target: float) -> Calibration:
    """Thresholds from an already-scored validation split."""
    missing = [p for p in score_parts(score) if p not in validation.components]
    if missing:
        raise UserError(f"score {score!r} needs a model that has {', '.join(missing)} (openmax: train with --arch dhrnet)")
    cal = Calibration(trained.sha256, score, rule, param, target, normalisation_for(validation, [score]))
    scores, _ = gates.decide(validation, score, cal.normalisation)
    cal.classes = calibrate(scores, validation.pred, trained.known_classes, rule, param, target)
    cal.validation_acceptance = float((scores <= cal.thresholds_for(validation.pred)).mean())
    return cal


def write_calibration(outputs: StageOutputs, name: str, cal: Calibration) -> str:
    """Stage 2's two files, staged into `outputs`: the thresholds file `name` (returned as text) and calibration.json."""
    text = format_thresholds(cal)
    outputs.write_text(name, text)
    outputs.write_json(CALIBRATION_JSON, cal.to_json())
    return text

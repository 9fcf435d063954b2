"""The near-digit validation signal: leave-classes-out.

The far families of the validation proxy (pixel shuffles, blurs, negatives) are told from digits by every
sensible score, so they cannot say which score or recipe handles unknowns that look like digits. Here such
unknowns are made honestly: auxiliary models are trained with the checkpoint's own recipe on the training split
without some of its known classes, and the held-out classes' validation digits are their unknowns: digit strokes
of a class the model never saw, as in the unseen-digit protocol, and no reported set. The folds hold out every
known class exactly once, and only the checkpoint's known classes take part (inside a split of the protocol its
4 unknown digits never do). Features trained with a class have already seen it, so each auxiliary model is trained
from scratch, never made by refitting heads on the checkpoint's features.

An auxiliary model costs less than the checkpoint (FoldBudget: fewer epochs on fewer images); `make benchmark-folds` measures
how its ranking of the candidate scores agrees with auxiliary models trained on the full recipe. Auxiliary
checkpoints are kept in a folder and reused while the recipe they record is exactly the one asked for.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import data
from .io import load_checkpoint, save_checkpoint
from .models import model_from_checkpoint
from .scores import Scored, score_images
from .training import Recipe, fit, recorded_recipe

log = logging.getLogger("osr")
FOLD_SIZE = 2  # classes held out per fold: 5 folds of the ten digits, 3 of a protocol split's six


@dataclass(frozen=True)
class FoldBudget:
    """How much an auxiliary model is trained: `epochs` (None: the recipe's) on the first `images` training
    digits of its classes (None: all)."""
    epochs: int | None = 2
    images: int | None = 10000

    def to_json(self) -> dict:
        return {"epochs": self.epochs, "images": self.images}


FULL_BUDGET = FoldBudget(None, None)


def folds(known: Sequence[int], seed: int, size: int = FOLD_SIZE) -> list[list[int]]:
    """The classes each fold holds out: the known classes in a seeded order, cut into groups of `size` (a
    remainder joins the last group), so every known class is held out exactly once. Needs at least `size` + 2
    known classes (a fold model must keep two)."""
    classes = sorted(int(c) for c in known)
    if len(classes) < size + 2:
        raise ValueError(f"leave-classes-out needs at least {size + 2} known classes, got {len(classes)}")
    order = np.random.default_rng(seed).permutation(classes).tolist()
    groups = [order[i:i + size] for i in range(0, len(order) - size + 1, size)]
    groups[-1] += order[len(groups) * size:]
    return [sorted(g) for g in groups]


def fold_recipe(recipe: Recipe, held_out: Sequence[int], budget: FoldBudget) -> Recipe:
    """The checkpoint's recipe without the held-out classes, trained to the budget."""
    return replace(recipe, known_classes=tuple(c for c in recipe.known_classes if c not in held_out),
                   epochs=budget.epochs or recipe.epochs, train_limit=budget.images or recipe.train_limit)


@dataclass
class Fold:
    """One fold: its model's scores on the validation digits of its own classes and of the held-out ones."""
    held_out: list[int]
    recipe: Recipe
    known: Scored
    unknown: Scored
    val_accuracy: float

    def to_json(self) -> dict:
        return {"held_out": self.held_out, "trained_on": list(self.recipe.known_classes), "epochs": self.recipe.epochs,
                "train_limit": self.recipe.train_limit, "n_known": len(self.known), "n_unknown": len(self.unknown),
                "val_accuracy": self.val_accuracy}


def fold_model(recipe: Recipe, path: Path, data_dir: str | Path, device: torch.device) -> torch.nn.Module:
    """The auxiliary model of a recipe: the checkpoint at `path` when it records exactly this recipe, else
    trained now and saved there."""
    if path.is_file():
        checkpoint = load_checkpoint(path)
        if recorded_recipe(checkpoint) == recipe:
            return model_from_checkpoint(checkpoint, device)
    log.info("leave-classes-out: training on %s (%s epochs, %s images)", list(recipe.known_classes), recipe.epochs,
             recipe.train_limit or "all")
    checkpoint = fit(recipe, data_dir, device)
    save_checkpoint(path, checkpoint)
    return model_from_checkpoint(checkpoint, device)


def leave_classes_out(recipe: Recipe, val_indices: torch.Tensor, data_dir: str | Path, folder: str | Path,
                      budget: FoldBudget, device: torch.device, seed: int = 0, batch_size: int = 1024) -> list[Fold]:
    """Every fold of a checkpoint's recipe, scored on its validation split (`val_indices`): auxiliary models are
    reused from `folder` or trained there."""
    images, labels = data.load_mnist(data_dir, train=True)
    val_images, val_labels = data.to_float(images[val_indices]), labels[val_indices]
    result = []
    for held_out in folds(recipe.known_classes, seed):
        fr = fold_recipe(recipe, held_out, budget)
        name = f"fold-{''.join(map(str, held_out))}.pt"
        model = fold_model(fr, Path(folder) / name, data_dir, device)
        kept = torch.isin(val_labels, torch.tensor(fr.known_classes))
        out = torch.isin(val_labels, torch.tensor(held_out))
        known = score_images(model, val_images[kept], list(fr.known_classes), device, batch_size)
        unknown = score_images(model, val_images[out], list(fr.known_classes), device, batch_size)
        accuracy = float((known.pred == val_labels[kept].numpy()).mean())
        result.append(Fold(held_out, fr, known, unknown, accuracy))
        log.info("leave-classes-out: held out %s, validation accuracy %.4f on the rest", held_out, accuracy)
    return result

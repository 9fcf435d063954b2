"""The near-digit validation signal: leave-classes-out.

The far families of the validation proxy (pixel shuffles, blurs, negatives, noise) are told from digits by every
sensible score, so they cannot say which score or recipe handles unknowns that look like digits. Here such
unknowns are made honestly: auxiliary models are trained with the checkpoint's own recipe on the training split
without some of its known classes, and the held-out classes' validation digits are their unknowns: digit strokes
of a class the model never saw, as in the unseen-digit protocol, and no reported set. The folds hold out every
known class, and only the checkpoint's known classes take part (inside a split of the protocol its 4 unknown
digits never do). Features trained with a class have already seen it, so each auxiliary model is trained from
scratch, never made by refitting heads on the checkpoint's features.

How the judge is built is a FoldScheme: how many classes a fold holds out, and how long each auxiliary model
trains (never longer, nor on more images, than the checkpoint itself). A judge must be as strong as what it
judges; `make benchmark-folds` measures schemes on design partitions of the digits (benchmarks/folds.py).
Auxiliary checkpoints are kept in a folder and reused while the recipe they record is exactly the one asked for;
beside each, its evidence (the model's scores on the validation digits), reused while it was computed from that very
file by this scoring code.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import data
from .cli import UserError
from .io import atomic_write_bytes, save_checkpoint, sha256_file, torch_bytes
from .models import model_from_checkpoint
from .scores import Scored, score_images
from .recipe import Recipe, reusable_checkpoint
from .training import fit

log = logging.getLogger("osr")


@dataclass(frozen=True)
class FoldScheme:
    """How the near-digit judge is built: `size` classes held out per fold (1: each known class alone, the most
    classes an auxiliary model can keep), each auxiliary model trained `epochs` (None: the checkpoint's own) on
    the first `images` training digits of its classes (None: all). Neither ever exceeds the checkpoint's own."""
    size: int = 1
    epochs: int | None = None
    images: int | None = None

    def to_json(self) -> dict:
        return {"size": self.size, "epochs": self.epochs, "images": self.images}

    @property
    def label(self) -> str:
        held = "one class out" if self.size == 1 else f"{self.size} classes out"
        return f"{held}, {self.epochs or 'own'} epochs x {self.images or 'all'} images"


FULL = FoldScheme()                                 # one class out, the checkpoint's own budget
CHEAP = FoldScheme(size=2, epochs=2, images=10000)  # the judge of the previous round
DEFAULT = FULL  # stage 2's judge: shipped for the recipes make judge judges, trained (one model per class) for others
# The screen (benchmarks/methods.py): 6 known digits each, the 4 others held out; none is a protocol split (nor the
# mirror of one), and together they hold out every digit. benchmarks/folds.py designed the judge on them.
DESIGN_PARTITIONS = ([0, 1, 2, 3, 4, 5], [1, 3, 5, 6, 7, 9], [0, 2, 4, 6, 7, 8])
SCREEN = [sorted(set(range(10)) - set(known)) for known in DESIGN_PARTITIONS]  # the classes each screen fold holds out


def has_folds(known: Sequence[int], size: int) -> bool:
    """Whether folds of `size` held-out classes can be made: every fold model must keep two classes."""
    return len(known) >= size + 2


def folds(known: Sequence[int], seed: int, size: int = 1) -> list[list[int]]:
    """The classes each fold holds out: the known classes in a seeded order, cut into groups of `size` (a
    remainder joins the last group), so every known class is held out exactly once. Needs at least `size` + 2
    known classes (a fold model must keep two)."""
    classes = sorted(int(c) for c in known)
    if not has_folds(classes, size):
        raise ValueError(f"leave-classes-out needs at least {size + 2} known classes, got {len(classes)}")
    order = np.random.default_rng(seed).permutation(classes).tolist()
    groups = [order[i:i + size] for i in range(0, len(order) - size + 1, size)]
    groups[-1] += order[len(groups) * size:]
    return [sorted(g) for g in groups]


def fold_recipe(recipe: Recipe, held_out: Sequence[int], scheme: FoldScheme, seed: int | None = None) -> Recipe:
    """The checkpoint's recipe without the held-out classes, trained as the scheme says but never for more epochs
    or on more images than the checkpoint was, with training seed `seed` (None: the checkpoint's own)."""
    epochs = min(scheme.epochs or recipe.epochs, recipe.epochs)
    limits = [n for n in (scheme.images, recipe.train_limit) if n]
    return replace(recipe, known_classes=tuple(c for c in recipe.known_classes if c not in held_out),
                   epochs=epochs, train_limit=min(limits) if limits else None,
                   seed=recipe.seed if seed is None else seed)


@dataclass
class Fold:
    """One fold: its model's scores on the validation digits of its own classes and of the held-out ones."""
    held_out: list[int]
    recipe: Recipe
    known: Scored
    unknown: Scored
    val_accuracy: float

    def to_json(self) -> dict:
        return {"held_out": self.held_out, "trained_on": list(self.recipe.known_classes), "seed": self.recipe.seed,
                "epochs": self.recipe.epochs,
                "train_limit": self.recipe.train_limit, "n_known": len(self.known), "n_unknown": len(self.unknown),
                "val_accuracy": self.val_accuracy}


def fold_model(recipe: Recipe, path: Path, data_dir: str | Path, device: torch.device) -> torch.nn.Module:
    """The auxiliary model of a recipe: the checkpoint at `path` when it records exactly this recipe, else
    trained now and saved there."""
    checkpoint = reusable_checkpoint(path, recipe)
    if checkpoint is None:
        log.info("leave-classes-out: training on %s (%s epochs, %s images)", list(recipe.known_classes), recipe.epochs,
                 recipe.train_limit or "all")
        checkpoint = fit(recipe, data_dir, device, validate=False)  # leave_classes_out scores it there itself
        save_checkpoint(path, checkpoint)
    return model_from_checkpoint(checkpoint, device)


def fold_path(folder: str | Path, held_out: Sequence[int], seed: int) -> Path:
    """Where the auxiliary model of a fold and training seed is kept."""
    return Path(folder) / f"fold-{''.join(map(str, sorted(held_out)))}-seed{seed}.pt"


# What fold evidence depends on besides the model file: the code that computes the scores.
SCORING_CODE = [Path(__file__).with_name(name) for name in ("scores.py", "models.py")]


def evidence_path(model_path: Path) -> Path:
    """Where a fold model's evidence is kept: beside it."""
    return model_path.with_suffix(".evidence")


def _evidence_key(model_path: Path, device: torch.device, batch_size: int) -> dict:
    code = hashlib.sha256(b"".join(p.read_bytes() for p in SCORING_CODE)).hexdigest()
    return {"model_sha256": sha256_file(model_path), "scoring_code": code, "device": device.type, "batch_size": batch_size}


def _scored_to_dict(s: Scored) -> dict:
    return {"pred": torch.from_numpy(s.pred), "components": {k: torch.from_numpy(v) for k, v in s.components.items()}}


def _scored_from_dict(d: dict) -> Scored:
    return Scored(pred=d["pred"].numpy(), components={k: v.numpy() for k, v in d["components"].items()})


def fold_evidence(model: torch.nn.Module, model_path: Path, classes: list[int], known_images: torch.Tensor,
                  unknown_images: torch.Tensor, device: torch.device, batch_size: int) -> tuple[Scored, Scored]:
    """The fold model's scores on its known and its held-out validation digits: read from beside the model when
    they were computed from this very file (its SHA-256), by this scoring code, on this kind of device and batch
    size, else computed now and kept there. The validation split is the code's own (leave_classes_out checks it)."""
    path, key = evidence_path(model_path), _evidence_key(model_path, device, batch_size)
    try:
        kept = torch.load(path, map_location="cpu", weights_only=True)
        if kept["key"] == key and len(kept["known"]["pred"]) == len(known_images) \
                and len(kept["unknown"]["pred"]) == len(unknown_images):
            return _scored_from_dict(kept["known"]), _scored_from_dict(kept["unknown"])
    except Exception:  # none yet, or unreadable: computed again
        pass
    known = score_images(model, known_images, classes, device, batch_size)
    unknown = score_images(model, unknown_images, classes, device, batch_size)
    atomic_write_bytes(path, torch_bytes({"key": key, "known": _scored_to_dict(known), "unknown": _scored_to_dict(unknown)}))
    return known, unknown


def leave_classes_out(recipe: Recipe, val_indices: torch.Tensor, data_dir: str | Path, folder: str | Path,
                      scheme: FoldScheme, device: torch.device, seed: int = 0, batch_size: int = 1024,
                      seeds: Sequence[int] | None = None, groups: Sequence[Sequence[int]] | None = None) -> list[Fold]:
    """Every fold of a checkpoint's recipe, scored on its validation split (`val_indices`): auxiliary models are
    reused from `folder` or trained there, one per held-out group (`groups`; None: the scheme's folds) and training
    seed (`seeds`; None: the recipe's own). A model is reused only when it records exactly its fold's recipe, seed
    included. The auxiliary models hold out the validation split this code holds out, so the checkpoint's must be the
    same one: scored on digits they were trained on, they would judge nothing."""
    images, labels = data.load_mnist(data_dir, train=True)
    if not torch.equal(torch.as_tensor(val_indices), data.validation_indices(len(images))):
        raise UserError("the checkpoint's validation split is not the one this version of the code holds out, so "
                        "leave-classes-out models trained now would have seen its digits; retrain it with train.py")
    val_images, val_labels = data.validation_digits(images, labels, val_indices, recipe.known_classes)
    val_images = data.to_float(val_images)
    result = []
    for held_out in groups or folds(recipe.known_classes, seed, scheme.size):
        held_out = sorted(int(c) for c in held_out)
        for model_seed in seeds or (recipe.seed,):
            fr = fold_recipe(recipe, held_out, scheme, model_seed)
            path = fold_path(folder, held_out, model_seed)
            model = fold_model(fr, path, data_dir, device)
            kept = torch.isin(val_labels, torch.tensor(fr.known_classes))
            out = torch.isin(val_labels, torch.tensor(held_out))
            known, unknown = fold_evidence(model, path, list(fr.known_classes), val_images[kept], val_images[out],
                                           device, batch_size)
            accuracy = float((known.pred == val_labels[kept].numpy()).mean())
            result.append(Fold(held_out, fr, known, unknown, accuracy))
            log.info("leave-classes-out: held out %s (seed %d), validation accuracy %.4f on the rest", held_out,
                     model_seed, accuracy)
    return result

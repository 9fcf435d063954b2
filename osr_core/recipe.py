"""The training recipe: everything that decides what training produces, recorded whole in every checkpoint, and
the one rule for reusing a model trained earlier (a protocol split's, a leave-classes-out one, --resume): only when
its recorded recipe equals the one asked for, field by field."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .cli import UserError
from .io import load_checkpoint
from .models import ModelConfig


# Raised whenever a change to the training code changes what a recipe produces, so that checkpoints trained
# by the old code (the protocol's split models, the leave-classes-out models) are retrained, never reused.
TRAINING_CODE_VERSION = 2
# A change that only the recipes using a field feel raises that field's version alone, so that the other recipes'
# models and shipped judgements stay valid: a recipe's version is the highest of the code it runs (code_version_of).
# oe_fraction 3: negatives are normalised with the whole batch's statistics, no longer with the digits' alone.
FIELD_CODE_VERSIONS = {"oe_fraction": 3}
# The fields added since judgements first shipped. A field's default is the behaviour from before it existed, and it
# never changes; at that default a judgement's key leaves the field out (judgement.recipe_key), so that the recipes
# judged before it existed are still found, and a recipe that sets it is a recipe of its own.
ADDED_FIELDS = ("class_anchors", "placeholders", "oe_negatives")


OE_NEGATIVES = ("chimeras-overlays", "poses")  # what outlier exposure's negatives are (training.outlier_negatives)

# The named recipes of train.py --preset: the fields each sets beside the defaults. large is the stronger augmentation
# trained twice as long, which the full judge confirmed against the default (benchmarks/methods.py, docs/recipes.md)
# but which trains about twice as long as the default's time budget allows: a preset, not the default.
PRESETS = {"default": {}, "large": {"epochs": 10, "pen": 0.5, "elastic": 1.0}}
NOT_PRESET_FIELDS = ("known_classes", "seed", "precision")  # a preset is the same recipe on any classes, seed, device


@dataclass(frozen=True)
class Recipe:
    """Everything that decides what training produces. The checkpoint records it whole, and a checkpoint is
    reused (--resume, the protocol's split models, the leave-classes-out models) only when its recorded recipe
    equals the one asked for, field by field."""
    known_classes: tuple[int, ...] = tuple(range(10))
    arch: str = "cnn"
    epochs: int = 5
    batch_size: int = 256
    lr: float = 6e-3                # peak of the one-cycle schedule
    weight_decay: float = 5e-4
    width: int = ModelConfig.width
    decoder: str = "plain"          # or "conditional" (C2AE-style), or "memory" (MemAE-style)
    augment: bool = True            # small random affine warps
    elastic: float = 0.0            # strength (px) of a smooth random elastic warp after them (0: none)
    pen: float = 0.0                # share of training digits drawn with another pen or out of focus (0: none)
    oe_fraction: float = 0.0        # outlier-exposure negatives per batch, as a fraction of the batch
    oe_weight: float = 0.5          # weight of their loss (softmax pulled towards uniform)
    oe_negatives: str = "chimeras-overlays"  # which negatives: or "poses" (outliers.py), digits mirrored or turned
    logit_norm: float = 0.0         # LogitNorm's temperature (0: plain cross-entropy)
    compactness: float = 0.0        # weight of the within-class share of the features' variance (0: none)
    class_anchors: float = 0.0      # class anchor clustering: the anchors' scale (0: a linear classifier; models.py)
    placeholders: float = 0.0       # between-class placeholders per batch, as a fraction of the batch (training.py)
    precision: str = "fp32"         # "bf16": bfloat16 autocast for the forward pass (resolved, never "auto")
    train_limit: int | None = None  # only the first N training images of the known classes
    seed: int = 0
    code_version: int = field(init=False)  # the training code's version this recipe runs (code_version_of)

    def __post_init__(self):
        object.__setattr__(self, "known_classes", tuple(sorted(int(c) for c in self.known_classes)))
        object.__setattr__(self, "code_version", code_version_of(self))

    @property
    def negatives_per_batch(self) -> int:
        return round(self.oe_fraction * self.batch_size)

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["known_classes"] = list(self.known_classes)
        return d

    @classmethod
    def from_dict(cls, values: dict) -> "Recipe":
        """The recipe a checkpoint recorded; raises ValueError for one this code cannot have written. A field added
        since takes its default, which is always the behaviour from before the field existed."""
        names = {f.name for f in fields(cls)}
        if not isinstance(values, dict) or not set(values) <= names or "known_classes" not in values:
            raise ValueError("not a training recipe of this version")
        recipe = cls(**{k: v for k, v in values.items() if k != "code_version"})
        object.__setattr__(recipe, "code_version", values.get("code_version", recipe.code_version))  # as recorded
        return recipe

    def differences(self, other: "Recipe") -> list[str]:
        """The fields in which two recipes differ."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def uses(recipe: Recipe, name: str) -> bool:
    """Whether `recipe` sets the field `name` to a value other than its default."""
    return getattr(recipe, name) != Recipe.__dataclass_fields__[name].default


def preset_of(recipe: Recipe) -> str | None:
    """The preset `recipe` is (NOT_PRESET_FIELDS aside), or None for a recipe of other flags."""
    for name, values in PRESETS.items():
        if not [f for f in Recipe(**values).differences(recipe) if f not in NOT_PRESET_FIELDS]:
            return name
    return None


def code_version_of(recipe: Recipe) -> int:
    """The training code's version for `recipe`: the highest of TRAINING_CODE_VERSION and the versions of the fields
    it uses."""
    return max([TRAINING_CODE_VERSION] + [v for name, v in FIELD_CODE_VERSIONS.items() if uses(recipe, name)])


def reusable_checkpoint(path: Path, recipe: Recipe) -> dict | None:
    """The checkpoint at `path` when it records exactly `recipe` (every field, the code's version among them), else
    None: a model from earlier work (a protocol split's, an auxiliary one) is reused only then, and trained again
    otherwise, also when the file is no checkpoint this version reads."""
    if not Path(path).is_file():
        return None
    try:
        checkpoint = load_checkpoint(path)
    except UserError:
        return None
    return checkpoint if recorded_recipe(checkpoint) == recipe else None


def recorded_recipe(checkpoint: dict) -> Recipe | None:
    """The recipe a checkpoint was trained with, or None when it records none this code can read."""
    try:
        return Recipe.from_dict(checkpoint.get("recipe"))
    except (ValueError, TypeError):
        return None


# How train.py spells each recipe field, for messages about settings that differ.
FLAG_OF = {"augment": "--no-augment", "code_version": "the training code's version"}
FLAG_OF.update({f.name: "--" + f.name.replace("_", "-") for f in fields(Recipe) if f.name not in FLAG_OF})

"""The near-digit judge's verdict on a recipe, computed once and shipped with the code.

A judge as strong as the model it judges trains, for every known class, a model of the checkpoint's own recipe
and budget without that class (leave_out.FULL): ten models for the ten digits, more than the rest of the pipeline
costs. Its verdict depends on the recipe alone, so it is paid once per recipe: `make judge` computes the judgement
of train.py's default recipe, of its large preset and of each protocol split's under each, and writes them to
osr_core/judgements/. Stage 2 uses a shipped judgement when the checkpoint's recipe matches one (its seed and
arithmetic precision aside: a judgement is about a recipe, not about one run's weights) and the fold scheme asked for
is the judgement's; otherwise it trains its folds.

A judgement holds the folds, and for every near part, and every gate configuration beside the near part that step 1
chooses, the leave-classes-out AUROC per fold and in each of the selection's paired bootstrap resamples: all that
selection.py reads of a judge. `python -m osr_core.judgement --check` computes them again and compares.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import cli, data, gates
from .io import atomic_write_bytes
from .leave_out import FULL, Fold, FoldScheme, leave_classes_out
from .judge import FoldJudge, ShippedJudge
from .selection import gate_plans, near_part
from .recipe import ADDED_FIELDS, PRESETS, Recipe, uses
from .scores import Scored

log = logging.getLogger("osr")
JUDGEMENTS = Path(__file__).parent / "judgements"
UNJUDGED_FIELDS = ("seed", "precision")  # a judgement is about a recipe, not about one run's weights or arithmetic
DIGITS = 8                                # figures are kept to this many decimals
FINGERPRINT_DIGITS = 6                    # ... and compared to this many by code_fingerprint


def recipe_key(recipe: Recipe) -> dict:
    """What a judgement is a judgement of: the recipe, less UNJUDGED_FIELDS and the fields added since judgements
    first shipped where they hold their default (recipe.ADDED_FIELDS)."""
    return {k: v for k, v in recipe.to_dict().items()
            if k not in UNJUDGED_FIELDS and (k not in ADDED_FIELDS or uses(recipe, k))}


def path_for(recipe: Recipe) -> Path:
    digest = hashlib.sha256(json.dumps(recipe_key(recipe), sort_keys=True).encode()).hexdigest()[:16]
    return JUDGEMENTS / f"{digest}.json"


def figures(folds, seed: int) -> tuple[str, dict]:
    """Step 1's near part on the folds, and the figures of every candidate the selection may ask a judge about."""
    judge = FoldJudge(folds, seed)
    components = folds[0].known.components
    nears = gates.candidate_scores(components)
    near = near_part(judge, components)
    asked = [(n, ()) for n in nears] + [(near, plan) for plan in gate_plans(near, components) if plan]
    rounded = lambda values: [round(float(v), DIGITS) for v in values]
    return near, {gates.gates_name(n, plan): {"per_fold": rounded(judge.per_fold(n, plan)),
                                              "resampled": rounded(judge.resampled(n, plan))} for n, plan in asked}


def compute(folds, seed: int, scheme: FoldScheme, recipe: Recipe) -> dict:
    """The judgement of a recipe's folds, stamped with the fingerprint of the code that computed it."""
    near, candidates = figures(folds, seed)
    return {"recipe_key": recipe_key(recipe), "scheme": scheme.to_json(), "seed": seed, "code": code_fingerprint(),
            "near": near, "folds": [f.to_json() for f in folds], "candidates": candidates}


def synthetic_folds() -> list[Fold]:
    """Three folds of made-up scores for every component of the cnn: skewed, heavy-tailed, with ties (a softmax of
    exactly 1) and unknowns beyond every known, so that each part of the judge's arithmetic is exercised."""
    rng = np.random.default_rng(0)

    def scored(n: int, shift: float) -> Scored:
        softmax = -np.minimum(1.0, rng.uniform(0.9, 1.1, n) - shift / 10)  # a third of them exactly -1
        return Scored(pred=np.arange(n) % 9, components={
            "max_softmax": softmax, "entropy": rng.gamma(0.5 + shift, 0.2, n), "energy": rng.normal(-12 + 3 * shift, 2, n),
            "max_logit": rng.normal(-10 + 2 * shift, 1.5, n), "pixel_recon": rng.lognormal(-4 + shift, 0.4, n),
            "feature_recon": rng.lognormal(-2 + shift / 2, 0.6, n), "mahalanobis": rng.lognormal(4.5 + shift, 0.3, n)})
    return [Fold([c], Recipe(), scored(400, 0.0), scored(60 + 20 * c, 0.3 + 0.4 * c), 0.99) for c in range(3)]


@functools.cache
def code_fingerprint() -> str:
    """What the judge's code computes, hashed: the figures of synthetic_folds(). Any change to the knots, the tails,
    the log scaling, the fusions, the gates and their offsets, the AUROC or the resampling changes it, while a change
    that computes the same (a refactoring) does not. The figures are compared to FINGERPRINT_DIGITS decimals, so that
    the last bits of floating-point arithmetic (an AUROC counted instead of integrated) are no change: a figure kept
    to DIGITS decimals can flip in its last one. A shipped judgement is used only under the fingerprint it was
    computed with."""
    near, candidates = figures(synthetic_folds(), seed=0)
    coarse = {name: {key: [round(v, FINGERPRINT_DIGITS) for v in values] for key, values in figs.items()}
              for name, figs in candidates.items()}
    return hashlib.sha256(json.dumps([near, coarse], sort_keys=True).encode()).hexdigest()[:16]


def shipped(recipe: Recipe, scheme: FoldScheme) -> ShippedJudge | None:
    """The shipped judgement of this recipe under this fold scheme, if there is one."""
    path = path_for(recipe)
    if not path.is_file():
        return None
    judgement = json.loads(path.read_text())
    if judgement["recipe_key"] != recipe_key(recipe) or judgement["scheme"] != scheme.to_json():
        return None
    if judgement.get("code") != code_fingerprint():
        log.warning("the shipped judgement %s was computed by judge code that computes otherwise than this code: it is "
                    "not used (make judge computes it again)", path.name)
        return None
    return ShippedJudge(judgement, f"osr_core/judgements/{path.name}")


def judged_recipes(device) -> dict[str, Recipe]:
    """The recipes `make judge` judges: train.py's default (Recipe's own defaults, with the precision train.py resolves
    on this device), its other presets (train.py --preset), and each protocol split's under each preset (the preset on
    the split's known classes, as evaluate_osr.py --split-preset trains it: split0..4, large-split0..4)."""
    default = Recipe(precision=cli.resolve_precision("auto", device))
    presets = {name: replace(default, **values) for name, values in PRESETS.items()}
    recipes = dict(presets)
    for name, preset in presets.items():
        prefix = "" if name == "default" else f"{name}-"  # the default's splits keep the names they shipped under
        for i, known in enumerate(data.UNSEEN_DIGIT_SPLITS):
            recipes[f"{prefix}split{i}"] = replace(preset, known_classes=tuple(known))
    return recipes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="compute the shipped near-digit judgements (make judge)")
    p.add_argument("--recipes", default="all",
                   help="comma-separated: default, large, split0..split4, large-split0..large-split4, or all "
                        "(default: %(default)s)")
    p.add_argument("--folds-dir", default="artifacts/judge", help="where the fold models are kept and reused")
    p.add_argument("--check", action="store_true", help="compare with the shipped judgements instead of writing them")
    cli.add_common_flags(p, "data_dir", "device", "seed", "batch_size")
    return p


def run(args: argparse.Namespace) -> int:
    device = cli.resolve_device(args.device)
    recipes = judged_recipes(device)
    names = list(recipes) if args.recipes == "all" else args.recipes.split(",")
    unknown = [n for n in names if n not in recipes]
    if unknown:
        raise cli.UserError(f"--recipes: unknown {', '.join(unknown)} (choose from {', '.join(recipes)} or all)")
    val = data.validation_indices()
    differ = 0
    for name in names:
        recipe = recipes[name]
        path = path_for(recipe)
        folds = leave_classes_out(recipe, val, args.data_dir, Path(args.folds_dir) / path.stem, FULL, device,
                                  args.seed, args.batch_size)
        judgement = compute(folds, args.seed, FULL, recipe)
        if args.check:
            verdict = lambda j: [j.get(k) for k in ("near", "candidates", "code")]  # the figures, not how folds are listed
            same = path.is_file() and verdict(json.loads(path.read_text())) == verdict(judgement)
            differ += not same
            print(f"{name}: {'the same as' if same else 'DIFFERENT from'} {path}; near part {judgement['near']}")
        else:
            atomic_write_bytes(path, (json.dumps(judgement, separators=(",", ":")) + "\n").encode())
            print(f"{name}: wrote {path}; near part {judgement['near']}")
    return 1 if differ else 0


def main(argv=None) -> int:
    return cli.run(run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

"""The paired judge: a recipe against another on the same folds, digits and resamples; seeds inside the judge; fold
models reused only for their own recipe and seed."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from osr_core import data, leave_out
from osr_core.io import load_checkpoint
from osr_core.judge import BOOTSTRAP, FoldJudge, Resamples, compare, resolution
from osr_core.leave_out import Fold
from osr_core.models import model_from_checkpoint
from osr_core.recipe import Recipe
from osr_core.scores import Scored, score_images

ENERGY = ("energy", ())
N_UNKNOWN = 500  # one unknown moved from below every known to above them all is worth 1/500 = 0.002 of AUROC


def _scored(values) -> Scored:
    return Scored(pred=np.zeros(len(values), dtype=np.int64), components={"energy": np.asarray(values, np.float64)})


def _folds(n_folds=10, seeds=(0,), better_in=(), shift=0.0, moved=1) -> list[Fold]:
    """Folds (held out: one class each) whose unknowns sit mostly above the knowns; the first `moved` unknowns of each
    fold sit below every known, except in the folds `better_in`, where they sit above them all: those folds are better
    by exactly 0.002 an unknown moved. `shift`: every score moved by this much (the same ranks)."""
    folds = []
    for f in range(n_folds):
        for seed in seeds:
            rng = np.random.default_rng(100 * f + seed)
            known, unknown = rng.normal(0, 1, 2000), rng.normal(2.5, 1, N_UNKNOWN)
            unknown[:moved] = 20.0 if f in better_in else -20.0
            folds.append(Fold([f], Recipe(known_classes=tuple(range(10)), seed=seed), _scored(known + shift),
                              _scored(unknown + shift), 0.99))
    return folds


def test_a_recipe_against_itself_is_exactly_zero_in_every_fold_and_every_resample():
    judge = FoldJudge(_folds(seeds=(0, 1)))
    c = compare(judge, judge, ENERGY, ENERGY)
    assert c.per_fold == [0.0] * 10 and c.difference == 0.0 and c.ci95 == (0.0, 0.0)
    assert len(c.resampled) == BOOTSTRAP and not c.resampled.any() and not c.better


def test_both_recipes_are_measured_on_the_same_resamples():
    """Another recipe whose scores are the same ranks has the same AUROC in every resample only if each resample drew
    the same folds and digits for both."""
    base, same_ranks = FoldJudge(_folds(), seed=0), FoldJudge(_folds(shift=3.0), seed=7)
    c = compare(base, same_ranks, ENERGY, ENERGY, seed=1)
    assert not np.abs(c.resampled).max() > 1e-12 and c.ci95 == (0.0, 0.0)
    # Resampled apart (each recipe its own draw), the same two recipes seem to differ.
    apart = same_ranks.resampled(*ENERGY) - base.resampled(*ENERGY)
    assert np.abs(apart).max() > 1e-3
    assert np.array_equal(Resamples.draw(base.sizes, 1).known[3], Resamples.draw(same_ranks.sizes, 1).known[3])


def test_a_recipe_better_by_0_002_in_every_fold_is_picked_and_in_a_single_fold_is_not():
    base = FoldJudge(_folds())
    everywhere = compare(base, FoldJudge(_folds(better_in=range(10))), ENERGY, ENERGY)
    assert everywhere.per_fold == pytest.approx([0.002] * 10) and everywhere.better
    once = compare(base, FoldJudge(_folds(better_in=(4,))), ENERGY, ENERGY)
    assert once.difference == pytest.approx(0.0002) and not once.better and once.ci95[0] == 0.0
    # An unpaired reading (the other's mean against the base's own interval) cannot see the gain of every fold.
    lo, hi = np.percentile(base.resampled(*ENERGY), [2.5, 97.5])
    assert lo < np.mean(FoldJudge(_folds(better_in=range(10))).per_fold(*ENERGY)) < hi


def test_a_fold_is_the_mean_over_its_seeds_and_the_resolution_is_of_a_recipe_against_itself():
    folds = _folds(n_folds=4, seeds=(0, 1, 2, 3))
    judge = FoldJudge(folds)
    assert judge.held_out == [(0,), (1,), (2,), (3,)] and judge.seeds == [0, 1, 2, 3]
    per_seed = judge.per_fold_and_seed(*ENERGY)
    assert judge.per_fold(*ENERGY) == pytest.approx([np.mean(s) for s in per_seed])
    r = resolution(folds, [0, 1], [2, 3], ENERGY)
    assert r.half_width > 0 and r.ci95[0] < r.difference < r.ci95[1]
    assert r.difference == pytest.approx(np.mean([np.mean(s[2:]) - np.mean(s[:2]) for s in per_seed]))
    with pytest.raises(ValueError, match="same folds"):
        compare(judge, FoldJudge(_folds(n_folds=3)), ENERGY, ENERGY)


def test_a_fold_model_is_reused_only_for_its_own_recipe_and_seed(data_dir, tmp_path, monkeypatch):
    trained = []
    real_fit = leave_out.fit
    monkeypatch.setattr(leave_out, "fit", lambda recipe, *a, **k: trained.append((recipe.seed, recipe.lr)) or
                        real_fit(recipe, *a, **k))
    recipe = Recipe(known_classes=(0, 1, 2), epochs=1, train_limit=200, width=8)
    judge = lambda r, seeds: leave_out.leave_classes_out(r, data.validation_indices(), data_dir, tmp_path,
                                                         leave_out.FULL, torch.device("cpu"), seeds=seeds,
                                                         groups=[[2]])
    first = judge(recipe, [0, 1])
    assert trained == [(0, 6e-3), (1, 6e-3)] and [f.recipe.seed for f in first] == [0, 1]
    again = judge(recipe, [1, 0])                       # both kept: nothing trained
    assert trained == [(0, 6e-3), (1, 6e-3)]
    assert np.array_equal(again[1].known.components["energy"], first[0].known.components["energy"])
    judge(recipe, [2])                                  # another seed
    other = judge(replace(recipe, lr=3e-3), [0])        # another recipe, same seed and file name
    assert trained[2:] == [(2, 6e-3), (0, 3e-3)]
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["fold-2-seed0.pt", "fold-2-seed1.pt", "fold-2-seed2.pt"]
    # The evidence kept beside a model is its own: the retrained model's scores, not those kept for the file before.
    assert not np.array_equal(other[0].known.components["energy"], first[0].known.components["energy"])
    model = model_from_checkpoint(load_checkpoint(tmp_path / "fold-2-seed0.pt"), torch.device("cpu"))
    fresh = score_images(model, data.to_float(data.validation_digits(*data.load_mnist(data_dir, train=True),
                                                                     data.validation_indices(), (0, 1))[0]),
                         [0, 1], torch.device("cpu"), 1024)
    kept = judge(replace(recipe, lr=3e-3), [0])[0].known  # read from beside the model
    assert all(np.array_equal(kept.components[k], fresh.components[k]) for k in fresh.components)

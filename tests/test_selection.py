"""The decision score is chosen in code on validation data alone: far families are a floor, the leave-classes-out
folds rank what passes it, differences within the bootstrap noise go to the simpler candidate, and stage 2 never
reads a reported set. Inside a protocol split, the folds hold out only that split's known classes."""
import json

import numpy as np
import pytest
import torch

import compute_class_reconstruction_errors
import train
from conftest import FOLD_FLAGS
from osr_core import characters, data, forms, letters, unknown_sets
from osr_core.io import load_checkpoint
from osr_core.leave_out import Fold, fold_recipe, folds, FoldBudget
from osr_core.scores import Scored, candidate_scores, normalisation_stats
from osr_core.selection import FAR_FLOOR, NEAR, select_score
from osr_core.training import Recipe


def _scored(rng, n, pixel, energy, mahalanobis):
    """Components drawn around the given centres: pixel and mahalanobis positive (log-normal)."""
    return Scored(pred=np.zeros(n, dtype=np.int64), components={
        "pixel_recon": rng.lognormal(pixel, 0.3, n), "energy": rng.normal(energy, 1.0, n),
        "mahalanobis": rng.lognormal(mahalanobis, 0.3, n)})


KNOWN = dict(pixel=-4.0, energy=-8.0, mahalanobis=3.0)


def _fold(rng, n=600, **unknown_centres) -> Fold:
    known = _scored(rng, n, **KNOWN)
    unknown = _scored(rng, n // 4, **{**KNOWN, **unknown_centres})
    return Fold([0, 1], Recipe(), known, unknown, normalisation_stats(known.components), 0.99)


def _far(rng, **centres) -> dict[str, Scored]:
    return {"far": _scored(rng, 400, **{**KNOWN, **centres})}


def test_far_families_are_a_floor_and_the_near_signal_ranks_what_passes_it():
    rng = np.random.default_rng(0)
    known = _scored(rng, 600, **KNOWN)
    norm = normalisation_stats(known.components)
    # Unseen classes are told apart by energy alone; the far family by pixel error, which energy misses.
    near = [_fold(rng, energy=-4.0) for _ in range(3)]
    s = select_score(known, _far(rng, pixel=0.0), norm, near)
    assert not s.table["energy"]["passes_floor"] and s.table["energy"][NEAR] > 0.95
    assert s.table["pixel_recon"]["passes_floor"] and s.table["pixel_recon"][NEAR] < 0.6
    assert s.chosen == "mean+(pixel_recon,energy)"
    assert s.table[s.chosen]["far_min"] >= FAR_FLOOR
    assert s.table[s.chosen][NEAR] == pytest.approx(np.mean(s.table[s.chosen]["per_fold"]))
    # When the far family is told apart by every score, nothing stands between energy and the choice.
    assert select_score(known, _far(rng, pixel=2.0, energy=10.0, mahalanobis=8.0), norm, near).chosen == "energy"
    assert set(s.table) == set(candidate_scores(known.components))
    assert s.to_json()["near_family"] == NEAR and len(s.to_json()["folds"]) == 3


def test_within_the_noise_the_simpler_candidate_wins_and_a_clear_lead_keeps_the_leader():
    rng = np.random.default_rng(1)
    known = _scored(rng, 600, **KNOWN)
    norm = normalisation_stats(known.components)
    far = _far(rng, pixel=2.0, energy=10.0, mahalanobis=8.0)             # every candidate passes the floor
    # Mahalanobis carries most of the signal; energy adds a little: the fusion may lead, but not clearly.
    near = [_fold(rng, n=200, mahalanobis=3.6, energy=-7.8) for _ in range(2)]
    s = select_score(known, far, norm, near)
    leader = max((n for n in s.table if s.table[n]["passes_floor"]), key=lambda n: s.table[n][NEAR])
    assert s.chosen == "mahalanobis" or candidate_scores(known.components).index(s.chosen) < \
        candidate_scores(known.components).index(leader)
    assert s.table[s.chosen]["within_noise"] and s.table[s.chosen][NEAR] <= s.table[leader][NEAR]
    # Both signals strong and independent: their fusion is clearly better than either, and wins.
    near = [_fold(rng, n=2000, mahalanobis=3.5, energy=-6.5) for _ in range(3)]
    s = select_score(known, far, norm, near)
    assert s.chosen == "mean+(energy,mahalanobis)"
    assert not s.table["mahalanobis"]["within_noise"] and not s.table["energy"]["within_noise"]


def test_without_folds_the_far_families_alone_choose():
    rng = np.random.default_rng(2)
    known = _scored(rng, 300, **KNOWN)
    s = select_score(known, _far(rng, pixel=-1.0), normalisation_stats(known.components), None)
    assert s.chosen == "pixel_recon" and "no leave-classes-out" in s.rule and s.to_json()["near_family"] is None


def test_folds_hold_out_every_known_class_once_and_keep_two():
    for known in (range(10), [2, 4, 5, 9, 8, 3], [1, 2, 3, 4, 5, 6, 7]):
        made = folds(known, seed=0)
        assert sorted(c for f in made for c in f) == sorted(known)
        assert all(len(set(known) - set(f)) >= 2 for f in made)
    assert folds(range(10), 0) != folds(range(10), 1)
    with pytest.raises(ValueError, match="at least 4"):
        folds([1, 2, 3], 0)
    r = fold_recipe(Recipe(epochs=5, width=24), [3, 7], FoldBudget(2, 1000))
    assert (r.known_classes, r.epochs, r.train_limit, r.width) == ((0, 1, 2, 4, 5, 6, 8, 9), 2, 1000, 24)


FORBIDDEN = [(data, "load_fashion_mnist_test"), (data, "uniform_noise"), (data, "mnist_noise"), (data, "natural_crops"),
             (data, "scanned_digits"), (characters, "generate"), (letters, "generate"), (forms, "no_digit_images"),
             (unknown_sets, "load_image_folder"), (unknown_sets, "held_out_digits")]


def _forbid_reported_sets(monkeypatch):
    real_load_mnist = data.load_mnist

    def train_split_only(data_dir, train):
        assert train, "stage 2 read MNIST test"
        return real_load_mnist(data_dir, train)

    def forbidden(*args, **kwargs):
        raise AssertionError("stage 2 read a reported set")
    monkeypatch.setattr(data, "load_mnist", train_split_only)
    for module, name in FORBIDDEN:
        monkeypatch.setattr(module, name, forbidden)


def test_stage_2_chooses_on_validation_data_without_reading_any_reported_set(trained_run, data_dir, tmp_path,
                                                                           monkeypatch):
    _forbid_reported_sets(monkeypatch)
    out = tmp_path / "thresholds.txt"
    assert compute_class_reconstruction_errors.main(["--checkpoint", str(trained_run["checkpoint"]), "--data-dir",
                                                     data_dir, "--out", str(out), "--device", "cpu", "--quiet",
                                                     "--fold-epochs", "1", "--fold-images", "300"]) == 0
    selection = json.loads((tmp_path / "calibration.json").read_text())["selection"]
    assert selection["families"] == ["pixel_shuffle", "blur", "negative"] and selection["near_family"] == NEAR
    assert sorted(c for f in selection["folds"] for c in f["held_out"]) == list(range(10))
    assert selection["chosen"] in selection["candidates"] and f"# score: {selection['chosen']}" in out.read_text()
    assert len(list((tmp_path / "leave_out").glob("fold-*.pt"))) == 5


def test_inside_a_protocol_split_the_folds_hold_out_only_its_known_classes(data_dir, tmp_path, monkeypatch):
    split = [2, 4, 5, 9, 8, 3]
    checkpoint = tmp_path / "split.pt"
    assert train.main(["--known-classes", ",".join(map(str, split)), "--epochs", "1", "--train-limit", "1500",
                       "--width", "8", "--data-dir", data_dir, "--device", "cpu", "--quiet", "--out", str(checkpoint)]) == 0
    _forbid_reported_sets(monkeypatch)
    out = tmp_path / "thresholds.txt"
    assert compute_class_reconstruction_errors.main(["--checkpoint", str(checkpoint), "--data-dir", data_dir,
                                                     "--out", str(out), "--device", "cpu", "--quiet", *FOLD_FLAGS]) == 0
    selection = json.loads((tmp_path / "calibration.json").read_text())["selection"]
    labels = data.load_mnist(data_dir, train=True)[1][data.validation_indices()]
    in_split = int(torch.isin(labels, torch.tensor(split)).sum())
    assert len(selection["folds"]) == 3
    for fold in selection["folds"]:
        assert set(fold["held_out"]) <= set(split) and set(fold["trained_on"]) <= set(split)
        assert set(fold["held_out"]) | set(fold["trained_on"]) == set(split)
        assert fold["n_known"] + fold["n_unknown"] == in_split      # no digit of the split's 4 unknown classes
    for path in (tmp_path / "leave_out").glob("fold-*.pt"):
        ckpt = load_checkpoint(path)
        assert set(ckpt["known_classes"]) < set(split) and set(ckpt["recipe"]["known_classes"]) < set(split)

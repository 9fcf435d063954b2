"""The decision is chosen in code on validation data alone: the near part by the leave-classes-out folds (equals
within the bootstrap noise going to the simpler), then the gates beside it under far and acceptance floors (equals
going to the gates that fire soonest); stage 2 never reads a reported set. Inside a protocol split, the folds hold
out only that split's known classes."""
import itertools
import json

import numpy as np
import pytest
import torch

import compute_class_reconstruction_errors
import train
from conftest import FOLD_FLAGS, forbid_reported_sets
from osr_core import data, selection
from osr_core.io import load_checkpoint
from osr_core.leave_out import Fold, FoldScheme, fold_recipe, folds
from osr_core.scores import Scored
from osr_core.judge import FoldJudge
from osr_core.selection import ACCEPTANCE, NEAR, Evidence, select_decision
from osr_core.recipe import Recipe

CLASSES = [0, 1]


def _scored(rng, n, pixel, energy, mahalanobis):
    """Components drawn around the given centres (pixel and mahalanobis log-normal), half of each class."""
    return Scored(pred=np.arange(n) % 2, components={
        "pixel_recon": rng.lognormal(pixel, 0.3, n), "energy": rng.normal(energy, 1.0, n),
        "mahalanobis": rng.lognormal(mahalanobis, 0.3, n)})


KNOWN = dict(pixel=-4.0, energy=-8.0, mahalanobis=3.0)


HELD_OUT = itertools.count()  # each fold its own held-out class: folds that share one are one fold's seeds


def _fold(rng, n=600, **unknown_centres) -> Fold:
    return Fold([next(HELD_OUT)], Recipe(), _scored(rng, n, **KNOWN), _scored(rng, n // 4, **{**KNOWN, **unknown_centres}), 0.99)


def _evidence(rng, folds, far=None, users=None) -> Evidence:
    far = far or {"far": dict(pixel=2.0, energy=10.0, mahalanobis=8.0)}  # told apart by every part
    return Evidence(_scored(rng, 2000, **KNOWN), {f: _scored(rng, 400, **{**KNOWN, **c}) for f, c in far.items()},
                    _scored(rng, 1000, **{**KNOWN, **(users or {})}), FoldJudge(folds, seed=0) if folds else None)


def test_the_near_signal_chooses_the_near_part_and_the_floors_choose_the_gates_beside_it():
    rng = np.random.default_rng(0)
    # Unseen classes are told apart by energy alone; the far family by the pixel error alone, which energy misses.
    ev = _evidence(rng, [_fold(rng, energy=-4.0) for _ in range(3)], far={"far": dict(pixel=0.0)})
    s = select_decision(ev, CLASSES)
    assert s.near == "energy" and s.table["energy"][NEAR] > 0.95
    assert "far" in s.table["energy"]["failed_floors"]                   # alone it lets the far family through
    assert s.chosen.startswith("max(energy,") and "pixel_recon-" in s.chosen
    row = s.table[s.chosen]
    assert row["passes_floors"] and row["far"]["detected"] >= selection.FAR_DETECTION_FLOOR
    assert row[NEAR] == pytest.approx(np.mean(row["per_fold"]))
    assert s.floors["far"]["configurations_removed"] > 0 and s.floors["far"]["near_parts_failing"] > 0
    json.dumps(s.to_json())  # calibration.json can hold it


def test_the_acceptance_floor_stops_a_gate_that_rejects_users_digits():
    rng = np.random.default_rng(3)
    # Users' digits reconstruct a little worse than MNIST's: a pixel gate at a small offset would reject them.
    ev = _evidence(rng, [_fold(rng, energy=-4.0) for _ in range(3)], users=dict(pixel=-3.5))
    s = select_decision(ev, CLASSES)
    pixel_at_0 = "max(energy,pixel_recon-0)"
    assert ACCEPTANCE in s.table[pixel_at_0]["failed_floors"]
    assert s.table[s.chosen][ACCEPTANCE] >= selection.ACCEPTANCE_FLOOR
    assert s.floors[ACCEPTANCE]["configurations_removed"] > 0


def test_of_equal_gate_configurations_the_one_whose_gates_fire_soonest_wins():
    rng = np.random.default_rng(4)
    ev = _evidence(rng, [_fold(rng, energy=-4.0) for _ in range(3)])
    s = select_decision(ev, CLASSES)
    equal = [n for n, r in s.table.items() if r.get("gate_step", {}).get("within_noise")]
    order = {n: selection.protection_order(selection.gate_plans("energy", ["pixel_recon", "mahalanobis"])[i])
             for i, n in enumerate(n for n in s.table if n.startswith("max(energy,") or n == "energy")}
    assert s.chosen in equal and order[s.chosen] == min(order[n] for n in equal)
    assert s.chosen.count("-") == 2  # both gates on: here they cost the unseen classes nothing


def test_the_near_part_is_the_best_of_the_folds_and_a_simpler_one_only_within_the_tolerance():
    rng = np.random.default_rng(1)
    # Few unseen digits per fold: Mahalanobis and the fusion are close, the fusion ahead by more than the tolerance
    # but within the bootstrap noise. The best of the folds wins all the same (on the design partitions the
    # simplest within the noise was the worse choice).
    close = [_fold(rng, n=120, mahalanobis=3.45, energy=-7.6) for _ in range(3)]
    s = select_decision(_evidence(rng, close), CLASSES)
    leader = s.table["mahalanobis"]["near_step"]["leader"]
    assert leader != "mahalanobis" and "mahalanobis" in leader
    assert s.table[leader][NEAR] - s.table["mahalanobis"][NEAR] > selection.NEAR_TOLERANCE
    assert s.table["mahalanobis"]["near_step"]["leader_better_share"] < selection.CONFIDENCE  # within the noise
    assert not s.table["mahalanobis"]["near_step"]["within_noise"] and s.near == leader
    # Within the tolerance a simpler part is as good, and wins.
    same = [Fold(f.held_out, Recipe(), f.known, f.unknown, 0.99) for f in close]
    for f in same:  # energy carries nothing: the fusion is Mahalanobis with noise added
        for scored in (f.known, f.unknown):
            scored.components["energy"] = rng.normal(-8.0, 1.0, len(scored))
    s = select_decision(_evidence(rng, same), CLASSES)
    leader = s.table["mahalanobis"]["near_step"]["leader"]
    if leader != "mahalanobis":
        assert s.table[leader][NEAR] - s.table["mahalanobis"][NEAR] <= selection.NEAR_TOLERANCE
    assert s.near == "mahalanobis"


def test_the_bootstrap_decides_which_gate_configurations_are_equal():
    """Step 2: a configuration the best does not beat in 95% of the paired resamples is equal though it lies
    beyond the tolerance (with the bootstrap removed, none would be), and of the equals the most protective wins."""
    rng = np.random.default_rng(6)
    folds_ = [_fold(rng, n=160, energy=-5.5, pixel=-3.85) for _ in range(3)]
    s = select_decision(_evidence(rng, folds_), CLASSES)
    rows = {n: r for n, r in s.table.items() if "gate_step" in r}
    best = max(rows, key=lambda n: rows[n][NEAR])
    noisy = [n for n, r in rows.items() if r["gate_step"]["within_noise"]
             and rows[best][NEAR] - r[NEAR] > selection.NEAR_TOLERANCE]
    assert noisy, "no configuration is equal by the bootstrap alone"
    plans = {selection.gates.gates_name(s.near, p): p for p in selection.gate_plans(s.near, ["pixel_recon", "mahalanobis"])}
    equal = [n for n, r in rows.items() if r["gate_step"]["within_noise"]]
    assert s.chosen == min(equal, key=lambda n: selection.protection_order(plans[n]))


def test_the_bootstrap_resamples_the_folds_too():
    rng = np.random.default_rng(5)
    # Two folds agree, one disagrees sharply: with the folds resampled the interval spans their spread.
    ev = _evidence(rng, [_fold(rng, n=3000, energy=-5.0), _fold(rng, n=3000, energy=-5.0),
                         _fold(rng, n=3000, energy=-8.0)])
    s = select_decision(ev, CLASSES)
    low, high = s.table["energy"]["near_ci95"]
    per_fold = s.table["energy"]["per_fold"]
    assert max(per_fold) - min(per_fold) > 0.3 and high - low > 0.2


def test_without_folds_the_far_families_choose_the_near_part_and_the_gates_are_the_most_protective():
    rng = np.random.default_rng(2)
    s = select_decision(_evidence(rng, [], far={"far": dict(pixel=-1.0)}), CLASSES)
    assert s.near == "pixel_recon" and "no leave-classes-out" in s.rule and s.to_json()["near_family"] is None
    assert s.chosen == "max(pixel_recon,mahalanobis-0)"


def test_folds_hold_out_every_known_class_once_and_keep_two():
    for known in (range(10), [2, 4, 5, 9, 8, 3], [1, 2, 3, 4, 5, 6, 7]):
        for size in (1, 2):
            made = folds(known, seed=0, size=size)
            assert sorted(c for f in made for c in f) == sorted(known)
            assert all(len(set(known) - set(f)) >= 2 for f in made)
    assert folds(range(10), 0, size=2) != folds(range(10), 1, size=2)
    with pytest.raises(ValueError, match="at least 4"):
        folds([1, 2, 3], 0, size=2)
    with pytest.raises(ValueError, match="at least 3"):
        folds([1, 2], 0, size=1)
    r = fold_recipe(Recipe(epochs=5, width=24), [3, 7], FoldScheme(2, 2, 1000))
    assert (r.known_classes, r.epochs, r.train_limit, r.width) == ((0, 1, 2, 4, 5, 6, 8, 9), 2, 1000, 24)
    # Never trained longer, nor on more images, than the checkpoint it judges.
    r = fold_recipe(Recipe(epochs=2, train_limit=5000), [3], FoldScheme(1, 5, 10000))
    assert (r.epochs, r.train_limit, len(r.known_classes)) == (2, 5000, 9)
    r = fold_recipe(Recipe(epochs=5), [3], FoldScheme())
    assert (r.epochs, r.train_limit) == (5, None)
    assert [len(f) for f in folds(range(10), 0, size=1)] == [1] * 10


def test_stage_2_chooses_on_validation_data_without_reading_any_reported_set(trained_run):
    """The suite's own stage 2 (conftest.trained_run) runs with every loader of a reported set forbidden."""
    assert trained_run["reported_sets_read"] == []
    selection = json.loads((trained_run["root"] / "calibration.json").read_text())["selection"]
    assert selection["families"] == ["pixel_shuffle", "blur", "negative", "ink_noise", "smooth_blobs"]
    assert selection["near_family"] == NEAR and set(selection["floors"]) == {*selection["families"], ACCEPTANCE}
    assert sorted(c for f in selection["folds"] for c in f["held_out"]) == list(range(10))
    assert (selection["chosen"] in selection["candidates"]
            and f"# score: {selection['chosen']}" in trained_run["thresholds"].read_text())
    assert len(list((trained_run["root"] / "leave_out").glob("fold-*.pt"))) == 5


def test_inside_a_protocol_split_the_folds_hold_out_only_its_known_classes(data_dir, tmp_path, monkeypatch):
    split = [2, 4, 5, 9, 8, 3]
    checkpoint = tmp_path / "split.pt"
    assert train.main(["--known-classes", ",".join(map(str, split)), "--epochs", "1", "--train-limit", "1500",
                       "--width", "8", "--data-dir", data_dir, "--device", "cpu", "--quiet", "--out", str(checkpoint)]) == 0
    calls = forbid_reported_sets(monkeypatch)
    out = tmp_path / "thresholds.txt"
    assert compute_class_reconstruction_errors.main(["--checkpoint", str(checkpoint), "--data-dir", data_dir,
                                                     "--out", str(out), "--device", "cpu", "--quiet", *FOLD_FLAGS]) == 0
    assert calls == []
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


def test_the_bootstrap_refuses_a_more_protective_configuration_that_costs_the_unseen_classes():
    """Step 2 prefers the gates that fire soonest only among equals: where a gate at a small offset rejects the digits
    that reconstruct worst and so costs the unseen classes beyond the noise, a less protective configuration wins."""
    rng = np.random.default_rng(7)
    # Unseen classes told apart by energy and reconstructed better than the known digits.
    folds_ = [_fold(rng, n=2000, energy=-6.0, pixel=-5.0, mahalanobis=2.5) for _ in range(3)]
    s = select_decision(_evidence(rng, folds_), CLASSES)
    assert s.near == "energy"
    plans = {selection.gates.gates_name(s.near, p): p for p in selection.gate_plans(s.near, ["pixel_recon", "mahalanobis"])}
    passing = [n for n in plans if s.table[n]["passes_floors"]]
    most = min(passing, key=lambda n: selection.protection_order(plans[n]))
    assert not s.table[most]["gate_step"]["within_noise"] and s.chosen != most
    assert s.table[s.chosen][NEAR] > s.table[most][NEAR] + selection.NEAR_TOLERANCE

"""The decision score is chosen in code on the validation proxy alone: the best mean AUROC wins, the choice
follows the proxy, and stage 2 never reads a reported set."""
import json

import numpy as np
import pytest

import compute_class_reconstruction_errors
from osr_core import characters, data, letters, unknown_sets
from osr_core.scores import Scored, candidate_scores, normalisation_stats
from osr_core.selection import select_score


def _scored(rng, n, pixel, energy, mahalanobis):
    """Components drawn around the given centres: pixel and mahalanobis positive (log-normal)."""
    return Scored(pred=np.zeros(n, dtype=np.int64), components={
        "pixel_recon": rng.lognormal(pixel, 0.3, n), "energy": rng.normal(energy, 1.0, n),
        "mahalanobis": rng.lognormal(mahalanobis, 0.3, n)})


def test_the_candidate_that_best_separates_the_proxy_is_chosen_and_follows_the_proxy():
    rng = np.random.default_rng(0)
    known = _scored(rng, 400, pixel=-4.0, energy=-8.0, mahalanobis=3.0)
    norm = normalisation_stats(known.components)
    # Proxy A differs from the digits in energy only, proxy B in pixel error only.
    energy_proxy = {"family": _scored(rng, 400, pixel=-4.0, energy=-2.0, mahalanobis=3.0)}
    pixel_proxy = {"family": _scored(rng, 400, pixel=-1.0, energy=-8.0, mahalanobis=3.0)}
    a, b = select_score(known, energy_proxy, norm), select_score(known, pixel_proxy, norm)
    assert a.chosen == "energy" and b.chosen == "pixel_recon"
    assert set(a.table) == set(candidate_scores(known.components))
    assert a.table["energy"]["family"] == a.table["energy"]["mean"] > 0.99
    assert a.table["pixel_recon"]["mean"] < 0.6


def test_the_mean_over_families_decides_and_ties_go_to_the_earlier_candidate():
    rng = np.random.default_rng(1)
    known = _scored(rng, 300, pixel=-4.0, energy=-8.0, mahalanobis=3.0)
    norm = normalisation_stats(known.components)
    # One family is told apart by energy, the other by pixel error: only their fusion handles both.
    proxy = {"energy_like": _scored(rng, 300, pixel=-4.0, energy=-1.0, mahalanobis=3.0),
             "pixel_like": _scored(rng, 300, pixel=-1.0, energy=-8.0, mahalanobis=3.0)}
    s = select_score(known, proxy, norm)
    assert s.chosen == "mean+(pixel_recon,energy)"
    assert s.table[s.chosen]["mean"] == pytest.approx(np.mean([s.table[s.chosen][f] for f in proxy]))
    # Every candidate separates perfectly: the first candidate wins.
    far = {"far": _scored(rng, 300, pixel=2.0, energy=20.0, mahalanobis=9.0)}
    assert select_score(known, far, norm).chosen == candidate_scores(known.components)[0]
    assert s.to_json()["families"] == ["energy_like", "pixel_like"]


def test_stage_2_chooses_on_the_validation_proxy_without_reading_any_reported_set(trained_run, data_dir, tmp_path,
                                                                               monkeypatch):
    real_load_mnist = data.load_mnist

    def train_split_only(data_dir, train):
        assert train, "stage 2 read MNIST test"
        return real_load_mnist(data_dir, train)

    def forbidden(*args, **kwargs):
        raise AssertionError("stage 2 read a reported set")
    monkeypatch.setattr(data, "load_mnist", train_split_only)
    for module, name in [(data, "load_fashion_mnist_test"), (data, "uniform_noise"), (data, "mnist_noise"),
                         (data, "natural_crops"), (characters, "generate"), (letters, "generate"),
                         (unknown_sets, "load_image_folder"), (unknown_sets, "held_out_digits")]:
        monkeypatch.setattr(module, name, forbidden)
    out = tmp_path / "thresholds.txt"
    assert compute_class_reconstruction_errors.main(["--checkpoint", str(trained_run["checkpoint"]), "--data-dir",
                                                     data_dir, "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    cal = json.loads((tmp_path / "calibration.json").read_text())
    table = cal["selection"]["candidates"]
    assert cal["selection"]["families"] == ["pose", "pixel_shuffle", "blur", "negative"]
    assert cal["score"] == cal["selection"]["chosen"] == max(table, key=lambda c: table[c]["mean"])
    assert f"# score: {cal['score']}" in out.read_text()

"""gates.py and the decision built on it: rank normalisation, fusions, names, and a maximum of calibrated parts in
which each gate can reject an image alone, where a mean would let the other parts dilute it."""
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

from osr_core import gates
from osr_core.gates import (Z_KNOTS, candidate_scores, decide, fit_knots, normalised_names, parse_gates, rank_normalise,
                            score_parts)
from osr_core.pipeline import calibrate_scored, decide_scored
from osr_core.scores import COMPONENTS, Scored

GATED = "max(energy,pixel_recon-1,mahalanobis-1)"


def _validation(n=4000, seed=0, class_1_shift=0.0) -> Scored:
    """Validation-like components of two classes: energy normal, the errors and the distance log-normal, all
    independent; class 1's energy lies `class_1_shift` higher."""
    rng = np.random.default_rng(seed)
    pred = np.repeat([0, 1], n // 2)
    return Scored(pred=pred, components={
        "energy": rng.normal(-8.0, 2.0, n) + class_1_shift * pred, "pixel_recon": rng.lognormal(-4.0, 0.6, n),
        "mahalanobis": rng.lognormal(4.0, 0.3, n), "feature_recon": rng.lognormal(-1.0, 0.5, n)})


def _value_at(z: float, name: str, knots) -> float:
    """The value of a component whose rank normalisation is z (bisection: the map is increasing)."""
    low, high = -1e3, 1e3
    if name in gates.LOG_SCALED:
        low, high = 1e-12, 1e12
    for _ in range(200):
        mid = (low + high) / 2 if name not in gates.LOG_SCALED else np.sqrt(low * high)
        low, high = (mid, high) if rank_normalise(np.array([mid]), name, knots)[0] < z else (low, mid)
    return float(mid)


def test_rank_normalisation_maps_validation_quantiles_to_a_standard_normal_and_runs_on_beyond_them():
    v = _validation().components
    for name in ("energy", "mahalanobis"):
        knots = fit_knots(v[name], name)
        z = rank_normalise(v[name], name, knots)
        for q in (0.05, 0.5, 0.95, 0.99):  # the values' own quantiles land where the standard normal has them
            assert np.quantile(z, q) == pytest.approx(norm.ppf(q), abs=0.08), (name, q)
        assert (np.diff(rank_normalise(np.sort(v[name]), name, knots)) >= 0).all()
        top = knots[-1]
        beyond = rank_normalise(np.array([top, top * 2 if top > 0 else top / 2]), name, knots)
        assert beyond[0] == pytest.approx(Z_KNOTS[-1]) and beyond[1] > Z_KNOTS[-1] + 0.5, name
    # Beyond the top knot a log-scaled part runs on in a straight line in log units, with the outer unit's slope.
    knots = fit_knots(v["mahalanobis"], "mahalanobis")
    slope = 1.0 / (np.log(knots[-1]) - np.log(knots[np.searchsorted(Z_KNOTS, 2.0)]))
    assert rank_normalise(np.array([knots[-1] * np.e]), "mahalanobis", knots)[0] == pytest.approx(3 + slope)


def test_ties_in_the_validation_values_keep_the_map_one_to_one():
    values = np.r_[np.full(900, -1.0), np.linspace(-0.99, -0.5, 100)]  # a softmax that is mostly exactly 1
    knots = fit_knots(values, "max_softmax")
    assert (np.diff(knots) > 0).all()
    assert np.isfinite(rank_normalise(np.array([-1.0, -0.5, 0.0]), "max_softmax", knots)).all()


def test_a_one_sided_fusion_averages_the_positive_parts_of_the_rank_normalised_components():
    val = _validation()
    knots = gates.fit_normalisation(val, ["energy", "mahalanobis"])
    z = [rank_normalise(val.components[n], n, knots[n]) for n in ("energy", "mahalanobis")]
    fused, deciding = decide(val, "mean+(energy,mahalanobis)", knots)
    np.testing.assert_allclose(fused, (np.maximum(z[0], 0) + np.maximum(z[1], 0)) / 2)
    assert not deciding.any()  # one part: it decides every image
    np.testing.assert_allclose(decide(val, "mean(energy,mahalanobis)", knots)[0], (z[0] + z[1]) / 2)
    np.testing.assert_array_equal(decide(val, "energy", {})[0], val.components["energy"])  # used as it is


def test_names_parse_into_parts_and_offsets_and_bad_names_are_refused():
    assert parse_gates("energy") == [("energy", 0.0)]
    assert parse_gates("max(mean+(energy,mahalanobis),pixel_recon-1.5,mahalanobis-0)") == [
        ("mean+(energy,mahalanobis)", 0.0), ("pixel_recon", 1.5), ("mahalanobis", 0.0)]
    assert gates.gates_name("mean+(energy,mahalanobis)", [("pixel_recon", 1.5)]) == \
        "max(mean+(energy,mahalanobis),pixel_recon-1.5)"
    assert score_parts("max(mean+(energy,mahalanobis),mahalanobis-1)") == ("energy", "mahalanobis")
    assert normalised_names("max(mean+(energy,mahalanobis),pixel_recon-1)") == [
        "energy", "mahalanobis", "pixel_recon", "mean+(energy,mahalanobis)"]
    assert normalised_names("mean+(energy,mahalanobis)") == ["energy", "mahalanobis"] and normalised_names("energy") == []
    for bad in ("combined", "mean+(energy)", "mean+(energy,energy)", "mean+(energy,max_logit)", "max(energy)",
                "max(energy,pixel_recon)", "max(energy,pixel_recon--1)", "max(energy,energy-1)",
                "max(energy,pixel_recon-x)", "max(energy, pixel_recon-1)", "max(energy,pixel_recon-inf)"):
        with pytest.raises(ValueError, match="unknown score"):
            parse_gates(bad)


def test_candidates_are_every_component_then_every_one_sided_fusion_and_the_gates_are_every_configuration():
    from osr_core.selection import gate_plans, protection_order
    cnn = [c for c in COMPONENTS if c != "openmax"]
    nears = candidate_scores(cnn)
    assert nears[:len(cnn)] == cnn and len(nears) == len(cnn) + 11
    assert all(n.startswith("mean+(") for n in nears[len(cnn):])
    plans = gate_plans("energy", cnn)
    assert len(plans) == (1 + len(gates.OFFSETS)) ** len(gates.GATES) and plans[0] == ()
    assert len({gates.gates_name("energy", p) for p in plans}) == len(plans)
    assert all(g != "pixel_recon" for p in gate_plans("pixel_recon", cnn) for g, _ in p)  # never its own gate
    assert protection_order((("pixel_recon", 1.0), ("mahalanobis", 3.0))) < protection_order((("pixel_recon", 0.0),))


def test_the_decision_is_the_largest_part_and_names_it_whether_its_parts_are_normalised_now_or_before():
    val = _validation()
    knots = gates.normalisation_for(val, [GATED])
    score, deciding = decide(val, GATED, knots)
    z = {p: gates.normalised_part(val, p, knots) for p in ("energy", "pixel_recon", "mahalanobis")}
    plan = (("pixel_recon", 1.0), ("mahalanobis", 1.0))
    np.testing.assert_array_equal(score, gates.decide_normalised(z, "energy", plan))
    parts = np.stack([z["energy"], z["pixel_recon"] - 1, z["mahalanobis"] - 1])
    np.testing.assert_array_equal(deciding, parts.argmax(0))
    assert set(np.unique(deciding)) == {0, 1, 2}


def _decide_one(cal, val, **z):
    """Decisions for one image whose components sit at the given rank-normal z (0 where not given)."""
    values = {n: np.array([_value_at(z.get(n, 0.0), n, cal.normalisation[n])]) for n in ("energy", "pixel_recon",
                                                                                         "mahalanobis")}
    return decide_scored(Scored(pred=np.array([0]), components=values), cal)


def test_each_gate_rejects_alone_where_a_mean_of_the_parts_would_not_and_names_itself():
    val = _validation(class_1_shift=1.5)
    trained = SimpleNamespace(sha256="ab" * 32, known_classes=[0, 1])
    cal = calibrate_scored(trained, val, GATED, "quantile", None, 0.99)
    d = decide_scored(val, cal)
    for c in (0, 1):  # the thresholds keep 99% of each class's validation digits, though the classes differ
        assert (~d.is_unknown[val.pred == c]).mean() == pytest.approx(0.99, abs=0.002)
    pooled = np.quantile(d.score, 0.99)  # one threshold for both would keep far less of one class than of the other
    assert abs((d.score[val.pred == 0] <= pooled).mean() - (d.score[val.pred == 1] <= pooled).mean()) > 0.005
    threshold = cal.thresholds_for(np.array([0]))[0]
    # A digit the classifier is sure of (energy at z = -1) that only one far part finds odd, at z = threshold + 2:
    # its gate rejects it.
    z_far = threshold + 2.0
    for part, reason in (("pixel_recon", "unlike any digit"), ("mahalanobis", "far from every class")):
        other = "mahalanobis" if part == "pixel_recon" else "pixel_recon"
        one = _decide_one(cal, val, energy=-1.0, **{part: z_far, other: -1.0})
        assert one.is_unknown[0] and one.reasons == [reason], part
        assert one.score[0] == pytest.approx(z_far - 1.0, abs=1e-6)
        # A mean of the same three parts, calibrated the same way, accepts it: the other parts dilute the one.
        mean = calibrate_scored(trained, val, "mean(energy,pixel_recon,mahalanobis)", "quantile", None, 0.99)
        assert not _decide_one(mean, val, energy=-1.0, **{part: z_far, other: -1.0}).is_unknown[0], part
    unsure = _decide_one(cal, val, energy=threshold + 0.5, pixel_recon=-1.0, mahalanobis=-1.0)
    assert unsure.is_unknown[0] and unsure.reasons == ["between digits"]
    typical = _decide_one(cal, val, energy=0.5, pixel_recon=1.5, mahalanobis=1.5)
    assert not typical.is_unknown[0] and typical.reasons == [""]
    # About the 99th percentile of the largest of three standard normals, lower for the class whose energy is lower.
    assert 1.5 < threshold < cal.thresholds_for(np.array([1]))[0] < 3.5

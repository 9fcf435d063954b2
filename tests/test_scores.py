"""scores.py: one sign convention (higher = more unknown) for every component, fused decision scores and
their names, and score_images on a tiny network."""
import numpy as np
import pytest
import torch

from osr_core.models import ModelConfig, OSRNet, Outputs
from osr_core.scores import (COMPONENTS, FUSABLE, LOG_SCALED, Scored, candidate_scores, decision_score, energy,
                             normalisation_stats, parse_score, score_images, score_parts, standardise)


def _known_and_unknown_outputs():
    """Sample 0 looks known: one dominant logit, perfect reconstructions.
    Sample 1 looks unknown: flat logits, reconstructions far from their targets."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand((2, 1, 28, 28), generator=g)
    features = torch.randn((2, 8), generator=g)
    out = Outputs(
        logits=torch.tensor([[12.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
        recon=torch.stack([x[0], 1.0 - x[1]]),
        features=features,
        feature_recon=torch.stack([features[0], features[1] + 3.0]),
        class_distance=torch.tensor([0.5, 40.0]),  # near a class mean / far from every class mean
        openmax=torch.tensor([0.01, 0.9]),         # OpenMax's probability of "unknown"
    )
    return out, x


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_every_component_is_higher_for_the_unknown_like_sample(name):
    out, x = _known_and_unknown_outputs()
    score = COMPONENTS[name](out, x)
    assert score.shape == (2,)
    assert torch.isfinite(score).all()
    assert score[1] > score[0], f"{name}: {score.tolist()}"


def test_components_on_hand_built_outputs_have_their_textbook_values():
    out, x = _known_and_unknown_outputs()
    s = {name: fn(out, x) for name, fn in COMPONENTS.items()}
    assert s["pixel_recon"][0] == 0.0 and s["feature_recon"][0] == 0.0
    assert torch.isclose(s["feature_recon"][1], torch.tensor(9.0))          # every coordinate off by 3
    assert torch.isclose(s["max_softmax"][1], torch.tensor(-1 / 3))         # flat over 3 classes
    assert torch.isclose(s["entropy"][1], torch.tensor(float(np.log(3))))
    assert s["max_logit"].tolist() == [-12.0, 0.0]


def test_energy_is_minus_logsumexp():
    logits = torch.tensor([[1.0, 2.0, 3.0], [-50.0, 0.5, 0.5], [300.0, 299.0, -1.0]], dtype=torch.float64)
    out = Outputs(logits=logits, recon=torch.zeros(3, 1, 28, 28), features=torch.zeros(3, 4),
                  feature_recon=torch.zeros(3, 4), class_distance=torch.zeros(3))
    l = logits.numpy()
    m = l.max(axis=1)
    expected = -(m + np.log(np.exp(l - m[:, None]).sum(axis=1)))
    np.testing.assert_allclose(energy(out, torch.zeros(3, 1, 28, 28)).numpy(), expected, rtol=1e-12)
    assert COMPONENTS["energy"] is energy


def _scored(n=50, seed=0):
    rng = np.random.default_rng(seed)
    components = {
        "pixel_recon": rng.lognormal(-4.0, 0.7, n),
        "feature_recon": rng.lognormal(-1.0, 0.5, n),
        "energy": rng.normal(-8.0, 2.0, n),
        "max_logit": rng.normal(-6.0, 1.0, n),
        "mahalanobis": rng.lognormal(4.0, 0.3, n),
    }
    return Scored(pred=np.zeros(n, dtype=np.int64), components=components)


def test_a_fused_score_is_the_mean_of_the_positive_parts_of_standardised_components():
    assert "pixel_recon" in LOG_SCALED and "mahalanobis" in LOG_SCALED and "energy" not in LOG_SCALED
    scored = _scored()
    norm = {"pixel_recon": (-4.1, 0.6), "mahalanobis": (3.9, 0.4), "energy": (-7.5, 2.5)}
    c = scored.components
    z = [(np.log(c["pixel_recon"]) + 4.1) / 0.6, (c["energy"] + 7.5) / 2.5, (np.log(c["mahalanobis"]) - 3.9) / 0.4]
    expected = sum(np.maximum(v, 0) for v in z) / 3  # negative parts dropped: one-sided
    assert all((v < 0).any() for v in z)            # so the clipping is exercised
    fused = decision_score(scored, "mean+(pixel_recon,energy,mahalanobis)", norm)
    np.testing.assert_allclose(fused, expected, rtol=1e-12)
    # A single component is used as it is.
    assert decision_score(scored, "max_logit", norm) is c["max_logit"]


def test_normalisation_stats_standardise_their_own_data_to_mean_0_std_1():
    scored = _scored(200, seed=1)
    stats = normalisation_stats(scored.components)
    assert set(stats) == set(FUSABLE)
    for name, (mean, std) in stats.items():
        z = standardise(scored.components[name], name, mean, std)
        assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9, name
    # On the log scale for the reconstruction errors: the mean is that of the logs.
    assert np.isclose(stats["pixel_recon"][0], np.log(scored.components["pixel_recon"]).mean())
    assert np.isclose(stats["energy"][0], scored.components["energy"].mean())
    zs = [standardise(scored.components[n], n, *stats[n]) for n in FUSABLE]
    fused = decision_score(scored, "mean+(pixel_recon,feature_recon,energy,mahalanobis)", stats)
    np.testing.assert_allclose(fused, np.mean([np.maximum(z, 0) for z in zs], axis=0))
    assert (fused >= 0).all()


def test_score_names_parse_into_their_parts():
    assert parse_score("energy") == (None, ("energy",))
    assert parse_score("mean+(energy,mahalanobis)") == ("mean+", ("energy", "mahalanobis"))
    assert parse_score("mean(pixel_recon,energy)") == ("mean", ("pixel_recon", "energy"))
    for bad in ("combined", "mean+(energy)", "mean+(energy,energy)", "mean+(energy,max_logit)", "max(energy,mahalanobis)",
                "mean+(energy, mahalanobis)", "mean-(energy,mahalanobis)", "mean(energy)"):
        with pytest.raises(ValueError, match="unknown score"):
            score_parts(bad)


def test_the_plain_mean_lets_a_negative_z_score_cancel_and_the_one_sided_one_does_not():
    scored = Scored(pred=np.zeros(2, dtype=np.int64),
                    components={"energy": np.array([-3.0, 0.0]), "pixel_recon": np.exp(np.array([2.0, 0.0]))})
    stats = {"energy": (0.0, 1.0), "pixel_recon": (0.0, 1.0)}              # z = the value (log scale for pixel)
    np.testing.assert_allclose(decision_score(scored, "mean(pixel_recon,energy)", stats), [-0.5, 0.0])
    np.testing.assert_allclose(decision_score(scored, "mean+(pixel_recon,energy)", stats), [1.0, 0.0])


def test_candidates_are_every_component_and_the_one_sided_fusion_of_every_subset_simplest_first():
    cnn = [c for c in COMPONENTS if c != "openmax"]
    names = candidate_scores(cnn)
    assert names[:len(cnn)] == cnn
    fusions = names[len(cnn):]
    assert len(fusions) == 11 == len(set(fusions))  # 6 pairs, 4 triples, 1 quadruple of the 4 fusable components
    sizes = [len(score_parts(f)) for f in fusions]
    assert sizes == sorted(sizes) and min(sizes) == 2 and all(f.startswith("mean+(") for f in fusions)
    assert candidate_scores(["energy", "pixel_recon"]) == ["energy", "pixel_recon", "mean+(pixel_recon,energy)"]


@pytest.fixture(scope="module")
def tiny_net():
    torch.manual_seed(0)
    return OSRNet(ModelConfig(num_classes=3, width=4, latent_dim=8, feature_code_dim=4))


def test_score_images_predicts_known_classes_and_is_batch_size_independent(tiny_net):
    known = [3, 5, 7]
    images = torch.rand((10, 1, 28, 28), generator=torch.Generator().manual_seed(1))
    cpu = torch.device("cpu")
    whole = score_images(tiny_net, images, known, cpu, batch_size=10, keep_recon=True, keep_features=True)
    pieces = score_images(tiny_net, images, known, cpu, batch_size=3)
    assert len(whole) == 10
    assert set(whole.pred.tolist()) <= set(known)
    with torch.inference_mode():
        logits = tiny_net.eval()(images).logits
    np.testing.assert_array_equal(whole.pred, np.array(known)[logits.argmax(1).numpy()])
    assert set(whole.components) == set(COMPONENTS) - {"openmax"}  # a cnn has no OpenMax detector
    for name, values in whole.components.items():
        assert values.shape == (10,), name
        assert np.isfinite(values).all(), name
        np.testing.assert_allclose(pieces.components[name], values, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(pieces.pred, whole.pred)
    assert whole.recon.shape == (10, 28, 28) and whole.features.shape == (10, 8)
    assert pieces.recon is None and pieces.features is None


def test_score_images_on_no_images(tiny_net):
    empty = score_images(tiny_net, torch.zeros((0, 1, 28, 28)), [3, 5, 7], torch.device("cpu"))
    assert len(empty) == 0
    assert all(v.shape == (0,) for v in empty.components.values())

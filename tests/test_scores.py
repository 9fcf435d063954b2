"""scores.py: one sign convention (higher = more unknown) for every component, and score_images on a tiny
network."""
import numpy as np
import pytest
import torch

from osr_core.models import ModelConfig, OSRNet, Outputs
from osr_core.scores import COMPONENTS, energy, score_images


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

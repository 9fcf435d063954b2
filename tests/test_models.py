"""The two architectures: shapes, and OpenMax's unknown probability on hand-set statistics."""
from __future__ import annotations

import torch

from osr_core.models import ModelConfig, build_model, eucos_distance


def test_both_architectures_give_every_output():
    x = torch.rand(3, 1, 28, 28)
    for arch in ("cnn", "dhrnet"):
        out = build_model(ModelConfig(arch=arch, num_classes=4, width=4, latent_dim=8, feature_code_dim=4,
                                      dhr_code_channels=2)).eval()(x)
        assert out.logits.shape == (3, 4) and out.recon.shape == (3, 1, 28, 28) and out.class_distance.shape == (3,)
        assert (out.openmax is None) == (arch == "cnn")


def test_eucos_distance_is_zero_at_the_mean_and_grows_away_from_it():
    means = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = eucos_distance(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]), means)
    assert torch.allclose(d[0, 0], torch.tensor(0.0), atol=1e-6)
    assert d[2, 0] > d[1, 1] > d[0, 0]   # opposite direction is farthest (cosine term 2)


def test_openmax_unknown_is_low_at_a_class_mean_and_high_far_from_all():
    model = build_model(ModelConfig(arch="dhrnet", num_classes=2, width=4, latent_dim=8, feature_code_dim=4,
                                    dhr_code_channels=2)).eval()
    size = model.openmax_means.shape[1]
    means = torch.zeros(2, size)
    means[0, 0], means[1, 1] = 10.0, 10.0                     # class c's logit is high at its own mean
    model.openmax_means.copy_(means)
    model.openmax_weibull.copy_(torch.tensor([[4.0, 0.5], [4.0, 0.5]]))  # outlier probability 0.5 at distance ~0.46
    near = means[:1].clone()
    far = torch.full((1, size), -3.0)
    far[0, 0] = 10.0                                           # same top logit, but far from the class mean
    p_near = model.openmax_unknown(near, near[:, :2])
    p_far = model.openmax_unknown(far, far[:, :2])
    assert p_near.item() < 0.01 and p_far.item() > 0.5


def test_class_anchors_make_the_logits_minus_the_distances_to_the_anchors():
    model = build_model(ModelConfig(num_classes=3, width=4, latent_dim=8, feature_code_dim=4, class_anchors=10.0)).eval()
    points = torch.tensor([[10.0, 0.0, 0.0], [0.0, 0.0, 10.0], [0.0, 0.0, 0.0]])  # class 0's anchor, 2's, none
    model.classifier = torch.nn.Identity()
    logits = model.classify(points)
    assert torch.allclose(logits, -torch.cdist(points, 10.0 * torch.eye(3)).pow(2))
    assert logits[0].argmax() == 0 and logits[1].argmax() == 2 and logits[0, 0] == logits[1, 2] == 0
    assert logits[2].max() == -100  # far from every anchor: no large logit


def test_a_memory_decoder_draws_only_from_a_sparse_mix_of_its_prototypes():
    from osr_core.models import MEMORY_SHRINK
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=4, width=4, latent_dim=8, feature_code_dim=4, memory_slots=20)).eval()
    features = torch.randn(5, 8) * 3
    mix, weights = model.read_memory(features)
    assert torch.allclose(weights.sum(1), torch.ones(5)) and (weights >= 0).all()
    plain = torch.softmax(features @ model.memory.T, dim=1)
    assert (weights[plain < MEMORY_SHRINK / 20] == 0).all() and (weights > 0).sum(1).lt(20).all()  # sparse
    assert torch.allclose(mix, weights @ model.memory, atol=1e-6)
    # The decoder sees the mix alone: features with the same mix are drawn alike, whatever else they hold.
    assert torch.equal(model.decode(features, None), model.decoder(mix))
    plain_model = build_model(ModelConfig(num_classes=4, width=4, latent_dim=8, feature_code_dim=4)).eval()
    assert not hasattr(plain_model, "memory") and "memory" not in plain_model.state_dict()

"""What training and its final fits compute, checked against references written out here: the joint loss, the
feature autoencoder's detach, the class Gaussians and Mahalanobis distance, OpenMax's Weibull tails, the
batch-norm statistics re-estimated on clean digits, and the pen-and-focus augmentation."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from osr_core.models import ModelConfig, OSRNet, eucos_distance
from osr_core.fitting import fit_class_gaussians, recalibrate_batch_norm, weibull_tails
from osr_core.acceptance import thick_pen, thin_pen
from osr_core.training import compactness_loss, joint_loss, out_of_focus, pen_and_focus

CONFIG = ModelConfig(num_classes=3, width=4, latent_dim=6, feature_code_dim=3)


@pytest.fixture
def net():
    torch.manual_seed(0)
    return OSRNet(CONFIG)


def test_joint_loss_is_cross_entropy_plus_pixel_bce_plus_feature_mse(net):
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 1, 0])
    out = net.train()(x)
    total, ce = joint_loss(out, x, y)
    p = out.recon.double().clamp(1e-12, 1 - 1e-12)
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).mean()
    mse = ((out.feature_recon.double() - out.features.double()) ** 2).mean()
    ce_ref = -F.log_softmax(out.logits.double(), 1)[torch.arange(5), y].mean()
    assert ce.item() == pytest.approx(ce_ref.item(), rel=1e-5)
    assert total.item() == pytest.approx((ce_ref + bce + mse).item(), rel=1e-5)


def test_the_feature_autoencoder_sends_no_gradient_into_the_encoder(net):
    x = torch.rand(4, 1, 28, 28)
    out = net.train()(x)
    F.mse_loss(out.feature_recon, out.features.detach()).backward()
    assert all(p.grad is None or not p.grad.any() for p in net.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.feature_ae.parameters())


def test_class_gaussians_and_mahalanobis_distance_match_a_numpy_reference(net):
    """With the encoder replaced by a fixed map (features = the first 6 pixels), the fit's input is known."""
    class FirstPixels(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :6] * 0.3081 + 0.1307  # undo the model's input normalisation
    net.encoder = FirstPixels()
    rng = np.random.default_rng(0)
    cov = np.diag([2.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    cov[0, 1] = cov[1, 0] = 0.8
    targets = np.repeat(np.arange(3), 400)
    centres = rng.uniform(60, 190, (3, 6))
    pixels = np.clip(np.rint(centres[targets] + 12 * rng.multivariate_normal(np.zeros(6), cov, len(targets))), 0, 255)
    images = np.zeros((len(targets), 28 * 28), np.uint8)
    images[:, :6] = pixels
    fit_class_gaussians(net, torch.from_numpy(images.reshape(-1, 28, 28)), torch.from_numpy(targets),
                        torch.device("cpu"), ridge=1e-3)
    feats = (pixels / 255).astype(np.float32).astype(np.float64)
    ref_means = np.stack([feats[targets == c].mean(0) for c in range(3)])
    centred = feats - ref_means[targets]
    ref_cov = centred.T @ centred / len(feats)
    ref_cov += 1e-3 * np.trace(ref_cov) / 6 * np.eye(6)
    inv = np.linalg.inv(ref_cov)
    probe = rng.uniform(0.2, 0.8, (50, 6))
    ref = np.min([np.einsum("nd,de,ne->n", probe - m, inv, probe - m) for m in ref_means], axis=0)
    np.testing.assert_allclose(net.class_means.numpy(), ref_means, rtol=1e-5, atol=1e-6)
    got = net.class_distance(torch.from_numpy(probe).float()).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-3)
    assert got.std() > 1.0  # not the constant an unfitted (zero) whitening would give


def test_weibull_tails_fit_the_largest_distances_as_scipy_does():
    from scipy.stats import weibull_min
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(300, 5, generator=g) + torch.tensor([3.0, 0, 0, 0, 0])
    targets = torch.arange(300) % 2
    vectors[targets == 1] += torch.tensor([0, 4.0, 0, 0, 0])
    correct = torch.ones(300, dtype=torch.bool)
    correct[::7] = False  # misclassified vectors stay out of the fit
    means, weibull = weibull_tails(vectors, targets, correct, 2, tail_size=25)
    for c in range(2):
        own = vectors[correct & (targets == c)]
        assert torch.allclose(means[c], own.mean(0))
        tail = eucos_distance(own, own.mean(0)[None]).squeeze(1).topk(25).values.double().numpy()
        shape, _, scale = weibull_min.fit(tail, floc=0)
        assert weibull[c].tolist() == pytest.approx([shape, scale], rel=1e-5)
        cdf = weibull_min.cdf(tail, shape, scale=scale)
        assert cdf.max() > 0.9 and np.median(cdf) > 0.3  # the tail is where the fitted distribution puts its mass


def test_batch_norm_statistics_are_re_estimated_from_the_clean_images(net):
    images = (torch.rand(64, 28, 28, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)
    norm = net.encoder[1]
    norm.running_mean.fill_(5.0)
    recalibrate_batch_norm(net, images, torch.device("cpu"), batch_size=16)
    x = (images.unsqueeze(1).float() / 255 - 0.1307) / 0.3081
    first = net.encoder[0](x.contiguous(memory_format=torch.channels_last))
    np.testing.assert_allclose(norm.running_mean.numpy(), first.mean((0, 2, 3)).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert norm.momentum == 0.1 and not net.training


def test_a_training_set_that_leaves_one_image_over_trains_without_a_batch_of_one(data_dir, tmp_path):
    """257 images at the default batch of 256 would end each epoch in a batch of one, which batch norm refuses."""
    import train
    from osr_core.training import batches_per_epoch
    assert train.main(["--train-limit", "257", "--epochs", "1", "--width", "4", "--data-dir", data_dir, "--device",
                       "cpu", "--quiet", "--out", str(tmp_path / "m.pt")]) == 0
    assert (batches_per_epoch(257, 256), batches_per_epoch(258, 256), batches_per_epoch(258, 256, 2)) == (1, 2, 1)
    assert batches_per_epoch(55000, 256) == -(-55000 // 256)  # the default run keeps every batch


def test_a_memory_decoder_trains_and_its_checkpoint_reloads_drawing_from_its_memory(data_dir, tmp_path):
    import train
    from osr_core.io import load_checkpoint
    from osr_core.models import model_from_checkpoint
    from osr_core.training import MEMORY_SLOTS
    out = tmp_path / "m.pt"
    flags = ["--train-limit", "300", "--epochs", "1", "--width", "4", "--data-dir", data_dir, "--device", "cpu",
             "--quiet", "--out", str(out)]
    assert train.main([*flags, "--decoder", "memory"]) == 0
    checkpoint = load_checkpoint(out)
    assert checkpoint["model_config"]["memory_slots"] == MEMORY_SLOTS and checkpoint["recipe"]["decoder"] == "memory"
    model = model_from_checkpoint(checkpoint, torch.device("cpu"))
    digits = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(digits).recon, model.decoder(model.read_memory(model(digits).features)[0]))
    assert train.main([*flags, "--decoder", "memory", "--arch", "dhrnet"]) == 2


def test_class_anchors_train_reload_and_draw_each_digit_to_its_anchor(data_dir, tmp_path):
    import train
    from osr_core.io import load_checkpoint
    from osr_core.models import model_from_checkpoint
    from osr_core.training import anchor_loss
    out = tmp_path / "m.pt"
    flags = ["--train-limit", "300", "--epochs", "1", "--width", "4", "--data-dir", data_dir, "--device", "cpu",
             "--quiet", "--out", str(out), "--class-anchors", "10"]
    assert train.main(flags) == 0
    checkpoint = load_checkpoint(out)
    assert checkpoint["model_config"]["class_anchors"] == 10 and checkpoint["recipe"]["class_anchors"] == 10
    model = model_from_checkpoint(checkpoint, torch.device("cpu"))
    features = model(torch.rand(4, 1, 28, 28)).features
    y = torch.tensor([0, 1, 2, 3])
    anchors = 10 * torch.eye(10)
    # The anchor loss is the mean squared distance of the head's output to the own class's anchor.
    assert torch.allclose(anchor_loss(model.classify(features), y),
                          (model.classifier(features) - anchors[y]).pow(2).sum(1).mean())
    assert train.main([*flags, "--arch", "dhrnet"]) == 2


def test_placeholders_mix_digits_of_two_classes_after_the_second_pooling_and_only_within_the_block(data_dir, tmp_path):
    import train
    from osr_core.io import load_checkpoint
    from osr_core.models import ModelConfig, build_model, normalised
    from osr_core.training import PLACEHOLDER_LAYER, PLACEHOLDER_SHARES, placeholder_pairs, placeholders_appended
    y = torch.tensor([0, 0, 1, 2, 2, 3, 3, 3])
    states = []
    for labels in (y, torch.zeros_like(y)):
        generator = torch.Generator().manual_seed(0)
        first, second, share = placeholder_pairs(labels, 50, generator)
        states.append(generator.get_state())
    assert torch.equal(*states)  # as many draws whatever the classes: a run does not depend on its batches' labels
    first, second, share = placeholder_pairs(y, 50, torch.Generator().manual_seed(0))
    assert 30 < len(first) < 50 and (y[first] != y[second]).all()
    assert ((share >= PLACEHOLDER_SHARES[0]) & (share <= PLACEHOLDER_SHARES[1])).all()

    model = build_model(ModelConfig(num_classes=4, width=4, latent_dim=8, feature_code_dim=4)).eval()
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad(), placeholders_appended(model, first, second, share):
        out = model(x)
    with torch.no_grad():
        middle = model.encoder[:PLACEHOLDER_LAYER + 1](normalised(x))
        mixed = share.view(-1, 1, 1, 1) * middle[first] + (1 - share.view(-1, 1, 1, 1)) * middle[second]
        assert len(out.logits) == 8 + len(first)
        assert torch.allclose(out.features[8:], model.encoder[PLACEHOLDER_LAYER + 1:](mixed), atol=1e-6)
        assert torch.allclose(out.logits[:8], model(x).logits, atol=1e-6) and len(model(x).logits) == 8  # hook gone

    ckpt = tmp_path / "m.pt"
    flags = ["--train-limit", "300", "--epochs", "1", "--width", "4", "--data-dir", data_dir, "--device", "cpu",
             "--quiet", "--out", str(ckpt), "--placeholders", "0.25"]
    assert train.main(flags) == 0 and load_checkpoint(ckpt)["recipe"]["placeholders"] == 0.25
    assert train.main([*flags, "--arch", "dhrnet"]) == 2 and train.main([*flags, "--decoder", "conditional"]) == 2


def test_posed_negatives_are_the_known_digits_a_pose_turns_into_no_digit_found_by_digit_not_class_index():
    """Training labels are class indices: with known classes (3, 8) index 0 is a 3, which a pose changes, and index 1
    an 8, which every pose leaves an 8, so every negative is a posed 3 (a 3 is never turned upside down and mirrored,
    which leaves a 3)."""
    from osr_core import outliers
    from osr_core.recipe import Recipe
    from osr_core.training import outlier_negatives
    x = torch.rand(8, 1, 28, 28)
    y = torch.tensor([0, 1, 1, 0, 1, 1, 1, 0])
    recipe = Recipe(known_classes=(3, 8), oe_fraction=2.0, batch_size=8, oe_negatives="poses")
    negatives = outlier_negatives(recipe, x, y, torch.Generator().manual_seed(0))
    threes = x[y == 0]
    allowed = [pose(threes) for name, pose in outliers.POSES.items() if 3 not in outliers.POSE_KEEPS_A_DIGIT[name]]
    assert len(negatives) == 16
    assert all(any(torch.equal(n, a[i]) for a in allowed for i in range(len(threes))) for n in negatives)
    assert not any(torch.equal(n, outliers.POSES["upside_down_mirror"](threes)[i]) for n in negatives for i in range(3))
    chimeras = outlier_negatives(Recipe(known_classes=(3, 8), oe_fraction=2.0, batch_size=8), x, y,
                                 torch.Generator().manual_seed(0))
    assert len(chimeras) == 16 and not torch.equal(chimeras, negatives)


def test_a_recipe_this_code_cannot_train_is_refused_by_fit_itself_in_train_pys_words():
    """Refused wherever training starts (train.py, the benchmarks, the protocol), not in train.py alone."""
    from dataclasses import replace

    from osr_core.cli import UserError
    from osr_core.recipe import Recipe
    from osr_core.training import check_recipe, fit
    default = Recipe()
    check_recipe(default, processes=2)
    for change, processes, message in [({"arch": "dhrnet", "class_anchors": 10.0}, 1, "--class-anchors is for --arch cnn"),
                                       ({"arch": "dhrnet", "decoder": "memory"}, 1, "--decoder memory is for --arch cnn"),
                                       ({"arch": "dhrnet", "placeholders": 0.25}, 1, "--placeholders is for --arch cnn"),
                                       ({"decoder": "conditional", "placeholders": 0.25}, 1, "not for --decoder conditional"),
                                       ({"decoder": "conditional"}, 2, "one process only"),
                                       ({"placeholders": 0.25}, 2, "one process only"),
                                       ({"oe_negatives": "poses"}, 1, "it needs --oe-fraction"),
                                       ({"oe_negatives": "poses", "oe_fraction": 0.25, "known_classes": (0, 8)}, 1,
                                        "a known class other than 0 and 8")]:
        with pytest.raises(UserError, match=re.escape(message)):
            check_recipe(replace(default, **change), processes)
    with pytest.raises(UserError, match="is for --arch cnn"):
        fit(replace(default, arch="dhrnet", class_anchors=10.0), "no data needed", torch.device("cpu"))


def test_another_pen_changes_the_share_asked_for_each_way_by_its_amount_and_nothing_at_share_0():
    strokes = torch.zeros(600, 1, 28, 28)
    strokes[:, 0, 6:22, 12:15] = 1.0                      # a bar three pixels wide: a stroke of a "1"
    generator = torch.Generator().manual_seed(0)
    assert pen_and_focus(strokes, generator, 0.0) is strokes
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(0).get_state())  # share 0 draws nothing
    out = pen_and_focus(strokes, generator, 0.5)
    changed = (out - strokes).abs().flatten(1).amax(1) > 1e-6
    assert 0.42 < changed.float().mean() < 0.58
    # Each changed digit lies on the segment from the digit to one of its three fully changed selves, all three used.
    ways = torch.stack([(thick_pen(strokes) - strokes), (thin_pen(strokes) - strokes), (out_of_focus(strokes) - strokes)])
    shift = (out - strokes)[changed]
    used = set()
    for d in shift:
        fits = [k for k, w in enumerate(ways[:, 0]) if torch.allclose(d, (d * w).sum() / (w * w).sum() * w, atol=1e-5)]
        assert fits, "a digit changed in a way that is neither a pen nor focus"
        used.update(fits)
    assert used == {0, 1, 2}
    assert out.min() >= 0 and out.max() <= 1 + 1e-6


def test_the_compactness_loss_is_the_within_class_share_of_the_variance_whatever_the_scale():
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.integers(0, 4, 300))
    f = torch.from_numpy(rng.normal(size=(300, 16)).astype(np.float32)) + 3 * torch.eye(16)[y * 3]
    # Against numpy: trace of the within-class scatter over trace of the total scatter.
    x, labels = f.double().numpy(), y.numpy()
    within = sum(((x[labels == c] - x[labels == c].mean(0)) ** 2).sum() for c in np.unique(labels))
    np.testing.assert_allclose(compactness_loss(f, y).item(), within / ((x - x.mean(0)) ** 2).sum(), rtol=1e-5)
    # Shrinking or growing every feature cannot lower it; classes that are single points give 0; labels that say
    # nothing about the features give about 1.
    np.testing.assert_allclose(compactness_loss(5 * f, y).item(), compactness_loss(f, y).item(), rtol=1e-5)
    assert compactness_loss(torch.eye(16)[y * 3] * 2.0, y).item() < 1e-6
    assert 0.95 < compactness_loss(f, torch.from_numpy(rng.integers(0, 4, 300))).item() <= 1.0
    # It trains: its gradient draws a class together.
    g = f.clone().requires_grad_(True)
    compactness_loss(g, y).backward()
    assert compactness_loss(f - 0.1 * g.grad, y).item() < compactness_loss(f, y).item()

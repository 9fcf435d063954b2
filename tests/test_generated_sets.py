"""Every generated set is a function of (seed, index): image i is the same whether 10 or 10,000 are made, made
alone, in a batch that starts elsewhere, or in another order; the sets made from digits never pair a digit with
one of its own class."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from osr_core import characters, data, forms, generated, letters, outliers


@pytest.fixture(scope="module")
def mnist(data_dir):
    images, labels = data.load_mnist(data_dir, train=False)
    return data.to_float(images[:2000]), labels[:2000]


def _same_prefix(make, small=10, large=2000):
    """Image i (i < small) of a set of `small` equals image i of a set of `large`."""
    a, b = make(small), make(large)
    assert len(a) == small and len(b) == large
    for i in range(small):
        assert np.array_equal(np.asarray(a[i]), np.asarray(b[i])), i


@pytest.mark.parametrize("name", ["uniform_noise", "natural_crops", "letters", "characters"])
def test_generated_sets_keep_their_first_images_at_any_count(name):
    make = {"uniform_noise": lambda n: generated.uniform_noise(n, 3),
            "natural_crops": lambda n: generated.natural_crops(n, 3),
            "letters": lambda n: [s["image"] for s in letters.generate(n, 3)],
            "characters": lambda n: [s["image"] for s in characters.generate(n, 3)]}[name]
    _same_prefix(make, large=10000 if name == "uniform_noise" else 300)


@pytest.mark.parametrize("name", ["mnist_noise", "gaussian_noise", "rotation", "rotation_and_noise", "scans",
                                  "pose", "pixel_shuffle", "blur", "negative", "training_negatives"])
def test_sets_made_from_digits_keep_image_i_whatever_the_number_of_digits(mnist, name):
    digits, labels = mnist

    def make(n):
        x, y = digits[:n], labels[:n]
        if name == "mnist_noise":
            return generated.mnist_noise(x, 4)
        if name in ("gaussian_noise", "rotation", "rotation_and_noise"):
            return generated.distorted_digits(x, 4)[name]
        if name == "scans":
            return generated.scanned_digits((x[:, 0] * 255).round().to(torch.uint8).numpy(), 4)
        if name == "training_negatives":
            return outliers.negatives_from(x, y, 4)
        if name == "pose":  # made only of digits a pose changes (not 0 or 8): compare those
            return outliers.validation_proxy(x, y, 4)["pose"]
        return outliers.validation_proxy(x, y, 4)[name]
    small, large = make(10), make(2000)
    for i in range(len(small)):
        assert np.array_equal(np.asarray(small[i]), np.asarray(large[i])), i


# name -> make(indices): the images of those indices, in that order (made from the digits of those indices).
def _makers(digits, labels):
    u8 = (digits[:, 0] * 255).round().to(torch.uint8).numpy()
    pick = lambda idx: torch.as_tensor(list(idx), dtype=torch.long)
    return {
        "uniform_noise": lambda idx: generated.uniform_noise(0, 5, idx),
        "natural_crops": lambda idx: generated.natural_crops(0, 5, idx),
        "mnist_noise": lambda idx: generated.mnist_noise(digits[pick(idx)], 5, idx),
        "rotation_and_noise": lambda idx: generated.distorted_digits(digits[pick(idx)], 5, indices=idx)["rotation_and_noise"],
        "scans": lambda idx: generated.scanned_digits(u8[list(idx)], 5, idx),
        "no_digit": lambda idx: forms.no_digit_images(0, 5, idx)[0],
        "letters": lambda idx: [s["image"] for s in letters.generate(0, 5, indices=idx)],
        "characters": lambda idx: [s["image"] for s in characters.generate(0, 5, indices=idx)],
        "pixel_shuffle": lambda idx: outliers.validation_proxy(digits[pick(idx)], labels[pick(idx)], 5, idx)["pixel_shuffle"],
        "blur": lambda idx: outliers.validation_proxy(digits[pick(idx)], labels[pick(idx)], 5, idx)["blur"],
    }


@pytest.mark.parametrize("name", ["uniform_noise", "natural_crops", "mnist_noise", "rotation_and_noise", "scans",
                                  "no_digit", "letters", "characters", "pixel_shuffle", "blur"])
def test_image_i_is_the_same_alone_in_a_batch_starting_elsewhere_and_in_another_order(mnist, name):
    """A generator that drew from one random stream for the whole batch would fail every comparison here."""
    make = _makers(*mnist)[name]
    batch = make(range(20))
    alone = make([13])[0]
    shifted = make(range(10, 16))[3]
    backwards = make(range(19, -1, -1))[19 - 13]
    for other in (alone, shifted, backwards):
        assert np.array_equal(np.asarray(batch[13]), np.asarray(other))
    assert not np.array_equal(np.asarray(batch[13]), np.asarray(batch[12]))


def test_partners_are_never_of_the_same_class(mnist):
    _, labels = mnist
    for seed in range(3):
        partners = outliers.earlier_partners(labels, seed)
        assert (labels[partners] != labels).all()
        u = torch.rand(len(labels), 2, generator=torch.Generator().manual_seed(seed))
        in_batch = outliers.different_class_partners(labels, u[:, 0], u[:, 1])
        assert (labels[in_batch] != labels).all()


def test_chimeras_join_two_digits_and_overlays_hold_both(mnist):
    digits, labels = mnist
    x, y = digits[:200], labels[:200]
    partners = outliers.earlier_partners(y, 0)
    u = outliers.uniforms(200, 4, 0)
    chim, over = outliers.chimeras(x, y, u, partners), outliers.overlays(x, y, u, partners)
    from_base = (chim * ((chim == x) & (x > 0))).flatten(1).sum(1) / chim.flatten(1).sum(1)
    assert ((from_base > 0.2) & (from_base < 0.8)).float().mean() > 0.9  # ink from both digits, not one whole
    assert (over >= x).all()                                          # the digit is all there, the other over it


def test_poses_leave_no_digit_a_pose_keeps(mnist):
    """Each posed image is its digit under one of the poses allowed for that digit, and never under a pose that
    leaves it a digit (a 6 is never turned half round into a 9, a 1 never mirrored); every allowed pose is used."""
    digits, labels = mnist
    posed = outliers.validation_proxy(digits, labels, 0)["pose"]
    changed = outliers.pose_changes_class(labels)
    assert len(posed) == int((~torch.isin(labels, torch.tensor([0, 8]))).sum()) == int(changed.sum())
    assert not changed[labels == 0].any() and not changed[labels == 8].any() and changed[labels == 1].all()
    used = set()
    for image, digit, label in zip(posed, digits[changed], labels[changed].tolist()):
        matching = {name for name, pose in outliers.POSES.items() if torch.equal(pose(digit[None])[0], image)}
        allowed = {name for name, keeps in outliers.POSE_KEEPS_A_DIGIT.items() if label not in keeps}
        assert matching & allowed, (label, matching)  # a pose chosen regardless of the digit fails here
        used |= matching & allowed
    assert used == set(outliers.POSES)


def test_distortions_stay_within_their_stated_ranges(mnist):
    digits, _ = mnist
    grey = torch.full((300, 1, 28, 28), 0.5)
    noise = (generated.distorted_digits(grey, 0)["gaussian_noise"] - 0.5).numpy().ravel()
    clipped = np.clip(np.random.default_rng(0).normal(0, 0.3, 10 ** 6), -0.5, 0.5)  # N(0, 0.3) cut by the clamp
    assert abs(noise.std() - clipped.std()) < 0.003 and abs(noise.mean()) < 0.003
    x = digits[:300]
    out = generated.distorted_digits(x, 0)
    # Each rotation is one of the stated angles: the best of -30..30 degrees in steps of 1 rebuilds it.
    angles = torch.arange(-30, 31, dtype=torch.float32)
    for i in range(0, 300, 60):
        candidates = generated.rotate(x[i:i + 1].expand(len(angles), -1, -1, -1), angles)
        best = (candidates - out["rotation"][i]).abs().flatten(1).sum(1).min()
        assert float(best) < 0.05 * float(x[i].sum()), i

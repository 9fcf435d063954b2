"""Unknowns made from MNIST digits alone: the negatives that outlier exposure trains on, and the
validation proxies that choose the decision score.

The two never share a transformation family, so the proxy measures how what was learnt from the
negatives carries over to unknowns of a kind the model never saw:
- **training negatives**: `chimera` (part of a digit joined to the rest of a digit of another class,
  along a vertical or horizontal line) and `overlay` (two digits of different classes drawn over
  each other, the second shifted); a recipe may train on posed digits instead (`--oe-negatives poses`,
  `posed_negatives`), the proxy's `pose` family, which its models have then seen;
- **validation proxy**: `pose` (a digit mirrored, turned upside down or on its side: digit strokes, no
  seam, not a digit), `pixel_shuffle` (a digit's pixels in random places: digit ink, no strokes), `blur`
  (a digit blurred to a smooth blob), `negative` (a digit in negative: dense ink, the digit's shape
  left as a gap; every image from outside is put white-on-black before the model sees it, so the model
  never meets a real digit so drawn), `ink_noise` (every pixel drawn from the digit's own ink: noise as dense
  as a grainy photo's, as bright as the strokes) and `smooth_blobs` (the digit's pixels shuffled, then blurred
  into clouds that fill the frame). Near (pose) and far, sparse (shuffle, blur), dense (negative, ink noise)
  and textured (blobs). The far families are floors for the decision (selection.py); the near-digit signal
  that ranks it is leave_out.py's. `ink_noise` and `smooth_blobs` were added after the reported far sets had
  shown uniform noise and MNIST-Noise slipping through a mean of the parts: the one choice of their design that
  saw a reported set (README.md tells it).

Every function takes its randomness as a tensor `u` of uniform numbers in [0, 1), one row per output
image, so the same code serves a training batch (rows drawn from the training generator) and a
proxy set (row i drawn from `numpy.random.default_rng([seed, i])`: image i is a function of (seed, i)).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .generated import image_rng

# Pose transforms, each a function of (B, 1, 28, 28) images.
POSES = {
    "mirror": lambda x: x.flip(-1),
    "upside_down_mirror": lambda x: x.flip(-2),
    "rotate_180": lambda x: x.flip(-1).flip(-2),
    "rotate_90": lambda x: x.rot90(1, (-2, -1)),
    "rotate_270": lambda x: x.rot90(-1, (-2, -1)),
}
# Digits that a pose leaves a digit, so a posed copy of them is no unknown. Visual criterion: the
# transformed shape, as handwritten, reads as some digit. 0, 1 and 8 are near-symmetric under every
# pose except a quarter turn of 1 (a dash, kept); 3 is its own upside-down mirror; 6 and 9 turn into
# each other by a half turn, and their upside-down mirrors are mirrored 9 and 6.
POSE_KEEPS_A_DIGIT = {
    "mirror": {0, 1, 8},
    "upside_down_mirror": {0, 1, 3, 6, 8, 9},
    "rotate_180": {0, 1, 6, 8, 9},
    "rotate_90": {0, 8},
    "rotate_270": {0, 8},
}
PROXY_FAMILIES = ("pose", "pixel_shuffle", "blur", "negative", "ink_noise", "smooth_blobs")
# The families the decision must handle at a floor (selection.py): ink without a digit's strokes, a smooth blob,
# dense ink, dense noise, clouds. Poses are measured in the evaluation but choose nothing: users do not send
# mirrored digits.
FAR_FAMILIES = ("pixel_shuffle", "blur", "negative", "ink_noise", "smooth_blobs")
PROXY_DESCRIPTIONS = {
    "pose": "digits mirrored, upside down or on their side (where that leaves no digit)",
    "pixel_shuffle": "digits with their pixels in random places",
    "blur": "digits blurred to smooth blobs",
    "negative": "digits in negative (dark strokes on white)",
    "ink_noise": "noise whose every pixel is drawn from a digit's own ink",
    "smooth_blobs": "digits' pixels shuffled and blurred into clouds that fill the frame",
}


def uniforms(n: int, k: int, seed: int, indices=None, stream: int | None = None) -> torch.Tensor:
    """(n, k) uniform numbers, the row of index i from default_rng([seed, i]) (or [seed, i, stream]: another
    family's numbers) for rows 0 .. n-1, or those of `indices`, in their order: a proxy image is a function of
    (seed, i)."""
    rows = range(n) if indices is None else list(indices)
    out = np.empty((len(rows), k), np.float32)
    for row, i in enumerate(rows):
        out[row] = image_rng(seed, i, stream).random(k, dtype=np.float32)
    return torch.from_numpy(out)


def different_class_partners(labels: torch.Tensor, u_class: torch.Tensor, u_member: torch.Tensor) -> torch.Tensor:
    """For each image, the index of an image of another class (uniform over the other classes present,
    then over that class's images). Images of a class that is alone in `labels` pair with themselves
    (only possible when a single class is present)."""
    classes, counts = labels.unique(return_counts=True)                      # (C,), (C,)
    order = labels.argsort(stable=True)
    starts = torch.cumsum(counts, 0) - counts
    own = torch.searchsorted(classes, labels)                                  # class position of each image
    c = len(classes)
    if c < 2:
        return torch.arange(len(labels))
    other = (own + 1 + (u_class * (c - 1)).long().clamp_max(c - 2)) % c        # any class but its own
    member = (u_member * counts[other]).long().clamp_max(counts[other] - 1)
    return order[starts[other] + member]


def _ink_cut(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """x: (B, 1, 28, 28); q: (B,). The first column index at which the cumulative share of ink reaches q."""
    profile = x.sum(dim=(1, 2)).cumsum(1)                                     # (B, 28)
    share = profile / profile[:, -1:].clamp_min(1e-6)
    return (share < q[:, None]).sum(1)


def _shift_columns(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Moves each image right by shift[b] columns (left when negative), filling with black."""
    source = torch.arange(28).view(1, 28) - shift.view(-1, 1)                 # (B, 28)
    valid = ((source >= 0) & (source < 28)).view(-1, 1, 1, 28)
    index = source.clamp(0, 27).view(-1, 1, 1, 28).expand_as(x)
    return x.gather(3, index) * valid


def earlier_partners(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """For a generated set: each image's partner, an image of another class drawn from default_rng([seed, i, 1])
    among the images before it (the first image of another class after it, while none comes before). Image i's
    partner so depends on images 0..i only: a longer set keeps every earlier pairing."""
    labels = labels.tolist()
    partners = []
    for i, label in enumerate(labels):
        earlier = [j for j in range(i) if labels[j] != label] if i < 64 else None
        if earlier is not None and not earlier:
            later = next((j for j in range(i + 1, len(labels)) if labels[j] != label), i)
            partners.append(later)
            continue
        rng = image_rng(seed, i, stream=1)
        while True:  # rejection sampling: another class is found within a few draws
            j = int(rng.integers(i)) if earlier is None else earlier[int(rng.integers(len(earlier)))]
            if labels[j] != label:
                partners.append(j)
                break
    return torch.tensor(partners, dtype=torch.long)


def chimeras(x: torch.Tensor, labels: torch.Tensor, u: torch.Tensor, partners: torch.Tensor | None = None) -> torch.Tensor:
    """u: (B, 4). The left (or top) part of each digit joined to the rest of a digit of another class. Each
    digit is cut where its own ink divides in the ratio q : 1 - q (q in 0.35-0.65), and the partner is moved
    so that its cut meets the first one: both parts always carry a fair share of their digit's strokes.
    `partners` (indices into x) default to a random other-class image of the batch."""
    partner = x[different_class_partners(labels, u[:, 0], u[:, 1]) if partners is None else partners]
    q = 0.35 + 0.3 * u[:, 2]
    vertical = (u[:, 3] < 0.5).view(-1, 1, 1, 1)
    # A horizontal cut is a vertical cut of the transposed images.
    a, b = torch.where(vertical, x, x.transpose(-1, -2)), torch.where(vertical, partner, partner.transpose(-1, -2))
    cut_a, cut_b = _ink_cut(a, q), _ink_cut(b, q)
    b = _shift_columns(b, cut_a - cut_b)
    joined = torch.where(torch.arange(28).view(1, 1, 1, 28) < cut_a.view(-1, 1, 1, 1), a, b)
    return torch.where(vertical, joined, joined.transpose(-1, -2))


def overlays(x: torch.Tensor, labels: torch.Tensor, u: torch.Tensor, partners: torch.Tensor | None = None) -> torch.Tensor:
    """u: (B, 4). Each digit with a digit of another class drawn over it (pixel-wise maximum), shifted by up
    to 4 pixels each way. `partners` as for chimeras."""
    partner = x[different_class_partners(labels, u[:, 0], u[:, 1]) if partners is None else partners]
    shift = ((u[:, 2:4] * 9).long().clamp_max(8) - 4)                        # (B, 2) in -4..4
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = -shift.float() * 2 / 28
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.maximum(x, F.grid_sample(partner, grid, align_corners=False, padding_mode="zeros"))


def poses(x: torch.Tensor, labels: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """u: (B, 1). Each digit in a pose drawn among those that do not leave it a digit. Digits that every
    pose leaves a digit (0, 8) must be dropped first (`pose_changes_class`)."""
    names = list(POSES)
    out = x.clone()
    choice = torch.empty(len(x), dtype=torch.long)
    for d in labels.unique().tolist():
        allowed = [i for i, n in enumerate(names) if d not in POSE_KEEPS_A_DIGIT[n]]
        if not allowed:
            raise ValueError(f"no pose turns digit {d} into a non-digit; drop it with pose_changes_class")
        mask = labels == d
        pick = (u[mask, 0] * len(allowed)).long().clamp_max(len(allowed) - 1)
        choice[mask] = torch.tensor(allowed)[pick]
    for i, name in enumerate(names):
        mask = choice == i
        if mask.any():
            out[mask] = POSES[name](x[mask])
    return out


def pose_changes_class(labels: torch.Tensor) -> torch.Tensor:
    """True where some pose turns the digit into a non-digit (every digit but 0 and 8)."""
    return torch.tensor([any(int(l) not in keep for keep in POSE_KEEPS_A_DIGIT.values()) for l in labels.tolist()],
                        dtype=torch.bool)


def pixel_shuffles(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """u: (B, 784). Each digit's pixels put in a random order: the ink of a digit without its strokes."""
    order = u.argsort(dim=1)
    return x.flatten(1).gather(1, order).view_as(x)


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A 28x28 image (float64) blurred by a Gaussian of `sigma` px with zero padding: K @ image @ K.T with K the 28x28
    blur matrix, one image at a time (a batched convolution picks its algorithm by batch size, and the same image
    would blur a few ulps differently in another batch)."""
    offsets = np.arange(28)[:, None] - np.arange(28)[None, :]                  # (28, 28): row - column
    taps = np.exp(-np.arange(-12, 13) ** 2 / (2 * sigma ** 2))
    taps /= taps.sum()
    k = np.where(np.abs(offsets) <= 12, taps[np.clip(offsets + 12, 0, 24)], 0.0)
    return k @ image @ k.T


def blurs(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """u: (B, 1). Each digit blurred by a Gaussian of sigma 2.5-4 px, rescaled to its original peak."""
    out = np.empty((len(x), 28, 28), np.float32)
    for b, (image, draw) in enumerate(zip(x[:, 0].double().numpy(), u[:, 0].double().numpy())):
        both = _gaussian_blur(image, 2.5 + 1.5 * draw)
        out[b] = np.clip(both / max(both.max(), 1e-6) * image.max(), 0, 1)
    return torch.from_numpy(out).unsqueeze(1)


INK = 0.1  # a digit's ink: its pixels above this level


def ink_noise(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """u: (B, 784). Every pixel drawn (uniformly, with replacement) from the digit's own ink values: noise that fills
    the frame, as bright as the digit's strokes."""
    flat = x.flatten(1)
    ranked = flat.sort(dim=1, descending=True).values                          # ink first
    n_ink = (flat > INK).sum(1, keepdim=True).clamp_min(1)                     # (B, 1)
    pick = (u * n_ink).long().minimum(n_ink - 1)
    return ranked.gather(1, pick).view_as(x)


def smooth_blobs(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """u: (B, 785). The digit's pixels in random places, blurred by a Gaussian of sigma 1-2 px into clouds that fill
    the frame, stretched to the digit's peak: its ink spread as texture."""
    shuffled = pixel_shuffles(x, u[:, :784])
    out = np.empty((len(x), 28, 28), np.float32)
    for b, (image, draw, peak) in enumerate(zip(shuffled[:, 0].double().numpy(), u[:, 784].double().numpy(),
                                               x.flatten(1).amax(1).double().numpy())):
        cloud = _gaussian_blur(image, 1.0 + draw)
        low, high = cloud.min(), cloud.max()
        out[b] = np.clip((cloud - low) / max(high - low, 1e-6) * peak, 0, 1)
    return torch.from_numpy(out).unsqueeze(1)


def training_negatives(x: torch.Tensor, labels: torch.Tensor, n: int, generator: torch.Generator,
                       families=None) -> torch.Tensor:
    """n negatives from a training batch (x: (B, 1, 28, 28), labels (B,)): of batch images drawn at random, each
    paired with another drawn image of a different class, an equal share of each family (default: chimeras and
    overlays, half each)."""
    families = families or (chimeras, overlays)
    pick = torch.randint(len(x), (n,), generator=generator)
    u = torch.rand(n, 4, generator=generator)
    base, base_labels = x[pick], labels[pick]
    cuts = [n * i // len(families) for i in range(len(families) + 1)]
    return torch.cat([family(base[a:b], base_labels[a:b], u[a:b]) for family, a, b in zip(families, cuts, cuts[1:])])


def posed_negatives(x: torch.Tensor, digits: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n negatives from a training batch (x: (B, 1, 28, 28); digits: (B,), the digits they are, not class indices):
    batch images drawn at random among those a pose turns into no digit (0 and 8 never), each mirrored or turned into
    such a pose. Whole strokes of a digit in an arrangement that is no digit; the validation proxy's `pose` family, so
    a model trained on them has seen that family."""
    keep = pose_changes_class(digits).nonzero().squeeze(1)
    pick = keep[torch.randint(len(keep), (n,), generator=generator)]
    return poses(x[pick], digits[pick], torch.rand(n, 1, generator=generator))


def negatives_from(digits: torch.Tensor, labels: torch.Tensor, seed: int) -> torch.Tensor:
    """The training negatives' families applied to a fixed set of digits (chimeras and overlays, alternately),
    image i a function of (seed, i) and digits 0..i: how well a model learnt what outlier exposure rejects."""
    u, partners = uniforms(len(digits), 4, seed), earlier_partners(labels, seed)
    chimera = torch.arange(len(digits)) % 2 == 0  # even images chimeras, odd ones overlays
    return torch.where(chimera.view(-1, 1, 1, 1), chimeras(digits, labels, u, partners), overlays(digits, labels, u, partners))


def validation_proxy(digits: torch.Tensor, labels: torch.Tensor, seed: int, indices=None) -> dict[str, torch.Tensor]:
    """The validation proxy from validation digits: one set per family; digits[k] is image indices[k] (k by
    default), each image a function of (seed, its index) and its digit."""
    return dict(validation_proxy_families(digits, labels, seed, indices))


def validation_proxy_families(digits: torch.Tensor, labels: torch.Tensor, seed: int, indices=None):
    """validation_proxy's (family, images), made one at a time: a caller that scores each family before asking for
    the next never holds them all (about 100 MB for 5,000 digits)."""
    n = len(digits)
    u = uniforms(n, 1 + 784 + 1, seed, indices)
    posable = pose_changes_class(labels)
    yield "pose", poses(digits[posable], labels[posable], u[posable, :1])
    yield "pixel_shuffle", pixel_shuffles(digits, u[:, 1:785])
    yield "blur", blurs(digits, u[:, 785:])
    del u
    yield "negative", 1.0 - digits
    more = uniforms(n, 784 + 785, seed, indices, stream=1)  # the families added later draw from their own stream
    yield "ink_noise", ink_noise(digits, more[:, :784])
    yield "smooth_blobs", smooth_blobs(digits, more[:, 784:])

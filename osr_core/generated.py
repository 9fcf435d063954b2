"""Sets made from a seed: uniform noise, MNIST-Noise, crops of natural photos, digits under covariate shift and
digits as a scan shows them. Every generated image is a function of (seed, its index) alone: image_rng is the one
source of randomness of every generated set of the project (letters, characters, forms, proxies, acceptance), so
image i is the same made alone, in a batch that starts elsewhere, on any machine and device.

All images leave as float32 in [0, 1], white strokes on black, (N, 1, 28, 28) tensors (scans: a list of sheets).
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F


def image_rng(seed: int, index: int, stream: int | None = None) -> np.random.Generator:
    """The random numbers of image `index` of a set made from `seed` (`stream`: another use of the same image's
    numbers, drawn apart from the first)."""
    return np.random.default_rng([seed, index] if stream is None else [seed, index, stream])


def _indices(n: int, indices) -> list[int]:
    """The indices of the images to make: 0 .. n-1 unless given (any order, any subset)."""
    return list(range(n)) if indices is None else [int(i) for i in indices]


def uniform_noise(n: int, seed: int, indices=None) -> torch.Tensor:
    """Images 0 .. n-1 of uniform noise in [0, 1] (or those of `indices`), image i from default_rng([seed, i])."""
    images = np.stack([image_rng(seed, i).random((28, 28), dtype=np.float32) for i in _indices(n, indices)])
    return torch.from_numpy(images).unsqueeze(1)


def mnist_noise(digits: torch.Tensor, seed: int, indices=None) -> torch.Tensor:
    """MNIST-Noise (CROSR): each digit's background pixels replaced by uniform noise. digits[k] is image indices[k]
    (k by default), and its noise is that of uniform_noise's image of the same index."""
    noise = uniform_noise(len(digits), seed, indices)
    return torch.where(digits > 0, digits, noise)


def natural_crops(n: int, seed: int, indices=None) -> torch.Tensor:
    """Random grayscale crops of scikit-learn's bundled photos, resized to 28x28; image i from default_rng([seed, i])."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(p).convert("L") for p in load_sample_images().images]
    crops = []
    for i in _indices(n, indices):
        rng = image_rng(seed, i)
        photo = photos[int(rng.integers(len(photos)))]
        side = int(rng.integers(28, min(photo.size) // 2))
        left, top = int(rng.integers(photo.size[0] - side)), int(rng.integers(photo.size[1] - side))
        crop = photo.crop((left, top, left + side, top + side)).resize((28, 28), Image.BILINEAR)
        crops.append(np.asarray(crop, dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(crops)).unsqueeze(1)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    theta = degrees * math.pi / 180
    cos, sin, zero = theta.cos(), theta.sin(), torch.zeros_like(theta)
    affine = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(affine, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def scanned_digits(digits_u8: np.ndarray, seed: int, indices=None) -> list[np.ndarray]:
    """MNIST digits as a scan or photo of paper shows them: dark ink on light paper, the digit drawn 40-120 px
    tall somewhere on a larger sheet, paper and ink levels, sensor noise and JPEG compression (quality 50-95)
    drawn at random. digits_u8: (N, 28, 28) uint8 -> N grayscale images in [0, 1] of various sizes; digits_u8[k]
    is image indices[k] (k by default), a function of (seed, that index) and the digit. They are known digits:
    the user preprocessing must recover them."""
    from PIL import Image

    scans = []
    for i, digit in zip(_indices(len(digits_u8), indices), digits_u8):
        rng = image_rng(seed, i)
        side = int(rng.integers(40, 121))
        width, height = (int(side * f) + 8 for f in rng.uniform(1.1, 2.5, 2))
        paper, ink = rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.35)
        drawn = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.LANCZOS), np.float32) / 255
        sheet = np.full((height, width), paper, np.float32)
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        sheet[top:top + side, left:left + side] -= np.clip(drawn, 0, 1) * (paper - ink)
        sheet += rng.normal(0, rng.uniform(0, 0.03), sheet.shape).astype(np.float32)
        buf = io.BytesIO()
        Image.fromarray(np.rint(np.clip(sheet, 0, 1) * 255).astype(np.uint8)).save(buf, "JPEG", quality=int(rng.integers(50, 96)))
        scans.append(np.asarray(Image.open(buf).convert("L"), np.float32) / 255)
    return scans


def distorted_digits(digits: torch.Tensor, seed: int, noise_std: float = 0.3, max_degrees: float = 30.0,
                     indices=None) -> dict[str, torch.Tensor]:
    """Known digits under covariate shift: Gaussian noise, rotation up to 30 degrees, and both. digits[k] is image
    indices[k] (k by default), its noise and angle from default_rng([seed, that index])."""
    draws = [image_rng(seed, i) for i in _indices(len(digits), indices)]
    noise = torch.from_numpy(np.stack([r.standard_normal((1, 28, 28), dtype=np.float32) for r in draws]) * noise_std) \
        if len(digits) else torch.zeros_like(digits)
    degrees = torch.tensor([r.uniform(-max_degrees, max_degrees) for r in draws], dtype=torch.float32)
    rotated = rotate(digits, degrees)
    return {
        "gaussian_noise": (digits + noise).clamp_(0, 1),
        "rotation": rotated,
        "rotation_and_noise": (rotated + noise).clamp_(0, 1),
    }

"""Validation digits as users send them: the acceptance family that a decision must keep accepting.

A decision that rejects every image a little unlike MNIST's own digits finds every unknown and is useless: a
digit written with another pen, slanted, photographed out of focus or scanned from paper is still a digit. This
family is made from the checkpoint's validation digits, image i by the distortion KINDS[i % 5] drawn from
generated.image_rng(seed, i, stream=3), and read through the same preprocessing as a user's files (images.as_batch):

- `thick_pen`: strokes one pixel fatter on each side (a marker);
- `thin_pen`: strokes half a pixel thinner on each side (a fine pen; drawn at twice the size, eroded, shrunk);
- `slant`: sheared 10-24 degrees to either side (a hand that leans);
- `soft_focus`: blurred by a Gaussian of sigma 0.7-1.1 px (a phone photo slightly out of focus);
- `scan`: dark ink on a larger sheet of paper, 40-120 px tall, with sensor noise and JPEG (generated.scanned_digits).

By default none of these is a training augmentation (train.py warps by small rotations, scalings and shifts), so
the family measures how the decision carries to digits the model was not taught to expect; a recipe trained with
--pen has seen pens and focus like the first, second and fourth kinds (training.pen_and_focus), and for it the
family measures less. The scans are drawn by
the same generator as the report's `scans` covariate-shift row, on other digits: that row is not untouched by
the selection, and the report says so.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import generated
from .images import as_batch
from .outliers import _gaussian_blur

KINDS = ("thick_pen", "thin_pen", "slant", "soft_focus", "scan")
SIZE = 2000  # images: 400 of each kind, acceptance to about a point


def thick_pen(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28) -> strokes one pixel wider on each side (a 3x3 grey dilation)."""
    return F.max_pool2d(x, 3, stride=1, padding=1)


def thin_pen(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28) -> strokes half a pixel thinner on each side: eroded by one pixel at twice the size."""
    up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    eroded = -F.max_pool2d(-up, 3, stride=1, padding=1)
    down = F.avg_pool2d(eroded, 2)
    return down / down.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1, 1)


def slant(x: torch.Tensor, shear: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28), shear (B,) as tan(angle) -> each digit sheared sideways about its centre."""
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 1] = shear
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def soft_focus(x: torch.Tensor, sigma: np.ndarray) -> torch.Tensor:
    """(B, 1, 28, 28), sigma (B,) -> each digit blurred, stretched back to its peak."""
    out = np.empty((len(x), 28, 28), np.float32)
    for b, (image, s) in enumerate(zip(x[:, 0].double().numpy(), sigma)):
        blurred = _gaussian_blur(image, float(s))
        out[b] = np.clip(blurred / max(blurred.max(), 1e-6) * image.max(), 0, 1)
    return torch.from_numpy(out).unsqueeze(1)


def users_digits(digits: torch.Tensor, seed: int, indices=None) -> tuple[torch.Tensor, list[str]]:
    """The acceptance family from validation digits (N, 1, 28, 28) in [0, 1]: (images in MNIST form as a user's
    files become, the kind of each). digits[k] is image indices[k] (k by default)."""
    rows = list(range(len(digits))) if indices is None else list(indices)
    draws = [generated.image_rng(seed, i, stream=3) for i in rows]
    kinds = [KINDS[i % len(KINDS)] for i in rows]
    made: list[np.ndarray | None] = [None] * len(digits)
    for kind in KINDS:
        at = [k for k, name in enumerate(kinds) if name == kind]
        if not at:
            continue
        x = digits[at]
        if kind == "thick_pen":
            out = thick_pen(x)
        elif kind == "thin_pen":
            out = thin_pen(x)
        elif kind == "slant":
            angle = [draws[k].uniform(10, 24) * (1 if draws[k].random() < 0.5 else -1) for k in at]
            out = slant(x, torch.tensor([math.tan(math.radians(a)) for a in angle], dtype=torch.float32))
        elif kind == "soft_focus":
            out = soft_focus(x, np.array([draws[k].uniform(0.7, 1.1) for k in at]))
        else:
            u8 = (x[:, 0] * 255).round().to(torch.uint8).numpy()
            for k, sheet in zip(at, generated.scanned_digits(u8, seed, [rows[k] for k in at])):
                made[k] = sheet
            continue
        for k, image in zip(at, out[:, 0].numpy()):
            made[k] = image
    return as_batch(made), kinds

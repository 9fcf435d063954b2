"""The joint training loop: cross-entropy for the classifier plus reconstruction losses.

Data stays in memory as one uint8 tensor and is augmented a batch at a time (small random affine
warps): on 2 cores, per-sample PIL transforms would cost more than the model itself.
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .models import DHRNet, OSRNet, Outputs, eucos_distance

log = logging.getLogger("osr")
PIXEL_LOSS_WEIGHT = 1.0
FEATURE_LOSS_WEIGHT = 1.0


def random_affine(x: torch.Tensor, generator: torch.Generator, degrees: float = 10.0,
                  scale: float = 0.1, shift_px: float = 2.0) -> torch.Tensor:
    """Small random rotation, scaling and shift, for a whole batch (B, 1, 28, 28) at once."""
    n = x.shape[0]
    rand = lambda: torch.rand(n, generator=generator) * 2 - 1
    theta = rand() * degrees * math.pi / 180
    s = 1 + rand() * scale
    tx, ty = rand() * shift_px * 2 / 28, rand() * shift_px * 2 / 28
    affine = torch.stack([torch.stack([theta.cos() / s, -theta.sin() / s, tx], 1),
                          torch.stack([theta.sin() / s, theta.cos() / s, ty], 1)], 1).to(x.device)  # (B, 2, 3)
    grid = F.affine_grid(affine, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def joint_loss(out: Outputs, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (total loss, classification loss)."""
    ce = F.cross_entropy(out.logits, y)
    pixel = F.binary_cross_entropy(out.recon, x)
    feature = F.mse_loss(out.feature_recon, out.features.detach())
    return ce + PIXEL_LOSS_WEIGHT * pixel + FEATURE_LOSS_WEIGHT * feature, ce


def train_one_epoch(model: OSRNet, images: torch.Tensor, targets: torch.Tensor, optimizer: torch.optim.Optimizer,
                    scheduler, batch_size: int, device: torch.device, generator: torch.Generator,
                    augment: bool, epoch: int, show_progress: bool) -> dict:
    """images: uint8 (N, 28, 28) on the CPU; targets: class indices 0..K-1.

    Shuffling and augmentation draw from a CPU generator, so a seed gives the same run on any device.
    """
    model.train()
    order = torch.randperm(len(images), generator=generator)
    total_loss = correct = seen = 0
    batches = range(0, len(order), batch_size)
    bar = tqdm(batches, desc=f"epoch {epoch}", disable=not show_progress, leave=False)
    for start in bar:
        idx = order[start:start + batch_size]
        x = images[idx].unsqueeze(1).float().div_(255)
        if augment:
            x = random_affine(x, generator)
        x, y = x.to(device, non_blocking=True), targets[idx].to(device, non_blocking=True)
        out = model(x)
        loss, _ = joint_loss(out, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(idx)
        correct += (out.logits.argmax(1) == y).sum().item()
        seen += len(idx)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    return {"loss": total_loss / seen, "train_accuracy": correct / seen}


@torch.inference_mode()
def fit_class_gaussians(model: OSRNet, images: torch.Tensor, targets: torch.Tensor, device: torch.device,
                        batch_size: int = 1024, ridge: float = 1e-3) -> None:
    """Class means and the shared feature covariance (as a whitening matrix), from un-augmented images.

    images: uint8 (N, 28, 28); targets: class indices 0..K-1. Stored as model buffers, so they travel
    in the checkpoint's state_dict.
    """
    model.eval()
    feats = torch.cat([model(images[i:i + batch_size].unsqueeze(1).float().div(255).to(device)).features.double().cpu()
                       for i in range(0, len(images), batch_size)])
    k = model.class_means.shape[0]
    means = torch.stack([feats[targets == c].mean(0) for c in range(k)])           # (K, d)
    centred = feats - means[targets]
    cov = centred.T @ centred / len(feats)
    cov += ridge * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)  # keeps it invertible
    chol = torch.linalg.cholesky(cov)                                                # cov = L L^T
    whitening = torch.linalg.inv(chol).T                                             # ||(f-m) L^-T||^2 = Mahalanobis
    model.class_means.copy_(means.float())
    model.whitening.copy_(whitening.float())


@torch.inference_mode()
def fit_openmax(model: DHRNet, images: torch.Tensor, targets: torch.Tensor, device: torch.device,
                batch_size: int = 1024, tail_size: int = 20) -> None:
    """OpenMax's per-class mean activation vectors and Weibull tails, from correctly classified training
    images: for each class, a Weibull fitted to its `tail_size` largest distances to the mean (as libmr's
    FitHigh does, here with scipy)."""
    from scipy.stats import FitError, weibull_min

    model.eval()
    vectors, correct = [], []
    for i in range(0, len(images), batch_size):
        features, codes = model.encode(images[i:i + batch_size].unsqueeze(1).float().div(255).to(device))
        logits = model.classifier(features)
        vectors.append(model.activation_vector(logits, codes).cpu())
        correct.append(logits.argmax(1).cpu() == targets[i:i + batch_size])
    v, correct = torch.cat(vectors), torch.cat(correct)
    means, weibull = [], []
    for c in range(model.openmax_means.shape[0]):
        own = v[correct & (targets == c)]
        if len(own) < 2:  # a barely trained model: fall back to every image of the class
            own = v[targets == c]
        if len(own) < 2:
            raise ValueError(f"class index {c} has fewer than 2 training images; cannot fit OpenMax")
        mean = own.mean(0)
        tail = eucos_distance(own, mean[None]).squeeze(1).topk(min(tail_size, len(own))).values.double().numpy()
        try:
            shape, _, scale = weibull_min.fit(tail, floc=0)
        except (FitError, RuntimeError, ValueError):
            # A degenerate tail (near-identical distances): an exponential tail at its mean is the safe choice.
            log.warning("OpenMax: Weibull fit failed for class index %d; using an exponential tail", c)
            shape, scale = 1.0, max(float(tail.mean()), 1e-6)
        means.append(mean)
        weibull.append(torch.tensor([shape, scale], dtype=torch.float32))
    model.openmax_means.copy_(torch.stack(means))
    model.openmax_weibull.copy_(torch.stack(weibull))

"""The joint training loop: cross-entropy for the classifier plus reconstruction losses.

Data stays in memory as one uint8 tensor and is augmented a batch at a time (small random affine
warps): on 2 cores, per-sample PIL transforms would cost more than the model itself.
"""
from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .distributed import World
from .models import DHRNet, OSRNet, Outputs, eucos_distance, statistics_from_first
from .outliers import training_negatives

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
    ce = F.cross_entropy(out.logits.float(), y)
    pixel = F.binary_cross_entropy(out.recon.float(), x)
    feature = F.mse_loss(out.feature_recon.float(), out.features.detach().float())
    return ce + PIXEL_LOSS_WEIGHT * pixel + FEATURE_LOSS_WEIGHT * feature, ce


def wrong_class_loss(model: OSRNet, features: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """A conditional decoder told a wrong class must draw nothing (C2AE's non-match loss, with an empty
    target): BCE of its output against black. The features are detached: this teaches the decoder and its
    conditioning, not the encoder."""
    recon = model.decode(features.detach(), wrong).float()
    return F.binary_cross_entropy(recon, torch.zeros_like(recon))


def outlier_exposure_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the negatives' softmax against the uniform distribution (Hendrycks et al. 2019)."""
    return -F.log_softmax(logits.float(), dim=1).mean()


@dataclass(frozen=True)
class Recipe:
    """How each batch is made and what it is trained on."""
    batch_size: int = 128
    augment: bool = True           # small random affine warps
    negatives_per_batch: int = 0   # outlier-exposure negatives made from each batch's own digits
    oe_weight: float = 0.0         # weight of their loss (softmax pulled towards uniform)
    bf16: bool = False             # bfloat16 autocast for the forward pass (CPUs with AVX512-BF16, GPUs)


def train_one_epoch(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor,
                    optimizer: torch.optim.Optimizer, scheduler, recipe: Recipe, device: torch.device,
                    generator: torch.Generator, epoch: int, show_progress: bool, world: World = World()) -> dict:
    """images: uint8 (N, 28, 28) on the CPU; targets: class indices 0..K-1. `model` may be DDP-wrapped.

    Shuffling, augmentation and negatives draw from a CPU generator for the whole batch, on every rank, so
    a seed gives the same run on any device and in any number of processes; each rank then trains on its
    shard of the batch (distributed.py). Negatives enter no loss but their own.
    """
    net = getattr(model, "module", model)
    conditional = getattr(net.config, "conditional_decoder", False)
    model.train()
    order = torch.randperm(len(images), generator=generator)
    total_loss = correct = seen = 0.0
    batches = range(0, len(order), recipe.batch_size)
    bar = tqdm(batches, desc=f"epoch {epoch}", disable=not show_progress, leave=False)
    for start in bar:
        idx = order[start:start + recipe.batch_size]
        x = images[idx].unsqueeze(1).float().div_(255)
        if recipe.augment:
            x = random_affine(x, generator)
        y = targets[idx]
        negatives = training_negatives(x, y, recipe.negatives_per_batch, generator) if recipe.negatives_per_batch else None
        wrong = (y + torch.randint(1, net.config.num_classes, y.shape, generator=generator)) % net.config.num_classes \
            if conditional else None
        x, y = world.shard(x), world.shard(y)
        n = len(x)
        batch = torch.cat([x, world.shard(negatives)]) if negatives is not None else x
        batch, x, y = batch.to(device, non_blocking=True), batch[:n].to(device, non_blocking=True), y.to(device, non_blocking=True)
        # Negatives are normalised with the digits' batch statistics, as digits are at test time.
        norms = statistics_from_first(net, n) if negatives is not None else nullcontext()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.bf16), norms:
            if conditional:  # negatives are nobody's class: their reconstructions are not trained
                full = model(batch, torch.cat([y, y.new_zeros(len(batch) - n)]))
            else:
                full = model(batch)
            out = Outputs(*(o[:n] if o is not None else None for o in full))
            wrong_loss = wrong_class_loss(net, out.features, world.shard(wrong).to(device)) if conditional else None
        loss, _ = joint_loss(out, x, y)
        if conditional:
            loss = loss + PIXEL_LOSS_WEIGHT * wrong_loss
        if negatives is not None:
            loss = loss + recipe.oe_weight * outlier_exposure_loss(full.logits[n:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        batch_loss, batch_correct, batch_seen = world.sum(loss.item() * n, (out.logits.argmax(1) == y).sum().item(), n)
        total_loss, correct, seen = total_loss + batch_loss, correct + batch_correct, seen + batch_seen
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    return {"loss": total_loss / seen, "train_accuracy": correct / seen}


def finish_fitting(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, device: torch.device) -> None:
    """What a trained network needs before it is scored: batch-norm statistics of clean digits, the class
    Gaussians of its features, and for dhrnet its OpenMax tails. images: uint8 (N, 28, 28); targets 0..K-1."""
    recalibrate_batch_norm(model, images, device)
    fit_class_gaussians(model, images, targets, device)
    if isinstance(model, DHRNet):
        fit_openmax(model, images, targets, device)


@torch.no_grad()
def recalibrate_batch_norm(model: torch.nn.Module, images: torch.Tensor, device: torch.device,
                           batch_size: int = 1024) -> None:
    """Re-estimates every batch norm's running statistics from un-augmented images (uint8 (N, 28, 28)).

    Training batches are warped, test digits are not, and the running statistics of the warped batches
    are off for clean digits: slightly for the plain model, by over a standard deviation in the last
    layer once outlier exposure has shaped the features. Test digits look like clean training digits,
    so these are the statistics to normalise them with."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over all the batches below
        m.train()
    for i in range(0, len(images), batch_size):
        model(images[i:i + batch_size].unsqueeze(1).float().div(255).to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


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
    model.eval()
    vectors, correct = [], []
    for i in range(0, len(images), batch_size):
        features, codes = model.encode(images[i:i + batch_size].unsqueeze(1).float().div(255).to(device))
        logits = model.classifier(features)
        vectors.append(model.activation_vector(logits, codes).cpu())
        correct.append(logits.argmax(1).cpu() == targets[i:i + batch_size])
    means, weibull = weibull_tails(torch.cat(vectors), targets, torch.cat(correct), model.openmax_means.shape[0], tail_size)
    model.openmax_means.copy_(means)
    model.openmax_weibull.copy_(weibull)


def weibull_tails(vectors: torch.Tensor, targets: torch.Tensor, correct: torch.Tensor, num_classes: int,
                  tail_size: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """vectors (N, D) with their class indices and whether each was classified right -> per class, the mean of
    its correct vectors (K, D) and (shape, scale) of a Weibull fitted to its `tail_size` largest eucos distances
    to that mean (K, 2), as libmr's FitHigh does (location 0)."""
    from scipy.stats import FitError, weibull_min

    means, weibull = [], []
    for c in range(num_classes):
        own = vectors[correct & (targets == c)]
        if len(own) < 2:  # a barely trained model: fall back to every image of the class
            own = vectors[targets == c]
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
    return torch.stack(means), torch.stack(weibull)

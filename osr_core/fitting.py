"""What a trained network needs before it is scored: batch-norm statistics of clean digits, the class Gaussians of
its features (for the Mahalanobis distance), and, for dhrnet, OpenMax's Weibull tails."""
from __future__ import annotations

import logging

import torch

from .models import DHRNet, OSRNet, eucos_distance

log = logging.getLogger("osr")


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

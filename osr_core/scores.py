"""Unknown-ness score components, and scoring images with a model. One convention throughout: higher = more
unknown.

Each component is a pure function of the network's outputs. How components become one decision (rank
normalisation, fusions, gates) is gates.py's job; which decision is used is chosen on validation data alone
(selection.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .models import OSRNet, Outputs


def neg_max_softmax(out: Outputs, x: torch.Tensor) -> torch.Tensor:
    return -F.softmax(out.logits, dim=1).max(dim=1).values


def entropy(out: Outputs, x: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(out.logits, dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def energy(out: Outputs, x: torch.Tensor) -> torch.Tensor:
    """Free energy -logsumexp(logits) (Liu et al. 2020): low for confident knowns."""
    return -torch.logsumexp(out.logits, dim=1)


def neg_max_logit(out: Outputs, x: torch.Tensor) -> torch.Tensor:
    return -out.logits.max(dim=1).values


def pixel_recon(out: Outputs, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the image and its reconstruction."""
    return (out.recon - x).pow(2).flatten(1).mean(dim=1)


def feature_recon(out: Outputs, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the feature autoencoder on the encoder's features."""
    return (out.feature_recon - out.features).pow(2).mean(dim=1)


def mahalanobis(out: Outputs, x: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distance of the features to the nearest class mean (Lee et al. 2018)."""
    return out.class_distance


def openmax(out: Outputs, x: torch.Tensor) -> torch.Tensor | None:
    """OpenMax's probability of "unknown" (dhrnet only; None for architectures without it)."""
    return out.openmax


COMPONENTS = {
    "max_softmax": neg_max_softmax,
    "entropy": entropy,
    "energy": energy,
    "max_logit": neg_max_logit,
    "pixel_recon": pixel_recon,
    "feature_recon": feature_recon,
    "mahalanobis": mahalanobis,
    "openmax": openmax,
}
# The components a fusion may combine: one per kind of evidence (pixel reconstruction, feature reconstruction,
# the classifier's uncertainty, the distance to the nearest class in feature space).
FUSABLE = ("pixel_recon", "feature_recon", "energy", "mahalanobis")


@dataclass
class Scored:
    """What the network says about a set of images (numpy arrays, one entry per image)."""
    pred: np.ndarray                                   # predicted class label (from the known classes)
    components: dict[str, np.ndarray]                  # each component score
    recon: np.ndarray | None = None                    # (N, 28, 28) reconstructions, if kept
    features: np.ndarray | None = None                 # (N, latent_dim), if kept

    def __len__(self) -> int:
        return len(self.pred)


def model_components(model: torch.nn.Module) -> list[str]:
    """The components a model has: OpenMax is dhrnet's own detector."""
    return [n for n in COMPONENTS if n != "openmax" or model.config.arch == "dhrnet"]


@torch.inference_mode()
def score_images(model: OSRNet, images: torch.Tensor, known_classes: list[int], device: torch.device,
                 batch_size: int = 1024, keep_recon: bool = False, keep_features: bool = False,
                 show_progress: bool = False) -> Scored:
    """images: float (N, 1, 28, 28) in [0, 1]. Runs the model once and computes every component.
    Anything else is a ValueError: images from outside go through images.as_batch first."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.dim() != 4 \
            or tuple(images.shape[1:]) != (1, 28, 28):
        got = f"{tuple(images.shape)} {images.dtype}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"score_images expects a float tensor (N, 1, 28, 28) in [0, 1], got {got}; "
                         "convert other images with osr_core.images.as_batch")
    model.eval()
    classes = torch.tensor(known_classes)
    preds, recons, feats = [], [], []
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in model_components(model)}
    for start in tqdm(range(0, len(images), batch_size), desc="scoring", disable=not show_progress, leave=False):
        x = images[start:start + batch_size].to(device)
        out = model(x)
        preds.append(classes[out.logits.argmax(1).cpu()])
        for name in model_components(model):
            parts[name].append(COMPONENTS[name](out, x).float().cpu())
        if keep_recon:
            recons.append(out.recon.squeeze(1).cpu())
        if keep_features:
            feats.append(out.features.float().cpu())
    cat = lambda xs, empty: torch.cat(xs).numpy() if xs else empty
    return Scored(
        pred=cat(preds, np.zeros(0, dtype=np.int64)),
        components={name: cat(v, np.zeros(0, dtype=np.float32)) for name, v in parts.items()},
        recon=cat(recons, np.zeros((0, 28, 28), dtype=np.float32)) if keep_recon else None,
        features=cat(feats, None) if keep_features else None,
    )

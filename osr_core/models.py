"""The networks: a CNN encoder shared by a classifier head, an image decoder and a feature autoencoder
(`cnn`, the default), and CROSR's deep hierarchical reconstruction net at MNIST scale (`dhrnet`)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cli import UserError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass
class ModelConfig:
    arch: str = "cnn"
    num_classes: int = 10
    width: int = 16           # channels of the first conv block; later blocks use 2x and 4x
    latent_dim: int = 128     # the encoder's feature vector, shared by all heads
    feature_code_dim: int = 32
    dropout: float = 0.2
    # cnn: the decoder is told a class and trained to reconstruct only digits of that class (C2AE-style);
    # at test time it is told the predicted class. False for checkpoints from before it existed.
    conditional_decoder: bool = False
    # cnn: the decoder rebuilds from a sparse mix of this many learned prototypes of the features, not from the
    # features themselves (MemAE, Gong et al. 2019), so that what is no digit comes out as its nearest digits and
    # its reconstruction error grows. 0: none (and for checkpoints from before it existed).
    memory_slots: int = 0
    # cnn: class anchor clustering (CAC, Miller et al. 2021): the classifier maps the features to a point in a space of
    # num_classes dimensions, and the logits are minus its squared distances to fixed anchors there, class k's at this
    # scale times the k-th unit vector, so that every class is drawn to its own point and what lies far from all of
    # them has no large logit. 0: a linear classifier's logits (and for checkpoints from before it existed).
    class_anchors: float = 0.0
    dhr_code_channels: int = 8  # dhrnet: channels of each stage's latent code z_l
    openmax_alpha: int = 10     # dhrnet: how many top-ranked classes OpenMax revises

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UserError(f"checkpoint's model_config has unknown keys {sorted(unknown)}; it comes from another version")
        return cls(**values)


class Outputs(NamedTuple):
    logits: torch.Tensor         # (B, K)
    recon: torch.Tensor          # (B, 1, 28, 28) in [0, 1]
    features: torch.Tensor       # (B, latent_dim)
    feature_recon: torch.Tensor  # (B, latent_dim)
    class_distance: torch.Tensor  # (B,) squared Mahalanobis distance to the nearest class mean
    openmax: torch.Tensor | None = None  # (B,) dhrnet only: OpenMax's probability of "unknown"


class _ReferenceStatistics:
    """Batch norm that can take its batch statistics from the first `reference_rows` rows alone and apply
    them to the whole batch, the gradient reaching the statistics through those rows only. Outlier exposure
    once normalised its negatives so, with the digits' statistics, to keep the network from telling them from
    digits by their normalisation; it collapsed the classifier instead (docs/recipes.md), and training now
    normalises a batch with negatives as one (training.negatives_normalisation). Kept for the diagnosis that
    shows it (benchmarks/outlier_exposure.py)."""

    reference_rows: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.reference_rows
        if not self.training or n is None or n >= len(x):
            return super().forward(x)
        reference = super().forward(x[:n])  # the fused kernel; updates the running statistics from digits only
        with torch.no_grad():
            dims = (0, 2, 3) if x.dim() == 4 else (0,)
            mean, var = x[:n].float().mean(dims), x[:n].float().var(dims, unbiased=False)
        rest = F.batch_norm(x[n:], mean, var, self.weight, self.bias, training=False, eps=self.eps)
        return torch.cat([reference, rest.to(reference.dtype)])


class BatchNorm1d(_ReferenceStatistics, nn.BatchNorm1d):
    pass


class BatchNorm2d(_ReferenceStatistics, nn.BatchNorm2d):
    pass


@contextmanager
def statistics_from_first(model: nn.Module, rows: int):
    """Within the block, every batch norm of `model` takes its statistics from the first `rows` rows."""
    norms = [m for m in model.modules() if isinstance(m, _ReferenceStatistics)]
    for m in norms:
        m.reference_rows = rows
    try:
        yield
    finally:
        for m in norms:
            m.reference_rows = None


def conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), BatchNorm2d(c_out), nn.ReLU(inplace=True)]


MEMORY_SHRINK = 1.0  # hard shrinkage of the memory's weights below MEMORY_SHRINK / N (MemAE: 1/N to 3/N)


class OSRNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w, d = config.width, config.latent_dim
        self.encoder = nn.Sequential(
            *conv_block(1, w), *conv_block(w, w), nn.MaxPool2d(2),              # (B, w, 14, 14)
            *conv_block(w, 2 * w), *conv_block(2 * w, 2 * w), nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            *conv_block(2 * w, 4 * w), nn.MaxPool2d(2),                         # (B, 4w, 3, 3)
            nn.Flatten(), nn.Linear(4 * w * 9, d), BatchNorm1d(d), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(d, config.num_classes))
        # A conditional decoder has no batch norm: its wrong-class passes in training would shift the statistics.
        plain = not config.conditional_decoder
        self.decoder = nn.Sequential(
            nn.Linear(d, 2 * w * 49), nn.ReLU(inplace=True), nn.Unflatten(1, (2 * w, 7, 7)),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1, bias=not plain),
            *([BatchNorm2d(w)] if plain else []), nn.ReLU(inplace=True),                      # (B, w, 14, 14)
            nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1), nn.Sigmoid(),                # (B, 1, 28, 28)
        )
        if config.conditional_decoder:
            # FiLM of the features by the class told (Oza & Patel 2019); zero: unconditional at the start.
            self.condition = nn.Embedding(config.num_classes, 2 * d)
            nn.init.zeros_(self.condition.weight)
        if config.memory_slots:
            self.memory = nn.Parameter(torch.randn(config.memory_slots, d) / d ** 0.5)
        self.feature_ae = nn.Sequential(
            nn.Linear(d, config.feature_code_dim), nn.ReLU(inplace=True), nn.Linear(config.feature_code_dim, d),
        )
        # Class-conditional Gaussians of the features with a shared covariance, fitted on the training split
        # after training (fitting.fit_class_gaussians): distance = ||(f - mean_c) @ whitening||^2.
        self.register_buffer("class_means", torch.zeros(config.num_classes, d))
        self.register_buffer("whitening", torch.zeros(d, d))

    def class_distance(self, features: torch.Tensor) -> torch.Tensor:
        white = features @ self.whitening                                # (B, d)
        means = self.class_means @ self.whitening                         # (K, d)
        return torch.cdist(white, means).pow(2).min(dim=1).values         # (B,)

    def read_memory(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MemAE's memory read: features (B, d) -> (the mix of prototypes the decoder draws from (B, d), its weights
        (B, N)). Each slot is weighted by the softmax of its dot product with the features (unbounded, so the
        weights can grow sparse; the paper's cosine caps them within a factor e^2 of each other); weights below
        MEMORY_SHRINK / N are shrunk to zero (the paper's hard shrinkage, continuous, so training passes through)
        and the rest renormalised, so that a few prototypes make up each reconstruction."""
        weights = F.softmax(features.float() @ self.memory.float().T, dim=1)
        floor = MEMORY_SHRINK / len(self.memory)
        shrunk = F.relu(weights - floor) * weights / ((weights - floor).abs() + 1e-12)
        shrunk = shrunk / shrunk.sum(1, keepdim=True).clamp_min(1e-12)
        return (shrunk @ self.memory.float()).to(features.dtype), shrunk

    def decode(self, features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """features (B, d), class indices (B,) -> reconstructions (B, 1, 28, 28); `classes` is ignored by a
        plain decoder."""
        if self.config.conditional_decoder:
            gamma, beta = self.condition(classes).chunk(2, dim=1)
            features = features * (1 + gamma) + beta
        if self.config.memory_slots:
            features = self.read_memory(features)[0]
        return self.decoder(features)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, d) -> logits (B, K): the linear classifier's, or minus the squared distances of its output to
        the class anchors (config.class_anchors; in float32, as bfloat16 would round distances near 100 by 0.5)."""
        z = self.classifier(features)
        if not self.config.class_anchors:
            return z
        anchors = self.config.class_anchors * torch.eye(z.shape[1], device=z.device)
        return -(z.float()[:, None, :] - anchors[None]).pow(2).sum(dim=2)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's logits alone, as forward computes them: all that a validation accuracy needs."""
        return self.classify(self.encoder(normalised(x)))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> Outputs:
        """x: (B, 1, 28, 28) in [0, 1]; condition: the class indices a conditional decoder is told
        (training: the labels), by default the predicted ones."""
        features = self.encoder(normalised(x))
        logits = self.classify(features)
        recon = self.decode(features, logits.argmax(1) if condition is None else condition)
        # The feature autoencoder models the features without shaping them: no gradient flows back. The class
        # Gaussians are fitted after training, so in training the distance to them would be wasted work.
        distance = features.new_zeros(len(features)) if self.training else self.class_distance(features)
        return Outputs(logits, recon, features, self.feature_ae(features.detach()), distance)


def normalised(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as every network here reads them: standardised by MNIST's statistics, channels last (which
    runs the convolutions 15-40% faster on CPU: oneDNN's native layout)."""
    return ((x - MNIST_MEAN) / MNIST_STD).contiguous(memory_format=torch.channels_last)


def eucos_distance(v: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """OpenMax's euclidean-cosine distance of each row of v (B, D) to each mean (K, D) -> (B, K)."""
    cosine = F.normalize(v, dim=1) @ F.normalize(means, dim=1).T
    return torch.cdist(v, means) / 200 + (1 - cosine)


class DHRNet(nn.Module):
    """CROSR (Yoshihashi et al., CVPR 2019) at MNIST scale: each encoder stage keeps a small latent code z_l,
    the decoder rebuilds the image top-down from all of them, and the classifier reads the top stage.

    Its own detector is OpenMax over [logits, pooled z_1..z_L]: per-class mean activation vectors and Weibull
    fits of the largest distances to them, set after training by fitting.fit_openmax.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w, d, k, n = config.width, config.latent_dim, config.dhr_code_channels, config.num_classes
        self.stage1 = nn.Sequential(*conv_block(1, w), *conv_block(w, w))                                 # (B, w, 28, 28)
        self.stage2 = nn.Sequential(nn.MaxPool2d(2), *conv_block(w, 2 * w), *conv_block(2 * w, 2 * w))    # (B, 2w, 14, 14)
        self.stage3 = nn.Sequential(nn.MaxPool2d(2), *conv_block(2 * w, 4 * w))                           # (B, 4w, 7, 7)
        self.head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * w * 9, d), BatchNorm1d(d),
                                  nn.ReLU(inplace=True))
        self.codes = nn.ModuleList([nn.Conv2d(c, k, 1) for c in (w, 2 * w, 4 * w)])                        # z_1..z_3
        self.up3 = nn.Sequential(nn.ConvTranspose2d(k, w, 4, stride=2, padding=1, bias=False), BatchNorm2d(w),
                                 nn.ReLU(inplace=True))                                                    # (B, w, 14, 14)
        self.up2 = nn.Sequential(nn.ConvTranspose2d(w + k, w, 4, stride=2, padding=1, bias=False),
                                 BatchNorm2d(w), nn.ReLU(inplace=True))                                 # (B, w, 28, 28)
        self.out = nn.Sequential(nn.Conv2d(w + k, 1, 3, padding=1), nn.Sigmoid())
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(d, n))
        self.feature_ae = nn.Sequential(
            nn.Linear(d, config.feature_code_dim), nn.ReLU(inplace=True), nn.Linear(config.feature_code_dim, d),
        )
        self.register_buffer("class_means", torch.zeros(n, d))
        self.register_buffer("whitening", torch.zeros(d, d))
        latent_size = n + 3 * k * 4
        self.register_buffer("openmax_means", torch.zeros(n, latent_size))
        self.register_buffer("openmax_weibull", torch.ones(n, 2))  # (shape, scale) per class

    class_distance = OSRNet.class_distance

    def activation_vector(self, logits: torch.Tensor, codes: list[torch.Tensor]) -> torch.Tensor:
        """[logits, each z_l average-pooled to 2x2] -> (B, K + 3 * k * 4)."""
        return torch.cat([logits, *(F.adaptive_avg_pool2d(z, 2).flatten(1) for z in codes)], dim=1)

    def openmax_unknown(self, v: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """OpenMax (Bendale & Boult 2016): revise the top-alpha logits by their Weibull outlier probability and
        give the removed mass to an extra "unknown" class; returns that class's softmax probability."""
        shape, scale = self.openmax_weibull[:, 0], self.openmax_weibull[:, 1]
        outlier = 1 - torch.exp(-(eucos_distance(v, self.openmax_means).clamp_min(0) / scale).pow(shape))  # (B, K)
        alpha = min(self.config.openmax_alpha, logits.shape[1])
        rank = logits.argsort(dim=1, descending=True).argsort(dim=1)                                       # 0 = top
        weight = ((alpha - rank).clamp_min(0) / alpha) * outlier
        revised = torch.cat([logits * (1 - weight), (logits * weight).sum(1, keepdim=True)], dim=1)
        return F.softmax(revised, dim=1)[:, -1]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B, 1, 28, 28) in [0, 1] -> (features (B, d), [z_1, z_2, z_3])."""
        x1 = self.stage1(normalised(x))
        x2 = self.stage2(x1)
        x3 = self.stage3(x2)
        return self.head(x3), [code(h) for code, h in zip(self.codes, (x1, x2, x3))]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's logits alone, as forward computes them."""
        return self.classifier(self.encode(x)[0])

    def forward(self, x: torch.Tensor) -> Outputs:
        """x: (B, 1, 28, 28) in [0, 1]."""
        features, (z1, z2, z3) = self.encode(x)
        r = self.up2(torch.cat([self.up3(z3), z2], dim=1))
        recon = self.out(torch.cat([r, z1], dim=1))
        logits = self.classifier(features)
        v = self.activation_vector(logits, [z1, z2, z3])
        return Outputs(logits, recon, features, self.feature_ae(features.detach()), self.class_distance(features),
                       self.openmax_unknown(v, logits))


ARCHITECTURES = {"cnn": OSRNet, "dhrnet": DHRNet}


def build_model(config: ModelConfig) -> nn.Module:
    if config.arch not in ARCHITECTURES:
        raise UserError(f"unknown --arch {config.arch!r}; available: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[config.arch](config).to(memory_format=torch.channels_last)


def model_from_checkpoint(checkpoint: dict, device: torch.device) -> nn.Module:
    model = build_model(ModelConfig.from_dict(checkpoint["model_config"]))
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise UserError(f"checkpoint weights do not fit its model_config: {str(err).splitlines()[0]}") from err
    return model.to(device).eval()

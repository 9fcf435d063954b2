"""Training: the data a recipe reads, the batch augmentations, the joint loss, the training loop and a whole run
(recipe.py says what is trained, fitting.py finishes the model).

Data stays in memory as one uint8 tensor and is augmented a batch at a time (small random affine
warps, optionally a smooth elastic one and another pen): on 2 cores, per-sample PIL transforms would cost more than the model itself.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import data
from .cli import UserError, seed_everything
from .distributed import World, wrap
from .acceptance import thick_pen, thin_pen
from .fitting import finish_fitting
from .io import CHECKPOINT_FORMAT, atomic_write_bytes, torch_bytes
from .models import ModelConfig, OSRNet, Outputs, build_model
from .outliers import posed_negatives, training_negatives
from .recipe import FLAG_OF, Recipe, uses

log = logging.getLogger("osr")
PIXEL_LOSS_WEIGHT = 1.0
FEATURE_LOSS_WEIGHT = 1.0
# --decoder memory (MemAE, Gong et al. 2019, with its MNIST settings): the memory's slots and its entropy loss' weight.
MEMORY_SLOTS = 100
MEMORY_ENTROPY_WEIGHT = 2e-4
# --class-anchors (CAC, Miller et al. 2021): the weight of the anchor loss, the mean squared distance to the own
# class's anchor, beside the cross-entropy of minus the distances (their tuple loss).
ANCHOR_LOSS_WEIGHT = 0.1
# --placeholders (PROSER's data placeholders, Zhou et al. 2021, trained to the uniform softmax as outlier exposure is):
# two digits of different classes are mixed in the encoder after its second pooling, where strokes are features and the
# class is not yet decided, each pair by a share drawn uniformly from PLACEHOLDER_SHARES (near 0 or 1 a placeholder
# would be a digit), and the placeholders' loss has this weight.
PLACEHOLDER_LAYER = 13  # encoder[13]: the second MaxPool2d, (B, 2w, 7, 7)
PLACEHOLDER_SHARES = (0.25, 0.75)
PLACEHOLDER_LOSS_WEIGHT = 0.5


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


def elastic_warp(x: torch.Tensor, generator: torch.Generator, strength_px: float, cells: int = 4) -> torch.Tensor:
    """A smooth random displacement of every pixel, for a whole batch (B, 1, 28, 28): a (cells+1)^2 grid of
    displacements drawn N(0, strength_px) and spread bilinearly over the image, so strokes bend as another hand's
    would, without breaking. strength_px 0 leaves the batch as it is."""
    if strength_px <= 0:
        return x
    n = x.shape[0]
    coarse = torch.randn(n, 2, cells + 1, cells + 1, generator=generator) * (strength_px * 2 / 28)  # in grid units
    field = F.interpolate(coarse, size=x.shape[-2:], mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    identity = torch.eye(2, 3).unsqueeze(0).expand(n, 2, 3)
    grid = F.affine_grid(identity, list(x.shape), align_corners=False) + field.to(x.device)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def pen_and_focus(x: torch.Tensor, generator: torch.Generator, share: float) -> torch.Tensor:
    """A `share` of the digits of a batch (B, 1, 28, 28), drawn at random, as another pen or a camera would give them:
    strokes thicker (up to a pixel on each side), thinner (up to half a pixel) or blurred (up to sigma 1 px), each
    as likely, by a random amount: the digit is mixed with its fully changed self, so one batched operation serves
    every digit. Digits of one hand, another instrument: what users send and MNIST's scanning never shows. share 0
    leaves the batch as it is and draws nothing."""
    if share <= 0:
        return x
    n = len(x)
    kind = torch.randint(0, 3, (n,), generator=generator)
    amount = torch.rand(n, generator=generator) * (torch.rand(n, generator=generator) < share)
    changed = x.clone()
    for k, change in enumerate((thick_pen, thin_pen, out_of_focus)):
        at = ((kind == k) & (amount > 0)).nonzero().flatten().to(x.device)
        if len(at):
            changed[at] = change(x[at])
    return x + amount.view(-1, 1, 1, 1).to(x.device) * (changed - x)


def out_of_focus(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28) -> each digit blurred by a Gaussian of sigma 1 px, stretched back to its peak."""
    blurred = F.conv2d(x, FOCUS_KERNEL.to(x.device), padding=FOCUS_KERNEL.shape[-1] // 2)
    return blurred * (x.flatten(1).amax(1) / blurred.flatten(1).amax(1).clamp_min(1e-6)).view(-1, 1, 1, 1)


def _gaussian_kernel(sigma: float, radius: int) -> torch.Tensor:
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    taps = taps / taps.sum()
    return (taps[:, None] * taps[None, :]).view(1, 1, 2 * radius + 1, 2 * radius + 1)


FOCUS_KERNEL = _gaussian_kernel(1.0, 3)


def joint_loss(out: Outputs, x: torch.Tensor, y: torch.Tensor, logit_norm: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (total loss, classification loss). With `logit_norm` (a temperature tau > 0), the cross-entropy is
    taken of the logits divided by tau times their norm (LogitNorm, Wei et al. 2022): training can no longer lower
    the loss by growing the logits, so confidence stops growing away from the training data."""
    logits = out.logits.float()
    if logit_norm > 0:
        logits = logits / (logit_norm * logits.norm(dim=1, keepdim=True).clamp_min(1e-7))
    ce = F.cross_entropy(logits, y)
    pixel = F.binary_cross_entropy(out.recon.float(), x)
    feature = F.mse_loss(out.feature_recon.float(), out.features.detach().float())
    return ce + PIXEL_LOSS_WEIGHT * pixel + FEATURE_LOSS_WEIGHT * feature, ce


def compactness_loss(features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The share of the batch's feature variance that lies within classes: trace(S_within) / trace(S_total), in
    [0, 1]. A centre loss (Wen et al. 2016) with the batch's class means as centres, divided by the total spread so
    that shrinking every feature cannot lower it: each class is pulled together relative to the distances between
    classes, the shape the class Gaussians (Mahalanobis) and the near-unknown scores assume. No state: the centres
    are the batch's own, so it resumes and shards like the rest of the loss."""
    f = features.float()
    classes, index = torch.unique(y, return_inverse=True)
    sums = torch.zeros(len(classes), f.shape[1], device=f.device, dtype=f.dtype).index_add_(0, index, f)
    means = sums / torch.bincount(index, minlength=len(classes)).unsqueeze(1).to(f.dtype)
    within = (f - means[index]).pow(2).sum(1).mean()
    total = (f - f.mean(0)).pow(2).sum(1).mean()
    return within / total.clamp_min(1e-12)


def anchor_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CAC's anchor loss: the mean squared distance of the classifier's output to its own class's anchor, which is
    minus that class's logit (models.OSRNet.classify)."""
    return -logits.float().gather(1, y[:, None]).mean()


def memory_entropy_loss(model: OSRNet, features: torch.Tensor) -> torch.Tensor:
    """The entropy of the memory's weights (MemAE's sparsity loss): a few prototypes for each digit."""
    weights = model.read_memory(features)[1]
    return -(weights * weights.clamp_min(1e-12).log()).sum(1).mean()


def wrong_class_loss(model: OSRNet, features: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """A conditional decoder told a wrong class must draw nothing (C2AE's non-match loss, with an empty
    target): BCE of its output against black. The features are detached: this teaches the decoder and its
    conditioning, not the encoder."""
    recon = model.decode(features.detach(), wrong).float()
    return F.binary_cross_entropy(recon, torch.zeros_like(recon))


def outlier_exposure_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the negatives' softmax against the uniform distribution (Hendrycks et al. 2019)."""
    return -F.log_softmax(logits.float(), dim=1).mean()


def placeholder_pairs(y: torch.Tensor, count: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """`count` draws of two rows of the batch and a share: (first, second, share), kept where the two rows' classes
    differ (a placeholder between two digits of one class would be that digit). Always the same number of draws from
    `generator`, so a run stays the same whatever the batch's classes."""
    first = torch.randint(0, len(y), (count,), generator=generator)
    second = torch.randint(0, len(y), (count,), generator=generator)
    low, high = PLACEHOLDER_SHARES
    share = low + (high - low) * torch.rand(count, generator=generator)
    differ = y[first] != y[second]
    return first[differ], second[differ], share[differ]


@contextmanager
def placeholders_appended(model: OSRNet, first: torch.Tensor, second: torch.Tensor, share: torch.Tensor):
    """Within the block, the model's forward pass appends to its batch, where the encoder reaches PLACEHOLDER_LAYER,
    one placeholder per pair: share * row first + (1 - share) * row second. What follows that layer (the encoder's
    last block, whose batch norm then normalises digits and placeholders as one batch, the heads) sees them as rows
    after the batch's own."""
    share = share.view(-1, 1, 1, 1)

    def append(module, inputs, output):
        a = share.to(output.device, output.dtype)
        return torch.cat([output, a * output[first] + (1 - a) * output[second]])
    handle = model.encoder[PLACEHOLDER_LAYER].register_forward_hook(append)
    try:
        yield
    finally:
        handle.remove()


def outlier_negatives(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The recipe's outlier-exposure negatives made from a training batch (y: class indices): chimeras and overlays of
    two classes, or digits in a pose that leaves no digit (which needs the digits themselves, not their indices)."""
    if recipe.oe_negatives == "poses":
        return posed_negatives(x, torch.tensor(recipe.known_classes)[y], recipe.negatives_per_batch, generator)
    return training_negatives(x, y, recipe.negatives_per_batch, generator)


def negatives_normalisation(model: OSRNet, digits: int):
    """How a batch that holds negatives after its `digits` digits is normalised: plain batch norm, digits and negatives
    alike with the whole batch's statistics (the checkpoint's batch norms are then recalibrated on digits alone, as
    every checkpoint's are). Normalised with the digits' statistics alone (models.statistics_from_first), negatives made
    of a digit's strokes collapsed the classifier: 0.87-0.90 validation accuracy against 0.98 with the whole batch's
    (docs/recipes.md; benchmarks/outlier_exposure.py swaps that mechanism back in here to show it)."""
    return nullcontext()


def batches_per_epoch(n: int, batch_size: int, processes: int = 1) -> int:
    """Batches of an epoch over n images: every full batch, and the remainder unless it is too small for batch norm
    (fewer than 2 images for a process); such a remainder is left out of the epoch (a set of 257 images would
    otherwise end in a batch of one, which batch norm refuses)."""
    return n // batch_size + (n % batch_size >= 2 * processes)


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
    batches = range(0, batches_per_epoch(len(order), recipe.batch_size, world.size) * recipe.batch_size, recipe.batch_size)
    bar = tqdm(batches, desc=f"epoch {epoch}", disable=not show_progress, leave=False)
    for start in bar:
        idx = order[start:start + recipe.batch_size]
        x = images[idx].unsqueeze(1).float().div_(255)
        if recipe.augment:
            x = random_affine(x, generator)
        if recipe.elastic:
            x = elastic_warp(x, generator, recipe.elastic)
        if recipe.pen:
            x = pen_and_focus(x, generator, recipe.pen)
        y = targets[idx]
        negatives = outlier_negatives(recipe, x, y, generator) if recipe.negatives_per_batch else None
        wrong = (y + torch.randint(1, net.config.num_classes, y.shape, generator=generator)) % net.config.num_classes \
            if conditional else None
        pairs = placeholder_pairs(y, round(recipe.placeholders * len(y)), generator) if recipe.placeholders else None
        x, y = world.shard(x), world.shard(y)
        n = len(x)
        batch = torch.cat([x, world.shard(negatives)]) if negatives is not None else x
        batch, x, y = batch.to(device, non_blocking=True), batch[:n].to(device, non_blocking=True), y.to(device, non_blocking=True)
        norms = negatives_normalisation(net, n) if negatives is not None else nullcontext()
        mixing = placeholders_appended(net, *(p.to(device) for p in pairs)) if pairs is not None else nullcontext()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.bf16), norms, mixing:
            if conditional:  # negatives are nobody's class: their reconstructions are not trained
                full = model(batch, torch.cat([y, y.new_zeros(len(batch) - n)]))
            else:
                full = model(batch)
            out = Outputs(*(o[:n] if o is not None else None for o in full))
            wrong_loss = wrong_class_loss(net, out.features, world.shard(wrong).to(device)) if conditional else None
        loss, _ = joint_loss(out, x, y, recipe.logit_norm)
        if recipe.compactness:
            loss = loss + recipe.compactness * compactness_loss(out.features, y)
        if conditional:
            loss = loss + PIXEL_LOSS_WEIGHT * wrong_loss
        if net.config.class_anchors:
            loss = loss + ANCHOR_LOSS_WEIGHT * anchor_loss(out.logits, y)
        if net.config.memory_slots:
            loss = loss + MEMORY_ENTROPY_WEIGHT * memory_entropy_loss(net, out.features)
        if negatives is not None:
            loss = loss + recipe.oe_weight * outlier_exposure_loss(full.logits[n:len(batch)])
        if pairs is not None and len(pairs[0]):
            loss = loss + PLACEHOLDER_LOSS_WEIGHT * outlier_exposure_loss(full.logits[len(batch):])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        batch_loss, batch_correct, batch_seen = world.sum(loss.item() * n, (out.logits.argmax(1) == y).sum().item(), n)
        total_loss, correct, seen = total_loss + batch_loss, correct + batch_correct, seen + batch_seen
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    return {"loss": total_loss / seen, "train_accuracy": correct / seen}


# ----------------------------------------------------------------------------------- a whole training run
GAUSSIAN_FIT_IMAGES = 10000  # plenty for a 128-d mean and covariance, and for batch-norm statistics; 2 passes


@dataclass
class Split:
    """A recipe's data: training digits (uint8, class indices 0..K-1) and the validation split."""
    known: list[int]
    val_indices: torch.Tensor       # into MNIST's 60k training images
    train_images: torch.Tensor      # uint8 (N, 28, 28)
    train_targets: torch.Tensor     # class indices 0..K-1
    val_images: torch.Tensor        # uint8, known classes only
    val_labels: torch.Tensor        # digit labels

    @property
    def fit_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training digits the class Gaussians and batch-norm statistics are fitted on."""
        return self.train_images[:GAUSSIAN_FIT_IMAGES], self.train_targets[:GAUSSIAN_FIT_IMAGES]


def split(recipe: Recipe, data_dir: str | Path) -> Split:
    """The training split minus the fixed validation split, restricted to the recipe's known classes."""
    images, labels = data.load_mnist(data_dir, train=True)
    val_idx = data.validation_indices(len(images))
    known = torch.tensor(recipe.known_classes)
    train_idx = data.train_indices(len(images), val_idx)
    train_idx = train_idx[data.select_classes(labels[train_idx], recipe.known_classes)]
    if recipe.train_limit:
        train_idx = train_idx[:recipe.train_limit]
    to_target = torch.full((10,), -1, dtype=torch.long)  # class labels -> output indices 0..K-1
    to_target[known] = torch.arange(len(known))
    return Split(list(recipe.known_classes), val_idx, images[train_idx], to_target[labels[train_idx]],
                 *data.validation_digits(images, labels, val_idx, recipe.known_classes))


@torch.inference_mode()
def accuracy(model, images_u8: torch.Tensor, labels: torch.Tensor, known: list[int], device) -> float:
    """Closed-set accuracy from the logits alone (the decoder and the scores would double the work of every epoch's
    validation); the same predictions as score_images gives."""
    model.eval()
    classes, batch = torch.tensor(known), 1024
    pred = torch.cat([classes[model.logits(data.to_float(images_u8[i:i + batch]).to(device)).argmax(1).cpu()]
                      for i in range(0, len(images_u8), batch)])
    return float((pred == labels).float().mean())


def save_resume_state(path: Path, recipe: Recipe, model, optimizer, scheduler, generator, history) -> None:
    """What an interrupted run needs to go on exactly where it stopped."""
    atomic_write_bytes(path, torch_bytes({
        "recipe": recipe.to_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
        "history": history,
    }))


def restore_resume_state(path: Path, recipe: Recipe, model, optimizer, scheduler, generator) -> tuple[list, int]:
    """Loads the state save_resume_state wrote; returns (history, first epoch to run). A state saved with another
    recipe is a UserError that names the settings that differ."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = Recipe.from_dict(state["recipe"])
    except Exception as err:
        raise UserError(f"cannot resume from {path}: {str(err).splitlines()[0]}; delete it to start afresh") from err
    differs = saved.differences(recipe)
    if differs:
        raise UserError(f"{path} was started with other settings ({', '.join(FLAG_OF.get(k, k) for k in differs)}); "
                        "use the same flags or delete it to start afresh")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])  # dropout draws from the global generator
    return state["history"], len(state["history"]) + 1


def check_recipe(recipe: Recipe, processes: int = 1) -> None:
    """A UserError, in train.py's words, for a recipe this code cannot train: the parts made for the cnn's layers on
    another network, and those that look across the whole batch under torchrun, where each process holds its share."""
    for name, flag in (("decoder", f"--decoder {recipe.decoder}"), ("class_anchors", "--class-anchors"),
                       ("placeholders", "--placeholders")):
        if recipe.arch != "cnn" and uses(recipe, name):
            raise UserError(f"{flag} is for --arch cnn")
    if uses(recipe, "oe_negatives") and not recipe.negatives_per_batch:
        raise UserError("--oe-negatives chooses outlier exposure's negatives: it needs --oe-fraction")
    if recipe.oe_negatives == "poses" and set(recipe.known_classes) <= {0, 8}:
        raise UserError("--oe-negatives poses needs a known class other than 0 and 8 (every pose leaves those a digit)")
    if recipe.placeholders and recipe.decoder == "conditional":
        raise UserError("--placeholders is not for --decoder conditional (a placeholder has no class to tell it)")
    if processes > 1 and recipe.decoder == "conditional":
        raise UserError("--decoder conditional trains in one process only (its wrong-class pass is outside DDP)")
    if processes > 1 and recipe.placeholders:
        raise UserError("--placeholders trains in one process only (a placeholder mixes digits of the whole batch)")


def fit(recipe: Recipe, data_dir: str | Path, device: torch.device, world: World = World(),
        resume_path: Path | None = None, show_progress: bool = False, on_epoch=None, validate: bool = True) -> dict:
    """Trains as the recipe says and returns the checkpoint. With `resume_path`, the state after every epoch but
    the last is kept there, and a state found there is resumed. `on_epoch(model, stats)` is called on rank 0
    after every epoch (stats hold the epoch's loss, accuracies and training seconds so far). Without `validate`,
    no epoch is scored on the validation split (its accuracy is None): for a caller that scores the finished model
    there itself. The weights are the same either way."""
    check_recipe(recipe, world.size)
    seed_everything(recipe.seed)
    d = split(recipe, data_dir)
    known = d.known
    config = ModelConfig(arch=recipe.arch, num_classes=len(known), width=recipe.width,
                         conditional_decoder=recipe.decoder == "conditional",
                         memory_slots=MEMORY_SLOTS if recipe.decoder == "memory" else 0,
                         class_anchors=recipe.class_anchors)
    model = build_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = recipe.epochs * batches_per_epoch(len(d.train_images), recipe.batch_size, world.size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=max(steps, 1))
    generator = torch.Generator().manual_seed(recipe.seed)
    if world.is_main:
        log.info("training on %d images of classes %s, validating on %d (device %s, %s%s)", len(d.train_images), known,
                 len(d.val_images), device, recipe.precision, f", {world.size} processes" if world.distributed else "")

    history, first_epoch = [], 1
    if resume_path is not None and resume_path.is_file():
        history, first_epoch = restore_resume_state(resume_path, recipe, model, optimizer, scheduler, generator)
        if world.is_main:
            log.info("resuming after epoch %d from %s", first_epoch - 1, resume_path)
    trainable = wrap(model, world, device)
    seconds = history[-1]["train_seconds"] if history else 0.0
    for epoch in range(first_epoch, recipe.epochs + 1):
        started = time.perf_counter()
        stats = train_one_epoch(trainable, d.train_images, d.train_targets, optimizer, scheduler, recipe, device, generator,
                                epoch=epoch, show_progress=world.is_main and show_progress, world=world)
        epoch_seconds = time.perf_counter() - started
        seconds += epoch_seconds
        stats["val_accuracy"] = accuracy(model, d.val_images, d.val_labels, known, device) if validate else None
        stats.update(epoch=epoch, train_seconds=seconds)
        history.append(stats)
        if world.is_main:
            val = "" if stats["val_accuracy"] is None else f"  val acc {stats['val_accuracy']:.4f}"
            log.info("epoch %d: loss %.4f  train acc %.4f%s  (%.0fs, %.0f images/s)", epoch, stats["loss"],
                     stats["train_accuracy"], val, seconds, len(d.train_images) / epoch_seconds)
            if on_epoch is not None:
                on_epoch(model, stats)
        if epoch < recipe.epochs and resume_path is not None:
            if world.is_main:
                save_resume_state(resume_path, recipe, model, optimizer, scheduler, generator, history)
            world.barrier()

    finish_fitting(model, *d.fit_images, device)
    return {
        "format_version": CHECKPOINT_FORMAT,
        "model_config": config.to_dict(),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "known_classes": known,
        "val_indices": d.val_indices,
        "recipe": recipe.to_dict(),
        # Only numbers a seed reproduces (no timings): the same seed gives the same checkpoint, byte for byte.
        "metrics": {"val_accuracy": history[-1]["val_accuracy"] if history else None,
                    "history": [{k: v for k, v in h.items() if k != "train_seconds"} for h in history]},
    }

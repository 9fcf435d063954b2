"""Stage 1: train the digit classifier jointly with its autoencoders on MNIST.

Usage: python train.py [--epochs 5] [--known-classes 2,4,5,9,8,3] [--out artifacts/model.pt]
       torchrun --nproc_per_node=2 train.py [...]   (DistributedDataParallel: each process a shard of every batch)

Trains on the 60k training images minus the fixed validation split (recorded in the checkpoint,
the only data later stages calibrate on) and saves the checkpoint atomically.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from osr_core import cli, data, distributed
from osr_core.io import CHECKPOINT_FORMAT, atomic_write_bytes, save_checkpoint, torch_bytes
from osr_core.models import ModelConfig, build_model
from osr_core.scores import score_images
from osr_core.training import Recipe, finish_fitting, train_one_epoch

log = logging.getLogger("osr")


def parse_classes(text: str) -> list[int]:
    try:
        classes = sorted({int(c) for c in text.replace(",", " ").split()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected digits separated by commas, e.g. 2,4,5,9,8,3; got {text!r}") from None
    outside = [c for c in classes if not 0 <= c <= 9]
    if outside:
        raise argparse.ArgumentTypeError(f"{', '.join(map(str, outside))} is not a digit 0-9; separate digits with "
                                         "commas, e.g. 2,4,5,9,8,3")
    if len(classes) < 2:
        raise argparse.ArgumentTypeError(f"need at least two distinct digits, got {text!r}")
    return classes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Defaults read off make bench's time-to-quality curves (validation accuracy and proxy AUROC against time).
    p.add_argument("--epochs", type=cli.number(int, 1), default=5)
    p.add_argument("--batch-size", type=cli.number(int, 1), default=256)
    p.add_argument("--lr", type=cli.number(float, 0, low_open=True), default=6e-3,
                   help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=cli.number(float, 0), default=5e-4)
    p.add_argument("--known-classes", type=parse_classes, default=list(range(10)),
                   help="digits to train on, e.g. 2,4,5,9,8,3 (default: all ten)")
    p.add_argument("--arch", choices=["cnn", "dhrnet"], default="cnn",
                   help="cnn (default) or dhrnet, CROSR's hierarchical-latent network with its OpenMax detector")
    p.add_argument("--width", type=cli.number(int, 1), default=ModelConfig.width, help="channels of the first conv block")
    p.add_argument("--decoder", choices=["plain", "conditional"], default="plain",
                   help="conditional: the decoder reconstructs a digit only when told its class (cnn only)")
    p.add_argument("--no-augment", action="store_true", help="train without random affine warps")
    p.add_argument("--oe-fraction", type=cli.number(float, 0, 4), default=0.0,
                   help="outlier-exposure negatives per batch, as a fraction of the batch size (0: none)")
    p.add_argument("--oe-weight", type=cli.number(float, 0), default=0.5, help="weight of the outlier-exposure loss")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="bf16: bfloat16 autocast for the forward pass; auto (default): bf16 where the CPU (AVX512-BF16, "
                        "AMX) or GPU runs it natively, else fp32")
    p.add_argument("--train-limit", type=cli.number(int, 1), default=None, help="use only the first N training images (quick runs)")
    p.add_argument("--out", default=cli.DEFAULT_CHECKPOINT)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last finished epoch (state kept in OUT.resume)")
    cli.add_common_flags(p, "data_dir", "device", "seed")
    return p


def accuracy(model, images_u8: torch.Tensor, labels: torch.Tensor, known: list[int], device) -> float:
    scored = score_images(model, data.to_float(images_u8), known, device, batch_size=1024)
    return float((torch.from_numpy(scored.pred) == labels).float().mean())


GAUSSIAN_FIT_IMAGES = 10000  # plenty for a 128-d mean and covariance, and for batch-norm statistics; 2 passes, ~3 s
RESUME_KEYS = ("arch", "epochs", "batch_size", "lr", "weight_decay", "known_classes", "width", "no_augment", "train_limit",
               "seed", "oe_fraction", "oe_weight", "precision", "decoder")


def save_checkpoint_state(path: Path, args, model, optimizer, scheduler, generator, history) -> None:
    atomic_write_bytes(path, torch_bytes({
        "args": {k: getattr(args, k) for k in RESUME_KEYS}, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "history": history,
    }))


def restore(path: Path, args, model, optimizer, scheduler, generator) -> tuple[list, int]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise cli.UserError(f"cannot resume from {path}: {str(err).splitlines()[0]}; delete it to start afresh") from err
    differs = [k for k in RESUME_KEYS if state["args"].get(k) != getattr(args, k)]
    if differs:
        raise cli.UserError(f"{path} was started with other settings ({', '.join('--' + k.replace('_', '-') for k in differs)}); "
                            "use the same flags or delete it to start afresh")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])  # dropout draws from the global generator
    return state["history"], len(state["history"]) + 1


@dataclass
class Split:
    """The checkpoint's data: training digits (uint8, class indices 0..K-1) and the validation split."""
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


def split(args: argparse.Namespace) -> Split:
    images, labels = data.load_mnist(args.data_dir, train=True)
    val_idx = data.validation_indices(len(images))
    known = args.known_classes
    train_idx = data.train_indices(len(images), val_idx)
    train_idx = train_idx[torch.isin(labels[train_idx], torch.tensor(known))]
    if args.train_limit:
        train_idx = train_idx[:args.train_limit]
    val_known = val_idx[torch.isin(labels[val_idx], torch.tensor(known))]
    to_target = torch.full((10,), -1, dtype=torch.long)  # class labels -> output indices 0..K-1
    to_target[torch.tensor(known)] = torch.arange(len(known))
    return Split(known, val_idx, images[train_idx], to_target[labels[train_idx]], images[val_known], labels[val_known])


def fit(args: argparse.Namespace, world: distributed.World, device: torch.device, on_epoch=None) -> dict:
    """Trains as `args` say and returns the checkpoint. `on_epoch(model, stats)` is called on rank 0 after every
    epoch (stats hold the epoch's loss, accuracies and training seconds so far); the bench records its curves so."""
    cli.seed_everything(args.seed)
    d = split(args)
    known = d.known

    config = ModelConfig(arch=args.arch, num_classes=len(known), width=args.width,
                         conditional_decoder=args.decoder == "conditional")
    model = build_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * -(-len(d.train_images) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=max(steps, 1))
    generator = torch.Generator().manual_seed(args.seed)
    recipe = Recipe(args.batch_size, not args.no_augment, round(args.oe_fraction * args.batch_size), args.oe_weight,
                    args.precision == "bf16")
    if world.is_main:
        log.info("training on %d images of classes %s, validating on %d (device %s, %s%s)", len(d.train_images), known,
                 len(d.val_images), device, args.precision, f", {world.size} processes" if world.distributed else "")

    history, first_epoch = [], 1
    resume_path = Path(f"{args.out}.resume")
    if args.resume and resume_path.is_file():
        history, first_epoch = restore(resume_path, args, model, optimizer, scheduler, generator)
        if world.is_main:
            log.info("resuming after epoch %d from %s", first_epoch - 1, resume_path)
    trainable = distributed.wrap(model, world, device)
    seconds = history[-1]["train_seconds"] if history else 0.0
    for epoch in range(first_epoch, args.epochs + 1):
        started = time.perf_counter()
        stats = train_one_epoch(trainable, d.train_images, d.train_targets, optimizer, scheduler, recipe, device, generator,
                                epoch=epoch, show_progress=world.is_main and cli.progress_enabled(args.quiet), world=world)
        epoch_seconds = time.perf_counter() - started
        seconds += epoch_seconds
        stats["val_accuracy"] = accuracy(model, d.val_images, d.val_labels, known, device)
        stats.update(epoch=epoch, train_seconds=seconds)
        history.append(stats)
        if world.is_main:
            log.info("epoch %d: loss %.4f  train acc %.4f  val acc %.4f  (%.0fs, %.0f images/s)", epoch, stats["loss"],
                     stats["train_accuracy"], stats["val_accuracy"], seconds, len(d.train_images) / epoch_seconds)
            if on_epoch is not None:
                on_epoch(model, stats)
        if epoch < args.epochs:  # what an interrupted run needs to go on exactly where it stopped
            if world.is_main:
                save_checkpoint_state(resume_path, args, model, optimizer, scheduler, generator, history)
            world.barrier()

    finish_fitting(model, *d.fit_images, device)
    return {
        "format_version": CHECKPOINT_FORMAT,
        "model_config": config.to_dict(),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "known_classes": known,
        "val_indices": d.val_indices,
        "train_args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, list, type(None)))},
        # Only numbers a seed reproduces (no timings): the same seed gives the same checkpoint, byte for byte.
        "metrics": {"val_accuracy": history[-1]["val_accuracy"] if history else None,
                    "history": [{k: v for k, v in h.items() if k != "train_seconds"} for h in history]},
    }


def run(args: argparse.Namespace) -> int:
    if args.decoder == "conditional" and args.arch != "cnn":
        raise cli.UserError("--decoder conditional is for --arch cnn")
    world, device_name = distributed.start(args.device)
    try:
        if world.distributed and args.decoder == "conditional":
            raise cli.UserError("--decoder conditional trains in one process only (its wrong-class pass is outside DDP)")
        device = cli.resolve_device(device_name)
        args.precision = cli.resolve_precision(args.precision, device)
        checkpoint = fit(args, world, device)
        if world.is_main:
            save_checkpoint(args.out, checkpoint)
            Path(f"{args.out}.resume").unlink(missing_ok=True)
            log.info("saved %s", args.out)
        world.barrier()
    finally:
        distributed.stop(world)
    return 0


def main(argv=None) -> int:
    return cli.run(run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

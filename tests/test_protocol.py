"""The unseen-digit protocol reuses a split's model only when it was trained exactly as this run would train it."""
from __future__ import annotations

import argparse
from dataclasses import replace

import torch

import evaluate_osr
import train
from osr_core import cli
from osr_core.io import load_checkpoint, save_checkpoint
from osr_core.training import Recipe

FLAGS = ["--known-classes", "2,4,5,9,8,3", "--epochs", "1", "--train-limit", "600", "--width", "8", "--seed", "0"]


def _recipe(*extra: str) -> Recipe:
    return train.recipe_of(train.build_parser().parse_args([*FLAGS, *extra]), torch.device("cpu"))


def test_a_split_model_is_reused_only_when_its_whole_recipe_matches(data_dir, tmp_path):
    checkpoint = tmp_path / "model.pt"
    assert train.main([*FLAGS, "--data-dir", data_dir, "--device", "cpu", "--quiet", "--out", str(checkpoint)]) == 0
    assert load_checkpoint(checkpoint)["recipe"] == _recipe().to_dict()
    assert evaluate_osr.reusable(checkpoint, _recipe())
    other_precision = "fp32" if _recipe().precision == "bf16" else "bf16"  # whichever this machine does not default to
    for other in (["--width", "16"], ["--decoder", "conditional"], ["--lr", "0.01"], ["--weight-decay", "0"],
                  ["--epochs", "2"], ["--batch-size", "128"], ["--oe-fraction", "0.5"], ["--no-augment"],
                  ["--known-classes", "2,4,5,9,8,1"], ["--seed", "1"], ["--precision", other_precision], ["--train-limit", "700"]):
        assert not evaluate_osr.reusable(checkpoint, _recipe(*other)), other
    assert not evaluate_osr.reusable(checkpoint, replace(_recipe(), code_version=_recipe().code_version + 1))
    assert not evaluate_osr.reusable(tmp_path / "missing.pt", _recipe())
    # A checkpoint of the previous format (a few of train.py's arguments, no recipe) is trained again, not reused.
    old = load_checkpoint(checkpoint)
    old["format_version"], old["train_args"] = 1, {"known_classes": [2, 3, 4, 5, 8, 9], "epochs": 1, "seed": 0}
    del old["recipe"]
    save_checkpoint(tmp_path / "old.pt", {**old, "recipe": None})
    assert not evaluate_osr.reusable(tmp_path / "old.pt", _recipe())


def test_a_split_is_trained_with_train_pys_defaults_and_its_own_classes():
    args = argparse.Namespace(split_epochs=Recipe.epochs, seed=0)
    flags = evaluate_osr.split_flags([6, 3, 4, 9, 8, 2], args)
    recipe = train.recipe_of(train.build_parser().parse_args(flags), torch.device("cpu"))
    expected = Recipe(known_classes=(2, 3, 4, 6, 8, 9), precision=cli.resolve_precision("auto", torch.device("cpu")))
    assert recipe == expected

"""A model from earlier work (a protocol split's, a leave-classes-out one) is reused only when it was trained exactly
as this run would train it: every field of its recipe, each tried here."""
from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest
import torch

import evaluate_osr
import train
from osr_core import data, leave_out, protocol
from osr_core.io import load_checkpoint, save_checkpoint
from osr_core.recipe import FIELD_CODE_VERSIONS, TRAINING_CODE_VERSION, Recipe, reusable_checkpoint

FLAGS = ["--known-classes", "2,4,5,9,8,3", "--epochs", "1", "--train-limit", "600", "--width", "8", "--seed", "0"]


def _recipe(*extra: str) -> Recipe:
    return train.recipe_of(train.build_parser().parse_args([*FLAGS, *extra]), torch.device("cpu"))


def _another(recipe: Recipe, name: str):
    """A valid value of recipe field `name` other than the recipe's own."""
    value = getattr(recipe, name)
    others = {"arch": {"cnn": "dhrnet", "dhrnet": "cnn"}, "decoder": {"plain": "conditional", "conditional": "plain"},
              "precision": {"fp32": "bf16", "bf16": "fp32"}, "oe_negatives": {"chimeras-overlays": "poses"}}
    if name in others:
        return others[name][value]
    if name == "known_classes":
        return tuple(sorted(value[:-1] + (1,)))
    if name == "train_limit":
        return (value or 0) + 100
    if isinstance(value, bool):
        return not value
    return value + 1 if isinstance(value, int) else value * 2 + 0.25


def test_a_model_is_reused_only_when_every_field_of_its_recipe_matches(data_dir, tmp_path):
    checkpoint = tmp_path / "model.pt"
    assert train.main([*FLAGS, "--data-dir", data_dir, "--device", "cpu", "--quiet", "--out", str(checkpoint)]) == 0
    assert load_checkpoint(checkpoint)["recipe"] == _recipe().to_dict()
    assert reusable_checkpoint(checkpoint, _recipe()) is not None
    for f in fields(Recipe):
        if not f.init:  # the training code's version: below
            continue
        other = replace(_recipe(), **{f.name: _another(_recipe(), f.name)})
        assert other != _recipe() and reusable_checkpoint(checkpoint, other) is None, f.name
    older = load_checkpoint(checkpoint)
    older["recipe"] = {**older["recipe"], "code_version": older["recipe"]["code_version"] - 1}
    save_checkpoint(tmp_path / "older.pt", older)
    assert reusable_checkpoint(tmp_path / "older.pt", _recipe()) is None
    assert reusable_checkpoint(tmp_path / "missing.pt", _recipe()) is None
    (tmp_path / "text.pt").write_text("not a checkpoint")
    assert reusable_checkpoint(tmp_path / "text.pt", _recipe()) is None
    # A checkpoint of the previous format (a few of train.py's arguments, no recipe) is trained again, not reused.
    old = load_checkpoint(checkpoint)
    old["format_version"], old["train_args"] = 1, {"known_classes": [2, 3, 4, 5, 8, 9], "epochs": 1, "seed": 0}
    del old["recipe"]
    save_checkpoint(tmp_path / "old.pt", {**old, "recipe": None})
    assert reusable_checkpoint(tmp_path / "old.pt", _recipe()) is None


def test_a_change_to_outlier_exposure_retires_only_the_models_that_use_it():
    default, exposed = Recipe(), Recipe(oe_fraction=0.25)
    assert default.code_version == TRAINING_CODE_VERSION < exposed.code_version == FIELD_CODE_VERSIONS["oe_fraction"]
    assert replace(exposed, oe_fraction=0.0) == default and replace(default, oe_weight=0.1).code_version == default.code_version
    trained_before = Recipe.from_dict({**exposed.to_dict(), "code_version": TRAINING_CODE_VERSION})
    assert trained_before.differences(exposed) == ["code_version"]
    assert Recipe.from_dict(exposed.to_dict()) == exposed


def test_a_leave_classes_out_model_is_trained_again_when_its_recipe_differs(tmp_path, monkeypatch):
    trained = []

    def fit(recipe, data_dir, device, validate=True):
        trained.append(recipe)
        return {"recipe": recipe.to_dict()}
    monkeypatch.setattr(leave_out, "fit", fit)
    monkeypatch.setattr(leave_out, "save_checkpoint", lambda path, ckpt: torch.save(ckpt, path))
    monkeypatch.setattr(leave_out, "model_from_checkpoint", lambda ckpt, device: ckpt)
    monkeypatch.setattr("osr_core.recipe.load_checkpoint", lambda path: torch.load(path, weights_only=False))
    path = tmp_path / "fold.pt"
    recipe = _recipe()
    leave_out.fold_model(recipe, path, "data", torch.device("cpu"))
    leave_out.fold_model(recipe, path, "data", torch.device("cpu"))           # the same recipe: reused
    assert trained == [recipe]
    leave_out.fold_model(replace(recipe, oe_weight=0.25), path, "data", torch.device("cpu"))
    assert len(trained) == 2 and trained[1].oe_weight == 0.25


def test_a_split_is_trained_with_train_pys_preset_and_its_own_classes():
    settings = protocol.Settings("data", "splits")
    recipe = protocol.split_recipe([6, 3, 4, 9, 8, 2], settings)
    flags = ["--known-classes", "6,3,4,9,8,2"]
    assert recipe == train.recipe_of(train.build_parser().parse_args(flags), torch.device("cpu"))
    assert protocol.split_recipe([6, 3], protocol.Settings("data", "splits", epochs=3, seed=4)) == replace(
        recipe, known_classes=(3, 6), epochs=3, seed=4)
    # Another preset's splits are that preset on the split's classes, as train.py --preset trains it.
    large = protocol.split_recipe([6, 3, 4, 9, 8, 2], protocol.Settings("data", "splits", preset="large"))
    assert large == train.recipe_of(train.build_parser().parse_args([*flags, "--preset", "large"]), torch.device("cpu"))
    args = evaluate_osr.build_parser().parse_args(["--split-preset", "large"])
    assert (args.split_preset, args.split_epochs) == ("large", None)  # the preset's epochs unless given


def test_the_protocol_runs_every_split_with_its_share_of_the_cores_and_summarises_them(monkeypatch, tmp_path):
    ran = []

    def run_split(i, known, settings, threads):
        ran.append((i, tuple(known), threads))
        return {"auroc": 0.99 + i / 1000, "macro_f1": 0.9, "known_classes": sorted(known)}
    monkeypatch.setattr(protocol, "run_split", run_split)
    summary = protocol.run_unseen_digits(protocol.Settings("data", str(tmp_path)), jobs=1)
    assert [r[:2] for r in ran] == [(i, tuple(k)) for i, k in enumerate(data.UNSEEN_DIGIT_SPLITS)]
    assert summary["auroc_mean"] == pytest.approx(0.992) and summary["auroc_min"] == 0.99
    assert (summary["preset"], summary["epochs"]) == ("default", 5)
    assert json.loads((tmp_path / protocol.SUMMARY).read_text()) == summary

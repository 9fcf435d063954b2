"""Faults: interrupted training resumes to the same model; an interrupted save leaves no half file."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import train
from conftest import finished, stage_args
from osr_core import io, training
from osr_core.io import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def train_args(out, *extra) -> list[str]:
    return ["--epochs", "2", "--train-limit", "1500", "--width", "8", "--device", "cpu", "--quiet", "--out", str(out), *extra]


@pytest.fixture
def ctrl_c_in_epoch_2(monkeypatch):
    """While active, train.py is interrupted (as by Ctrl-C) when its second epoch starts."""
    def interrupted(*args, **kwargs):
        if kwargs["epoch"] == 2:
            raise KeyboardInterrupt
        return real_train_one_epoch(*args, **kwargs)
    real_train_one_epoch = training.train_one_epoch
    monkeypatch.setattr(training, "train_one_epoch", interrupted)
    return lambda: monkeypatch.setattr(training, "train_one_epoch", real_train_one_epoch)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, data_dir, ctrl_c_in_epoch_2):
    out = tmp_path / "model.pt"
    assert train.main(train_args(out, "--data-dir", data_dir)) == 130  # Ctrl-C: one line, exit 130
    assert not out.exists() and (tmp_path / "model.pt.resume").is_file()
    ctrl_c_in_epoch_2()  # lift the interruption
    assert train.main(train_args(tmp_path / "straight.pt", "--data-dir", data_dir)) == 0
    assert train.main(train_args(out, "--data-dir", data_dir, "--resume")) == 0
    assert not (tmp_path / "model.pt.resume").exists()
    resumed, straight = load_checkpoint(out), load_checkpoint(tmp_path / "straight.pt")
    assert [h["epoch"] for h in resumed["metrics"]["history"]] == [1, 2]
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_resume_with_other_settings_is_refused(tmp_path, data_dir, capsys, ctrl_c_in_epoch_2):
    out = tmp_path / "model.pt"
    assert train.main(train_args(out, "--data-dir", data_dir)) == 130  # Ctrl-C: one line, exit 130
    assert train.main(train_args(out, "--data-dir", data_dir, "--resume", "--lr", "0.1")) == 2
    assert "--lr" in capsys.readouterr().err


def test_interrupted_checkpoint_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"previous checkpoint")

    def crash(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(io.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        io.atomic_write_bytes(path, b"x" * 1000)
    assert path.read_bytes() == b"previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_half_finished_download_leaves_no_partial_file(tmp_path):
    from osr_core import data
    expected = {"train-images-idx3-ubyte": "0" * 32}

    def dies_midway(raw_dir):
        (raw_dir / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b half a download")
        raise ConnectionResetError("connection reset")
    with pytest.raises(data.UserError, match="dies midway"):
        data.ensure_raw_files(tmp_path, expected, [data.Source("dies midway", dies_midway)], "X", "")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fault", ["disk full", "permission denied"])
def test_write_errors_are_a_clear_error_and_earlier_outputs_survive(trained_run, data_dir, tmp_path, capsys,
                                                                     monkeypatch, fault, test_stage_run):
    import errno
    import shutil

    import test as test_stage
    out = tmp_path / "test"
    shutil.copytree(test_stage_run, out)   # a finished run: what a failed later run must leave as it was
    args = stage_args(trained_run, data_dir=data_dir, out_dir=out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    # As root, chmod does not stop writes, so the operating system's answer is simulated.
    if fault == "disk full":
        monkeypatch.setattr(io.os, "fsync", no_space)
    else:
        monkeypatch.setattr(io.tempfile, "mkstemp", denied)
    assert test_stage.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = "No space left on device" if fault == "disk full" else "Permission denied"
    assert len(err) == 1 and expected in err[0] and str(out) in err[0]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in out.rglob("*.tmp")]


def test_same_seed_gives_identical_files_byte_for_byte(background_runs):
    """Two complete runs (train, calibrate with its leave-classes-out models, test, evaluate) on tiny data with one
    seed, on the CPU, each in a fresh Python process (so no state left in one interpreter can make them agree) and
    its own folder with the same relative paths (the report names the files it read). They ran in the background
    since the session's first test (conftest.background_runs)."""
    def files(name):
        folder, _ = finished(background_runs, name)
        names = ["model.pt", "reconstruction_errors.txt", "calibration.json", "test/scores.csv", "osr/metrics.json",
                 "osr/report.md", *sorted(str(p.relative_to(folder)) for p in (folder / "leave_out").iterdir())]
        return {n: (folder / n).read_bytes() for n in names}

    first, second = files("a"), files("b")
    assert list(first)[:6] == ["model.pt", "reconstruction_errors.txt", "calibration.json", "test/scores.csv",
                               "osr/metrics.json", "osr/report.md"] and len(first) == 6 + 4   # 2 fold models, their evidence
    assert list(first) == list(second)
    for name in first:
        assert first[name] == second[name], name


# A value other than the default for every recipe field: a field added to Recipe without one here fails the test below.
OTHER_VALUES = {"known_classes": (0, 1, 2), "arch": "dhrnet", "epochs": 6, "batch_size": 128, "lr": 1e-3,
                "weight_decay": 0.0, "width": 24, "decoder": "conditional", "augment": False, "elastic": 1.0, "pen": 0.5,
                "oe_fraction": 0.25, "oe_weight": 0.1, "oe_negatives": "poses", "logit_norm": 0.04, "compactness": 1.0,
                "class_anchors": 10.0, "placeholders": 0.25, "precision": "bf16",
                "train_limit": 100, "seed": 1, "code_version": 1}


def test_resume_refuses_a_state_that_differs_in_any_recipe_field_and_names_its_flag(tmp_path):
    import re
    from dataclasses import fields

    from osr_core.cli import UserError
    from osr_core.recipe import FLAG_OF, Recipe
    from osr_core.training import restore_resume_state
    assert set(OTHER_VALUES) == {f.name for f in fields(Recipe)}
    recipe = Recipe()
    for name, value in OTHER_VALUES.items():
        state = tmp_path / f"{name}.resume"
        torch.save({"recipe": {**recipe.to_dict(), name: value}}, state)  # code_version as an older run records it
        with pytest.raises(UserError, match=re.escape(f"({FLAG_OF[name]})")):
            restore_resume_state(state, recipe, None, None, None, None)

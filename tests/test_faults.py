"""Faults: interrupted training resumes to the same model; an interrupted save leaves no half file."""
from __future__ import annotations

import pytest
import torch

import train
from osr_core import io, training
from osr_core.io import load_checkpoint


def train_args(out, *extra) -> list[str]:
    return ["--epochs", "2", "--train-limit", "1500", "--width", "8", "--device", "cpu", "--quiet", "--out", str(out), *extra]


@pytest.fixture
def ctrl_c_in_epoch_2(monkeypatch):
    """While active, train.py is interrupted (as by Ctrl-C) when its second epoch starts."""
    def interrupted(*args, **kwargs):
        if kwargs["epoch"] == 2:
            raise KeyboardInterrupt
        return training.train_one_epoch(*args, **kwargs)
    monkeypatch.setattr(train, "train_one_epoch", interrupted)
    return lambda: monkeypatch.setattr(train, "train_one_epoch", training.train_one_epoch)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, data_dir, ctrl_c_in_epoch_2):
    out = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt):
        train.main(train_args(out, "--data-dir", data_dir))
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
    with pytest.raises(KeyboardInterrupt):
        train.main(train_args(out, "--data-dir", data_dir))
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

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
                                                                     monkeypatch, fault):
    import errno

    import test as test_stage
    out = tmp_path / "test"
    args = ["--checkpoint", str(trained_run["checkpoint"]), "--thresholds", str(trained_run["thresholds"]),
            "--data-dir", data_dir, "--device", "cpu", "--quiet", "--out-dir", str(out)]
    assert test_stage.main(args) == 0
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


def test_same_seed_gives_identical_files_byte_for_byte(tmp_path, data_dir, letters_dir, monkeypatch):
    """Two complete runs (train, calibrate, test, evaluate) on tiny data with one seed, on the CPU, each in
    its own folder with the same relative paths (the report names the files it read)."""
    import compute_class_reconstruction_errors
    import evaluate_osr
    import test as test_stage
    from pathlib import Path

    def run(folder):
        folder.mkdir()
        monkeypatch.chdir(folder)
        folder = Path(".")
        ckpt, thr = folder / "model.pt", folder / "reconstruction_errors.txt"
        common = ["--data-dir", data_dir, "--device", "cpu", "--quiet"]
        assert train.main(["--epochs", "1", "--train-limit", "1000", "--width", "8", "--out", str(ckpt), *common]) == 0
        assert compute_class_reconstruction_errors.main(["--checkpoint", str(ckpt), "--out", str(thr), *common]) == 0
        staged = ["--checkpoint", str(ckpt), "--thresholds", str(thr), *common]
        assert test_stage.main([*staged, "--out-dir", str(folder / "test"), "--max-panels", "5"]) == 0
        assert evaluate_osr.main([*staged, "--out-dir", str(folder / "osr"), "--letters-dir", str(letters_dir),
                                  "--n-generated", "200", "--bootstrap", "10", "--no-embeddings", "--splits-dir", "s"]) == 0
        names = [ckpt, thr, folder / "test" / "scores.csv", folder / "osr" / "metrics.json", folder / "osr" / "report.md"]
        return {n.name: n.read_bytes() for n in names}

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert list(first) == ["model.pt", "reconstruction_errors.txt", "scores.csv", "metrics.json", "report.md"]
    for name in first:
        assert first[name] == second[name], name

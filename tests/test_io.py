"""io.py: atomic writes, output folders a re-run replaces (and nothing else), and checkpoints that
can never run code when loaded."""
import errno
import json
import os
import pickle
import stat
from pathlib import Path

import pytest
import torch

from osr_core import io as osr_io
from osr_core.cli import UserError
from osr_core.io import CHECKPOINT_FORMAT, CHECKPOINT_KEYS, LOCK_NAME, MANIFEST_NAME, StageOutputs

ROOT = Path(__file__).resolve().parents[1]


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ----------------------------------------------------------------------------------- atomic writes
def test_atomic_write_leaves_no_temp_file_and_usual_permissions(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    osr_io.atomic_write_bytes(target, b"first")
    osr_io.atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["out.bin"]
    with open(tmp_path / "plain.bin", "wb") as f:  # what any ordinary write would give
        f.write(b"x")
    assert _mode(target) == _mode(tmp_path / "plain.bin")
    assert _mode(target) != 0o600 or _mode(tmp_path / "plain.bin") == 0o600


def test_atomic_write_gets_the_umask_permissions_even_under_a_strict_umask(tmp_path):
    old = os.umask(0o027)
    try:
        osr_io.atomic_write_bytes(tmp_path / "a.bin", b"x")
        with open(tmp_path / "b.bin", "wb"):
            pass
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.bin") == _mode(tmp_path / "b.bin") == 0o640


def test_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old content")

    def failing_replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(UserError, match="No space left on device") as info:
        osr_io.atomic_write_bytes(target, b"new content that never lands")
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"old content"
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]


def test_write_into_an_unusable_folder_is_a_user_error(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(UserError, match="cannot write to"):
        osr_io.atomic_write_bytes(tmp_path / "a_file" / "out.txt", b"x")


# ----------------------------------------------------------------------------------- StageOutputs
def _run(out_dir, files):
    outputs = StageOutputs(out_dir)
    for name in files:
        outputs.write_text(name, f"{name}\n")
    outputs.finish()


def _manifest(out_dir):
    return json.loads((out_dir / MANIFEST_NAME).read_text())


def test_rerun_replaces_the_stage_outputs_and_keeps_the_users_files(tmp_path):
    out = tmp_path / "out"
    _run(out, ["a.txt", "b.txt", "sub/c.txt"])
    assert _manifest(out) == ["a.txt", "b.txt", "sub/c.txt"]
    (out / "keep.txt").write_text("mine")
    (out / "sub" / "other.txt").write_text("mine too")

    _run(out, ["a.txt"])
    assert (out / "a.txt").read_text() == "a.txt\n"
    assert not (out / "b.txt").exists() and not (out / "sub" / "c.txt").exists()
    assert (out / "keep.txt").read_text() == "mine"
    assert (out / "sub" / "other.txt").read_text() == "mine too"
    assert _manifest(out) == ["a.txt"]


def test_rerun_removes_a_subfolder_it_emptied(tmp_path):
    out = tmp_path / "out"
    _run(out, ["a.txt", "sub/c.txt"])
    _run(out, ["a.txt"])
    assert sorted(os.listdir(out)) == [LOCK_NAME, MANIFEST_NAME, "a.txt"]


def test_rerun_removes_nested_subfolders_it_emptied(tmp_path):
    out = tmp_path / "out"
    _run(out, ["a.txt", "deep/er/c.txt"])
    _run(out, ["a.txt"])
    assert sorted(os.listdir(out)) == [LOCK_NAME, MANIFEST_NAME, "a.txt"]


def _plant_manifest(out, names):
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).write_text(json.dumps(names))


def test_manifest_entry_with_dotdot_is_never_deleted(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "x").write_text("outside")
    _plant_manifest(out, ["../x", "a.txt"])
    (out / "a.txt").write_text("stale")
    _run(out, [])
    assert (tmp_path / "x").read_text() == "outside"
    assert not (out / "a.txt").exists()  # the legitimate stale entry is still removed


def test_absolute_manifest_entry_is_never_deleted(tmp_path):
    out, victim = tmp_path / "out", tmp_path / "elsewhere" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("outside")
    (victim.parent / "other.txt").write_text("keeps the folder non-empty")
    _plant_manifest(out, [str(victim)])
    _run(out, [])
    assert victim.exists()


def test_dotdot_manifest_entry_never_removes_an_outside_folder(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "empty"
    outside.mkdir()
    _plant_manifest(out, ["../empty/x"])
    _run(out, [])
    assert outside.is_dir()


def test_manifest_entry_through_a_symlinked_folder_is_never_deleted(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "victim.txt").write_text("outside")
    (elsewhere / "other.txt").write_text("keeps the folder non-empty")
    _plant_manifest(out, ["link/victim.txt"])
    os.symlink(elsewhere, out / "link")
    _run(out, [])
    assert (elsewhere / "victim.txt").exists()


def test_stale_entry_under_a_symlink_to_an_empty_folder_does_not_crash(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    _plant_manifest(out, ["link/gone.txt"])
    os.symlink(elsewhere, out / "link")
    _run(out, ["a.txt"])
    assert _manifest(out) == ["a.txt"]


def test_a_corrupt_manifest_deletes_nothing(tmp_path):
    out = tmp_path / "out"
    _plant_manifest(out, [])
    (out / MANIFEST_NAME).write_text("{not json")
    (out / "a.txt").write_text("user")
    _run(out, ["b.txt"])
    assert (out / "a.txt").read_text() == "user"
    assert _manifest(out) == ["b.txt"]


# ----------------------------------------------------------------------------------- checkpoints
def _checkpoint():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    return {
        "format_version": CHECKPOINT_FORMAT,
        "model_config": {"arch": "cnn", "width": 4, "latent_dim": 8, "dropout": 0.2},
        "state_dict": layer.state_dict(),
        "known_classes": [3, 5, 7],
        "val_indices": torch.tensor([1, 4, 9]),
        "recipe": {"epochs": 2, "lr": 1e-3, "known_classes": [3, 5, 7]},
        "metrics": {"val_accuracy": 0.875, "history": [0.5, 0.75]},
    }


def test_checkpoint_round_trip(tmp_path):
    ckpt = _checkpoint()
    assert set(ckpt) == set(CHECKPOINT_KEYS)
    path = tmp_path / "model.pt"
    osr_io.save_checkpoint(path, ckpt)
    back = osr_io.load_checkpoint(path)
    assert set(back) == set(CHECKPOINT_KEYS)
    for key in ("format_version", "model_config", "known_classes", "recipe", "metrics"):
        assert back[key] == ckpt[key], key
    assert torch.equal(back["val_indices"], ckpt["val_indices"])
    assert back["state_dict"].keys() == ckpt["state_dict"].keys()
    assert all(torch.equal(back["state_dict"][k], v) for k, v in ckpt["state_dict"].items())
    assert os.listdir(tmp_path) == ["model.pt"]


def test_save_checkpoint_refuses_an_incomplete_checkpoint(tmp_path):
    ckpt = _checkpoint()
    del ckpt["metrics"]
    with pytest.raises(AssertionError):  # a bug in our code, not a user error
        osr_io.save_checkpoint(tmp_path / "model.pt", ckpt)
    assert not (tmp_path / "model.pt").exists()


def test_load_checkpoint_missing_file(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        osr_io.load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("text", [
    "x\n",
    "{}\n",
    "# osr per-class thresholds v1\n",
    "this is not a checkpoint\n",
    "hello\n",
])
def test_load_checkpoint_text_file(tmp_path, text):
    path = tmp_path / "model.pt"
    path.write_text(text)
    with pytest.raises(UserError, match="not a checkpoint of this project|refusing to load") as info:
        osr_io.load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)  # never advise the unsafe way out


@pytest.mark.parametrize("key", ["format_version", "val_indices"])
def test_load_checkpoint_without_a_required_key_names_it(tmp_path, key):
    ckpt = _checkpoint()
    del ckpt[key]
    path = tmp_path / "model.pt"
    torch.save(ckpt, path)
    with pytest.raises(UserError, match=key):
        osr_io.load_checkpoint(path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, how):
    marker = tmp_path / "pwned"
    payload = {"format_version": CHECKPOINT_FORMAT, "state_dict": _Exploit(marker)}
    path = tmp_path / "model.pt"
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    assert b"system" in path.read_bytes()  # the payload is there: plain unpickling would run it
    with pytest.raises(UserError, match="not a checkpoint of this project|refusing to load") as info:
        osr_io.load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)  # never advise the unsafe way out
    assert not marker.exists()


# ----------------------------------------------------------------------------------- whole-stage replacement
def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _stage(out, names, fail_at=None):
    """A stage writing `names` (text = name + run tag), failing (disk full) at write number `fail_at`."""
    with StageOutputs(out) as outputs:
        for k, name in enumerate(names):
            if k == fail_at:
                raise UserError(f"cannot write {out / name}: No space left on device")
            outputs.write_text(name, f"{name} new\n")
        outputs.finish()


@pytest.mark.parametrize("fail_at", [0, 2, 4])
def test_a_failure_at_any_write_leaves_the_previous_outputs_exactly_as_they_were(tmp_path, fail_at):
    out = tmp_path / "out"
    _run(out, ["a.txt", "b.txt", "sub/c.txt"])
    (out / "mine.txt").write_text("the user's")
    before = _snapshot(out)
    with pytest.raises(UserError):
        _stage(out, ["a.txt", "d.txt", "sub/c.txt", "sub/e.txt", "f.txt"], fail_at=fail_at)
    assert _snapshot(out) == before
    assert sorted(os.listdir(out)) == [LOCK_NAME, MANIFEST_NAME, "a.txt", "b.txt", "mine.txt", "sub"]  # no staging left


def test_a_real_write_error_midway_is_one_user_error_and_changes_nothing(tmp_path, monkeypatch):
    import errno
    out = tmp_path / "out"
    _run(out, ["a.txt", "b.txt"])
    before = _snapshot(out)
    calls = {"n": 0}
    real_fsync = osr_io.os.fsync

    def second_write_hits_a_full_disk(fd):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)
    monkeypatch.setattr(osr_io.os, "fsync", second_write_hits_a_full_disk)
    with pytest.raises(UserError, match=r"cannot write .*b.txt: No space left on device"):
        _stage(out, ["a.txt", "b.txt", "c.txt"])
    assert _snapshot(out) == before and sorted(os.listdir(out)) == [LOCK_NAME, MANIFEST_NAME, "a.txt", "b.txt"]


@pytest.mark.parametrize("fail_on_move", [1, 3, 5])
def test_a_failure_while_moving_the_new_outputs_in_puts_every_file_back(tmp_path, monkeypatch, fail_on_move):
    out = tmp_path / "out"
    _run(out, ["a.txt", "b.txt", "sub/c.txt"])
    (out / "mine.txt").write_text("the user's")
    before = _snapshot(out)
    real_replace, calls = osr_io.os.replace, {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == fail_on_move:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)
    monkeypatch.setattr(osr_io.os, "replace", replace)
    with pytest.raises(UserError, match="the previous ones are unchanged"):
        _stage(out, ["a.txt", "sub/c.txt", "new/deep/d.txt"])
    monkeypatch.setattr(osr_io.os, "replace", real_replace)
    assert _snapshot(out) == before
    assert sorted(os.listdir(out)) == [LOCK_NAME, MANIFEST_NAME, "a.txt", "b.txt", "mine.txt", "sub"]


def test_ctrl_c_while_writing_leaves_no_staging_folder(tmp_path):
    out = tmp_path / "out"
    _run(out, ["a.txt"])
    before = _snapshot(out)
    with pytest.raises(KeyboardInterrupt):
        with StageOutputs(out) as outputs:
            outputs.write_text("a.txt", "new")
            raise KeyboardInterrupt
    assert _snapshot(out) == before and sorted(os.listdir(out)) == [LOCK_NAME, MANIFEST_NAME, "a.txt"]


def test_a_file_the_new_run_replaces_that_no_manifest_listed_is_replaced_and_listed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("left by hand")
    _run(out, ["a.txt"])
    assert (out / "a.txt").read_text() == "a.txt\n" and _manifest(out) == ["a.txt"]


# ----------------------------------------------------------------------------------- runs that die or overlap
HOLD = """
import sys, time
from osr_core.io import StageOutputs
outputs = StageOutputs(sys.argv[1])
outputs.write_text("half.txt", "a run that will not finish")
print("holding", flush=True)
time.sleep(600)
"""


def _holder(out):
    """A run in another process that has started writing into `out` and goes on running."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "holding"
    return proc


def _tree(folder: Path) -> dict:
    """Every file and folder below `folder`, hidden ones too, with the bytes of each file."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_a_second_run_into_a_folder_in_use_is_refused_in_one_line_and_changes_nothing(tmp_path):
    out = tmp_path / "out"
    first = _holder(out)
    try:
        before = _tree(out)
        assert any(name.startswith(osr_io.STAGING_PREFIX) for name in before)  # the live run's staging folder
        with pytest.raises(UserError, match=rf"{out} is being written by another run; wait for it to end"):
            StageOutputs(out)
        assert _tree(out) == before  # the refused run touched nothing, the live run's staging folder least of all
    finally:
        first.kill()
        first.wait()
    with StageOutputs(out) as outputs:  # once it has ended, the folder is free again
        outputs.write_text("a.txt", "x")
        outputs.finish()
    assert (out / "a.txt").read_text() == "x"


def test_training_into_a_folder_in_use_is_refused_in_one_line_and_changes_nothing(tmp_path, capsys):
    import train
    out = tmp_path / "out"
    first = _holder(out)
    try:
        before = _tree(out)
        assert train.main(["--out", str(out / "model.pt"), "--epochs", "1", "--train-limit", "300", "--quiet"]) == 2
        assert f"{out} is being written by another run" in capsys.readouterr().err
        assert _tree(out) == before
    finally:
        first.kill()
        first.wait()


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    killed = _holder(out)
    killed.kill()  # SIGKILL: nothing of its own clean-up runs
    killed.wait()
    left = [p for p in out.iterdir() if p.name.startswith(osr_io.STAGING_PREFIX)]
    assert len(left) == 1 and (left[0] / "half.txt").is_file()
    _stage(out, ["a.txt"])
    assert not [p for p in out.iterdir() if p.name.startswith(osr_io.STAGING_PREFIX)]
    assert (out / "a.txt").read_text() == "a.txt new\n" and not (out / "half.txt").exists()

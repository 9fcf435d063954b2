"""File I/O: atomic writes, checkpoints, hashes, CSV, and output folders that a re-run replaces."""
from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from .cli import UserError

CHECKPOINT_FORMAT = 2  # 2: the whole training recipe under "recipe" (1 kept a few of train.py's arguments)
CHECKPOINT_KEYS = ("format_version", "model_config", "state_dict", "known_classes", "val_indices", "recipe", "metrics")
MANIFEST_NAME = ".osr_outputs.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes to a temporary file beside `path`, then renames: a reader never sees half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise UserError(f"cannot write to {path.parent}: {err.strerror}") from err
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {err.strerror}") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([f"{v:.8g}" if isinstance(v, float) else v for v in row])  # a float32 in full
    return buf.getvalue()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_file(path: str | Path, what: str, fix: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path} ({fix})")
    return path


def torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    missing = set(CHECKPOINT_KEYS) - set(checkpoint)
    assert not missing, f"checkpoint lacks {missing}"
    atomic_write_bytes(path, torch_bytes(checkpoint))


def load_checkpoint(path: str | Path) -> dict:
    """Loads a checkpoint with weights_only=True, so a file handed to us can never run code."""
    path = require_file(path, "checkpoint", "run train.py first or pass --checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"refusing to load {path}: it holds objects that would run code when loaded, "
                        "which a checkpoint of this project never does") from err
    except Exception as err:  # torch's loader fails in many ways on a file that is not a checkpoint
        raise UserError(f"cannot load {path}: not a checkpoint of this project ({type(err).__name__})") from err
    version = checkpoint.get("format_version") if isinstance(checkpoint, dict) else None
    if isinstance(version, int) and 0 < version < CHECKPOINT_FORMAT:
        raise UserError(f"{path} comes from an earlier version of this project (checkpoint format {version}, this "
                        f"one reads {CHECKPOINT_FORMAT}); retrain with train.py")
    if version != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a checkpoint of this project (format_version {CHECKPOINT_FORMAT} expected)")
    missing = [k for k in CHECKPOINT_KEYS if k not in checkpoint]
    if missing:
        raise UserError(f"{path} is missing {', '.join(missing)}; retrain with train.py")
    return checkpoint


class StageOutputs:
    """The files one stage writes into a folder that may hold other people's files too, replaced as a whole.

    Every file is first written into a private staging folder (hidden, inside the output folder, so that
    the final moves are renames on one file system). Nothing in the output folder changes until `finish()`:
    it moves the previous run's files (those its manifest lists, and any file a new one replaces) aside,
    moves the new files in, writes the manifest, and only then deletes what it moved aside. A failure
    while writing leaves the output folder untouched; a failure (or Ctrl-C) while moving puts every file
    back. Use it as a context manager so the staging folder goes however the stage ends. Only a hard kill
    during the final moves can leave old and new files side by side, each of them whole.

    Made when the stage starts, it holds the folder's lock until the stage ends: a second run into the same folder
    is refused in one line while the first runs. Staging folders left by a run that was killed are removed then.
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.written: list[str] = []
        self._lock = None
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._lock = _hold_the_folder(self.out_dir)
            for stale in self.out_dir.glob(f"{STAGING_PREFIX}*"):  # left by a run that was killed: none is alive now
                shutil.rmtree(stale, ignore_errors=True)
            self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.out_dir))
        except OSError as err:
            self._release()
            raise UserError(f"cannot write to output folder {self.out_dir}: {err.strerror}") from err
        except BaseException:
            self._release()
            raise

    def __enter__(self) -> "StageOutputs":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file lets go of its lock
            self._lock = None

    def discard(self) -> None:
        """Drops whatever was written and not yet moved in."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def write_bytes(self, relative: str, data: bytes) -> Path:
        """Stages one output file; returns where it will stand once the stage finishes."""
        self.written.append(relative)
        staged = self.staging / relative
        try:
            staged.parent.mkdir(parents=True, exist_ok=True)
            with open(staged, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise UserError(f"cannot write {self.out_dir / relative}: {err.strerror}") from err
        return self.out_dir / relative

    def write_text(self, relative: str, text: str) -> Path:
        return self.write_bytes(relative, text.encode("utf-8"))

    def write_json(self, relative: str, obj: Any) -> Path:
        return self.write_text(relative, json.dumps(obj, indent=2, sort_keys=True) + "\n")

    def previous(self) -> list[Path]:
        """What the last run wrote, as paths; entries that could lead outside the folder are dropped."""
        manifest = self.out_dir / MANIFEST_NAME
        try:
            names = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return []
        if not isinstance(names, list):
            return []
        return [self.out_dir / n for n in names if isinstance(n, str) and self._inside(n)]

    def _inside(self, relative: str) -> bool:
        """True for a relative path whose every folder below out_dir is a real folder, not a link."""
        rel = Path(relative)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.parts[0].startswith(STAGING_PREFIX):
            return False
        folder = self.out_dir
        for part in rel.parts[:-1]:
            folder = folder / part
            if folder.is_symlink():
                return False
        return True

    def finish(self) -> None:
        """Replaces the previous run's outputs by this run's, as a whole (see the class docstring)."""
        new = sorted(set(self.written))
        replaced = {p for p in self.previous() if p.is_file() and not p.is_symlink()}
        replaced |= {self.out_dir / n for n in new if (self.out_dir / n).is_file()}
        aside_dir = Path(tempfile.mkdtemp(prefix=REPLACED_PREFIX, dir=self.out_dir))
        moved_aside: list[tuple[Path, Path]] = []
        moved_in: list[tuple[Path, Path]] = []
        created: list[Path] = []
        try:
            for target in sorted(replaced):
                moved_aside.append(_move(target, aside_dir / target.relative_to(self.out_dir)))
            for name in new:
                created += _missing_folders((self.out_dir / name).parent, self.out_dir)
                moved_in.append(_move(self.staging / name, self.out_dir / name))
            atomic_write_text(self.out_dir / MANIFEST_NAME, json.dumps(new, indent=0) + "\n")
        except BaseException as err:
            for source, target in reversed(moved_in):
                os.replace(target, source)
            for source, target in reversed(moved_aside):
                os.replace(target, source)
            for folder in reversed(created):
                _remove_if_empty(folder)
            shutil.rmtree(aside_dir, ignore_errors=True)
            self.discard()
            if isinstance(err, OSError):
                raise UserError(f"cannot replace the outputs in {self.out_dir}: {err.strerror}; "
                                "the previous ones are unchanged") from err
            raise
        shutil.rmtree(aside_dir, ignore_errors=True)
        self.discard()
        for source, _ in moved_aside:  # folders emptied by the replacement, up to (not including) out_dir
            folder = source.parent
            while folder != self.out_dir and _remove_if_empty(folder):
                folder = folder.parent


LOCK_NAME = ".osr_lock"


@contextlib.contextmanager
def folder_lock(out_dir: str | Path):
    """The output folder's lock for as long as the block runs, as StageOutputs holds it: for a stage that writes one
    file atomically (train.py's checkpoint) rather than a set of files. A second run into the folder is refused."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = _hold_the_folder(out_dir)
    except OSError as err:
        raise UserError(f"cannot write to output folder {out_dir}: {err.strerror}") from err
    try:
        yield
    finally:
        lock.close()


def _hold_the_folder(out_dir: Path):
    """Takes the output folder's lock (an advisory lock on an empty hidden file in it, which stays) for as long as
    the stage runs, or refuses in one line when another run holds it. The system lets go of the lock however a run
    ends, a kill included."""
    lock = open(out_dir / LOCK_NAME, "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise UserError(f"{out_dir} is being written by another run; wait for it to end or choose another output "
                        "folder") from None
    return lock


STAGING_PREFIX = ".osr_staging-"
REPLACED_PREFIX = ".osr_staging-replaced-"


def _move(source: Path, target: Path) -> tuple[Path, Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    return source, target


def _missing_folders(folder: Path, root: Path) -> list[Path]:
    """Creates `folder` (below root) and returns the folders that had to be made, outermost first."""
    missing = []
    while folder != root and not folder.exists():
        missing.append(folder)
        folder = folder.parent
    missing.reverse()
    for f in missing:
        f.mkdir()
    return missing


def _remove_if_empty(folder: Path) -> bool:
    if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
        folder.rmdir()
        return True
    return False

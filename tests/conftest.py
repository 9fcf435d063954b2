"""Shared fixtures: one tiny model trained once per session on a few thousand real MNIST images.

MNIST is obtained (and MD5-verified) into the repository's data/ folder, the same place the
pipeline uses, so the suite and `make reproduce` share one copy.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_DIR = str(ROOT / "data")
FOLD_FLAGS = ["--fold-size", "2", "--fold-epochs", "1", "--fold-images", "300"]  # leave-classes-out models the suite can afford
TINY_RECIPE = ["--epochs", "2", "--train-limit", "5000", "--width", "8"]  # the session's model; torchrun's trains it too


def stage_args(run, **extra) -> list[str]:
    """A stage's flags for the session's model (run: trained_run): its checkpoint and thresholds on the CPU, quiet,
    then each keyword as its flag (out_dir="x" -> --out-dir x)."""
    args = ["--checkpoint", str(run["checkpoint"]), "--thresholds", str(run["thresholds"]), "--device", "cpu", "--quiet"]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


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
    """train.py (TINY_RECIPE: 2 epochs, 5000 images, 40 steps of the default batch, width 8) then
    compute_class_reconstruction_errors.py, whose leave-classes-out models are smaller still (1 epoch on 300 images
    each). Stage 2 runs with every loader of a reported set forbidden; what it tried to read is kept as
    "reported_sets_read" (test_selection.py checks it is nothing)."""
    import compute_class_reconstruction_errors
    import train

    root = tmp_path_factory.mktemp("run")
    paths = {"root": root, "checkpoint": root / "model.pt", "thresholds": root / "reconstruction_errors.txt"}
    assert train.main([*TINY_RECIPE, "--data-dir", data_dir, "--device", "cpu", "--out", str(paths["checkpoint"]),
                       "--quiet"]) == 0
    with pytest.MonkeyPatch.context() as monkeypatch:
        paths["reported_sets_read"] = forbid_reported_sets(monkeypatch)
        assert compute_class_reconstruction_errors.main(["--checkpoint", str(paths["checkpoint"]), "--data-dir",
                                                         data_dir, "--out", str(paths["thresholds"]), "--device", "cpu",
                                                         "--quiet", *FOLD_FLAGS]) == 0
    return paths


@pytest.fixture(scope="session")
def test_stage_run(trained_run, data_dir, tmp_path_factory) -> Path:
    """test.py once on the session's model, with its default flags: the folder of a finished run, which tests read
    (the page) or copy (a failed later run must leave it as it was), never change."""
    import test as test_stage
    out = tmp_path_factory.mktemp("test_stage") / "test"
    assert test_stage.main(stage_args(trained_run, data_dir=data_dir, out_dir=out)) == 0
    return out


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


SAME_SEED_TEST = "test_same_seed_gives_identical_files_byte_for_byte"
SAME_SEED_RUN = """
import sys
import compute_class_reconstruction_errors, evaluate_osr, test, train
data_dir, letters_dir = sys.argv[1:3]
common = ["--data-dir", data_dir, "--device", "cpu", "--quiet"]
staged = ["--checkpoint", "model.pt", "--thresholds", "reconstruction_errors.txt", *common]
assert train.main(["--epochs", "1", "--train-limit", "1000", "--width", "8", "--out", "model.pt", *common]) == 0
assert compute_class_reconstruction_errors.main(["--checkpoint", "model.pt", "--out", "reconstruction_errors.txt",
                                                 *common, "--fold-size", "5", "--fold-epochs", "1", "--fold-images", "300"]) == 0
assert test.main([*staged, "--out-dir", "test", "--max-panels", "5"]) == 0
assert evaluate_osr.main([*staged, "--out-dir", "osr", "--letters-dir", letters_dir, "--n-generated", "100",
                          "--bootstrap", "10", "--no-embeddings", "--no-pictures", "--splits-dir", "s"]) == 0
"""
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(ROOT / "train.py")]
WAITING_ON_BACKGROUND = ("test_distributed.py", SAME_SEED_TEST)


def pytest_collection_modifyitems(items):
    """The tests that wait on background runs go last, so that the runs have the session to finish in."""
    items.sort(key=lambda item: item.path.name in WAITING_ON_BACKGROUND or item.name in WAITING_ON_BACKGROUND)


def finished(runs: dict, name: str) -> tuple[Path, str]:
    """Background run `name` of background_runs, waited for: its folder and its stderr. It must have exited 0; if
    not, the test fails with the end of its stderr."""
    run, folder = runs[name]
    run.wait()
    stderr = (folder / "stderr.txt").read_text()
    assert run.returncode == 0, stderr[-2000:]
    return folder, stderr


@pytest.fixture(scope="session", autouse=True)
def background_runs(request, tmp_path_factory):
    """Whole runs that tests only read, started with the session when a test that reads them is in it: the two
    same-seed runs of tests/test_faults.py ("a", "b"; fresh Python processes, one torch thread each: the same thread
    count in both, so the same sums) and the two-process trainings of tests/test_distributed.py (TINY_RECIPE under
    torchrun: "ddp" uninterrupted, "ddp_resumed" interrupted after its first epoch and resumed, by
    tests/interrupted_run.py). They take the core that the suite's other tests leave idle, instead of two minutes
    and a half of their own: at the lowest priority (nice 19; at 10, six of them took a third of the tests' core),
    and in the suite's session, whose scheduling group (autogroup) the priority is counted in. Each name maps to
    (process, folder); the folder holds the run's stderr.txt."""
    names = {item.name for item in request.session.items}
    files = {item.path.name for item in request.session.items}
    runs = {}

    def start(name: str, command: list[str], env: dict | None = None) -> None:
        folder = tmp_path_factory.mktemp(f"background_{name}")
        with open(folder / "stderr.txt", "w") as stderr:
            runs[name] = (subprocess.Popen(["nice", "-n", "19", *command], cwd=folder, env=env,
                                           stdout=subprocess.DEVNULL, stderr=stderr), folder)
    if SAME_SEED_TEST in names or "test_distributed.py" in files:
        data_dir = request.getfixturevalue("data_dir")
    if SAME_SEED_TEST in names:
        letters_dir = request.getfixturevalue("letters_dir")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        for name in ("a", "b"):
            start(name, [sys.executable, "-c", SAME_SEED_RUN, data_dir, str(letters_dir)], env)
    if "test_distributed.py" in files:
        start("ddp", [*TORCHRUN, *TINY_RECIPE, "--device", "cpu", "--data-dir", data_dir, "--out", "ddp.pt"])
        start("ddp_resumed", [sys.executable, str(ROOT / "tests" / "interrupted_run.py"), *TORCHRUN, *TINY_RECIPE,
                              "--device", "cpu", "--data-dir", data_dir])
    yield runs
    for run, _ in runs.values():   # a session cut short leaves no run behind: torchrun stops its workers on SIGTERM
        if run.poll() is None:
            run.terminate()
            try:
                run.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()

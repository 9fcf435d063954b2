"""pyproject.toml: a wheel of osr_core that declares what it needs, importable from anywhere with its front door."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_osr_core_and_declares_its_dependencies(tmp_path):
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the repository
    shutil.copytree(ROOT / "osr_core", source / "osr_core", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("osr_digits-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = Parser().parsestr(zf.read(next(n for n in names if n.endswith("METADATA"))).decode())
    modules = {n.split("/", 1)[1] for n in names if n.startswith("osr_core/")}
    shipped = {f"judgements/{f.name}" for f in (ROOT / "osr_core" / "judgements").glob("*.json")}
    assert shipped and {f.name for f in (ROOT / "osr_core").glob("*.py")} | shipped == modules  # with the judgements
    assert not [n for n in names if n.startswith(("tests/", "train.py", "artifacts/"))]
    declared = meta.get_all("Requires-Dist")
    name = lambda r: r.split(">=")[0].split(";")[0].strip()
    required = {name(r) for r in declared if "extra ==" not in r}
    test_extra = {name(r) for r in declared if "extra == \"test\"" in r}
    pinned = {line.split("==")[0] for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    test_only = {"pytest", "playwright"}                            # what the suite needs, not the package
    assert pinned - test_only <= required, pinned - test_only - required
    assert test_only <= test_extra, test_only - test_extra


def test_the_installed_package_exposes_the_front_door_from_anywhere(tmp_path):
    """Imported from outside the repository, as after `pip install .`: only osr_core on the path."""
    code = "import osr_core; from osr_core import OpenSetRecognizer, Predictions; print(OpenSetRecognizer.load.__doc__)"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "UserError" in run.stdout

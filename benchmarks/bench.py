"""Benchmark: where the pipeline's time and memory go, on this machine.

Usage: python benchmarks/bench.py [--repeats 5] [--skip-pipeline] [--out artifacts/bench/bench.json]

In one run it measures (medians over repeats, after a warm-up):
  1. training: images/s of train.py's own loop (batching, augmentation, loss, step) against a bare loop of the
     same model, loss and optimiser on tensors already in memory;
  2. scoring: images/s of test.py's scoring path (uint8 -> float, model, every score component, thresholds)
     against a bare model(x) forward over the same tensors;
  3-4. peak resident memory and wall time of each stage of `make reproduce`, at default settings, each stage
     a separate process writing into a temporary folder (your artifacts/ are not touched).
Prints one table and writes bench.json with the core count and the torch version.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from osr_core import cli, data  # noqa: E402
from osr_core.io import write_json  # noqa: E402
from osr_core.models import ModelConfig, build_model  # noqa: E402
from osr_core.pipeline import decide, load_calibration, load_trained  # noqa: E402
from osr_core.training import joint_loss, train_one_epoch  # noqa: E402

TRAIN_IMAGES, TRAIN_BATCH = 8192, 128
SCORE_BATCH = 256


def median_rate(fn, n_images: int, repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n_images / statistics.median(times)


def bench_training(data_dir: str, repeats: int) -> dict:
    images, labels = data.load_mnist(data_dir, train=True)
    images, labels = images[:TRAIN_IMAGES], labels[:TRAIN_IMAGES]
    model = build_model(ModelConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # A flat schedule: what is measured is the step's cost, not the learning rate.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    generator = torch.Generator().manual_seed(0)
    device = torch.device("cpu")

    def real():
        train_one_epoch(model, images, labels, optimizer, scheduler, TRAIN_BATCH, device, generator,
                        augment=True, epoch=0, show_progress=False)

    batches = [(data.to_float(images[i:i + TRAIN_BATCH]), labels[i:i + TRAIN_BATCH])
               for i in range(0, len(images), TRAIN_BATCH)]

    def bare():
        model.train()
        for x, y in batches:
            loss, _ = joint_loss(model(x), x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    real_rate, bare_rate = median_rate(real, len(images), repeats), median_rate(bare, len(images), repeats)
    return {"images": len(images), "batch_size": TRAIN_BATCH, "pipeline_images_per_s": real_rate,
            "bare_images_per_s": bare_rate, "time_ratio": bare_rate / real_rate}


def bench_scoring(data_dir: str, checkpoint: Path, thresholds: Path, repeats: int) -> dict:
    trained = load_trained(checkpoint, torch.device("cpu"))
    cal = load_calibration(trained, thresholds)
    images_u8, _ = data.load_mnist(data_dir, train=False)
    floats = data.to_float(images_u8)

    def real():
        decide(trained, cal, data.to_float(images_u8), SCORE_BATCH)

    @torch.inference_mode()
    def bare():
        for i in range(0, len(floats), SCORE_BATCH):
            trained.model(floats[i:i + SCORE_BATCH])

    real_rate, bare_rate = median_rate(real, len(floats), repeats), median_rate(bare, len(floats), repeats)
    return {"images": len(floats), "batch_size": SCORE_BATCH, "pipeline_images_per_s": real_rate,
            "bare_images_per_s": bare_rate, "time_ratio": bare_rate / real_rate}


def pipeline_stages(data_dir: str, art: Path) -> list[tuple[str, list[str]]]:
    py = sys.executable
    model, thr = str(art / "model.pt"), str(art / "reconstruction_errors.txt")
    common = ["--data-dir", data_dir, "--quiet"]
    return [
        ("train.py", [py, "train.py", *common, "--out", model]),
        ("compute_class_reconstruction_errors.py", [py, "compute_class_reconstruction_errors.py", *common,
                                                    "--checkpoint", model, "--out", thr]),
        ("test.py", [py, "test.py", *common, "--checkpoint", model, "--thresholds", thr, "--out-dir", str(art / "test")]),
        ("generate_letters.py", [py, "generate_letters.py", "--quiet", "--out-dir", str(art / "letters")]),
        ("test_letters.py", [py, "test_letters.py", "--quiet", "--checkpoint", model, "--thresholds", thr,
                             "--letters-dir", str(art / "letters"), "--out-dir", str(art / "letters_test")]),
        ("evaluate_osr.py", [py, "evaluate_osr.py", *common, "--checkpoint", model, "--thresholds", thr,
                             "--letters-dir", str(art / "letters"), "--out-dir", str(art / "osr"),
                             "--splits-dir", str(art / "unseen_digits")]),
    ]


def run_stage(cmd: list[str]) -> tuple[float, float]:
    """Runs one stage as its own process: (wall seconds, peak resident memory in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark stage failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-pipeline", action="store_true",
                   help="skip the stage timings; score with --checkpoint/--thresholds instead")
    p.add_argument("--checkpoint", default=cli.DEFAULT_CHECKPOINT)
    p.add_argument("--thresholds", default=cli.DEFAULT_THRESHOLDS)
    p.add_argument("--data-dir", default=cli.DEFAULT_DATA_DIR)
    p.add_argument("--out", default="artifacts/bench/bench.json")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.chdir(ROOT)
    data.ensure_mnist(args.data_dir)
    result = {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
              "device": "cpu", "stages": {}}
    with tempfile.TemporaryDirectory(prefix="osr-bench-") as tmp:
        art = Path(tmp)
        checkpoint, thresholds = Path(args.checkpoint), Path(args.thresholds)
        if not args.skip_pipeline:
            for name, cmd in pipeline_stages(args.data_dir, art):
                wall, rss = run_stage(cmd)
                result["stages"][name] = {"wall_s": wall, "peak_rss_mib": rss}
                print(f"  {name:42s} {wall:7.1f} s  {rss:7.0f} MiB", flush=True)
            result["pipeline_wall_s"] = sum(s["wall_s"] for s in result["stages"].values())
            checkpoint, thresholds = art / "model.pt", art / "reconstruction_errors.txt"
        result["training"] = bench_training(args.data_dir, args.repeats)
        result["scoring"] = bench_scoring(args.data_dir, checkpoint, thresholds, args.repeats)
    write_json(args.out, result)
    print(render(result))
    return 0


def render(r: dict) -> str:
    t, s = r["training"], r["scoring"]
    lines = [f"machine: {r['cores']} cores, torch {r['torch']} ({r['torch_threads']} threads), python {r['python']}",
             f"{'measure':48s} {'value':>12s}",
             f"{'training loop, images/s':48s} {t['pipeline_images_per_s']:12.0f}",
             f"{'bare training loop, images/s':48s} {t['bare_images_per_s']:12.0f}",
             f"{'training loop / bare loop time ratio':48s} {t['time_ratio']:12.2f}",
             f"{'scoring path (all components), images/s':48s} {s['pipeline_images_per_s']:12.0f}",
             f"{'bare forward, images/s':48s} {s['bare_images_per_s']:12.0f}",
             f"{'scoring path / bare forward time ratio':48s} {s['time_ratio']:12.2f}"]
    for name, st in r["stages"].items():
        lines.append(f"{'stage ' + name + ', wall s / peak MiB':48s} {st['wall_s']:6.1f} / {st['peak_rss_mib']:4.0f}")
    if "pipeline_wall_s" in r:
        lines.append(f"{'all six stages, wall s':48s} {r['pipeline_wall_s']:12.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: where the pipeline's time and memory go, on this machine.

Usage: python benchmarks/bench.py [--repeats 5] [--skip-pipeline] [--skip-curves] [--stages-only]
                                  [--out artifacts/bench/bench.json]

In one run it measures (medians over repeats, after a warm-up):
  0. time to quality: for the default recipe and the alternatives in CURVES, trained for each epoch budget: the
     validation accuracy after every epoch against training seconds, and after the last, stage 2's choice with
     its leave-classes-out AUROC and its lowest far-family AUROC (time_to_quality.png beside bench.json);
  1. training: images/s of train.py's own loop (batching, augmentation, loss, step) against a bare loop of the
     same model, loss and optimiser on tensors already in memory, at the default batch of 256, the two
     alternating per repeat (median, lowest and highest), and what indexing, augmentation and bookkeeping add;
     and a training step in bf16 autocast against fp32 where bf16 is native;
  2. scoring: images/s of test.py's scoring path (uint8 -> float, model, every score component, thresholds)
     against a bare model(x) forward over the same tensors;
  3-4. peak resident memory and wall time of each stage of `make reproduce`, at default settings, each stage
     a separate process writing into a temporary folder (your artifacts/ are not touched);
  5. train.py's images/s in one process and under torchrun with two;
  6. reading scans (decode, polarity, paper removal, grain filter, crop, fit, centre), from JPEG files and from
     arrays: the per-image path as it was, the fast path on one core and on every core; and predict() on
     MNIST-shaped uint8 arrays against the scoring path;
  7. test.py's index.html (10,000 rows) in headless Chromium: first paint, a sort, a filter, and its size.
Prints one table and writes bench.json with the core count and the torch version.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import reading_before  # noqa: E402
import train  # noqa: E402
from osr_core import OpenSetRecognizer, cli, data, generated, images, plots, training  # noqa: E402
from osr_core.io import atomic_write_bytes, write_json  # noqa: E402
from osr_core.models import ModelConfig, build_model  # noqa: E402
from osr_core.leave_out import DEFAULT  # noqa: E402
from osr_core.pipeline import Trained, decide, load_calibration, load_trained, select_on_validation  # noqa: E402
from osr_core.scores import score_images  # noqa: E402
from osr_core.recipe import Recipe  # noqa: E402
from osr_core.training import joint_loss, train_one_epoch  # noqa: E402

TRAIN_IMAGES, TRAIN_BATCH = 8192, Recipe.batch_size  # the default batch, so the loop is measured as train.py runs it
SCORE_BATCH = 256


def timings(fn, repeats: int) -> list[float]:
    """Seconds of `repeats` calls of fn, after a warm-up (allocator, oneDNN kernel selection)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_rate(fn, n_images: int, repeats: int) -> float:
    return n_images / statistics.median(timings(fn, repeats))


def train_step(model, optimizer, x: torch.Tensor, y: torch.Tensor, bf16: bool):
    """One bare training step of the joint model (forward in bf16 autocast if asked): (loss, outputs)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(x)
    loss, _ = joint_loss(out, x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, out


def bench_training(data_dir: str, repeats: int) -> dict:
    """train.py's loop against a bare loop of the same model, loss and optimiser on float batches already in memory,
    and the bare loop with each of the real loop's extra steps added, to say where the difference goes. The loops
    alternate within each repeat, so a slow patch of the machine hits them alike; ratios are per repeat."""
    images, labels = data.load_mnist(data_dir, train=True)
    images, labels = images[:TRAIN_IMAGES], labels[:TRAIN_IMAGES]
    model = build_model(ModelConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # A flat schedule: what is measured is the step's cost, not the learning rate.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    generator = torch.Generator().manual_seed(0)
    device = torch.device("cpu")
    recipe = Recipe(batch_size=TRAIN_BATCH, precision=cli.resolve_precision("auto", device))
    order = torch.randperm(len(images), generator=generator)
    batches = [(data.to_float(images[i:i + TRAIN_BATCH]), labels[i:i + TRAIN_BATCH])
               for i in range(0, len(images), TRAIN_BATCH)]

    def step(x, y):
        return train_step(model, optimizer, x, y, recipe.bf16)

    def bare():
        model.train()
        for x, y in batches:
            step(x, y)

    def bare_indexed():  # + shuffled indexing of the uint8 training tensor and the conversion to float
        model.train()
        for i in range(0, len(images), TRAIN_BATCH):
            idx = order[i:i + TRAIN_BATCH]
            step(images[idx].unsqueeze(1).float().div_(255), labels[idx])

    def bare_augmented():  # + the random affine warp of every batch
        model.train()
        for x, y in batches:
            step(training.random_affine(x, generator), y)

    def bare_bookkeeping():  # + the scheduler step and the per-batch loss and accuracy read back to Python
        model.train()
        for x, y in batches:
            loss, out = step(x, y)
            scheduler.step()
            loss.item(), (out.logits.argmax(1) == y).sum().item()

    def real():
        train_one_epoch(model, images, labels, optimizer, scheduler, recipe, device, generator,
                        epoch=0, show_progress=False)

    loops = {"bare": bare, "bare + indexing": bare_indexed, "bare + augmentation": bare_augmented,
             "bare + bookkeeping": bare_bookkeeping, "train.py's loop": real}
    for fn in loops.values():
        fn()  # warm-up
    seconds = {name: [] for name in loops}
    for _ in range(repeats):
        for name, fn in loops.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    ratios = [r / b for r, b in zip(seconds["train.py's loop"], seconds["bare"])]
    return {"images": len(images), "batch_size": TRAIN_BATCH, "precision": recipe.precision, "repeats": repeats,
            "seconds": seconds, "pipeline_images_per_s": len(images) / statistics.median(seconds["train.py's loop"]),
            "bare_images_per_s": len(images) / statistics.median(seconds["bare"]),
            "time_ratio": statistics.median(ratios), "time_ratio_min": min(ratios), "time_ratio_max": max(ratios),
            "extra_share": {name: statistics.median(t) / statistics.median(seconds["bare"]) - 1
                            for name, t in seconds.items() if name != "bare"}}


def bench_precision(data_dir: str, repeats: int) -> dict:
    """A training step in fp32 against bfloat16 autocast, same model, loss and batch; only where bf16 is native."""
    device = torch.device("cpu")
    if not cli.bf16_is_fast(device):
        return {"measured": False, "reason": "this processor has no native bfloat16 (AVX512-BF16 or AMX)"}
    images, labels = data.load_mnist(data_dir, train=True)
    x, y = data.to_float(images[:TRAIN_BATCH]), labels[:TRAIN_BATCH]
    model = build_model(ModelConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def steps(bf16: bool):
        def run():
            for _ in range(10):
                train_step(model, optimizer, x, y, bf16)
        return run
    fp32, bf16 = statistics.median(timings(steps(False), repeats)), statistics.median(timings(steps(True), repeats))
    return {"measured": True, "fp32_step_s": fp32 / 10, "bf16_step_s": bf16 / 10, "speedup": fp32 / bf16}


# (label, train.py flags, epoch budgets): each budget is a run of its own, since the one-cycle schedule spans it.
# Every run uses the machine's default precision (bf16 where native, else fp32).
CURVES = [
    ("default: width 16, batch 256, lr 0.006", [], [3, 5]),
    ("width 24, batch 256, lr 0.006", ["--width", "24"], [5]),
]


def run_quality(model, d: training.Split, recipe: Recipe, data_dir: str, folds_dir: Path, device: torch.device) -> dict:
    """What a finished run (a model as its checkpoint holds it, batch norm and class Gaussians fitted) is worth on
    validation data: its accuracy, and stage 2's choice with its leave-classes-out AUROC (fold models trained by the
    run's own recipe, at stage 2's budget) and its lowest far-family AUROC."""
    images = data.to_float(d.val_images)
    trained = Trained(model, {"known_classes": d.known, "recipe": recipe.to_dict(), "val_indices": d.val_indices},
                      "", device)
    val = score_images(model, images, d.known, device, 512)
    selection = select_on_validation(trained, val, images, d.val_labels, data_dir, folds_dir, DEFAULT, recipe.seed,
                                     512)
    row = selection.table[selection.chosen]
    return {"val_accuracy": float((torch.from_numpy(val.pred) == d.val_labels).float().mean()),
            "chosen": selection.chosen, "leave_classes_out": row.get("leave_classes_out"), "far_min": row["far_min"]}


def bench_curves(data_dir: str, out_dir: Path) -> list[dict]:
    device = torch.device("cpu")
    runs = []
    for label, flags, budgets in CURVES:
        for epochs in budgets:
            recipe = train.recipe_of(train.build_parser().parse_args([*flags, "--epochs", str(epochs)]), device)
            points = []

            def on_epoch(model, stats):
                points.append({"epoch": stats["epoch"], "train_seconds": stats["train_seconds"],
                               "val_accuracy": stats["val_accuracy"]})
            started = time.perf_counter()
            checkpoint = training.fit(recipe, data_dir, device, on_epoch=on_epoch)
            model = build_model(ModelConfig.from_dict(checkpoint["model_config"]))
            model.load_state_dict(checkpoint["state_dict"])
            quality = run_quality(model, training.split(recipe, data_dir), recipe, data_dir, out_dir / "folds", device)
            runs.append({"label": f"{label}, {epochs} epochs", "variant": label, "epochs": epochs, "points": points,
                         **quality, "train_seconds": points[-1]["train_seconds"],
                         "wall_seconds": time.perf_counter() - started})
            print(f"  {label}, {epochs} epochs: {points[-1]['train_seconds']:.0f} s, val acc {quality['val_accuracy']:.4f}, "
                  f"{quality['chosen']}: leave-classes-out {quality['leave_classes_out']:.4f}, far >= "
                  f"{quality['far_min']:.4f}", flush=True)
    return runs


def bench_distributed(data_dir: str, out_dir: Path) -> dict:
    """Training images/s of train.py in one process and under torchrun with 2 (gloo, each 1 torch thread), on
    20,000 images for 2 epochs: the second epoch's rate, from train.py's own log."""
    rates = {}
    for procs in (1, 2):
        launcher = [sys.executable] if procs == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                        f"--nproc_per_node={procs}"]
        cmd = [*launcher, "train.py", "--epochs", "2", "--train-limit", "20000", "--data-dir", data_dir, "--device",
               "cpu", "--out", str(out_dir / f"ddp{procs}.pt")]
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"benchmark failed: {' '.join(cmd)}\n{run.stderr[-2000:]}")
        last = [line for line in run.stderr.splitlines() if line.startswith("epoch 2:")][-1]
        rates[procs] = float(last.rsplit(", ", 1)[1].split()[0])
        print(f"  training with {procs} process(es): {rates[procs]:.0f} images/s", flush=True)
    return {"images_per_s": {str(k): v for k, v in rates.items()}, "speedup": rates[2] / rates[1]}


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


SCANS = 1000  # scanned digits, 60-120 px tall on larger sheets, saved as JPEG files


@contextmanager
def one_at_a_time(as_before: bool = False):
    """Reading in the calling process, one image at a time; as_before: with the per-image preprocessing as it was
    before it was made fast (benchmarks/reading_before.py), which gives the same images."""
    saved = images.PARALLEL_FROM, images.read_form
    images.PARALLEL_FROM = 10 ** 9
    if as_before:
        images.read_form = reading_before.read_form
    try:
        yield
    finally:
        images.PARALLEL_FROM, images.read_form = saved


READING_PATHS = {"per_image_before": partial(one_at_a_time, as_before=True), "fast_one_core": one_at_a_time,
                 "fast_all_cores": nullcontext}


def bench_reading(data_dir: str, out_dir: Path, checkpoint: Path, thresholds: Path, repeats: int) -> dict:
    """Images/s of reading and preprocessing scans (from JPEG files and from decoded arrays): the per-image path as it
    was (one_at_a_time(as_before=True)), the fast path on one core, and on every core; and the front door's
    predict() on 10,000 MNIST-shaped uint8 arrays against the scoring path on the same images. The three paths take
    turns within each repeat, so a machine that speeds up or slows down during the run affects them alike."""
    digits = data.load_mnist(data_dir, train=False)[0]
    scans = generated.scanned_digits(digits[:SCANS].numpy(), seed=3)
    folder = out_dir / "scans"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, scan in enumerate(scans):
        files.append(str(folder / f"scan{i:04d}.jpg"))
        Image.fromarray(np.rint(scan * 255).astype(np.uint8)).save(files[-1], quality=90)
    arrays = [np.rint(s * 255).astype(np.uint8) for s in scans]
    rates = {}
    for source, given in (("files", files), ("arrays", arrays)):
        times = {path: [] for path in READING_PATHS}
        for repeat in range(repeats + 1):  # the first round warms up
            for path, reading in READING_PATHS.items():
                with reading():
                    start = time.perf_counter()
                    images.as_batch(given)
                    if repeat:
                        times[path].append(time.perf_counter() - start)
        rates.update({f"{source}_{path}": len(given) / statistics.median(t) for path, t in times.items()})
    result = {"scans": SCANS, "images_per_s": rates,
              "files_speedup": rates["files_fast_all_cores"] / rates["files_per_image_before"],
              "arrays_speedup": rates["arrays_fast_all_cores"] / rates["arrays_per_image_before"]}
    recognizer = OpenSetRecognizer.load(checkpoint, thresholds, device="cpu")
    u8 = digits.numpy()
    predict = median_rate(lambda: recognizer.predict(u8), len(u8), repeats)
    scoring = median_rate(lambda: decide(recognizer.trained, recognizer.calibration, data.to_float(digits), SCORE_BATCH),
                          len(u8), repeats)
    result["predict_mnist_shaped"] = {"images_per_s": predict, "scoring_path_images_per_s": scoring,
                                      "time_ratio": scoring / predict}
    return result


def bench_page(page_path: Path) -> dict:
    """test.py's index.html (10,000 rows) in headless Chromium from file://: first paint (navigation to the first
    rows drawn), a sort and a filter (the page's own timing of each), and the size of the page with its sprite."""
    size = (page_path.stat().st_size + (page_path.parent / "sprite.png").stat().st_size) / 1e6
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        return {"measured": False, "reason": "no Chromium or Playwright on this machine", "megabytes": size}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(page_path.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        rows = page.evaluate("JSON.parse(document.getElementById('data').textContent).rows.length")
        first_paint = page.evaluate("performance.getEntriesByName('rows-drawn')[0].startTime") / 1000
        sorts, filters = [], []
        for value in ("unknown", "all", "any digit", "all", "unknown"):
            page.click("#head div[data-key='score']")
            sorts.append(float(page.get_attribute("body", "data-last-ms")) / 1000)
            page.select_option("select[data-key='answer']", value)
            filters.append(float(page.get_attribute("body", "data-last-ms")) / 1000)
        browser.close()
    return {"measured": True, "rows": rows, "first_paint_s": first_paint, "sort_s": statistics.median(sorts),
            "filter_s": statistics.median(filters), "megabytes": size}


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
    """Runs one stage as its own process: (wall seconds, peak resident memory in MiB).

    The peak is the child's own VmHWM, read from /proc while it runs: after exec it has a fresh address space,
    whereas the rusage of a waited child also carries the high-water mark of this (large) parent at fork."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    peak_kib = 0
    while proc.poll() is None:
        peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark stage failed: {' '.join(cmd)}")
    return wall, peak_kib / 1024


def _vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    except OSError:  # the process has just ended
        return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-curves", action="store_true", help="skip the time-to-quality curves (their time on 2 cores is in README.md)")
    p.add_argument("--skip-pipeline", action="store_true",
                   help="skip the stage timings; score with --checkpoint/--thresholds instead")
    p.add_argument("--stages-only", action="store_true",
                   help="measure the six stages (and their page) alone: 3-4 and 7 below, about 7 minutes on 2 cores")
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
        if not args.skip_curves and not args.stages_only:
            result["time_to_quality"] = bench_curves(args.data_dir, art)
            atomic_write_bytes(Path(args.out).parent / "time_to_quality.png", plots.time_to_quality_png(result["time_to_quality"]))
        checkpoint, thresholds = Path(args.checkpoint), Path(args.thresholds)
        if not args.skip_pipeline:
            for name, cmd in pipeline_stages(args.data_dir, art):
                wall, rss = run_stage(cmd)
                result["stages"][name] = {"wall_s": wall, "peak_rss_mib": rss}
                print(f"  {name:42s} {wall:7.1f} s  {rss:7.0f} MiB", flush=True)
            result["pipeline_wall_s"] = sum(s["wall_s"] for s in result["stages"].values())
            checkpoint, thresholds = art / "model.pt", art / "reconstruction_errors.txt"
            result["page"] = bench_page(art / "test" / "index.html")
        if not args.stages_only:
            result["reading"] = bench_reading(args.data_dir, art, checkpoint, thresholds, args.repeats)
            result["distributed"] = bench_distributed(args.data_dir, art)
            result["training"] = bench_training(args.data_dir, args.repeats)
            result["precision"] = bench_precision(args.data_dir, args.repeats)
            result["scoring"] = bench_scoring(args.data_dir, checkpoint, thresholds, args.repeats)
    write_json(args.out, result)
    print(render(result))
    return 0


def loops(t: dict, s: dict) -> list[str]:
    """The training and scoring loops against bare ones."""
    return [f"{'training loop, images/s':48s} {t['pipeline_images_per_s']:12.0f}",
            f"{'bare training loop, images/s':48s} {t['bare_images_per_s']:12.0f}",
            f"{'training loop / bare loop time ratio, median':48s} {t['time_ratio']:12.2f}",
            f"{'  ... lowest and highest of ' + str(t['repeats']) + ' repeats':48s} "
            f"{t['time_ratio_min']:5.2f} / {t['time_ratio_max']:5.2f}",
            *(f"{'  time added to the bare loop by ' + name.replace('bare + ', ''):48s} {share:+12.1%}"
              for name, share in t["extra_share"].items()),
            f"{'scoring path (all components), images/s':48s} {s['pipeline_images_per_s']:12.0f}",
            f"{'bare forward, images/s':48s} {s['bare_images_per_s']:12.0f}",
            f"{'scoring path / bare forward time ratio':48s} {s['time_ratio']:12.2f}"]


def render(r: dict) -> str:
    lines = [f"machine: {r['cores']} cores, torch {r['torch']} ({r['torch_threads']} threads), python {r['python']}",
             f"{'measure':48s} {'value':>12s}"]
    if "training" in r:
        lines += loops(r["training"], r["scoring"])
    if "reading" in r:
        rd = r["reading"]["images_per_s"]
        for source in ("files", "arrays"):
            lines.append(f"{'scans from ' + source + ', images/s: before / fast 1 core / all':48s} "
                         f"{rd[source + '_per_image_before']:5.0f} / {rd[source + '_fast_one_core']:5.0f} / "
                         f"{rd[source + '_fast_all_cores']:5.0f} ({r['reading'][source + '_speedup']:.2f}x)")
        pm = r["reading"]["predict_mnist_shaped"]
        lines.append(f"{'predict() on MNIST-shaped uint8 / scoring path':48s} {pm['time_ratio']:12.2f}")
    if "distributed" in r:
        d = r["distributed"]["images_per_s"]
        lines.append(f"{'train.py images/s, 1 process / torchrun 2 processes':48s} {d['1']:5.0f} / {d['2']:5.0f}")
    pr = r.get("precision")
    if pr:
        lines.append(f"{'training step, bf16 autocast against fp32':48s} "
                     + (f"{pr['speedup']:11.2f}x" if pr["measured"] else f"not measured: {pr['reason']}"))
    if "page" in r:
        pg = r["page"]
        lines.append(f"{'index.html of ' + str(pg['rows']) + ' rows: first paint / sort / filter':48s} "
                     + (f"{pg['first_paint_s']:.2f} s / {pg['sort_s']:.3f} s / {pg['filter_s']:.3f} s"
                        if pg.get("measured") else f"not measured: {pg['reason']}"))
        lines.append(f"{'index.html + sprite.png, MB':48s} {pg['megabytes']:12.1f}")
    for run in r.get("time_to_quality", []):
        lines.append(f"time to quality, {run['label']}: {run['train_seconds']:.0f} s, validation accuracy "
                     f"{run['val_accuracy']:.4f}, {run['chosen']}: leave-classes-out {run['leave_classes_out']:.4f}, "
                     f"far families >= {run['far_min']:.4f}")
    for name, st in r["stages"].items():
        lines.append(f"{'stage ' + name + ', wall s / peak MiB':48s} {st['wall_s']:6.1f} / {st['peak_rss_mib']:4.0f}")
    if "pipeline_wall_s" in r:
        lines.append(f"{'all six stages, wall s':48s} {r['pipeline_wall_s']:12.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

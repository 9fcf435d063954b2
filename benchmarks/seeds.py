"""How much of a headline figure is the seed's: a train.py preset trained with several seeds, each evaluated alike.

Usage: python benchmarks/seeds.py [--seeds 0,1,2] [--preset default] [--out-dir artifacts/seeds] [--data-dir data]
                                  [--letters-dir artifacts/letters]

For each seed: train.py --preset P --seed S (every other setting the preset's), compute_class_reconstruction_errors.py
(stage 2 reads the shipped judgement of the recipe: a judgement is about a recipe, not one seed's weights) and
evaluate_osr.py (numbers only, its own seed fixed, so that every model meets the same images). Then each headline
row of the README: the figure of each seed, their mean, standard deviation and range. Writes seeds.json; models are
kept in --out-dir and reused while their recipe matches.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import compute_class_reconstruction_errors  # noqa: E402
import evaluate_osr  # noqa: E402
import train  # noqa: E402
from benchmarks.methods import spread as over_seeds  # noqa: E402
from osr_core import cli  # noqa: E402
from osr_core.io import write_json  # noqa: E402
from osr_core.recipe import PRESETS  # noqa: E402
from osr_core.recipe import reusable_checkpoint  # noqa: E402

# The README's headline rows that a seed moves: (label, path into metrics.json).
ROWS = [
    ("closed-set accuracy", ("closed_set_accuracy",)),
    ("letters without digit-like glyphs named a digit", ("sets", "letters_no_digit_like", "named_a_digit")),
    ("letters without digit-like glyphs, AUROC", ("sets", "letters_no_digit_like", "auroc")),
    ("letters, all, AUROC", ("sets", "letters", "auroc")),
    ("letters, all, macro-F1", ("sets", "letters", "macro_f1")),
    ("stroke-drawn characters named a digit", ("sets", "characters", "named_a_digit")),
    ("stroke-drawn characters, AUROC", ("sets", "characters", "auroc")),
    ("Fashion-MNIST named a digit", ("sets", "fashion_mnist", "named_a_digit")),
    ("scans named right", ("covariate_shift", "scans", "named_right")),
    ("training seconds (train.py, this machine)", ("train_seconds",)),
]


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds separated by commas, e.g. 0,1,2; got {text!r}") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected two or more different seeds >= 0; got {text!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=parse_seeds, default=[0, 1, 2], help="training seeds (default: 0,1,2)")
    p.add_argument("--preset", choices=list(PRESETS), default="default", help="train.py's preset (default: %(default)s)")
    p.add_argument("--out-dir", default="artifacts/seeds")
    p.add_argument("--data-dir", default=cli.DEFAULT_DATA_DIR)
    p.add_argument("--letters-dir", default=cli.DEFAULT_LETTERS_DIR)
    return p


def measure(seed: int, folder: Path, args) -> dict:
    """Trains (or reuses) the preset's recipe with this seed, calibrates and evaluates it; its metrics.json."""
    common = ["--data-dir", args.data_dir, "--quiet"]
    ckpt, thr = folder / "model.pt", folder / "reconstruction_errors.txt"
    flags = ["--preset", args.preset, "--seed", str(seed)]
    timing = folder / "train_seconds.json"
    if reusable_checkpoint(ckpt, train.recipe_of(train.build_parser().parse_args(flags), torch.device("cpu"))) is None:
        started = time.perf_counter()
        if train.main([*flags, "--out", str(ckpt), *common]) != 0:
            raise SystemExit(f"training failed: {folder}")
        write_json(timing, time.perf_counter() - started)
    if compute_class_reconstruction_errors.main(["--checkpoint", str(ckpt), "--out", str(thr), *common]) != 0:
        raise SystemExit(f"calibration failed: {folder}")
    if evaluate_osr.main(["--checkpoint", str(ckpt), "--thresholds", str(thr), "--letters-dir", args.letters_dir,
                          "--out-dir", str(folder / "osr"), "--no-embeddings", "--no-pictures", "--bootstrap", "20",
                          "--splits-dir", str(folder / "no_splits"), "--methods", str(folder / "none"), *common]) != 0:
        raise SystemExit(f"evaluation failed: {folder}")
    metrics = json.loads((folder / "osr" / "metrics.json").read_text())
    metrics["train_seconds"] = json.loads(timing.read_text()) if timing.is_file() else None
    return metrics


def figure(metrics: dict, path: tuple[str, ...]):
    for key in path:
        metrics = (metrics or {}).get(key)
    return metrics


def spread(per_seed: dict[int, dict]) -> list[dict]:
    """Each row's figure per seed, mean, standard deviation (n - 1) and range; rows a seed could not measure (a set
    unavailable) are left out."""
    rows = []
    for label, path in ROWS:
        values = {s: figure(m, path) for s, m in per_seed.items()}
        if any(v is None for v in values.values()):
            continue
        rows.append({"row": label, **over_seeds(values)})
    return rows


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out_dir)
    per_seed = {}
    for seed in args.seeds:
        print(f"seed {seed}", flush=True)
        per_seed[seed] = measure(seed, out / f"seed{seed}", args)
        write_json(out / "seeds.json", {"preset": args.preset, "seeds": list(per_seed),
                                        "rows": spread(per_seed) if len(per_seed) > 1 else []})
    rows = spread(per_seed)
    print(f"| row | {' | '.join(f'seed {s}' for s in per_seed)} | mean +- sd | range |")
    print("|---|" + "---|" * (len(per_seed) + 2))
    for r in rows:
        print(f"| {r['row']} | " + " | ".join(f"{v:.4f}" for v in r["per_seed"].values())
              + f" | {r['mean']:.4f} +- {r['sd']:.4f} | {r['min']:.4f}-{r['max']:.4f} |")
    print(f"wrote {out / 'seeds.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What was tried for near-OOD, each method trained and measured by the stage scripts themselves.

Usage: python benchmarks/methods.py [--out-dir artifacts/methods] [--data-dir data] [--letters-dir artifacts/letters]

For every method in METHODS: train.py on all ten digits, compute_class_reconstruction_errors.py (the decision
score chosen on the validation proxy, as by default), evaluate_osr.py (numbers only); and the same on the first
unseen-digit split (known 2,4,5,9,8,3) with its 4 held-out digits. Writes methods.json, which evaluate_osr.py
puts in the report as the table "What was tried". About 12 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import compute_class_reconstruction_errors  # noqa: E402
import evaluate_osr  # noqa: E402
import train  # noqa: E402
from osr_core import cli, data  # noqa: E402
from osr_core.io import write_json  # noqa: E402

# (name, train.py flags): the default first; the others as measured while choosing it.
METHODS = [
    ("default: plain decoder, no outlier exposure", []),
    ("outlier exposure, weight 0.1 (chimeras and overlays, half a batch)", ["--oe-fraction", "0.5", "--oe-weight", "0.1"]),
    ("outlier exposure, weight 0.5 (chimeras and overlays, half a batch)", ["--oe-fraction", "0.5", "--oe-weight", "0.5"]),
    ("class-conditional decoder (C2AE-style wrong-class loss)", ["--decoder", "conditional"]),
]
SPLIT = data.UNSEEN_DIGIT_SPLITS[0]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default="artifacts/methods")
    p.add_argument("--data-dir", default=cli.DEFAULT_DATA_DIR)
    p.add_argument("--letters-dir", default=cli.DEFAULT_LETTERS_DIR)
    return p


def measure(flags: list[str], folder: Path, args, known: list[int] | None) -> dict:
    """Trains, calibrates and evaluates one model in `folder`; returns its metrics.json."""
    common = ["--data-dir", args.data_dir, "--quiet"]
    ckpt, thr = folder / "model.pt", folder / "reconstruction_errors.txt"
    classes = ["--known-classes", ",".join(map(str, known))] if known else []
    if not ckpt.is_file():
        if train.main([*flags, *classes, "--out", str(ckpt), *common]) != 0:
            raise SystemExit(f"training failed: {folder}")
    if compute_class_reconstruction_errors.main(["--checkpoint", str(ckpt), "--out", str(thr), *common]) != 0:
        raise SystemExit(f"calibration failed: {folder}")
    if evaluate_osr.main(["--checkpoint", str(ckpt), "--thresholds", str(thr), "--letters-dir", args.letters_dir,
                          "--out-dir", str(folder / "osr"), "--no-embeddings", "--bootstrap", "20",
                          "--splits-dir", str(folder / "no_splits"), *common]) != 0:
        raise SystemExit(f"evaluation failed: {folder}")
    return json.loads((folder / "osr" / "metrics.json").read_text())


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out_dir)
    rows = []
    for i, (name, flags) in enumerate(METHODS):
        print(f"method {i}: {name}", flush=True)
        all_ten = measure(flags, out / f"method{i}", args, None)
        split = measure(flags, out / f"method{i}_split0", args, SPLIT)
        selection = all_ten["calibration"]["selection"]
        rows.append({
            "method": name, "train_flags": flags, "score": all_ten["calibration"]["score"],
            "proxy_auroc": selection["candidates"][selection["chosen"]]["mean"],
            "closed_set_accuracy": all_ten["closed_set_accuracy"], "false_alarm_rate": all_ten["false_alarm_rate"],
            "sets": {n: s["auroc"] for n, s in all_ten["sets"].items() if s["available"]},
            "unseen_digits_split0": {"known_classes": sorted(SPLIT), "score": split["calibration"]["score"],
                                     "auroc": split["sets"]["held_out_digits"]["auroc"]},
        })
    write_json(out / "methods.json", {"methods": rows})
    print(f"wrote {out / 'methods.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How cheap may a leave-classes-out model be? Cheap fold models against fold models of the full recipe.

Usage: python benchmarks/folds.py [--out-dir artifacts/folds] [--budgets 2x10000,1x10000] [--data-dir data]

Stage 2 ranks the candidate decision scores by their leave-classes-out AUROC, measured with fold models trained
to a small budget (leave_out.FoldBudget). This trains the folds of the default recipe once in full and once per
budget, scores every candidate on each, and reports per budget: Spearman's rank correlation of the candidates'
AUROCs with those of the full folds (over all candidates, and over the full folds' ten best, where the choice is
made), the best candidate of each, and the time the folds took (zero where they were reused). Writes
fidelity.json. Fold models are kept in --out-dir and reused while their recipe matches.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from osr_core import cli, data  # noqa: E402
from osr_core.io import write_json  # noqa: E402
from osr_core.leave_out import FULL_BUDGET, FoldBudget, leave_classes_out  # noqa: E402
from osr_core.gates import candidate_scores  # noqa: E402
from osr_core.selection import fold_aurocs  # noqa: E402
from osr_core.training import Recipe  # noqa: E402


def parse_budget(text: str) -> FoldBudget:
    epochs, _, images = text.partition("x")
    return FoldBudget(int(epochs), int(images) or None)


def near_table(folds) -> dict[str, float]:
    """Each candidate's leave-classes-out AUROC, averaged over the folds."""
    names = candidate_scores(folds[0].known.components)
    return {n: float(np.mean(v)) for n, v in fold_aurocs(folds, names).items()}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default="artifacts/folds")
    p.add_argument("--budgets", default="2x10000,1x10000,3x20000",
                   help="cheap budgets to compare, EPOCHSxIMAGES separated by commas (default: %(default)s)")
    p.add_argument("--data-dir", default=cli.DEFAULT_DATA_DIR)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cli.setup_logging(False)
    device = torch.device("cpu")
    recipe = Recipe(precision=cli.resolve_precision("auto", device), seed=args.seed)
    val_indices = data.validation_indices()
    out = Path(args.out_dir)
    tables, seconds = {}, {}
    for label, budget in [("full", FULL_BUDGET), *((b, parse_budget(b)) for b in args.budgets.split(","))]:
        started = time.perf_counter()
        folds = leave_classes_out(recipe, val_indices, args.data_dir, out / label, budget, device, args.seed)
        seconds[label] = time.perf_counter() - started
        tables[label] = near_table(folds)
        print(f"{label}: {seconds[label]:.0f} s; best {max(tables[label], key=tables[label].get)}", flush=True)
    full = tables["full"]
    names = list(full)
    top = sorted(names, key=full.get, reverse=True)[:10]
    rows = {}
    for label, table in tables.items():
        rows[label] = {"seconds": seconds[label], "best": max(table, key=table.get),
                       "spearman_all": float(spearmanr([full[n] for n in names], [table[n] for n in names])[0]),
                       "spearman_top10": float(spearmanr([full[n] for n in top], [table[n] for n in top])[0]),
                       "auroc": table}
        print(f"{label:>10}: Spearman {rows[label]['spearman_all']:.3f} (all {len(names)}), "
              f"{rows[label]['spearman_top10']:.3f} (full run's top 10); best {rows[label]['best']}; "
              f"{seconds[label]:.0f} s", flush=True)
    write_json(out / "fidelity.json", {"recipe": recipe.to_dict(), "budgets": rows, "cores": torch.get_num_threads()})
    print(f"wrote {out / 'fidelity.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

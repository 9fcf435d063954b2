"""How strong must the near-digit judge be? Fold schemes measured against the truth on design partitions.

Usage: python benchmarks/folds.py [--out-dir artifacts/folds] [--partitions 0,1,2] [--data-dir data]

Stage 2 chooses the near part of the decision by a judge: leave-classes-out folds (leave_out.FoldScheme), models
trained like the checkpoint without some of its classes. Whether a judge is good can be measured where the truth is
known: on a *design partition* (DESIGN_PARTITIONS: 6 known, 4 unknown digits, fixed here, none of them a protocol
split), a model of the default recipe is trained on the 6 known digits, and each candidate near part's AUROC on the
partition's own 4 unknown digits (their validation digits, never MNIST test) is the truth. Each scheme's folds are
trained inside the 6 known digits only, as stage 2 would train them for that model, and its AUROCs are compared
with the truth over the candidates: Spearman's rank correlation, and the truth's verdict on the near part the
selection's rule (step 1) chooses from the folds: is it the truly best, or within 0.002 of it? Writes
design_partitions.json; the models are kept in --out-dir and reused while their recipe matches.
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

import train  # noqa: E402
from osr_core import cli, data, gates, metrics  # noqa: E402
from osr_core.io import save_checkpoint, write_json  # noqa: E402
from osr_core.leave_out import CHEAP, DESIGN_PARTITIONS, FULL, FoldScheme, leave_classes_out  # noqa: E402
from osr_core.models import model_from_checkpoint  # noqa: E402
from osr_core.scores import score_images  # noqa: E402
from osr_core.judge import FoldJudge  # noqa: E402
from osr_core.selection import near_part  # noqa: E402
from osr_core.recipe import reusable_checkpoint  # noqa: E402
from osr_core.training import fit  # noqa: E402

SCHEMES = {"two classes out, 2 epochs x 10,000 images (last round)": CHEAP,
           "two classes out, own budget": FoldScheme(size=2),
           "one class out, 2 epochs, all images": FoldScheme(size=1, epochs=2),
           "one class out, own budget (leave_out.FULL)": FULL}
CLOSE = 0.002  # a choice within this much of the truly best counts as a good one


def truth(model, known: list[int], images: torch.Tensor, labels: torch.Tensor, device) -> dict[str, float]:
    """Each candidate near part's AUROC on the partition's unknown digits against its known ones (validation)."""
    inside = torch.isin(labels, torch.tensor(known))
    k = score_images(model, images[inside], known, device)
    u = score_images(model, images[~inside], known, device)
    names = gates.candidate_scores(k.components)
    knots = gates.fit_normalisation(k, gates.with_components(names))
    return {n: metrics.auroc(gates.normalised_part(k, n, knots), gates.normalised_part(u, n, knots)) for n in names}


def judged(folds, seed: int) -> tuple[dict[str, float], str]:
    """The folds' AUROC of every candidate near part, and the one the rule's step 1 chooses from them."""
    judge = FoldJudge(folds, seed)
    names = gates.candidate_scores(folds[0].known.components)
    return {n: float(np.mean(judge.per_fold(n, ()))) for n in names}, near_part(judge, folds[0].known.components)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default="artifacts/folds")
    p.add_argument("--partitions", default=",".join(map(str, range(len(DESIGN_PARTITIONS)))),
                   help="which design partitions, by index (default: %(default)s)")
    p.add_argument("--data-dir", default=cli.DEFAULT_DATA_DIR)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cli.setup_logging(False)
    device = torch.device("cpu")
    out = Path(args.out_dir)
    images, labels = data.load_mnist(args.data_dir, train=True)
    val = data.validation_indices(len(images))
    val_images, val_labels = data.to_float(images[val]), labels[val]
    results = []
    for index in map(int, args.partitions.split(",")):
        known = DESIGN_PARTITIONS[index]
        recipe = train.recipe_of(train.build_parser().parse_args(["--known-classes", ",".join(map(str, known)),
                                                                  "--seed", str(args.seed)]), device)
        folder = out / f"partition{index}"
        path = folder / "model.pt"
        started = time.perf_counter()
        checkpoint = reusable_checkpoint(path, recipe)
        if checkpoint is None:
            checkpoint = fit(recipe, args.data_dir, device)
            save_checkpoint(path, checkpoint)
        model_seconds = time.perf_counter() - started
        true = truth(model_from_checkpoint(checkpoint, device), known, val_images, val_labels, device)
        best = max(true, key=true.get)
        row = {"known": known, "unknown": sorted(set(range(10)) - set(known)), "model_seconds": model_seconds,
               "val_accuracy": checkpoint["metrics"]["val_accuracy"], "truth": true, "truly_best": best, "schemes": {}}
        print(f"partition {known}: model {model_seconds:.0f} s, truly best {best} {true[best]:.4f}", flush=True)
        for label, scheme in SCHEMES.items():
            started = time.perf_counter()
            folds = leave_classes_out(recipe, val, args.data_dir, folder / label.split(" (")[0].replace(" ", "_")
                                      .replace(",", ""), scheme, device, args.seed)
            seconds = time.perf_counter() - started
            aurocs, chosen = judged(folds, args.seed)
            names = list(true)
            rho = float(spearmanr([true[n] for n in names], [aurocs[n] for n in names])[0])
            row["schemes"][label] = {
                "scheme": scheme.to_json(), "seconds": seconds, "spearman": rho, "chosen": chosen,
                "chosen_truth": true[chosen], "gap_to_best": true[best] - true[chosen],
                "best_or_close": true[best] - true[chosen] <= CLOSE,
                "fold_val_accuracy": [f.val_accuracy for f in folds], "aurocs": aurocs}
            print(f"  {label}: {seconds:.0f} s, fold accuracy {np.mean([f.val_accuracy for f in folds]):.4f} "
                  f"(model {row['val_accuracy']:.4f}), Spearman {rho:.3f}, chose {chosen} (truth {true[chosen]:.4f}, "
                  f"{true[best] - true[chosen]:.4f} below the best)", flush=True)
        results.append(row)
        write_json(out / "design_partitions.json", {"partitions": results, "close": CLOSE, "seed": args.seed,
                                                    "threads": torch.get_num_threads()})
    summary = {label: {"spearman_mean": float(np.mean([r["schemes"][label]["spearman"] for r in results])),
                       "best_or_close": sum(r["schemes"][label]["best_or_close"] for r in results),
                       "gap_mean": float(np.mean([r["schemes"][label]["gap_to_best"] for r in results])),
                       "seconds_mean": float(np.mean([r["schemes"][label]["seconds"] for r in results]))}
               for label in SCHEMES}
    for label, s in summary.items():
        print(f"{label}: Spearman {s['spearman_mean']:.3f} on average; best or within {CLOSE}: {s['best_or_close']} of "
              f"{len(results)}; {s['gap_mean']:.4f} below the best on average; {s['seconds_mean']:.0f} s per partition")
    write_json(out / "design_partitions.json", {"partitions": results, "summary": summary, "close": CLOSE,
                                                "seed": args.seed, "threads": torch.get_num_threads()})
    print(f"wrote {out / 'design_partitions.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

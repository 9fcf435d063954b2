"""Which training recipe: every method screened over seeds, paired with the default; the best confirmed on the full judge.

Usage: python benchmarks/methods.py [--out-dir artifacts/methods] [--data-dir data] [--seeds 3] [--only I,J]
                                    [--confirm K] [--full-seeds S]

One seed's model is a lottery on near unknowns, and a recipe's gain is a few thousandths of AUROC, so every figure
here is over SEEDS training seeds, and every comparison is paired (osr_core/judge.py). A row with `--ensemble N` is
a deep ensemble of N models of its other flags' recipe, read as one (osr_core/ensemble.py): its seed s is their
models of seeds s * N to s * N + N - 1, kept and reused in that recipe's folder.

1. **The screen** (minutes a recipe): for each method, models of its recipe on the three design partitions
   (leave_out.SCREEN: 6 known digits, the 4 others held out; none a protocol split), each at the recipe's own budget
   and with SEEDS seeds, trained by the same training.fit as every model. They are the folds of a judge: the held-out
   classes' validation digits are the unknowns. Each method is compared with the default on the same partitions and
   digits, each on its own near part (the selection's step 1 on its screen): the difference of their AUROC, per
   partition and mean, and its paired bootstrap 95% interval. The default gets 2 x SEEDS seeds: its last SEEDS against
   its first SEEDS is the screen's **resolution** (the half-width of that interval: the smallest gain it can tell
   from seed noise); in every comparison the default's figures are of its first SEEDS seeds.
2. **The full judge** (--confirm K: the K methods the screen ranks highest, and the default): leave one class out of
   all ten, SEEDS seeds a fold, compared paired the same way; with the full judge's own resolution (the default with
   2 x SEEDS seeds) and the screen's agreement with it on the recipes measured both ways.

For each seed: validation accuracy (of the screen's models, mean over the partitions), the screen's AUROC, and the
operating point of the near part at each predicted class's 99% threshold on the known validation digits: the held-out
classes' validation digits named a digit, the acceptance family (validation digits as users send them) accepted (the
recipe's floor), and the far families (outliers.FAR_FAMILIES) rejected (reported: the near part alone is not meant to
clear them; stage 2's gates are); all from the validation split, no reported set. RULE and PRESET_RULE
then read the full judge's paired interval (a recipe the full judge has not confirmed is never chosen). Writes
methods.json; models are kept in --out-dir and reused only for their own recipe and seed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import train  # noqa: E402
from osr_core import acceptance, cli, data, ensemble, gates, outliers  # noqa: E402
from osr_core.calibration import calibrate, threshold_table  # noqa: E402
from osr_core.io import load_checkpoint, write_json  # noqa: E402
from osr_core.judge import FoldJudge, compare, resolution  # noqa: E402
from osr_core.leave_out import FULL, SCREEN, Fold, fold_path, fold_recipe, leave_classes_out  # noqa: E402
from osr_core.models import model_from_checkpoint  # noqa: E402
from osr_core.recipe import Recipe, reusable_checkpoint  # noqa: E402
from osr_core.report import methods_section  # noqa: E402
from osr_core.scores import score_images  # noqa: E402
from osr_core.selection import ACCEPTANCE_FLOOR, near_part  # noqa: E402

# (name, train.py flags): the current default first.
METHODS = [
    ("default: plain decoder, cross-entropy, affine warps", []),
    ("another pen or focus for half the digits (--pen 0.5)", ["--pen", "0.5"]),
    ("width 24 (--width 24)", ["--width", "24"]),
    ("class-conditional decoder (--decoder conditional)", ["--decoder", "conditional"]),
    ("another pen or focus, and elastic warps of 1 px (--pen 0.5 --elastic 1)", ["--pen", "0.5", "--elastic", "1.0"]),
    ("a centre loss: each class drawn together (--compactness 1)", ["--compactness", "1.0"]),
    ("twice as long (--epochs 10)", ["--epochs", "10"]),
    ("outlier exposure: chimeras and overlays, a quarter of each batch, normalised with the whole batch "
     "(--oe-fraction 0.25)", ["--oe-fraction", "0.25"]),
    ("a decoder that draws only from a sparse mix of 100 learned prototypes (--decoder memory)",
     ["--decoder", "memory"]),
    ("a deep ensemble of three default models trained from other seeds (--ensemble 3)", ["--ensemble", "3"]),
    ("class anchor clustering: the logits are minus the distances to fixed class anchors (--class-anchors 10)",
     ["--class-anchors", "10"]),
    ("a deep ensemble of three ten-epoch models (--epochs 10 --ensemble 3)", ["--epochs", "10", "--ensemble", "3"]),
    ("a deep ensemble of five default models (--ensemble 5)", ["--ensemble", "5"]),
    ("between-class placeholders: pairs of digits of two classes mixed in the encoder, a quarter of each batch, "
     "pulled to the uniform softmax (--placeholders 0.25)", ["--placeholders", "0.25"]),
    ("stronger augmentation, twice as long: another pen or focus and elastic warps of 1 px, ten epochs "
     "(--epochs 10 --pen 0.5 --elastic 1)", ["--epochs", "10", "--pen", "0.5", "--elastic", "1.0"]),
    ("outlier exposure: digits mirrored or turned where that leaves no digit, a quarter of each batch "
     "(--oe-fraction 0.25 --oe-negatives poses)", ["--oe-fraction", "0.25", "--oe-negatives", "poses"]),
    ("a deep ensemble of three models with the stronger augmentation, ten epochs each "
     "(--epochs 10 --pen 0.5 --elastic 1 --ensemble 3)",
     ["--epochs", "10", "--pen", "0.5", "--elastic", "1.0", "--ensemble", "3"]),
]
ENSEMBLE = "--ensemble"  # a row's flag (not train.py's): N models of the rest of its flags, read as one (ensemble.py)
# Width 24 and ten epochs cost more than TIME_BUDGET (about 2x the default's training): they can only be named a
# preset (PRESET_RULE), never the default. (LogitNorm lost earlier, and outlier exposure while it normalised its
# negatives with the digits' statistics: docs/recipes.md.)
SEEDS = 3
TARGET = 0.99           # the operating point: each predicted class's threshold accepts this share of known digits
ACCURACY_SLACK = 0.002  # validation accuracy (mean over seeds) may be this far below the best method's
TIME_BUDGET = 1.25      # training time per model, as a multiple of the default's measured in the same run
RULE = (f"methods whose validation accuracy (mean over seeds) is within {ACCURACY_SLACK:.1%} of the best, whose "
        f"training takes at most {TIME_BUDGET}x the default's (this run) and whose near part accepts users' digits "
        f">= {ACCEPTANCE_FLOOR:.0%} at the thresholds (mean over seeds) are eligible; the default stays unless an "
        "eligible method's paired interval against it on the full judge lies wholly above zero, and that judge's "
        "interval covers its seed noise (the default against itself with other seeds lies within it); then the one "
        "with the largest difference wins. The far families are reported, not a floor here: they are the floors of stage 2's "
        "gates, which it adds beside any recipe's near part until they are cleared")
PRESET_RULE = ("a method over the time budget whose accuracy is within the slack, whose operating point clears the "
               "floors and whose paired interval against the default on the full judge lies wholly above zero (a judge that "
               "covers its seed noise) becomes train.py's --preset large (the largest difference); none otherwise")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default="artifacts/methods")
    p.add_argument("--data-dir", default=cli.DEFAULT_DATA_DIR)
    p.add_argument("--seeds", type=cli.number(int, 1), default=SEEDS,
                   help="training seeds per recipe (the default gets twice as many, for the resolution)")
    p.add_argument("--only", type=parse_methods, default=None, metavar="I,J",
                   help="screen only these methods (their places in METHODS, 1 to %d); the default (0) is always "
                        "screened, since every comparison is with it" % (len(METHODS) - 1))
    p.add_argument("--confirm", type=cli.number(int, 0), default=0, metavar="K",
                   help="then the K methods the screen ranks highest, and the default, on the full judge (leave one "
                        "class out of ten, SEEDS seeds each: about ten times the screen's cost; default: 0, none)")
    p.add_argument("--full-seeds", type=cli.number(int, 1), default=None, metavar="S",
                   help="training seeds per recipe on the full judge (the default gets twice as many; default: "
                        "--seeds). Its ten folds average more seed noise out than the screen's three, so fewer may "
                        "reach the same resolution: the resolution it measures says whether they do")
    return p


def parse_methods(text: str) -> list[int]:
    try:
        chosen = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected method numbers separated by commas, e.g. 2,5; got {text!r}") from None
    if not chosen or not all(0 <= i < len(METHODS) for i in chosen):
        raise argparse.ArgumentTypeError(f"method numbers run from 0 to {len(METHODS) - 1}; got {text!r}")
    return chosen


def recipe_of(flags: list[str]) -> Recipe:
    return train.recipe_of(train.build_parser().parse_args(members_of(flags)[0]), torch.device("cpu"))


def members_of(flags: list[str]) -> tuple[list[str], int]:
    """A row's train.py flags and how many models of them it reads as one (1: a single model)."""
    if ENSEMBLE not in flags:
        return flags, 1
    at = flags.index(ENSEMBLE)
    return flags[:at] + flags[at + 2:], int(flags[at + 1])


def folder_of(out: Path, i: int) -> Path:
    """Where row i's models are kept: an ensemble's members are models of another row's recipe (the default's for
    --ensemble alone), kept and reused there."""
    flags, size = members_of(METHODS[i][1])
    return out / f"method{i if size == 1 else [f for _, f in METHODS].index(flags)}"


# ----------------------------------------------------------------------------------- one recipe, one seed
def judge_folds(recipe: Recipe, folder: Path, groups, seed: int, data_dir: str) -> tuple[list[Fold], float | None]:
    """The folds of one seed (reused or trained now) and the seconds a model of them took to train and score (kept
    beside them when they were trained, so that a rerun still reports it; None when unknown)."""
    paths = [fold_path(folder, g, seed) for g in groups]
    trained = sum(reusable_checkpoint(p, fold_recipe(recipe, g, FULL, seed)) is None for p, g in zip(paths, groups))
    timing = folder / f"seconds-seed{seed}.json"
    started = time.perf_counter()
    folds = leave_classes_out(recipe, data.validation_indices(), data_dir, folder, FULL, torch.device("cpu"),
                              seeds=[seed], groups=groups)
    if trained == len(groups):
        write_json(timing, (time.perf_counter() - started) / trained)
    elif trained:
        timing.unlink(missing_ok=True)  # a mix of reused and trained models times neither
    return folds, json.loads(timing.read_text()) if timing.is_file() else None


def operating_point(fold: Fold, score, near: str, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """The near part at each predicted class's TARGET threshold on the fold's known validation digits: the share of
    its held-out classes' validation digits named a digit, of each far family (made from its known validation digits)
    rejected, and of its users' digits (the acceptance family) accepted. score(images) -> the fold's Scored."""
    classes = list(fold.recipe.known_classes)
    mine = torch.isin(labels, torch.tensor(classes))
    digits, digit_labels = images[mine], labels[mine]
    far = {family: score(x) for family, x in outliers.validation_proxy(digits, digit_labels, 0).items()}
    users = score(acceptance.users_digits(digits[:acceptance.SIZE], 0)[0])
    knots = gates.fit_normalisation(fold.known, gates.with_components([near]))
    value = lambda s: gates.normalised_part(s, near, knots)
    thresholds = threshold_table(calibrate(value(fold.known), fold.known.pred, classes, "quantile", None, TARGET))
    accepted = lambda s: float((value(s) <= thresholds[s.pred]).mean())
    return {"held_out_named_a_digit": accepted(fold.unknown), "acceptance": accepted(users),
            "far_rejected": min(1 - accepted(s) for s in far.values())}


def scorer(folder: Path, fold: Fold, member_seeds: list[int], member_folds: list[Fold]):
    """score(images) -> Scored of a fold's model, or of its ensemble (its members' scores combined on their own known
    validation digits)."""
    classes = list(fold.recipe.known_classes)
    models = [model_from_checkpoint(load_checkpoint(fold_path(folder, fold.held_out, s)), torch.device("cpu"))
              for s in member_seeds]
    if len(models) == 1:
        return lambda x: score_images(models[0], x, classes, torch.device("cpu"))
    return lambda x: ensemble.combine([score_images(m, x, classes, torch.device("cpu")) for m in models],
                                      [f.known for f in member_folds])


def ensemble_fold(members: list[Fold], seed: int, labels: torch.Tensor) -> Fold:
    """One fold of an ensemble (its `seed`: which members), from its members' folds; `labels`: the validation
    digits' labels, of every class in the split's order."""
    first = members[0]
    known = ensemble.combine([f.known for f in members], [f.known for f in members])
    unknown = ensemble.combine([f.unknown for f in members], [f.known for f in members])
    truth = labels[torch.isin(labels, torch.tensor(first.recipe.known_classes))].numpy()
    return Fold(first.held_out, replace(first.recipe, seed=seed), known, unknown, float((known.pred == truth).mean()))


def spread(per_seed) -> dict:
    """A figure over seeds (a list, or a mapping seed -> figure, kept as given): mean, standard deviation (n - 1; 0
    for one seed) and range."""
    v = [float(x) for x in (per_seed.values() if isinstance(per_seed, dict) else per_seed)]
    return {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "min": min(v),
            "max": max(v), "per_seed": per_seed if isinstance(per_seed, dict) else v}


def judged(recipe: Recipe, folder: Path, groups, seeds: list[int], args, images, labels, size: int = 1) -> dict:
    """A recipe's judge over `seeds`: its folds, the near part the selection's step 1 chooses on them, and per seed the
    validation accuracy, the AUROC of that near part (mean over the folds), the operating point and the seconds a
    model took. With `size` > 1, each seed is an ensemble of that many models (seed s: the models of seeds s * size to
    s * size + size - 1), and a model's seconds are its members' together."""
    folds, seconds, members = [], [], []  # members[k]: the seeds and folds of folds[k]'s models
    for seed in seeds:
        member_seeds = list(range(seed * size, seed * size + size))
        trained = [judge_folds(recipe, folder, groups, s, args.data_dir) for s in member_seeds]
        of_seed = trained[0][0] if size == 1 else \
            [ensemble_fold(list(fs), seed, labels) for fs in zip(*(t[0] for t in trained))]
        members += [(member_seeds, [t[0][k] for t in trained]) for k in range(len(of_seed))]
        times = [t[1] for t in trained]
        t = None if None in times else sum(times)
        folds += of_seed
        seconds.append(t)
        print(f"  seed {seed}: validation accuracy {np.mean([f.val_accuracy for f in of_seed]):.4f}"
              + (f", {t:.0f} s a model" if t else ""), flush=True)
    judge = FoldJudge(folds)
    near = near_part(judge, folds[0].known.components)
    per_seed_auroc = np.mean(judge.per_fold_and_seed(near, ()), axis=0)  # (S,): each seed's mean over the folds
    points = []
    for seed in seeds:
        ops = [operating_point(f, scorer(folder, f, *m), near, images, labels)
               for f, m in zip(folds, members) if f.recipe.seed == seed]
        points.append({k: float(np.mean([o[k] for o in ops])) for k in ops[0]})
    return {"folds": folds, "judge": judge, "near": near, "seeds": seeds,
            "val_accuracy": spread([np.mean([f.val_accuracy for f in folds if f.recipe.seed == s]) for s in seeds]),
            "auroc": spread(per_seed_auroc),
            "operating_point": {k: spread([p[k] for p in points]) for k in points[0]},
            "seconds_per_model": None if None in seconds else float(np.mean(seconds))}


def of_seeds(result: dict, seeds: list[int]) -> FoldJudge:
    return FoldJudge([f for f in result["folds"] if f.recipe.seed in seeds])


def versus_default(default: dict, other: dict, seeds: list[int]) -> dict:
    """`other` against the default, paired, each on its own near part, over `seeds` of each."""
    return compare(of_seeds(default, seeds), of_seeds(other, seeds), (default["near"], ()), (other["near"], ())).to_json()


def resolution_of(default: dict, first: list[int], second: list[int]) -> dict:
    """The default's `second` seeds against its `first`, on its near part: the judge's resolution, and whether its
    interval covers its seed noise (the default against itself lies within it: it holds zero). The bootstrap draws
    folds and digits, not seeds, so with too few seeds a recipe can differ from itself beyond the interval (measured:
    the full judge with one seed a recipe); the rule reads no verdict of such a judge."""
    r = resolution(default["folds"], first, second, (default["near"], ()))
    return {"seeds": [first, second], **r.to_json(), "half_width": r.half_width,
            "covers_seed_noise": r.ci95[0] <= 0 <= r.ci95[1]}


def public(result: dict) -> dict:
    """What methods.json keeps of a judge's result (its figures, not its folds)."""
    return {k: v for k, v in result.items() if k not in ("folds", "judge")}


def failed_floors(point: dict) -> list[str]:
    """The recipe's floor: its near part must not buy unknowns with users' digits (far unknowns are the gates' job)."""
    return ["users' digits"] if point["acceptance"]["mean"] < ACCEPTANCE_FLOOR else []


def eligible(rows: list[dict], i: int, within_budget: bool) -> bool:
    best_accuracy = max(r["screen"]["val_accuracy"]["mean"] for r in rows)
    ratio = rows[i].get("time_ratio")
    over = ratio is not None and ratio > TIME_BUDGET
    full = rows[i].get("full") or {}
    confirmed = full.get("vs_default", {}).get("better", False) and full.get("covers_seed_noise", False)
    return (rows[i]["screen"]["val_accuracy"]["mean"] >= best_accuracy - ACCURACY_SLACK and not rows[i]["failed_floors"]
            and over != within_budget and confirmed)


def choose(rows: list[dict]) -> int:
    """RULE: the index of the recipe to keep (0: the default)."""
    better = [i for i in range(1, len(rows)) if eligible(rows, i, within_budget=True)]
    return max(better, key=lambda i: rows[i]["full"]["vs_default"]["difference"]) if better else 0


def choose_preset(rows: list[dict]) -> int | None:
    """PRESET_RULE: the index of the recipe beyond the budget worth naming, or None."""
    better = [i for i in range(1, len(rows)) if eligible(rows, i, within_budget=False)]
    return max(better, key=lambda i: rows[i]["full"]["vs_default"]["difference"]) if better else None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cli.setup_logging(True)
    out = Path(args.out_dir)
    images, labels = data.load_mnist(args.data_dir, train=True)
    val = data.validation_indices(len(images))
    images, labels = data.to_float(images[val]), labels[val]
    first, second = list(range(args.seeds)), list(range(args.seeds, 2 * args.seeds))
    measured = sorted({0, *args.only}) if args.only else list(range(len(METHODS)))
    summary = {"seeds": first, "default_seeds": first + second, "rule": RULE, "preset_rule": PRESET_RULE,
               "screen": {"held_out": SCREEN}, "methods": []}
    results, rows = {}, []

    def save(chosen=None, preset=None):
        write_json(out / "methods.json", {**summary, "chosen": chosen, "preset": preset})

    for i in measured:
        name, flags = METHODS[i]
        print(f"method {i}: {name} (screen)", flush=True)
        started = time.perf_counter()
        results[i] = judged(recipe_of(flags), folder_of(out, i) / "screen", SCREEN, first + second if i == 0 else first,
                            args, images, labels, members_of(flags)[1])
        if i == 0:
            base = results[0]
            summary["screen"]["resolution"] = resolution_of(base, first, second)
            print(f"  the screen's resolution: +- {summary['screen']['resolution']['half_width']:.4f}", flush=True)
        r = results[i]
        row = {"method": name, "train_flags": flags,
               "screen": {**public(r), "vs_default": versus_default(results[0], r, first)},
               "screen_seconds": time.perf_counter() - started, "full": None}
        default_seconds = rows[0]["screen"]["seconds_per_model"] if rows else r["seconds_per_model"]
        row["time_ratio"] = (r["seconds_per_model"] / default_seconds
                             if r["seconds_per_model"] and default_seconds else None)
        row["failed_floors"] = failed_floors(r["operating_point"])
        rows.append(row)
        summary["methods"] = rows
        save()

    if args.confirm:
        ranked = sorted(range(1, len(rows)), key=lambda k: -rows[k]["screen"]["vs_default"]["difference"])
        n = args.full_seeds or args.seeds
        summary["full_seeds"] = list(range(n))
        confirm(rows, [0] + ranked[:args.confirm], measured, list(range(n)), list(range(n, 2 * n)), args, images,
                labels, summary, out)
        save()
    chosen, preset = choose(rows), choose_preset(rows)
    save(rows[chosen]["method"], None if preset is None else rows[preset]["method"])
    print(methods_section({**summary, "chosen": rows[chosen]["method"]}))
    print(f"chosen by the rule: {rows[chosen]['method']}; the large preset: "
          f"{'none' if preset is None else rows[preset]['method']}; wrote {out / 'methods.json'}")
    return 0


def confirm(rows, picked, measured, first, second, args, images, labels, summary, out) -> None:
    """The full judge (leave one class out of ten) for the rows `picked` (0: the default, with 2 x seeds for the
    resolution), each compared paired with the default; and the screen's agreement with it."""
    groups = [[c] for c in range(10)]
    full = {}
    for k in picked:
        i = measured[k]
        name, flags = METHODS[i]
        print(f"method {i}: {name} (full judge)", flush=True)
        full[k] = judged(recipe_of(flags), folder_of(out, i) / "full", groups, first + second if k == 0 else first,
                         args, images, labels, members_of(flags)[1])
        base = full[0]
        if k == 0:
            summary["full_resolution"] = resolution_of(base, first, second)
        rows[k]["full"] = {**public(full[k]), "vs_default": versus_default(base, full[k], first),
                           "covers_seed_noise": summary["full_resolution"]["covers_seed_noise"]}
    pairs = [(rows[k]["screen"]["vs_default"]["difference"], rows[k]["full"]["vs_default"]["difference"])
             for k in picked if k]
    summary["agreement"] = {"recipes": len(pairs), "same_sign": sum((a > 0) == (b > 0) for a, b in pairs),
                            "pairs": pairs}


if __name__ == "__main__":
    sys.exit(main())

"""The near-digit judge: the design partitions it is measured on are no protocol split, a judgement is keyed by its
recipe and stands in for the folds, and every shipped judgement is of a recipe the code trains, complete, and gives
back its own near part under the selection's rule."""
import functools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm

from osr_core import data, gates, judgement
from osr_core.io import load_checkpoint
from osr_core.recipe import recorded_recipe
from osr_core.leave_out import FULL
from osr_core.scores import COMPONENTS
from osr_core.judge import BOOTSTRAP, ShippedJudge
from osr_core.selection import NEAR, choose_near, gate_plans

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))


def test_the_design_partitions_share_no_partition_with_the_protocol_splits_and_hold_out_every_digit():
    from osr_core import leave_out as design
    splits = {frozenset(s) for s in data.UNSEEN_DIGIT_SPLITS}
    for known in design.DESIGN_PARTITIONS:
        assert len(known) == 6 and frozenset(known) not in splits
        assert frozenset(set(range(10)) - set(known)) not in splits  # nor the mirror of one
    held_out = set().union(*(set(range(10)) - set(p) for p in design.DESIGN_PARTITIONS))
    assert held_out == set(range(10))


def test_the_judged_recipes_are_train_pys_presets_and_those_the_protocol_trains():
    import train
    recipes = judgement.judged_recipes(torch.device("cpu"))
    of = lambda *flags: train.recipe_of(train.build_parser().parse_args(list(flags)), torch.device("cpu"))
    assert recipes["default"] == of() == of("--preset", "default")
    assert recipes["large"] == of("--preset", "large") == of("--epochs", "10", "--pen", "0.5", "--elastic", "1")
    for i, known in enumerate(data.UNSEEN_DIGIT_SPLITS):
        assert recipes[f"split{i}"] == of("--known-classes", ",".join(map(str, known)))
        assert recipes[f"large-split{i}"] == of("--preset", "large", "--known-classes", ",".join(map(str, known)))


def test_a_preset_sets_its_fields_flags_beside_it_win_and_the_large_one_is_a_recipe_the_full_judge_compared():
    import methods
    import train
    from dataclasses import replace
    from osr_core.recipe import PRESETS, Recipe, preset_of
    of = lambda *flags: train.recipe_of(train.build_parser().parse_args(list(flags)), torch.device("cpu"))
    for name, values in PRESETS.items():
        recipe = of("--preset", name)
        assert recipe == replace(Recipe(**values), precision=recipe.precision)  # every field it names, taken
        assert preset_of(recipe) == preset_of(replace(recipe, known_classes=(3, 5), seed=4)) == name
    assert of("--preset", "large", "--epochs", "3") == replace(of("--preset", "large"), epochs=3)
    assert preset_of(of("--preset", "large", "--epochs", "3")) is None and preset_of(of("--width", "24")) is None
    # The large preset is the recipe the methods benchmark measured on the full judge (its row with no ensemble).
    assert of("--preset", "large") in [methods.recipe_of(flags) for _, flags in methods.METHODS
                                       if methods.members_of(flags)[1] == 1]


def test_a_judgement_is_keyed_by_the_recipe_without_its_seed_and_precision():
    from osr_core.recipe import ADDED_FIELDS
    recipes = judgement.judged_recipes(torch.device("cpu"))
    default = recipes["default"]
    from dataclasses import replace
    assert judgement.path_for(default) == judgement.path_for(replace(default, seed=7, precision="bf16"))
    assert judgement.path_for(default) != judgement.path_for(replace(default, width=24))
    assert len({judgement.path_for(r) for r in recipes.values()}) == len(recipes) == 12
    # A field added since judgements first shipped is in the key only where a recipe sets it: the judgements of the
    # recipes from before it existed are still found (every shipped judgement is, below), and one that sets it is new.
    for name in ADDED_FIELDS:
        assert name not in judgement.recipe_key(default)
        assert judgement.path_for(default) != judgement.path_for(replace(default, **{name: 1.0}))


def test_stage_2_uses_a_shipped_judgement_of_its_recipe_and_trains_no_fold(trained_run, data_dir, tmp_path,
                                                                          monkeypatch):
    """A judgement of the suite's tiny recipe, computed from its own folds (trained by the session fixture), stands in
    for the folds: stage 2 trains none and records which judge spoke."""
    import compute_class_reconstruction_errors
    from conftest import FOLD_FLAGS, forbid_reported_sets
    from osr_core import leave_out, pipeline
    from osr_core.io import load_checkpoint
    from osr_core.recipe import recorded_recipe

    parser = compute_class_reconstruction_errors.build_parser()
    flags = parser.parse_args(FOLD_FLAGS)
    scheme = leave_out.FoldScheme(flags.fold_size, flags.fold_epochs or None, flags.fold_images or None)
    recipe = recorded_recipe(load_checkpoint(trained_run["checkpoint"]))
    folds = leave_out.leave_classes_out(recipe, data.validation_indices(), data_dir, trained_run["root"] / "leave_out",
                                        scheme, torch.device("cpu"), batch_size=flags.batch_size)  # stage 2's evidence
    shipped = tmp_path / "judgements"
    shipped.mkdir()
    monkeypatch.setattr(judgement, "JUDGEMENTS", shipped)
    (shipped / judgement.path_for(recipe).name).write_text(json.dumps(judgement.compute(folds, 0, scheme, recipe)))

    def no_folds(*args, **kwargs):
        raise AssertionError("stage 2 trained folds although a judgement of its recipe is shipped")
    monkeypatch.setattr(pipeline, "leave_classes_out", no_folds)
    read = forbid_reported_sets(monkeypatch)  # the shipped judge's path, under the leak guard too
    out = tmp_path / "thresholds.txt"
    assert compute_class_reconstruction_errors.main(["--checkpoint", str(trained_run["checkpoint"]), "--data-dir",
                                                     data_dir, "--out", str(out), "--device", "cpu", "--quiet",
                                                     *FOLD_FLAGS]) == 0
    assert read == []
    selection = json.loads((tmp_path / "calibration.json").read_text())["selection"]
    assert selection["judge"]["source"].startswith("shipped judgement") and len(selection["folds"]) == len(folds)
    # The same choice as the folds themselves give: the judgement holds everything the selection reads of a judge.
    trained = json.loads((trained_run["root"] / "calibration.json").read_text())["selection"]
    assert selection["chosen"] == trained["chosen"] and selection["near"] == trained["near"]


def _change(change: str, monkeypatch) -> str:
    """Changes what the judge computes (a knot, the offsets, or the number of resamples); the fingerprint before."""
    from osr_core import judge
    before = judgement.code_fingerprint()
    if change == "a knot":
        monkeypatch.setattr(gates, "Z_KNOTS", np.linspace(-3.0, 3.0, 13))
        monkeypatch.setattr(gates, "P_KNOTS", norm.cdf(np.linspace(-3.0, 3.0, 13)))
    elif change == "an offset":
        monkeypatch.setattr(gates, "OFFSETS", (0.0, 0.25, 0.75))
    else:
        monkeypatch.setattr(judge, "BOOTSTRAP", 150)
    monkeypatch.setattr(judgement, "code_fingerprint", functools.cache(judgement.code_fingerprint.__wrapped__))
    return before


@pytest.mark.parametrize("change", ["a knot", "an offset", "the resamples"])
def test_a_change_to_what_the_judge_computes_retires_every_shipped_judgement(change, monkeypatch):
    """A shipped judgement is used only under the fingerprint of the code that computed it."""
    recipes = judgement.judged_recipes(torch.device("cpu"))
    assert all(judgement.shipped(r, FULL) is not None for r in recipes.values())
    before = _change(change, monkeypatch)
    assert judgement.code_fingerprint() != before
    assert all(judgement.shipped(r, FULL) is None for r in recipes.values())


def test_stage_2_follows_a_change_to_the_judge_with_its_folds(trained_run, data_dir, tmp_path, monkeypatch):
    """With the offsets changed, a judgement computed by the code as it was is not read: stage 2 trains (here:
    reuses) its folds and chooses among the new offsets."""
    import compute_class_reconstruction_errors
    from conftest import FOLD_FLAGS
    before = _change("an offset", monkeypatch)
    recipe = recorded_recipe(load_checkpoint(trained_run["checkpoint"]))
    shipped = tmp_path / "judgements"
    shipped.mkdir()
    old = json.loads(next(judgement.JUDGEMENTS.glob("*.json")).read_text())
    (shipped / judgement.path_for(recipe).name).write_text(json.dumps({**old, "recipe_key": judgement.recipe_key(recipe),
                                                                      "code": before}))
    monkeypatch.setattr(judgement, "JUDGEMENTS", shipped)
    out = tmp_path / "thresholds.txt"
    assert compute_class_reconstruction_errors.main(["--checkpoint", str(trained_run["checkpoint"]), "--data-dir",
                                                     data_dir, "--out", str(out), "--device", "cpu", "--quiet",
                                                     "--folds-dir", str(trained_run["root"] / "leave_out"),
                                                     *FOLD_FLAGS]) == 0
    chosen = json.loads((tmp_path / "calibration.json").read_text())["selection"]
    assert chosen["judge"]["source"].startswith("folds trained")
    assert all(o in gates.OFFSETS for _, o in gates.parse_gates(chosen["chosen"])[1:])
    assert {c for c in chosen["candidates"] if "-0.25" in c} and not {c for c in chosen["candidates"] if "-1.5" in c}


SHIPPED = sorted(judgement.JUDGEMENTS.glob("*.json"))


def test_every_judged_recipe_has_a_shipped_judgement_of_the_current_code():
    recipes = judgement.judged_recipes(torch.device("cpu"))
    missing = [name for name, r in recipes.items() if judgement.shipped(r, FULL) is None]
    assert not missing, f"no shipped judgement of {missing}: run make judge"
    keys = [judgement.recipe_key(r) for r in recipes.values()]
    assert all(json.loads(p.read_text())["recipe_key"] in keys for p in SHIPPED), "a judgement of no recipe we train"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_a_shipped_judgement_is_complete_and_gives_back_its_own_near_part(path):
    shipped = json.loads(path.read_text())
    judge = ShippedJudge(shipped, path.name)
    components = [c for c in COMPONENTS if c != "openmax"]  # the judged recipes are all cnn
    nears = gates.candidate_scores(components)
    table = {n: {NEAR: sum(judge.per_fold(n, ())) / len(judge.per_fold(n, ()))} for n in nears}
    assert choose_near(judge, nears, table) == shipped["near"]
    for plan in gate_plans(shipped["near"], components):
        row = shipped["candidates"][gates.gates_name(shipped["near"], plan)]
        assert len(row["per_fold"]) == len(shipped["folds"]) and len(row["resampled"]) == BOOTSTRAP
    held_out = sorted(c for f in shipped["folds"] for c in f["held_out"])
    assert held_out == sorted(shipped["recipe_key"]["known_classes"]) and shipped["scheme"] == FULL.to_json()


def test_the_recipe_rules_read_the_full_judges_paired_interval_and_name_a_preset_only_beyond_the_budget():
    import methods

    def row(better, ratio, accuracy=0.994, floors=(), difference=0.003, covered=True):
        full = None if better is None else {"vs_default": {"better": better, "difference": difference},
                                            "covers_seed_noise": covered}
        return {"screen": {"val_accuracy": {"mean": accuracy}}, "time_ratio": ratio, "failed_floors": list(floors),
                "full": full}
    default = row(False, 1.0, difference=0.0)
    # Better on the full judge but over the budget: a preset, never the default.
    assert methods.choose([default, row(True, 2.0)]) == 0 and methods.choose_preset([default, row(True, 2.0)]) == 1
    # Inside the budget and better: the new default, and no preset.
    assert methods.choose([default, row(True, 1.1)]) == 1 and methods.choose_preset([default, row(True, 1.1)]) is None
    # Not better, better on the screen alone (never confirmed), below the accuracy slack, or under a floor: neither;
    # ... or better on a full judge whose own seeds differ beyond its interval (too few seeds to read it).
    for other in (row(False, 1.1), row(None, 1.1), row(True, 1.1, accuracy=0.990), row(True, 2.0, floors=["far"]),
                  row(True, 1.1, covered=False), row(True, 2.0, covered=False)):
        assert methods.choose([default, other]) == 0 and methods.choose_preset([default, other]) is None
    # Of two presets, the larger paired difference.
    assert methods.choose_preset([default, row(True, 2.0, difference=0.002), row(True, 3.0, difference=0.004)]) == 2


def test_the_recipe_benchmark_screens_only_the_methods_asked_for_pairs_each_with_the_default_and_measures_the_resolution(
        monkeypatch, tmp_path, data_dir):
    import methods
    from osr_core.judge import FoldJudge
    from test_judge import _folds
    screened = []

    def judged(recipe, folder, groups, seeds, args, images, labels, size=1):
        screened.append((folder.parent.name, list(seeds)))
        better = range(3) if recipe.epochs == 10 else ()  # method 6 (--epochs 10) is better in every fold
        folds = _folds(n_folds=3, seeds=seeds, better_in=better, moved=5)
        one = {"mean": 0.99, "sd": 0.001, "min": 0.98, "max": 0.995, "per_seed": [0.99] * len(seeds)}
        return {"folds": folds, "judge": FoldJudge(folds), "near": "energy", "seeds": list(seeds), "val_accuracy": one,
                "auroc": one, "operating_point": {"held_out_named_a_digit": one, "acceptance": one,
                                                  "far_rejected": one},
                "seconds_per_model": 20.0 if recipe.epochs == 10 else 10.0}
    monkeypatch.setattr(methods, "judged", judged)
    assert methods.main(["--out-dir", str(tmp_path), "--only", "6", "--seeds", "2", "--data-dir", data_dir]) == 0
    assert screened == [("method0", [0, 1, 2, 3]), ("method6", [0, 1])]
    written = json.loads((tmp_path / "methods.json").read_text())
    assert [m["method"] for m in written["methods"]] == [methods.METHODS[0][0], methods.METHODS[6][0]]
    default, longer = written["methods"]
    assert default["screen"]["vs_default"]["ci95"] == [0.0, 0.0] and longer["screen"]["vs_default"]["better"]
    assert written["screen"]["resolution"]["seeds"] == [[0, 1], [2, 3]] and longer["time_ratio"] == 2.0
    assert written["chosen"] == methods.METHODS[0][0]  # better on the screen alone changes nothing
    for wrong in (str(len(methods.METHODS)), "x", ""):
        with pytest.raises(SystemExit):
            methods.build_parser().parse_args(["--only", wrong])


@pytest.mark.parametrize("default_seeds_differ", [False, True])
def test_the_full_judge_is_read_only_when_the_default_against_itself_lies_within_its_interval(
        default_seeds_differ, monkeypatch, tmp_path, data_dir):
    """--confirm takes the best screened recipe to the full judge with --full-seeds seeds a recipe; a full judge whose
    default differs from itself (other seeds) beyond its own interval leaves seed noise out, and no verdict is read."""
    from dataclasses import replace

    import methods
    from osr_core.judge import FoldJudge
    from test_judge import _folds
    trained = []

    def judged(recipe, folder, groups, seeds, args, images, labels, size=1):
        trained.append((folder.parent.name, folder.name, list(seeds)))
        longer = recipe.epochs == 10  # better by 0.002 an unknown in every fold, on the screen and the full judge
        folds = []
        for seed in seeds:  # every seed gives the same scores, but the default's later seeds when told to differ
            worse = not longer and default_seeds_differ and seed >= len(seeds) // 2
            better = range(len(groups)) if longer else ()
            for f in _folds(n_folds=len(groups), better_in=better, moved=1 if worse else 5):
                folds.append(replace(f, held_out=list(groups[f.held_out[0]]), recipe=replace(f.recipe, seed=seed)))
        one = {"mean": 0.99, "sd": 0.001, "min": 0.98, "max": 0.995, "per_seed": [0.99] * len(seeds)}
        return {"folds": folds, "judge": FoldJudge(folds), "near": "energy", "seeds": list(seeds), "val_accuracy": one,
                "auroc": one, "operating_point": {"held_out_named_a_digit": one, "acceptance": one,
                                                  "far_rejected": one},
                "seconds_per_model": 20.0 if longer else 10.0}
    monkeypatch.setattr(methods, "judged", judged)
    assert methods.main(["--out-dir", str(tmp_path), "--only", "6", "--seeds", "2", "--confirm", "1", "--full-seeds",
                         "1", "--data-dir", data_dir]) == 0
    assert trained[2:] == [("method0", "full", [0, 1]), ("method6", "full", [0])]
    written = json.loads((tmp_path / "methods.json").read_text())
    resolution, longer = written["full_resolution"], written["methods"][1]
    assert written["full_seeds"] == [0] and resolution["seeds"] == [[0], [1]]
    assert longer["full"]["vs_default"]["better"] and longer["time_ratio"] == 2.0
    assert resolution["covers_seed_noise"] == (not default_seeds_differ) == longer["full"]["covers_seed_noise"]
    # Better on a judge that covers its seed noise, beyond the time budget: the large preset; else none.
    assert written["preset"] == (None if default_seeds_differ else methods.METHODS[6][0])

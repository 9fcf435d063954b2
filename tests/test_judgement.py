"""The near-digit judge: the design partitions it is measured on are no protocol split, and a judgement is keyed by
its recipe."""
import sys
from pathlib import Path

import torch

from osr_core import data, judgement

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_the_design_partitions_share_no_partition_with_the_protocol_splits_and_hold_out_every_digit():
    import folds as design
    splits = {frozenset(s) for s in data.UNSEEN_DIGIT_SPLITS}
    for known in design.DESIGN_PARTITIONS:
        assert len(known) == 6 and frozenset(known) not in splits
        assert frozenset(set(range(10)) - set(known)) not in splits  # nor the mirror of one
    held_out = set().union(*(set(range(10)) - set(p) for p in design.DESIGN_PARTITIONS))
    assert held_out == set(range(10))


def test_a_judgement_is_keyed_by_the_recipe_without_its_seed_and_precision():
    recipes = judgement.judged_recipes(torch.device("cpu"))
    default = recipes["default"]
    from dataclasses import replace
    assert judgement.path_for(default) == judgement.path_for(replace(default, seed=7, precision="bf16"))
    assert judgement.path_for(default) != judgement.path_for(replace(default, width=24))
    assert len({judgement.path_for(r) for r in recipes.values()}) == len(recipes) == 6

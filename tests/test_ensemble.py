"""A deep ensemble reads its members as one: scale-free averaging in normalised units, and the members' vote."""
import numpy as np
import pytest

from osr_core import ensemble, gates
from osr_core.scores import Scored


def _scored(rng, n, pred=None, shift=0.0):
    return Scored(pred=np.zeros(n, dtype=np.int64) if pred is None else pred,
                  components={"energy": rng.normal(shift, 1.0, n), "pixel_recon": rng.lognormal(shift, 0.5, n)})


def test_members_on_other_scales_count_alike_and_one_member_keeps_its_order():
    rng = np.random.default_rng(0)
    reference, images = _scored(rng, 2000), _scored(rng, 300, shift=0.5)
    scaled = lambda s, k: Scored(s.pred, {"energy": s.components["energy"] * k, "pixel_recon": s.components["pixel_recon"] * k})
    alone = ensemble.combine([images], [reference])
    # A member whose scores are 100 times another's, on its own digits as on the images, is the same evidence.
    pair = ensemble.combine([images, scaled(images, 100.0)], [reference, scaled(reference, 100.0)])
    for name in images.components:
        assert np.allclose(pair.components[name], alone.components[name])
        assert (np.argsort(alone.components[name]) == np.argsort(images.components[name])).all()
    assert (alone.components["pixel_recon"] > 0).all()  # a log-scaled part stays positive, for the decisions


def test_an_image_one_member_finds_far_lies_between_the_members():
    rng = np.random.default_rng(1)
    reference = _scored(rng, 2000)
    near, far = _scored(rng, 50), _scored(rng, 50, shift=4.0)
    z = lambda s: gates.rank_normalise(s.components["energy"], "energy", gates.fit_knots(reference.components["energy"], "energy"))
    mixed = ensemble.combine([near, far], [reference, reference]).components["energy"]
    assert np.allclose(mixed, (z(near) + z(far)) / 2)


def test_the_members_vote_and_a_tie_goes_to_the_first_member():
    preds = np.array([[1, 1, 2, 7], [1, 2, 3, 7], [2, 2, 4, 7]])
    assert ensemble.vote(preds).tolist() == [1, 2, 2, 7]


def test_members_scored_on_other_images_are_refused():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError):
        ensemble.combine([_scored(rng, 10), _scored(rng, 11)], [_scored(rng, 100)] * 2)

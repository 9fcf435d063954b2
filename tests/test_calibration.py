"""calibration.py: threshold rules, the pooled fallback, and the thresholds file with its errors."""
import math
import re

import numpy as np
import pytest

from osr_core.calibration import (MIN_CLASS_SAMPLES, Calibration, ClassStats, calibrate, format_thresholds,
                                  parse_thresholds, read_thresholds)
from osr_core.cli import UserError

SHA = "ab" * 32


# ----------------------------------------------------------------------------------- rules
def test_quantile_rule_accepts_the_target_fraction_per_class():
    rng = np.random.default_rng(0)
    classes = [1, 4, 6]
    pred = np.repeat(classes, 1000)
    # Very different distributions per class: one global threshold could not serve them all.
    scores = np.concatenate([rng.normal(0, 1, 1000), rng.exponential(5, 1000), rng.uniform(10, 11, 1000)])
    rows = calibrate(scores, pred, classes, "quantile", None, 0.9)
    assert [r.cls for r in rows] == classes and [r.n for r in rows] == [1000] * 3
    for r in rows:
        accepted = (scores[pred == r.cls] <= r.threshold).mean()
        assert abs(accepted - 0.9) <= 0.01, (r.cls, accepted)


def _twenty(values):
    """MIN_CLASS_SAMPLES copies of a small pattern, so the class keeps its own threshold."""
    assert MIN_CLASS_SAMPLES % len(values) == 0
    return np.tile(np.asarray(values, dtype=np.float64), MIN_CLASS_SAMPLES // len(values))


def test_mean_std_and_mean_factor_match_hand_computed_values():
    scores = _twenty([1.0, 2.0, 3.0, 4.0])  # mean 2.5, population std sqrt(1.25)
    pred = np.zeros(len(scores), dtype=int)
    (row,) = calibrate(scores, pred, [0], "mean-std", 2.0, 0.99)
    assert row.mean == 2.5 and math.isclose(row.std, math.sqrt(1.25))
    assert math.isclose(row.threshold, 2.5 + 2.0 * math.sqrt(1.25))
    (row,) = calibrate(scores, pred, [0], "mean-factor", 2.0, 0.99)
    assert row.threshold == 5.0
    assert row.p50 == 2.5 and row.n == MIN_CLASS_SAMPLES


@pytest.mark.parametrize("bad", [-0.5, 0.0])
def test_mean_factor_refuses_a_score_that_is_not_always_positive(bad):
    scores = _twenty([1.0, 2.0, 3.0, 4.0])
    scores[3] = bad
    with pytest.raises(UserError, match="mean-factor"):
        calibrate(scores, np.zeros(len(scores), dtype=int), [0], "mean-factor", 2.0, 0.99)


def test_small_class_borrows_the_pooled_threshold_and_absent_class_gets_n_0():
    rng = np.random.default_rng(1)
    big, small = rng.normal(0, 1, 200), rng.normal(50, 1, MIN_CLASS_SAMPLES - 1)
    scores, pred = np.r_[big, small], np.r_[np.zeros(200, int), np.ones(len(small), int)]
    rows = calibrate(scores, pred, [0, 1, 2], "quantile", None, 0.95)
    pooled = np.quantile(scores, 0.95)
    assert rows[0].threshold == np.quantile(big, 0.95) != pooled
    assert rows[1].n == MIN_CLASS_SAMPLES - 1 and rows[1].threshold == pooled
    assert math.isclose(rows[1].mean, small.mean())  # its own statistics are still reported
    assert rows[2].cls == 2 and rows[2].n == 0 and rows[2].threshold == pooled
    assert all(math.isnan(v) for v in (rows[2].mean, rows[2].std, rows[2].p50, rows[2].p95, rows[2].p99))


# ----------------------------------------------------------------------------------- the file
GATED = "max(mean+(energy,mahalanobis),pixel_recon-1.5)"


def _knots(start, step):
    """25 increasing numbers that need repr to survive a round trip."""
    return [start + step * i + (0.1 + 0.2) * 1e-3 for i in range(25)]


def _calibration(score=GATED):
    normalisation = {"energy": _knots(-12.0, 1 / 3), "mahalanobis": _knots(1 / 7, 2.5), "pixel_recon": _knots(0.001, 0.01),
                     "mean+(energy,mahalanobis)": _knots(0.0, 0.125)}
    return Calibration(
        checkpoint_sha256=SHA, score=score, rule="mean-std", rule_param=2.326, target_acceptance=0.95,
        normalisation=normalisation if score == GATED else {},
        classes=[ClassStats(3, 120, 0.125, 0.5, 0.25, 1.5, 2.75, 0.1 + 0.2),  # threshold needs repr to survive
                 ClassStats(5, 0, *([math.nan] * 5), 1 / 3),
                 ClassStats(7, 45, -1.0, 0.0625, -0.875, 2.0, 3.0, 2.326 * math.pi)],
    )


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_format_then_parse_preserves_every_field(tmp_path):
    cal = _calibration()
    cal.validation_acceptance = 0.93  # measured, not kept in the file
    back = parse_thresholds(format_thresholds(cal), tmp_path / "t.txt")
    assert (back.checkpoint_sha256, back.score, back.rule) == (SHA, GATED, "mean-std")
    assert back.rule_param == 2.326 and back.target_acceptance == 0.95
    assert back.normalisation == cal.normalisation  # exact, via repr
    assert back.validation_acceptance is None
    assert len(back.classes) == len(cal.classes)
    for want, got in zip(cal.classes, back.classes):
        for name in ("cls", "n", "mean", "std", "p50", "p95", "p99", "threshold"):
            assert _same(getattr(want, name), getattr(got, name)), (want.cls, name)
    assert back.classes[0].threshold == 0.30000000000000004


def test_quantile_rule_without_param_round_trips_as_none(tmp_path):
    cal = _calibration("pixel_recon")
    cal.rule, cal.rule_param = "quantile", None
    back = parse_thresholds(format_thresholds(cal), tmp_path / "t.txt")
    assert back.rule_param is None and back.score == "pixel_recon" and back.normalisation == {}


def _file(tmp_path, edit=lambda lines: lines):
    lines = format_thresholds(_calibration()).splitlines()
    path = tmp_path / "thresholds.txt"
    path.write_text("\n".join(edit(lines)) + "\n")
    return path, lines


def _row_index(lines, cls):
    return next(i for i, line in enumerate(lines) if line.split()[0] == str(cls))


def _replace_cell(cls, column, value):
    def edit(lines):
        i = _row_index(lines, cls)
        cells = lines[i].split()
        cells[column] = value
        lines[i] = " ".join(cells)
        return lines
    return edit


def test_read_thresholds_accepts_the_file_it_wrote(tmp_path):
    path, _ = _file(tmp_path)
    cal = read_thresholds(path, SHA, [3, 5, 7])
    assert [c.cls for c in cal.classes] == [3, 5, 7]


@pytest.mark.parametrize("value, words", [("abc", "not a number"), ("nan", "finite"), ("inf", "finite")])
def test_bad_threshold_names_its_line(tmp_path, value, words):
    path, lines = _file(tmp_path, _replace_cell(7, 7, value))
    lineno = _row_index(lines, 7) + 1
    with pytest.raises(UserError) as info:
        read_thresholds(path, SHA, [3, 5, 7])
    assert f"{path}:{lineno}: threshold" in str(info.value) and words in str(info.value)


def test_extra_column_names_its_line(tmp_path):
    def edit(lines):
        lines[_row_index(lines, 5)] += " 1.0"
        return lines
    path, lines = _file(tmp_path, edit)
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:{_row_index(lines, 5) + 1}: expected 8 columns .* found 9"):
        read_thresholds(path, SHA, [3, 5, 7])


def test_wrong_magic_line_is_line_1(tmp_path):
    path, _ = _file(tmp_path, lambda lines: ["# some other file v1"] + lines[1:])
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:1: not a thresholds file"):
        read_thresholds(path, SHA, [3, 5, 7])


def test_empty_file_is_not_a_thresholds_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:1:"):
        read_thresholds(path, SHA, [3, 5, 7])


def test_missing_header_line_is_named(tmp_path):
    path, _ = _file(tmp_path, lambda lines: [l for l in lines if not l.startswith("# rule:")])
    with pytest.raises(UserError, match=r"header line '# rule: \.\.\.' is missing") as info:
        read_thresholds(path, SHA, [3, 5, 7])
    assert str(path) in str(info.value)


def test_another_checkpoint_is_refused(tmp_path):
    path, _ = _file(tmp_path)
    with pytest.raises(UserError, match="another checkpoint") as info:
        read_thresholds(path, "cd" * 32, [3, 5, 7])
    assert str(path) in str(info.value) and "abababababab" in str(info.value)


@pytest.mark.parametrize("key, lineno", [("rule_param", 5), ("target_acceptance", 6)])
def test_bad_header_number_names_its_line(tmp_path, key, lineno):
    path, lines = _file(tmp_path, lambda lines: [f"# {key}: abc" if l.startswith(f"# {key}:") else l
                                                 for l in lines])
    assert lines[lineno - 1].startswith(f"# {key}:")
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:{lineno}: {key} is not a number"):
        read_thresholds(path, SHA, [3, 5, 7])


def test_missing_class_row_is_named_with_where_the_rows_are(tmp_path):
    path, _ = _file(tmp_path, lambda lines: [l for i, l in enumerate(lines) if i != _row_index(lines, 5)])
    written = path.read_text().splitlines()
    first, last = _row_index(written, 3) + 1, _row_index(written, 7) + 1
    with pytest.raises(UserError, match=rf"no row for class\(es\) \[5\] .*class rows: lines {first}-{last}\)") as info:
        read_thresholds(path, SHA, [3, 5, 7])
    assert str(path) in str(info.value)


def test_duplicate_class_row_names_both_lines(tmp_path):
    def edit(lines):
        return lines + [lines[_row_index(lines, 3)]]
    path, _ = _file(tmp_path, edit)
    written = path.read_text().splitlines()
    first, second = _row_index(written, 3) + 1, len(written)
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:{second}: class 3 has a second row \(the first is line {first}\)"):
        read_thresholds(path, SHA, [3, 5, 7])


def test_unknown_rule_names_its_line(tmp_path):
    path, lines = _file(tmp_path, lambda lines: ["# rule: median" if l.startswith("# rule:") else l for l in lines])
    lineno = next(i for i, l in enumerate(lines) if l.startswith("# rule:")) + 1
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:{lineno}: unknown rule 'median'"):
        read_thresholds(path, SHA, [3, 5, 7])


def test_thresholds_for_looks_up_the_predicted_class():
    cal = _calibration()
    np.testing.assert_array_equal(cal.thresholds_for(np.array([7, 3, 3])),
                                  [2.326 * math.pi, 0.1 + 0.2, 0.1 + 0.2])
    with pytest.raises(UserError, match=r"\[4\]"):
        cal.thresholds_for(np.array([3, 4]))


def test_unknown_score_names_its_line(tmp_path):
    path, lines = _file(tmp_path, lambda lines: ["# score: combined" if l.startswith("# score:") else l for l in lines])
    lineno = next(i for i, l in enumerate(lines) if l.startswith("# score:")) + 1
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:{lineno}: unknown score 'combined'"):
        read_thresholds(path, SHA, [3, 5, 7])


def test_gated_score_without_a_part_s_normalisation_names_the_missing_part(tmp_path):
    path, _ = _file(tmp_path, lambda lines: [l for l in lines if not l.startswith("# normalise: energy")])
    with pytest.raises(UserError, match=r"needs a 'normalise:' line for each of energy$"):
        read_thresholds(path, SHA, [3, 5, 7])


def test_knots_that_do_not_increase_or_are_too_few_name_their_line(tmp_path):
    def swap(lines):
        i = next(i for i, l in enumerate(lines) if l.startswith("# normalise: pixel_recon"))
        cells = lines[i].split()
        cells[5], cells[6] = cells[6], cells[5]
        lines[i] = " ".join(cells)
        return lines
    path, lines = _file(tmp_path, swap)
    lineno = next(i for i, l in enumerate(lines) if l.startswith("# normalise: pixel_recon")) + 1
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:{lineno}: the quantiles of pixel_recon must increase"):
        read_thresholds(path, SHA, [3, 5, 7])
    path, _ = _file(tmp_path, lambda lines: [l.rsplit(" ", 1)[0] if l.startswith("# normalise: energy") else l
                                             for l in lines])
    with pytest.raises(UserError, match=r"expected 'normalise: <component or fusion> <25 quantiles>'"):
        read_thresholds(path, SHA, [3, 5, 7])


def test_a_file_of_the_earlier_format_is_refused_with_what_to_do(tmp_path):
    path, _ = _file(tmp_path, lambda lines: ["# osr per-class thresholds v1"] + lines[1:])
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:1: a thresholds file of an earlier version .* "
                                        r"re-run compute_class_reconstruction_errors.py"):
        read_thresholds(path, SHA, [3, 5, 7])

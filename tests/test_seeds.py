"""benchmarks/seeds.py: each headline row's figure per seed, with its mean, spread and range."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import seeds  # noqa: E402


def _metrics(letters_named: float, characters=True) -> dict:
    sets = {"letters_no_digit_like": {"named_a_digit": letters_named, "auroc": 0.99},
            "letters": {"auroc": 0.93, "macro_f1": 0.8}, "fashion_mnist": {"named_a_digit": 0.007}}
    if characters:
        sets["characters"] = {"named_a_digit": 0.2, "auroc": 0.991}
    return {"closed_set_accuracy": 0.9967, "sets": sets, "covariate_shift": {"scans": {"named_right": 0.9865}},
            "train_seconds": 200.0}


def test_each_row_gets_every_seeds_figure_its_mean_spread_and_range_and_a_row_one_seed_lacks_is_left_out():
    rows = {r["row"]: r for r in seeds.spread({0: _metrics(0.22), 1: _metrics(0.18), 2: _metrics(0.24)})}
    named = rows["letters without digit-like glyphs named a digit"]
    assert named["per_seed"] == {0: 0.22, 1: 0.18, 2: 0.24} and named["mean"] == pytest.approx(0.2133333)
    assert named["sd"] == pytest.approx(0.0305505) and (named["min"], named["max"]) == (0.18, 0.24)
    assert rows["closed-set accuracy"]["sd"] == 0.0
    assert "stroke-drawn characters named a digit" not in {r["row"] for r in seeds.spread({0: _metrics(0.2),
                                                                                          1: _metrics(0.2, False)})}


def test_every_seed_is_measured_in_its_own_folder_and_the_table_is_written(monkeypatch, tmp_path, capsys):
    folders = []
    monkeypatch.setattr(seeds, "measure", lambda seed, folder, args: folders.append(folder.name) or
                        _metrics(0.2 + seed / 100))
    assert seeds.main(["--seeds", "3,5", "--out-dir", str(tmp_path)]) == 0
    assert folders == ["seed3", "seed5"]
    written = json.loads((tmp_path / "seeds.json").read_text())
    assert written["seeds"] == [3, 5] and written["preset"] == "default" and len(written["rows"]) == len(seeds.ROWS)
    assert "| letters without digit-like glyphs named a digit | 0.2300 | 0.2500 |" in capsys.readouterr().out
    for wrong in ("1", "1,1", "a,b", "-1,2"):
        with pytest.raises(SystemExit):
            seeds.build_parser().parse_args(["--seeds", wrong])

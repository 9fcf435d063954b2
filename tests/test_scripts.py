"""Each stage script's main([...]) on tiny data, and what bad input gets: one line, exit code 2."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

import compute_class_reconstruction_errors
import evaluate_osr
import test as test_stage
import test_letters
import train
from conftest import stage_args
from osr_core import data
from osr_core.io import load_checkpoint, save_checkpoint

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_checkpoint_records_config_split_and_accuracy(trained_run):
    ckpt = load_checkpoint(trained_run["checkpoint"])
    assert ckpt["known_classes"] == list(range(10))
    assert torch.equal(ckpt["val_indices"], data.validation_indices())
    assert ckpt["model_config"]["num_classes"] == 10
    assert 0.9 < ckpt["metrics"]["val_accuracy"] <= 1.0


def test_thresholds_are_the_99_percent_quantiles_of_an_independent_scoring_of_the_validation_split(trained_run,
                                                                                                  data_dir):
    rows = [l.split() for l in trained_run["thresholds"].read_text().splitlines() if not l.startswith("#")]
    assert [int(r[0]) for r in rows] == list(range(10))
    cal = json.loads((trained_run["root"] / "calibration.json").read_text())
    assert [c["threshold"] for c in cal["classes"]] == [float(r[7]) for r in rows]
    # Scored again here, from the raw training file at the checkpoint's own validation indices, by the decision
    # recomputed without the project's scoring code, and the quantile taken by numpy.
    raw = ROOT / "data" / "MNIST" / "raw"
    train_images = np.frombuffer((raw / "train-images-idx3-ubyte").read_bytes(), np.uint8, offset=16).reshape(-1, 28, 28)
    val = load_checkpoint(trained_run["checkpoint"])["val_indices"].numpy()
    pred, value, _ = _recomputed_decision(trained_run["checkpoint"], trained_run["thresholds"],
                                          train_images[val] / np.float32(255))
    for c, row in zip(range(10), cal["classes"]):
        own = value[pred == c]
        assert row["n"] == len(own) and row["threshold"] == pytest.approx(float(np.quantile(own, 0.99)), rel=1e-4, abs=1e-4)
    accepted = np.mean([s <= cal["classes"][p]["threshold"] for s, p in zip(value, pred)])
    assert accepted == pytest.approx(cal["validation_acceptance"], abs=4e-4) and 0.985 <= accepted <= 0.995


def test_test_stage_writes_scores_and_replaces_its_dump(trained_run, test_stage_run, data_dir, tmp_path, capsys):
    out = tmp_path / "test"
    shutil.copytree(test_stage_run, out)  # the session's run of test.py with its default flags: the first dump
    (out / "notes.txt").write_text("mine")
    panels = ["--max-panels", "300"]  # all that the tiny model flags at 99%, fewer than it flags at 95%
    header = (out / "scores.csv").read_text().splitlines()[0].split(",")
    assert header[:8] == ["index", "label", "answer", "pred", "score", "threshold", "margin", "is_unknown"]
    answers = [r["answer"] for r in _csv_rows(out / "scores.csv")]
    rows = np.genfromtxt(out / "scores.csv", delimiter=",", skip_header=1)
    assert len(rows) == 10000
    scale = np.abs(rows[:, 4:6]).max()
    assert np.allclose(rows[:, 6], rows[:, 4] - rows[:, 5], rtol=0, atol=1e-6 * scale)
    assert ((rows[:, 6] > 0) == (rows[:, 7] == 1)).all()
    assert answers == ["unknown" if u else str(int(p)) for p, u in zip(rows[:, 3], rows[:, 7])]
    first = sorted(p.name for p in (out / "flagged").iterdir())
    assert len(first) == int(rows[:, 7].sum()) > 0
    assert (out / "most_anomalous.png").stat().st_size > 0

    # A stricter calibration flags more; going back must leave exactly the first dump, nothing stale. The stricter
    # one: each class's threshold lowered to its 95th percentile of the validation scores (the file's p95 column).
    strict = tmp_path / "strict.txt"
    lines = trained_run["thresholds"].read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("# class "))
    columns = lines[header][2:].split()
    rows = [line.split() for line in lines[header + 1:]]
    strict.write_text("\n".join(lines[:header + 1] + [" ".join(r[:-1] + [r[columns.index("p95")]]) for r in rows]) + "\n")
    assert test_stage.main([*stage_args(trained_run, out_dir=out, data_dir=data_dir), "--thresholds", str(strict),
                            *panels]) == 0
    assert len(list((out / "flagged").iterdir())) > len(first)
    assert test_stage.main([*stage_args(trained_run, out_dir=out, data_dir=data_dir), *panels]) == 0
    printed = capsys.readouterr().out
    assert "closed-set accuracy" in printed and "false-alarm" in printed
    assert sorted(p.name for p in (out / "flagged").iterdir()) == first
    assert (out / "notes.txt").read_text() == "mine"


def test_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys, data_dir):
    missing = tmp_path / "nope.pt"
    assert test_stage.main(["--checkpoint", str(missing), "--data-dir", data_dir, "--quiet"]) == 2
    assert str(missing) in one_error_line(capsys)


def test_missing_thresholds_is_one_line_and_exit_2(trained_run, tmp_path, capsys):
    args = stage_args(trained_run, out_dir=tmp_path / "out")
    args[args.index("--thresholds") + 1] = str(tmp_path / "none.txt")
    assert test_letters.main(args) == 2
    assert "none.txt" in one_error_line(capsys)


def test_thresholds_of_another_checkpoint_are_refused_and_outputs_kept(trained_run, data_dir, tmp_path, capsys):
    out = tmp_path / "test"
    assert test_stage.main(stage_args(trained_run, out_dir=out, data_dir=data_dir)) == 0
    before = (out / "scores.csv").read_bytes()
    other = load_checkpoint(trained_run["checkpoint"])
    other["metrics"] = {**other["metrics"], "note": "another run"}
    other_path = tmp_path / "other.pt"
    save_checkpoint(other_path, other)
    args = stage_args(trained_run, out_dir=out, data_dir=data_dir)
    args[args.index("--checkpoint") + 1] = str(other_path)
    assert test_stage.main(args) == 2
    assert "another checkpoint" in one_error_line(capsys)
    assert (out / "scores.csv").read_bytes() == before


def test_letters_stage_scores_a_folder_and_lists_unreadable_files(trained_run, letters_dir, tmp_path, capsys):
    folder = tmp_path / "mixed"
    shutil.copytree(letters_dir, folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "readme.txt").write_text("not an image")
    out = tmp_path / "letters_test"
    assert test_letters.main(stage_args(trained_run, letters_dir=folder, out_dir=out)) == 0
    printed = capsys.readouterr().out
    assert "unknown: " in printed and "per letter" in printed
    rows = (out / "scores.csv").read_text().splitlines()
    assert rows[0].startswith("file,answer,pred,score,threshold,margin,is_unknown") and len(rows) == 1 + 104
    skipped = (out / "skipped.txt").read_text()
    assert "broken.png" in skipped and "readme.txt" in skipped


@pytest.mark.parametrize("content", [None, "text"])
def test_letters_stage_refuses_a_folder_without_images(trained_run, tmp_path, capsys, content):
    folder = tmp_path / "empty"
    folder.mkdir()
    if content:
        (folder / "a.txt").write_text(content)
    assert test_letters.main(stage_args(trained_run, letters_dir=folder, out_dir=tmp_path / "o")) == 2
    assert str(folder) in one_error_line(capsys)


def test_no_reachable_mnist_source_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    def unreachable(raw_dir):
        raise OSError("network unreachable")
    monkeypatch.setattr(data, "mnist_sources", lambda: [data.Source("nowhere", unreachable)])
    assert train.main(["--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "m.pt"), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert "MNIST" in line and "nowhere" in line
    assert not (tmp_path / "m.pt").exists()


SET_KEYS = {"available", "description", "seen_in_training", "n", "named_a_digit", "rejected_by", "auroc", "auroc_ci95",
            "aupr_in", "aupr_out", "fpr95",
            "detection_rate", "false_alarm_rate", "macro_f1", "oscr", "mnist_accuracy", "ood_accuracy",
            "total_accuracy", "ablation"}


def test_evaluate_reports_every_set_and_skips_bad_extras(evaluated_run):
    out = evaluated_run["out"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["closed_set_accuracy"] > 0.9
    for name in ("noise", "mnist_noise", "natural_crops", "letters", "letters_no_digit_like", "characters",
                 "characters_digit_like", "again"):
        s = m["sets"][name]
        assert s["available"] and not s["seen_in_training"], name
        assert set(s) == SET_KEYS, (name, set(s) ^ SET_KEYS)
        assert s["auroc_ci95"][0] <= s["auroc"] <= s["auroc_ci95"][1], name
        assert s["ablation"]["decision_margin"] == pytest.approx(s["auroc"]), name
    for name in ("validation_proxy_pose", "validation_proxy_pixel_shuffle", "validation_proxy_blur",
                 "validation_proxy_negative", "validation_proxy_ink_noise", "validation_proxy_smooth_blobs",
                 "training_negatives"):
        assert m["sets"][name]["available"] and m["sets"][name]["seen_in_training"], name
    assert m["calibration"]["selection"]["chosen"] == m["calibration"]["score"]
    seed_style = m["baselines"]["seed-style feature AE, 2 x class mean"]
    assert (seed_style["score"], seed_style["rule"], seed_style["rule_param"]) == ("feature_recon", "mean-factor", 2.0)
    assert set(seed_style["sets"]) == {n for n, s in m["sets"].items() if s["available"]}
    assert not m["sets"]["gone"]["available"] and str(evaluated_run["missing"]) in m["sets"]["gone"]["reason"]
    assert m["sets"]["again"]["auroc"] == pytest.approx(m["sets"]["letters"]["auroc"])
    assert set(m["covariate_shift"]) == {"gaussian_noise", "rotation", "rotation_and_noise", "scans",
                                         "scans_in_mnist_form"}
    scans, same = m["covariate_shift"]["scans"], m["covariate_shift"]["scans_in_mnist_form"]
    assert scans["n"] == same["n"] == 500  # --n-generated 500: at most that many digits re-rendered as scans
    assert scans["accuracy"] > same["accuracy"] - 0.03  # read through the preprocessing, as well as MNIST's own
    # The acceptance floor reads validation digits through the same scan generator: the row says it was seen.
    assert [n for n, v in m["covariate_shift"].items() if v["seen_by_selection"]] == ["scans"]
    report = (out / "report.md").read_text()
    assert m["preset"] is None and "recipe of its own flags" in report  # the session's model: a tiny recipe
    assert "gone" in report and "Skipped" in report and "![ROC curves](roc.png)" in report
    assert "validation_proxy_pose (seen in training/tuning: not unseen)" in report
    assert "scans (known digits, shifted, seen by the selection)" in report
    assert "## Quality targets" in report and "## Baselines on the same model and data" in report
    assert "## How the decision was chosen" in report and "## At the thresholds: what a user sees" in report
    assert (out / "roc.png").is_file() and (out / "rejected_noise.png").is_file()


def _rank_normal(values: np.ndarray, name: str, knots: list[float]) -> np.ndarray:
    """The file's rank normalisation, written here again: knots at z = -3, -2.75, ..., 3, straight lines beyond them
    with the slope of the outer unit of z; logs for the positive parts."""
    log = name in ("pixel_recon", "feature_recon", "mahalanobis")
    x = np.log(np.maximum(values, 1e-12)) if log else values
    k = np.log(knots) if log else np.asarray(knots)
    z = np.linspace(-3, 3, 25)
    inside = np.interp(x, k, z)
    above = 3 + (x - k[-1]) / (k[-1] - k[20])
    below = -3 + (x - k[0]) / (k[4] - k[0])
    return np.where(x > k[-1], above, np.where(x < k[0], below, inside))


def _recomputed_decision(checkpoint, thresholds, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted digit, decision, threshold of the predicted class) of (N, 28, 28) images in [0, 1], computed here
    from the checkpoint's network and a reading of the thresholds file by hand: none of the project's scoring,
    fusion, gating, calibration or decision code."""
    from osr_core.io import load_checkpoint
    from osr_core.models import model_from_checkpoint
    ckpt = load_checkpoint(checkpoint)
    net = model_from_checkpoint(ckpt, torch.device("cpu"))
    lines = thresholds.read_text().splitlines()
    header = dict(l[1:].strip().split(": ", 1) for l in lines if l.startswith("# ") and ": " in l)
    knots = {l.split()[2]: [float(v) for v in l.split()[3:]] for l in lines if l.startswith("# normalise:")}
    table = {int(l.split()[0]): float(l.split()[7]) for l in lines if l and not l.startswith("#")}
    with torch.no_grad():
        out = net(torch.from_numpy(images).float().unsqueeze(1))
    logits = out.logits.double().numpy()
    feats = out.features.double().numpy()
    white = feats @ net.whitening.double().numpy()
    means = net.class_means.double().numpy() @ net.whitening.double().numpy()
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    parts = {"energy": -np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) - logits.max(1),
             "max_softmax": -softmax.max(1), "max_logit": -logits.max(1),
             "entropy": -(softmax * np.log(np.maximum(softmax, 1e-300))).sum(1),
             "mahalanobis": ((white[:, None] - means[None]) ** 2).sum(2).min(1),
             "pixel_recon": ((out.recon.double().numpy()[:, 0] - images) ** 2).mean((1, 2)),
             "feature_recon": ((out.feature_recon.double().numpy() - feats) ** 2).mean(1)}

    def raw(part: str) -> np.ndarray:
        if part.startswith("mean+("):
            names = part[len("mean+("):-1].split(",")
            return np.mean([np.maximum(_rank_normal(parts[n], n, knots[n]), 0) for n in names], axis=0)
        return parts[part]

    score = header["score"]
    if score.startswith("max("):
        pieces = re.findall(r"(mean\+\([a-z_,]+\)|[a-z_]+)(?:-([0-9.]+))?(?:,|\)$)", score[4:])
        value = np.max([_rank_normal(raw(p), p, knots[p]) - float(o or 0) for p, o in pieces], axis=0)
    else:
        value = raw(score)
    pred = np.asarray(ckpt["known_classes"])[logits.argmax(1)]
    return pred, value, np.array([table[p] for p in pred])


def _recomputed_margins(checkpoint, thresholds, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted digit, margin) as _recomputed_decision computes them."""
    pred, value, threshold = _recomputed_decision(checkpoint, thresholds, images)
    return pred, value - threshold


def test_evaluate_figures_match_an_independent_recomputation(evaluated_run, trained_run, data_dir, letters_dir):
    """The knowns' rows and the noise and letters sets, recomputed here from the checkpoint, the thresholds file,
    the raw MNIST test file, noise drawn here (seed 0, 500 images) and the letter PNGs read here."""
    from PIL import Image
    from sklearn.metrics import roc_auc_score
    m = json.loads((evaluated_run["out"] / "metrics.json").read_text())
    score = m["calibration"]["score"]
    assert score.startswith(("mean+(", "max(")) or score in ("energy", "mahalanobis", "pixel_recon", "feature_recon",
                                                             "max_softmax", "max_logit", "entropy"), score
    raw = (ROOT / "data" / "MNIST" / "raw")
    images = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes(), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer((raw / "t10k-labels-idx1-ubyte").read_bytes(), np.uint8, offset=8)
    pred, known = _recomputed_margins(trained_run["checkpoint"], trained_run["thresholds"], images / np.float32(255))
    assert m["closed_set_accuracy"] == pytest.approx(float((pred == labels).mean()), abs=2e-4)
    assert m["false_alarm_rate"] == pytest.approx(float((known > 0).mean()), abs=3e-4)
    noise = np.stack([np.random.default_rng([0, i]).random((28, 28), dtype=np.float32) for i in range(500)])
    letters = np.stack([np.asarray(Image.open(p), np.float32) / 255 for p in sorted(letters_dir.glob("*.png"))])
    for name, unknown_images in (("noise", noise), ("letters", letters)):
        _, unknown = _recomputed_margins(trained_run["checkpoint"], trained_run["thresholds"], unknown_images)
        s = m["sets"][name]
        truth = np.r_[np.zeros(len(known)), np.ones(len(unknown))]
        assert s["n"] == len(unknown)
        assert s["auroc"] == pytest.approx(roc_auc_score(truth, np.r_[known, unknown]), abs=1e-3), name
        assert s["detection_rate"] == pytest.approx(float((unknown > 0).mean()), abs=0.01), name


def test_evaluate_without_thresholds_is_one_line_and_exit_2(trained_run, letters_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "osr"
    args = stage_args(trained_run, out_dir=out, data_dir=data_dir, letters_dir=letters_dir, n_generated=100,
                      bootstrap=5, splits_dir=tmp_path / "s")
    args[args.index("--thresholds") + 1] = str(tmp_path / "absent.txt")
    assert evaluate_osr.main([*args, "--no-embeddings", "--no-pictures"]) == 2
    assert "absent.txt" in one_error_line(capsys) and not (out / "metrics.json").exists()


def test_dhrnet_trains_calibrates_on_openmax_and_is_compared_and_no_pictures_means_none(evaluated_run, data_dir,
                                                                                         letters_dir, tmp_path, capsys):
    ckpt, thr = tmp_path / "dhr.pt", tmp_path / "thr.txt"
    common = ["--data-dir", data_dir, "--device", "cpu", "--quiet"]
    assert train.main(["--arch", "dhrnet", "--epochs", "1", "--train-limit", "1500", "--width", "8", "--out",
                       str(ckpt), *common]) == 0
    assert compute_class_reconstruction_errors.main(["--score", "openmax", "--checkpoint", str(ckpt), "--out", str(thr),
                                                     *common]) == 0
    assert "# score: openmax" in thr.read_text()
    out = tmp_path / "osr"
    assert evaluate_osr.main(["--checkpoint", str(ckpt), "--thresholds", str(thr), "--out-dir", str(out),
                              "--letters-dir", str(letters_dir), "--n-generated", "100", "--bootstrap", "5",
                              "--no-embeddings", "--no-pictures", "--splits-dir", str(tmp_path / "s"), *common,
                              "--compare", f"default cnn={evaluated_run['out'] / 'metrics.json'}"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["arch"] == "dhrnet" and m["calibration"]["score"] == "openmax"
    assert "openmax" in m["sets"]["noise"]["ablation"]
    assert m["comparisons"]["default cnn"]["available"] and m["comparisons"]["default cnn"]["arch"] == "cnn"
    assert "## Other architectures on the same data" in (out / "report.md").read_text()
    assert not list(out.glob("*.png")) and not (out / "index.html").exists()    # --no-pictures
    assert "## Pictures" not in (out / "report.md").read_text()


def test_openmax_score_on_a_cnn_checkpoint_is_refused(trained_run, data_dir, tmp_path, capsys):
    assert compute_class_reconstruction_errors.main(["--score", "openmax", "--checkpoint", str(trained_run["checkpoint"]),
                                                     "--out", str(tmp_path / "t.txt"), "--data-dir", data_dir,
                                                     "--device", "cpu", "--quiet"]) == 2
    assert "--arch dhrnet" in one_error_line(capsys)
    assert not (tmp_path / "t.txt").exists()


# ----------------------------------------------------------------------------------- direct answers (issue 11)
ANSWER_LINE = re.compile(r"^(?P<name>\S+)  (digit (?P<digit>\d) \(score (?P<s1>\S+) <= threshold (?P<t1>\S+)\)"
                         r"|unknown \((?P<reason>[a-z ]+): nearest (?P<nearest>\d), score (?P<s2>\S+) > (?P<t2>\S+)\))$")


def _csv_rows(path):
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_one_line_per_image_agrees_with_the_csv(trained_run, letters_dir, tmp_path, capsys):
    out = tmp_path / "answers"
    assert test_letters.main([*stage_args(trained_run, letters_dir=letters_dir, out_dir=out), "--show", "30"]) == 0
    printed = capsys.readouterr().out.splitlines()
    lines = [ANSWER_LINE.match(l) for l in printed[:30]]
    assert all(lines), printed[:30]
    assert printed[30] == f"... 74 more in {out}/scores.csv (--show N for more)"
    rows = {r["file"]: r for r in _csv_rows(out / "scores.csv")}
    assert len(rows) == 104
    for m in lines:
        row = rows[m["name"]]
        if m["digit"] is not None:
            assert row["answer"] == m["digit"] == row["pred"] and row["is_unknown"] == "0"
            assert float(row["score"]) <= float(row["threshold"])
        else:
            assert row["answer"] == "unknown" and row["pred"] == m["nearest"] and row["is_unknown"] == "1"
            assert row["reason"] == m["reason"] != "blank"
            assert float(row["score"]) > float(row["threshold"])


def test_json_gives_one_object_per_image_and_nothing_else(trained_run, letters_dir, tmp_path, capsys):
    assert test_letters.main([*stage_args(trained_run, letters_dir=letters_dir, out_dir=tmp_path / "o"), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 104
    rows = {r["file"]: r for r in _csv_rows(tmp_path / "o" / "scores.csv")}
    for rec in records:
        assert set(rec) == {"file", "answer", "reason", "nearest", "score", "threshold", "margin", "components"}
        assert rec["reason"] == rows[rec["file"]]["reason"]
        assert (rec["reason"] in ("between digits", "far from every class", "unlike any digit", "unusual features")) \
            == (rec["answer"] == "unknown")
        assert rec["answer"] == rows[rec["file"]]["answer"]
        assert (rec["answer"] == "unknown") == (rec["score"] > rec["threshold"])
        assert rec["margin"] == pytest.approx(rec["score"] - rec["threshold"])


def test_a_single_file_several_files_and_a_glob_are_answered(trained_run, letters_dir, tmp_path, capsys):
    first = sorted(p for p in letters_dir.iterdir() if p.suffix == ".png")[:3]
    for given, n in (([str(first[0])], 1), ([str(p) for p in first], 3), ([str(letters_dir / "letter_0000*_*.png")], 10)):
        assert test_letters.main([*given, *stage_args(trained_run, out_dir=tmp_path / "o")]) == 0
        printed = capsys.readouterr().out.splitlines()
        assert sum(bool(ANSWER_LINE.match(l)) for l in printed) == n, printed


def test_ctrl_c_is_one_line_exit_130_and_leaves_earlier_outputs_alone(trained_run, letters_dir, tmp_path, capsys,
                                                                    monkeypatch):
    out = tmp_path / "o"
    assert test_letters.main(stage_args(trained_run, letters_dir=letters_dir, out_dir=out)) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(test_letters, "dump_flagged", interrupted)  # midway through writing the outputs
    assert test_letters.main(stage_args(trained_run, letters_dir=letters_dir, out_dir=out)) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("interrupted")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("script, flag, words", [
    (test_letters, ["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (test_letters, ["--max-panels", "-1"], "argument --max-panels: must be >= 0, got -1"),
    (train, ["--epochs", "many"], "argument --epochs: expected a whole number, got 'many'"),
    (train, ["--known-classes", "12"], "12 is not a digit 0-9; separate digits with commas"),
    (compute_class_reconstruction_errors, ["--target-acceptance", "1"], "argument --target-acceptance: must be in"),
    (compute_class_reconstruction_errors, ["--score", "combined"], "unknown score 'combined'"),
])
def test_numeric_and_named_flags_are_checked_by_argparse(capsys, script, flag, words):
    with pytest.raises(SystemExit) as info:
        script.main(flag)
    assert info.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--extra", "--compare"])
def test_a_missing_extra_or_compare_path_is_exit_2_before_any_work(evaluated_run, trained_run, letters_dir, data_dir,
                                                                   tmp_path, capsys, monkeypatch, option):
    out = evaluated_run["out"]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(evaluate_osr, "load_trained", lambda *a: pytest.fail("work started"))
    value = f"k={tmp_path / 'no_such_path'}"
    assert evaluate_osr.main([*stage_args(trained_run, out_dir=out, data_dir=data_dir, letters_dir=letters_dir),
                              option, value]) == 2
    assert f"{option} {value}: no such" in one_error_line(capsys)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def _schema_keys(readme: str, heading: str) -> tuple[set[str], set[str]]:
    """(keys, optional keys) of one bullet list of the metrics.json schema (docs/metrics.md): the backticked name before
    a bullet's colon, or every backticked name of a bullet without one; "present when" bullets are optional."""
    section = readme.split("# `metrics.json` schema", 1)[1].split("\n## ", 1)[0]
    block = section.split(heading, 1)[1].split("\n\n", 1)[0]
    keys, optional = set(), set()
    for bullet in re.split(r"\n- ", block)[1:]:
        head = bullet.split(":", 1)[0] if re.match(r"`[a-z_0-9]+`:", bullet) else bullet.split(", and ")[0]
        names = set(re.findall(r"`([a-z_0-9]+)`", head))
        keys |= names
        if "present when" in bullet:
            optional |= names
    return keys, optional


def test_the_documented_schema_lists_every_key(evaluated_run):
    readme = (ROOT / "docs" / "metrics.md").read_text()
    m = json.loads((evaluated_run["out"] / "metrics.json").read_text())
    top, optional = _schema_keys(readme, "Top level:")
    assert set(m) <= top and top - optional <= set(m), (set(m) ^ top)
    set_keys, _ = _schema_keys(readme, "Each entry of `sets` has:")
    assert set_keys | {"reason"} >= SET_KEYS and SET_KEYS >= set_keys - {"reason"}, set_keys ^ SET_KEYS

"""Nothing is named a digit where none was written, the answer says why, and reading scans fast and on every core
gives exactly the images the per-image path gave (benchmarks/reading_before.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import test_letters
from benchmarks import reading_before
from osr_core import data, forms, generated, images
from osr_core.images import as_batch, load_images
from osr_core.kernels import high_percentile, median3, median3_pil
from osr_core.mnist_style import read_form, to_mnist_form
from osr_core.writing import has_writing

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench  # noqa: E402  (the reading paths `make bench` measures)


def _paper(height, width, level=0.92, grain=0.02, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(level + rng.normal(0, grain, (height, width)), 0, 1).astype(np.float32)


def _no_writing() -> dict[str, np.ndarray]:
    """Fields with nothing written, each of a kind a form holds; dark print on light paper."""
    made = {"black 28x28": np.zeros((28, 28), np.float32), "white 100x100": np.ones((100, 100), np.float32),
            "grey 37x61": np.full((37, 61), 0.43, np.float32), "grainy paper 150x90": _paper(150, 90, grain=0.04),
            "grainy small paper 30x30": _paper(30, 30, grain=0.04)}
    speck = _paper(100, 100)
    speck[40:42, 60:62] = 0.1                                      # a 2x2 speck of dust
    made["speck"] = speck
    ruled = _paper(80, 200)
    ruled[60:62, :] = 0.2                                          # a baseline across the field
    made["ruled line"] = ruled
    box = _paper(90, 90)
    box[5:7, 5:85] = box[83:85, 5:85] = box[5:85, 5:7] = box[5:85, 83:85] = 0.15
    made["box"] = box
    comb = _paper(60, 180)
    comb[50:52, :] = 0.2
    for x in (0, 60, 120, 178):
        comb[38:50, x:x + 2] = 0.2                                # the ticks of a comb field
    made["comb"] = comb
    return made


@pytest.mark.parametrize("name", list(_no_writing()))
def test_an_image_with_nothing_written_becomes_empty(name):
    form = read_form(_no_writing()[name])
    assert not form.written and not form.image.any()


def test_a_digit_on_a_form_is_still_read(data_dir):
    """A digit on the same paper, with the same print around it, is writing: the preprocessing keeps it."""
    digit = data.load_mnist(data_dir, train=False)[0][0].numpy()        # a 7
    drawn = np.asarray(Image.fromarray(digit).resize((70, 70), Image.Resampling.LANCZOS), np.float32) / 255
    for name in ("ruled line", "box", "comb"):
        field = _no_writing()[name].copy()
        h, w = field.shape
        top, left = (h - 70) // 2 if h > 70 else 0, (w - 70) // 2
        patch = field[top:top + 70, left:left + 70]
        field[top:top + 70, left:left + 70] = np.minimum(patch, 1 - drawn[:patch.shape[0], :patch.shape[1]] * 0.8)
        assert to_mnist_form(field).any(), name
    # A single upright stroke is a 1, never taken for a printed line.
    one = _paper(60, 40)
    one[8:52, 18:22] = 0.1
    assert to_mnist_form(one).any()


def test_has_writing_tells_marks_from_dust_and_print():
    ink = np.zeros((100, 100), np.float32)
    assert not has_writing(ink)
    ink[50, 50] = 1.0                                                 # dust
    assert not has_writing(ink)
    ink[:, 10:12] = ink[:, 88:90] = 1.0                               # the two sides of a box
    assert not has_writing(ink)
    ink[30:70, 45:48] = 1.0                                           # a stroke inside it
    assert has_writing(ink)


def test_blank_inputs_are_answered_unknown_with_the_reason_everywhere(trained_run, tmp_path, capsys):
    from osr_core import OpenSetRecognizer
    recognizer = OpenSetRecognizer.load(trained_run["checkpoint"], trained_run["thresholds"], device="cpu")
    fields = _no_writing()
    result = recognizer.predict(list(fields.values()))
    assert result.answers == ["unknown"] * len(fields) and result.reasons == ["blank"] * len(fields)
    assert result.is_unknown.all() and (result.digits == -1).all() and np.isinf(result.margins).all()
    # The same images as files through the letters stage: the CSV, the terminal and the JSON lines say so.
    folder = tmp_path / "fields"
    folder.mkdir()
    for i, field in enumerate(fields.values()):
        Image.fromarray(np.rint(field * 255).astype(np.uint8)).save(folder / f"field{i}.png")
    args = ["--checkpoint", str(trained_run["checkpoint"]), "--thresholds", str(trained_run["thresholds"]),
            "--device", "cpu", "--quiet", "--out-dir", str(tmp_path / "out"), str(folder)]
    assert test_letters.main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("unknown (blank: nothing written)") == len(fields)
    assert f"unknown: {len(fields)} of {len(fields)} images (100.00%, {len(fields)} of them blank)" in printed
    rows = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    header = rows[0].split(",")
    for row in rows[1:]:
        cells = dict(zip(header, row.split(",")))
        assert (cells["answer"], cells["reason"], cells["is_unknown"], cells["margin"]) == ("unknown", "blank", "1", "inf")
    assert test_letters.main([*args, "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["answer"], r["reason"], r["margin"]) for r in records] == [("unknown", "blank", None)] * len(fields)


def test_blank_is_the_readings_word_not_the_pixels(trained_run, monkeypatch):
    """The reading decides blank once and the flag travels to the answer: an image it calls blank is answered
    blank whatever its pixels, and a black image that was never read (MNIST's own, generated sets) is scored like
    any other. A later step that re-derived blank from the pixels fails both."""
    from osr_core import OpenSetRecognizer, mnist_style, pipeline
    recognizer = OpenSetRecognizer.load(trained_run["checkpoint"], trained_run["thresholds"], device="cpu")
    digit = _paper(60, 40)
    digit[8:52, 18:22] = 0.1                                        # a 1, read as writing
    black = np.zeros((1, 1, 28, 28), np.float32)
    assert recognizer.predict([digit]).reasons != ["blank"]
    read_form = mnist_style.read_form
    monkeypatch.setattr(images, "read_form", lambda gray, invert: mnist_style.Form(read_form(gray, invert).image, False))
    said_blank = recognizer.predict([digit])                        # the reading's word, though the image has ink
    assert said_blank.reasons == ["blank"] and said_blank.answers == ["unknown"] and np.isinf(said_blank.margins).all()
    monkeypatch.undo()
    never_read = pipeline.decide(recognizer.trained, recognizer.calibration, torch.from_numpy(black), 8)
    assert not never_read.blank.any() and np.isfinite(never_read.margin).all() and never_read.reasons != ["blank"]
    assert recognizer.predict(black).reasons == ["blank"]          # the same black image, read, is blank
    with pytest.raises(ValueError, match="blank flags"):
        pipeline.decide_scored(never_read.scored, recognizer.calibration, np.zeros(2, bool))


def test_digits_keep_their_answers_and_no_reason(trained_run, data_dir):
    from osr_core import OpenSetRecognizer
    recognizer = OpenSetRecognizer.load(trained_run["checkpoint"], trained_run["thresholds"], device="cpu")
    digits = data.load_mnist(data_dir, train=False)[0][:50].numpy()
    result = recognizer.predict(digits)
    assert "blank" not in result.reasons
    assert all((r == "") == (a != "unknown") for r, a in zip(result.reasons, result.answers))
    gates = {"between digits", "far from every class", "unlike any digit", "unusual features"}
    assert all(r in gates for r, a in zip(result.reasons, result.answers) if a == "unknown")


def test_the_no_digit_set_is_a_function_of_seed_and_index():
    alone = [forms.no_digit_image(3, i) for i in (0, 7, 19)]
    images_, kinds = forms.no_digit_images(20, 3)
    for i, (image, kind) in zip((0, 7, 19), alone):
        assert np.array_equal(images_[i], image) and kinds[i] == kind
    later, _ = forms.no_digit_images(5, 3, indices=range(15, 20))
    assert all(np.array_equal(a, b) for a, b in zip(later, images_[15:]))
    assert set(kinds) <= set(forms.KINDS) and not np.array_equal(images_[0], forms.no_digit_image(4, 0)[0])


def test_the_fast_median_is_pillows_bit_for_bit():
    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = rng.integers(1, 50, 2)
        ink = rng.random((h, w)).astype(np.float32)
        if trial % 2:
            ink = np.round(ink * 3) / 3                                 # many ties
        assert np.array_equal(median3(ink), median3_pil(ink)), (h, w)


@pytest.fixture(scope="module")
def scan_files(tmp_path_factory, data_dir):
    digits = data.load_mnist(data_dir, train=False)[0][:96].numpy()
    folder = tmp_path_factory.mktemp("scans")
    scans = generated.scanned_digits(digits, seed=4)
    for i, scan in enumerate(scans):
        Image.fromarray(np.rint(scan * 255).astype(np.uint8)).save(folder / f"scan{i:03d}.jpg", quality=90)
    blanks, _ = forms.no_digit_images(32, seed=4)
    return folder, scans + blanks


def test_reading_on_every_core_gives_the_images_of_the_per_image_path_as_it_was(scan_files):
    folder, arrays = scan_files
    files = sorted(str(p) for p in folder.iterdir())
    fast_files, fast_arrays, fast_folder = as_batch(files), as_batch(arrays), load_images([folder]).images
    # The per-image path as it was (one image at a time, in this process, with the preprocessing before it was
    # fast), as `make bench` measures it.
    with bench.one_at_a_time(as_before=True):
        assert images.read_form is not read_form and images.PARALLEL_FROM > len(files)
        assert torch.equal(fast_files, as_batch(files))
        assert torch.equal(fast_folder, load_images([folder]).images)
        one_at_a_time = torch.cat([as_batch(a) for a in arrays])
    assert torch.equal(fast_arrays, one_at_a_time) and images.read_form is read_form
    blank = images.read_batch(arrays).blank                          # the blanks are blank, the scans are not
    assert blank.sum() >= 30 and np.array_equal(blank, fast_arrays.flatten(1).amax(1).eq(0).numpy())
    for gray in arrays[:40]:
        for invert in ("yes", "no"):                                 # the wrong polarity too: other paths inside
            assert np.array_equal(to_mnist_form(gray, invert), reading_before.to_mnist_form(gray, invert))


def test_the_top_percentile_is_numpys_bit_for_bit():
    rng = np.random.default_rng(0)
    for trial in range(400):
        values = rng.random(rng.integers(20, 160, 2)).astype(np.float32)
        if trial % 3 == 0:
            values = np.round(values * 255) / 255                     # 8-bit levels: many ties
        elif trial % 3 == 1:
            values = values ** rng.uniform(1, 20)                     # a few bright pixels on a dark page
        if trial % 7 == 0:
            values[:] = 0.3
        assert high_percentile(values, 99.9) == float(np.percentile(values, 99.9)), values.shape


def test_stacks_of_mnist_shaped_arrays_are_recognised_whole(data_dir):
    digits = data.load_mnist(data_dir, train=False)[0][:300].numpy().astype(np.float32) / 255
    digits[:60] = 1 - digits[:60]                                      # dark on light: inverted, then in form
    digits[60:80] = np.roll(digits[60:80], 7, axis=2)                  # ink off centre: not in form
    expected = np.stack([to_mnist_form(d) for d in digits])
    assert np.array_equal(as_batch(digits).squeeze(1).numpy(), expected)
    for invert in ("yes", "no"):
        assert np.array_equal(as_batch(digits, invert).squeeze(1).numpy(),
                              np.stack([to_mnist_form(d, invert) for d in digits]))


SLOW_READ = """
import signal, sys, time
from pathlib import Path
from osr_core import images
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even when started from a background job
started, release = Path(sys.argv[1]), Path(sys.argv[2])
def slow(i):
    if i == 0:  # one worker stays busy here until the test has sent Ctrl-C, however loaded the machine; the other
        started.touch()  # does the rest and then waits for work
        deadline = time.monotonic() + 20
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return i
images.parallel_map(slow, list(range(400)))
"""


@pytest.mark.skipif(not images._can_fork(), reason="reading on every core forks, which only Linux does here")
def test_ctrl_c_while_reading_on_every_core_stops_the_workers_quietly(tmp_path):
    """Ctrl-C reaches every process of the terminal's group, busy and idle workers alike: the reader stops with the
    parent's one KeyboardInterrupt, and no worker is left running or prints a traceback of its own."""
    import os
    import signal
    import subprocess
    import sys
    import time
    started, release = tmp_path / "started", tmp_path / "release"
    run = subprocess.Popen([sys.executable, "-c", SLOW_READ, str(started), str(release)], cwd=ROOT,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)                                                 # one worker busy, one idle now
    os.killpg(run.pid, signal.SIGINT)
    release.touch()                                                 # the busy worker's chunk may end now
    _, err = run.communicate(timeout=30)
    assert run.returncode != 0 and err.count("KeyboardInterrupt") == 1, err[-2000:]
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):                         # no process of the group is left
        os.killpg(run.pid, 0)


def test_filtering_near_the_strokes_equals_filtering_the_whole_page_there():
    from osr_core.mnist_style import _median3_near_strokes
    from osr_core.writing import STROKE
    rng = np.random.default_rng(1)
    for trial in range(200):
        height, width = rng.integers(8, 90, 2)
        ink = (rng.random((height, width)) * 0.49).astype(np.float32)   # faint everywhere
        top, left = rng.integers(0, height), rng.integers(0, width)
        ink[top:top + rng.integers(1, 12), left:left + rng.integers(1, 12)] = 0.9  # a strong stroke anywhere
        reach = int(rng.integers(1, 6))
        rows = np.flatnonzero((ink >= STROKE).any(axis=1))
        cols = np.flatnonzero((ink >= STROKE).any(axis=0))
        near = (slice(max(rows[0] - reach, 0), rows[-1] + reach + 1), slice(max(cols[0] - reach, 0), cols[-1] + reach + 1))
        filtered = _median3_near_strokes(ink, reach)
        assert np.array_equal(filtered[near], median3(ink)[near]), trial
        outside = np.ones_like(ink, bool)
        outside[near] = False
        assert not filtered[outside].any(), trial


@pytest.mark.skipif(not images._can_fork(), reason="reading on every core forks, which only Linux does here")
def test_a_reading_worker_that_dies_fails_the_call_instead_of_hanging_it():
    import os
    from concurrent.futures.process import BrokenProcessPool

    def dies_on_40(i):
        if i == 40:
            os._exit(1)                                              # as the out-of-memory killer would end it
        return i

    with pytest.raises(BrokenProcessPool):
        images.parallel_map(dies_on_40, list(range(4 * images.PARALLEL_FROM)))
    assert images.parallel_map(abs, list(range(-70, 0))) == list(range(70, 0, -1))  # and the next call works


def test_noise_is_never_called_blank_and_blank_paper_still_is(trained_run, tmp_path):
    """Reasons must be true: an image that is texture all over (uniform noise, as a file of any size or as an array)
    has no paper to take off; it is shown to the model whole and answered by it, never as `blank`."""
    from PIL import Image
    from osr_core import OpenSetRecognizer
    rng = np.random.default_rng(0)
    files = []
    for side in (28, 64, 300):
        path = tmp_path / f"noise_{side}.png"
        Image.fromarray((rng.random((side, side)) * 255).astype(np.uint8)).save(path)
        files.append(path)
    paper = tmp_path / "paper.png"
    Image.fromarray(np.clip(230 + rng.normal(0, 6, (64, 64)), 0, 255).astype(np.uint8)).save(paper)
    recognizer = OpenSetRecognizer.load(trained_run["checkpoint"], trained_run["thresholds"], device="cpu")
    result = recognizer.predict([*files, rng.random((28, 28)).astype(np.float32), paper])
    assert result.reasons[:4] != ["blank"] * 4 and "blank" not in result.reasons[:4]
    assert all(image.amax() > 0 for image in result.images[:4])  # the model saw the texture, not an empty field
    assert result.reasons[4] == "blank" and result.answers[4] == "unknown"

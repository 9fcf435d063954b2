"""Images from the real world: MNIST's own preprocessing for any size, mode and polarity, the input forms the
Python front door accepts (and the ValueErrors it gives), and answers that match the scripts'."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from osr_core import data, generated
from osr_core.images import as_batch
from osr_core.mnist_style import BOX, is_mnist_shaped, to_mnist_form
from osr_core.scores import score_images

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(data_dir) -> np.ndarray:
    """The first 40 MNIST test digits, uint8 (40, 28, 28)."""
    return data.load_mnist(data_dir, train=False)[0][:40].numpy()


def _ink_box(image: np.ndarray) -> int:
    rows, cols = np.nonzero(image > 0)
    return max(np.ptp(rows), np.ptp(cols)) + 1


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    idx = np.arange(image.shape[0])
    total = image.sum()
    return (image.sum(1) * idx).sum() / total, (image.sum(0) * idx).sum() / total


def test_mnist_digits_pass_through_unchanged(digits):
    for d in digits.astype(np.float32) / 255:
        assert is_mnist_shaped(d)
        assert to_mnist_form(d) is d or np.array_equal(to_mnist_form(d), d)
    batch = as_batch(digits)
    assert torch.equal(batch, data.to_float(torch.from_numpy(digits)))


def test_a_scan_of_dark_ink_on_paper_becomes_the_mnist_digit(digits):
    scans = generated.scanned_digits(digits, seed=0)
    assert {s.shape for s in scans} != {(28, 28)} and all(np.median(s) > 0.5 for s in scans)  # light paper, other sizes
    forms = as_batch(scans).squeeze(1).numpy()
    originals = digits.astype(np.float32) / 255
    for form, original in zip(forms, originals):
        assert _ink_box(form) in (BOX - 1, BOX) and form.max() == pytest.approx(1.0)
        # Centred by mass, within the clamp that keeps a top- or side-heavy digit's ink inside the frame.
        assert np.allclose(_centre_of_mass(form), 14, atol=1.5)
        assert np.corrcoef(form.ravel(), original.ravel())[0, 1] > 0.5  # thin 1s shifted by a pixel score lowest
    same = np.mean([np.corrcoef(f.ravel(), o.ravel())[0, 1] for f, o in zip(forms, originals)])
    assert same > 0.92


def test_invert_auto_follows_the_paper_and_can_be_forced(digits):
    white_on_black = np.pad(digits[0], 10).astype(np.float32) / 255          # 48x48, not MNIST-shaped
    dark_on_light = 1.0 - white_on_black
    auto = to_mnist_form(white_on_black)
    assert np.array_equal(auto, to_mnist_form(white_on_black, "no"))
    np.testing.assert_allclose(to_mnist_form(dark_on_light, "auto"), auto, atol=1e-5)  # 1 - (1 - x) in float32
    np.testing.assert_allclose(to_mnist_form(dark_on_light, "yes"), auto, atol=1e-5)
    # Forced the wrong way, the strokes are darker than the paper: ink is what is brighter, so nothing is left.
    assert auto.any() and not to_mnist_form(dark_on_light, "no").any()
    with pytest.raises(ValueError, match="invert must be one of auto, yes, no"):
        to_mnist_form(dark_on_light, "maybe")


def test_a_tightly_cropped_digit_is_fitted_into_the_20px_box_not_stretched(digits):
    d = digits[1].astype(np.float32) / 255
    rows, cols = np.nonzero(d)
    crop = Image.fromarray(d[rows.min():rows.max() + 1, cols.min():cols.max() + 1])
    tight = np.asarray(crop.resize((28, 28), Image.Resampling.LANCZOS), np.float32).clip(0, 1)  # ink fills the frame
    assert not is_mnist_shaped(tight)
    form = to_mnist_form(tight)
    assert _ink_box(form) <= BOX and np.allclose(_centre_of_mass(form), 14, atol=1.0)
    aspect = lambda im: np.ptp(np.nonzero(im > 0.3)[0]) / max(np.ptp(np.nonzero(im > 0.3)[1]), 1)
    assert aspect(form) == pytest.approx(aspect(d), rel=0.35)  # the digit's own proportions, not 28x28's


def test_a_blank_image_gives_an_empty_digit_not_an_error():
    assert not to_mnist_form(np.full((50, 40), 0.9, np.float32)).any()


@pytest.mark.parametrize("form", ["path", "pil", "uint8 (H, W) list", "float (N, H, W)", "uint8 (N, 1, H, W) tensor",
                                  "float tensor (N, 1, H, W)"])
def test_every_input_form_gives_the_same_images(digits, tmp_path, form):
    u8 = digits[:3]
    expected = data.to_float(torch.from_numpy(u8))
    if form == "path":
        paths = []
        for i, d in enumerate(u8):
            Image.fromarray(d).save(tmp_path / f"{i}.png")
            paths.append(str(tmp_path / f"{i}.png"))
        given = paths
    elif form == "pil":
        given = [Image.fromarray(d) for d in u8]
    elif form == "uint8 (H, W) list":
        given = list(u8)
    elif form == "float (N, H, W)":
        given = u8.astype(np.float64) / 255
    elif form == "uint8 (N, 1, H, W) tensor":
        given = torch.from_numpy(u8).unsqueeze(1)
    else:
        given = expected.clone()
    assert torch.allclose(as_batch(given), expected, atol=1e-6)


@pytest.mark.parametrize("given, words", [
    (np.full((2, 28, 28), 3.0, np.float32), "float images must lie in [0, 1], got values from 3 to 3"),
    (np.zeros((28, 28), np.int32), "expected uint8, bool or float images, got dtype int32"),
    (np.zeros((2, 3, 28, 28), np.uint8), "expected an array of shape (H, W), (N, H, W) or (N, 1, H, W), got (2, 3, 28, 28)"),
    (np.zeros((28, 28, 3), np.uint8), "looks like one colour image (H, W, C)"),
    (np.zeros((0, 28, 28), np.uint8), "no images"),
    ([], "no images: got an empty list"),
    ({"not": "an image"}, "expected a path, a PIL image, a NumPy array or a torch tensor, got dict"),
    (np.zeros(5, np.uint8), "expected an array of shape"),
])
def test_wrong_input_is_a_value_error_that_names_it(given, words):
    with pytest.raises(ValueError) as info:
        as_batch(given)
    assert words in str(info.value)


def test_an_unreadable_path_is_a_value_error_with_the_reason(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*notes.png: not an image Pillow can read"):
        as_batch(str(tmp_path / "notes.png"))
    with pytest.raises(ValueError, match="cannot read image .*missing.png"):
        as_batch(tmp_path / "missing.png")


def test_score_images_refuses_what_is_not_a_float_batch():
    from osr_core.models import ModelConfig, OSRNet
    net = OSRNet(ModelConfig(num_classes=3, width=4, latent_dim=8, feature_code_dim=4))
    for wrong in (torch.zeros((2, 1, 28, 28), dtype=torch.uint8), torch.zeros((2, 28, 28)), np.zeros((2, 1, 28, 28))):
        with pytest.raises(ValueError, match=r"expects a float tensor \(N, 1, 28, 28\)"):
            score_images(net, wrong, [1, 2, 3], torch.device("cpu"))


def test_the_api_answers_as_the_pipeline_does(trained_run, data_dir, digits):
    from osr_core import OpenSetRecognizer
    from osr_core.pipeline import decide
    recognizer = OpenSetRecognizer.load(trained_run["checkpoint"], trained_run["thresholds"], device="cpu")
    result = recognizer.predict(digits)                                    # uint8 (N, H, W), as people hold them
    expected = decide(recognizer.trained, recognizer.calibration, data.to_float(torch.from_numpy(digits)), 256)
    assert result.answers == expected.answers and len(result) == len(digits)
    assert np.array_equal(result.is_unknown, expected.is_unknown)
    assert np.array_equal(result.digits, np.where(expected.is_unknown, -1, expected.scored.pred))
    assert set(result.answers) <= {str(c) for c in range(10)} | {"unknown"}
    labels = data.load_mnist(data_dir, train=False)[1][:len(digits)].numpy()
    assert (result.nearest == labels).mean() > 0.9
    scans = recognizer.predict(generated.scanned_digits(digits, seed=1))      # light paper, any size
    assert (scans.nearest == labels).mean() > 0.85


def test_the_readme_python_example_runs(trained_run, tmp_path, digits, monkeypatch):
    """The README's "Use it from Python" block, run as written, with this suite's model in artifacts/."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Use it from Python.*?```python\n(.*?)```", readme, re.S)
    assert block, "README has no Python example"
    (tmp_path / "artifacts").mkdir()
    for name in ("checkpoint", "thresholds"):
        target = tmp_path / "artifacts" / {"checkpoint": "model.pt", "thresholds": "reconstruction_errors.txt"}[name]
        target.write_bytes(trained_run[name].read_bytes())
    scans = tmp_path / "my_scans"
    scans.mkdir()
    for i, scan in enumerate(generated.scanned_digits(digits[:4], seed=2)):
        Image.fromarray(np.rint(scan * 255).astype(np.uint8)).save(scans / f"scan_{i}.png")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    assert len(namespace["result"]) == 4

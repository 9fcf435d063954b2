"""Synthetic letters: deterministic, MNIST-normalised, flagged when digit-like; stage 4 script."""
import shutil

import numpy as np
import pytest

import generate_letters
from osr_core.cli import UserError
from osr_core.images import load_image_folder
from osr_core.letters import (DEFAULT_FONT, DIGIT_LIKE, LETTERS, available_fonts, generate, png_bytes,
                              read_manifest, render_letter)


def _images(samples):
    return np.stack([s["image"] for s in samples])


@pytest.fixture(scope="module")
def two_per_glyph():
    return generate(2 * len(LETTERS), seed=0)


def test_same_seed_gives_identical_images_and_pngs(two_per_glyph):
    again = generate(len(two_per_glyph), seed=0)
    np.testing.assert_array_equal(_images(two_per_glyph), _images(again))
    assert [png_bytes(s["image"]) for s in two_per_glyph[:5]] == [png_bytes(s["image"]) for s in again[:5]]


def test_different_seed_gives_different_images(two_per_glyph):
    other = generate(len(two_per_glyph), seed=1)
    differing = sum(not np.array_equal(a["image"], b["image"]) for a, b in zip(two_per_glyph, other))
    assert differing > 0.9 * len(other)


def test_smaller_count_is_a_prefix(two_per_glyph):
    np.testing.assert_array_equal(_images(generate(10, seed=0)), _images(two_per_glyph[:10]))


def test_glyphs_cycle_through_both_cases(two_per_glyph):
    assert [s["char"] for s in two_per_glyph] == list(LETTERS) * 2
    assert {s["case"] for s in two_per_glyph if s["char"].isupper()} == {"upper"}
    assert {s["case"] for s in two_per_glyph if s["char"].islower()} == {"lower"}
    assert two_per_glyph[0]["file"] == "letter_00000_A.png"


def test_mnist_normalisation(two_per_glyph):
    rows = cols = np.arange(28)
    for sample in two_per_glyph:
        image = sample["image"].astype(np.float64)
        assert sample["image"].dtype == np.uint8 and image.shape == (28, 28)
        mass = image.sum()
        com = ((image.sum(1) * rows).sum() / mass, (image.sum(0) * cols).sum() / mass)
        assert np.allclose(com, 14, atol=1.0), (sample["file"], com)
        ink_rows, ink_cols = np.nonzero(image)
        longer = max(np.ptp(ink_rows), np.ptp(ink_cols)) + 1
        assert 19 <= longer <= 21, (sample["file"], longer)


def test_digit_like_flags(two_per_glyph):
    by_char = {s["char"]: s for s in two_per_glyph}
    assert by_char["O"]["digit_like"] is True and by_char["O"]["looks_like"] == "0"
    assert by_char["x"]["digit_like"] is False and by_char["x"]["looks_like"] == ""
    assert set(DIGIT_LIKE.values()) <= set("0123456789") and set(DIGIT_LIKE) <= set(LETTERS)


def test_render_letter_is_empty_for_a_missing_glyph():
    assert not render_letter("\u4e2d", DEFAULT_FONT, 40, 0, 0.0).any()  # a CJK character
    assert render_letter("A", DEFAULT_FONT, 40, 0, 0.0).any()


def test_font_dir_adds_fonts_and_rejects_junk(tmp_path):
    system = [f for f in available_fonts(None) if f != DEFAULT_FONT]
    assert available_fonts(None)[0] == DEFAULT_FONT
    if system:
        shutil.copy(system[0], tmp_path / "Extra.ttf")
        assert available_fonts(tmp_path)[-1] == str(tmp_path / "Extra.ttf")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "broken.ttf").write_bytes(b"not a font")
    with pytest.raises(UserError, match="no .ttf/.otf font"):
        available_fonts(junk)


def test_script_writes_then_replaces_its_set(tmp_path):
    out = tmp_path / "letters"
    out.mkdir()
    (out / "mine.png").write_bytes(b"someone else's file")
    assert generate_letters.main(["--count", "60", "--out-dir", str(out), "--quiet"]) == 0
    assert len(list(out.glob("letter_*.png"))) == 60
    manifest = read_manifest(out)
    assert len(manifest) == 60 and manifest["letter_00000_A.png"]["digit_like"] is True
    assert manifest["letter_00000_A.png"]["looks_like"] == "4" and manifest["letter_00023_X.png"]["digit_like"] is False

    assert generate_letters.main(["--count", "30", "--out-dir", str(out), "--quiet"]) == 0
    assert len(list(out.glob("letter_*.png"))) == 30
    assert (out / "mine.png").read_bytes() == b"someone else's file"
    assert len(read_manifest(out)) == 30


def test_written_pngs_read_back_exactly(tmp_path):
    assert generate_letters.main(["--count", "8", "--seed", "5", "--out-dir", str(tmp_path), "--quiet"]) == 0
    loaded = load_image_folder(tmp_path)  # the manifest is listed as skipped, not read as an image
    expected = _images(generate(8, seed=5)).astype(np.float32) / 255
    np.testing.assert_array_equal(loaded.images[:, 0].numpy(), expected)
    assert loaded.converted == 0 and [name for name, _ in loaded.skipped] == ["manifest.csv"]


def test_user_errors_exit_2(tmp_path, capsys):
    assert generate_letters.main(["--font-dir", str(tmp_path / "none"), "--out-dir", str(tmp_path), "--quiet"]) == 2
    assert "--font-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        generate_letters.main(["--count", "0", "--out-dir", str(tmp_path), "--quiet"])
    assert info.value.code == 2 and "argument --count: must be >= 1, got 0" in capsys.readouterr().err


def test_read_manifest_without_manifest(tmp_path):
    assert read_manifest(tmp_path) == {}

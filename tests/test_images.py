"""load_image_folder: every entry of a hostile folder is either read correctly or listed as skipped."""
import logging
import os

import numpy as np
import pytest
from PIL import Image

from osr_core.cli import UserError
from osr_core.images import MAX_PIXELS, load_image_folder


def _save(path, img):
    img.save(path)
    return path.name


@pytest.fixture
def messy_folder(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    _save(tmp_path / "a_good.png", Image.fromarray(noise))
    rgba = Image.new("RGBA", (28, 28), (255, 255, 255, 0))  # white, fully transparent
    _save(tmp_path / "b_rgba.png", rgba)
    palette = Image.new("P", (28, 28), 1)
    palette.putpalette([0, 0, 0, 255, 255, 255])
    _save(tmp_path / "c_palette.png", palette)
    _save(tmp_path / "d_gray16.png", Image.fromarray(np.full((28, 28), 32768, np.uint16)))
    _save(tmp_path / "e_wide.png", Image.fromarray(np.full((60, 40), 128, np.uint8)))  # 40 wide, 60 high
    _save(tmp_path / "f_one_bit.png", Image.new("1", (28, 28), 1))
    # Declared far above the limit, yet only a few kB on disk: a decompression bomb in miniature.
    _save(tmp_path / "g_huge.png", Image.new("1", (5000, 5000), 0))
    (tmp_path / "h_stray.txt").write_text("not an image\n")
    (tmp_path / "i_zero.png").write_bytes(b"")
    full = (tmp_path / "a_good.png").read_bytes()
    (tmp_path / "j_truncated.png").write_bytes(full[: len(full) // 2])
    (tmp_path / "k_text.png").write_text("I am text wearing a .png name\n")
    (tmp_path / "l_subfolder").mkdir()
    os.symlink("m_loop", tmp_path / "m_loop")  # points at itself
    os.symlink("does_not_exist.png", tmp_path / "n_broken.png")
    os.mkfifo(tmp_path / "o_fifo.png")  # opening it would block forever
    (tmp_path / ".DS_Store").write_bytes(b"\0\1\2")
    return tmp_path


def test_messy_folder_loads_images_and_lists_the_rest(messy_folder):
    result = load_image_folder(messy_folder)
    assert result.files == ["a_good.png", "b_rgba.png", "c_palette.png", "d_gray16.png", "e_wide.png", "f_one_bit.png"]
    skipped = dict(result.skipped)
    assert sorted(skipped) == ["g_huge.png", "h_stray.txt", "i_zero.png", "j_truncated.png", "k_text.png",
                               "l_subfolder", "m_loop", "n_broken.png", "o_fifo.png"]
    assert all(reason and "\n" not in reason for reason in skipped.values())
    assert "limit" in skipped["g_huge.png"]
    assert skipped["i_zero.png"] == "empty file"
    assert skipped["h_stray.txt"] == skipped["k_text.png"] == "not an image Pillow can read"
    assert "truncated" in skipped["j_truncated.png"]
    assert "folder" in skipped["l_subfolder"]
    assert "symbolic links" in skipped["m_loop"]
    assert "No such file" in skipped["n_broken.png"]
    assert "regular file" in skipped["o_fifo.png"]
    assert result.converted == 5  # all but the 28x28 8-bit grayscale one


def test_pixel_values_follow_each_mode(messy_folder):
    result = load_image_folder(messy_folder)
    images = dict(zip(result.files, result.images))
    assert result.images.shape == (6, 1, 28, 28) and result.images.dtype.is_floating_point
    assert 0.0 <= result.images.min() and result.images.max() <= 1.0
    good = np.asarray(Image.open(messy_folder / "a_good.png"), np.float32) / 255
    np.testing.assert_allclose(images["a_good.png"][0].numpy(), good)  # no inversion, no rescaling
    assert images["b_rgba.png"].min() == pytest.approx(1.0)  # alpha ignored, by design
    assert images["c_palette.png"].min() == pytest.approx(1.0)  # palette looked up, not raw indices
    assert images["d_gray16.png"].mean() == pytest.approx(0.5, abs=0.01)  # not clipped to white
    assert images["e_wide.png"].mean() == pytest.approx(128 / 255, abs=0.01)
    assert images["f_one_bit.png"].min() == pytest.approx(1.0)


def test_one_summary_warning(messy_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="osr"):
        load_image_folder(messy_folder)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "5 converted" in warnings[0].message and "9 entries skipped" in warnings[0].message


def test_clean_folder_is_silent(tmp_path, caplog):
    Image.new("L", (28, 28), 7).save(tmp_path / "x.png")
    with caplog.at_level(logging.WARNING, logger="osr"):
        result = load_image_folder(tmp_path)
    assert result.converted == 0 and result.skipped == [] and not caplog.records


def test_image_just_over_the_limit_is_refused(tmp_path):
    Image.new("1", (MAX_PIXELS // 1000 + 1, 1000), 0).save(tmp_path / "big.png")
    Image.new("L", (28, 28), 0).save(tmp_path / "small.png")
    result = load_image_folder(tmp_path)
    assert result.files == ["small.png"] and [name for name, _ in result.skipped] == ["big.png"]


def test_folder_without_images_is_a_user_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="holds no readable images; 1 entries skipped"):
        load_image_folder(tmp_path)


def test_empty_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no readable images; 0 entries skipped"):
        load_image_folder(tmp_path)


def test_missing_folder_or_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(UserError, match="not a folder"):
        load_image_folder(tmp_path / "file.png")

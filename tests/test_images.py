"""load_image_folder / load_images: every entry of a hostile folder is either read correctly (in MNIST form) or
listed as skipped; files, several files and glob patterns work as a folder does."""
import logging
import os

import numpy as np
import pytest
from PIL import Image

from osr_core.cli import UserError
from osr_core import images as images_module
from osr_core.images import MAX_PIXELS, load_image_folder, load_images
from osr_core.mnist_style import to_mnist_form


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
    assert result.converted == 6  # even the 28x28 8-bit one: noise fills its frame, so it is not MNIST-shaped


def test_each_mode_becomes_the_right_grayscale(messy_folder):
    gray = {name: images_module._to_unit_gray(images_module._decode(messy_folder / name))
            for name in ("a_good.png", "b_rgba.png", "c_palette.png", "d_gray16.png", "e_wide.png", "f_one_bit.png")}
    good = np.asarray(Image.open(messy_folder / "a_good.png"), np.float32) / 255
    np.testing.assert_allclose(gray["a_good.png"], good)             # 8-bit gray as stored
    assert gray["b_rgba.png"].min() == pytest.approx(1.0)             # alpha ignored, by design
    assert gray["c_palette.png"].min() == pytest.approx(1.0)          # palette looked up, not raw indices
    assert gray["d_gray16.png"].mean() == pytest.approx(0.5, abs=0.01)  # not clipped to white
    assert gray["e_wide.png"].shape == (60, 40) and gray["e_wide.png"].mean() == pytest.approx(128 / 255, abs=0.01)
    assert gray["f_one_bit.png"].min() == pytest.approx(1.0)


def test_the_folder_reader_puts_each_image_in_mnist_form(messy_folder):
    result = load_image_folder(messy_folder)
    assert result.images.shape == (6, 1, 28, 28) and result.images.dtype.is_floating_point
    for name, image in zip(result.files, result.images):
        gray = images_module._to_unit_gray(images_module._decode(messy_folder / name))
        np.testing.assert_array_equal(image[0].numpy(), to_mnist_form(gray))
    assert not result.images[result.files.index("b_rgba.png")].any()  # white paper, no ink: an empty digit


def test_one_summary_warning(messy_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="osr"):
        load_image_folder(messy_folder)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "6 converted" in warnings[0].message and "9 entries skipped" in warnings[0].message


def test_a_decompression_bomb_is_refused_before_any_pixel_is_decoded(messy_folder, monkeypatch):
    from PIL import ImageFile
    decoded, real_load = [], ImageFile.ImageFile.load

    def load(self):
        decoded.append(os.path.basename(self.filename))
        return real_load(self)
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    result = load_image_folder(messy_folder)
    assert "g_huge.png" in dict(result.skipped) and "g_huge.png" not in decoded
    assert "a_good.png" in decoded  # the probe does see decoding


def test_clean_folder_is_silent(tmp_path, caplog):
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 10:18] = 200  # a 20-px-high stroke centred by mass: already in MNIST form
    Image.fromarray(digit).save(tmp_path / "x.png")
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


def test_files_several_files_and_globs_read_like_a_folder(messy_folder):
    folder = load_image_folder(messy_folder)
    one = load_images([str(messy_folder / "a_good.png")])
    assert one.files == [str(messy_folder / "a_good.png")] and torch_equal(one.images[0], folder.images[0])
    several = load_images([messy_folder / "c_palette.png", messy_folder / "a_good.png"])
    assert [f.rsplit("/", 1)[1] for f in several.files] == ["c_palette.png", "a_good.png"]
    pattern = load_images([str(messy_folder / "[a-f]_*.png")])
    assert [f.rsplit("/", 1)[1] for f in pattern.files] == folder.files
    assert torch_equal(pattern.images, folder.images)
    with pytest.raises(UserError, match="no file matches"):
        load_images([str(messy_folder / "z_*.png")])
    with pytest.raises(UserError, match="image not found"):
        load_images([str(messy_folder / "a_good.png"), str(messy_folder / "missing.png")])


def torch_equal(a, b) -> bool:
    return bool((a == b).all()) and a.shape == b.shape

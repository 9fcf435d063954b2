"""Pictures: valid PNGs of the expected size, byte-identical on a re-run, honest pixels."""
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from osr_core import plots

SIDE = 28
GAP = plots.TILE_GAP


def _open(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(png))
    img.load()
    assert img.format == "PNG"
    return img


def _digit_pair(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.random((SIDE, SIDE)).astype(np.float32)
    recon = image.copy()
    recon[:, SIDE // 2:] = 1.0 - recon[:, SIDE // 2:]  # right half differs, left half identical
    recon[0, -1] = 1.0
    image[0, -1] = 0.0  # maximal error in the top-right pixel
    return image, recon


@pytest.fixture(autouse=True)
def no_figure_left_open():
    yield
    assert plt.get_fignums() == []


@pytest.mark.parametrize("scale", [1, 4])
def test_anomaly_panel_layout_and_pixels(scale):
    image, recon = _digit_pair()
    img = _open(plots.anomaly_panel_png(image, recon, "pred 7  score 3.21 > thr 1.05", scale=scale)).convert("RGB")
    tile = SIDE * scale
    assert img.width == 3 * tile + 2 * GAP
    top = img.height - tile  # tiles sit at the bottom, below the text strip
    assert top >= 10  # room for at least one line of text
    px = np.asarray(img)

    # input tile shows the input in grey, nearest-neighbour upscaled
    y, x = 5, 3
    expected = round(float(image[y, x]) * 255)
    assert tuple(px[top + y * scale, x * scale]) == (expected,) * 3
    assert tuple(px[top + y * scale + scale - 1, x * scale + scale - 1]) == (expected,) * 3

    err_x0 = 2 * (tile + GAP)
    # error tile is black where image == recon (left half)
    assert px[top + 10 * scale, err_x0 + 2 * scale].max() <= 16
    # and bright where the error is 1
    assert px[top, err_x0 + (SIDE - 1) * scale].astype(int).sum() > 600
    # the gaps between tiles are background
    assert tuple(px[top + 3, tile]) == (255, 255, 255)


def test_anomaly_panel_is_deterministic_and_accepts_tensors():
    torch = pytest.importorskip("torch")
    image, recon = _digit_pair()
    a = plots.anomaly_panel_png(image, recon, "x")
    b = plots.anomaly_panel_png(image.copy(), recon.copy(), "x")
    c = plots.anomaly_panel_png(torch.from_numpy(image)[None], torch.from_numpy(recon)[None], "x")
    assert a == b == c
    assert "Software" not in _open(a).info


def test_anomaly_panel_wraps_long_title_without_widening():
    image, recon = _digit_pair()
    short = _open(plots.anomaly_panel_png(image, recon, "pred 7", scale=2))
    long = _open(plots.anomaly_panel_png(image, recon, "pred 7 " + "word " * 40, scale=2))
    assert long.width == short.width
    assert long.height > short.height


def test_anomaly_panel_rejects_wrong_shape():
    with pytest.raises(ValueError, match="28"):
        plots.anomaly_panel_png(np.zeros((32, 32)), np.zeros((32, 32)), "x")


def test_contact_sheet_empty_says_so():
    img = _open(plots.contact_sheet_png([], [], []))
    assert 20 <= img.width <= 200 and 10 <= img.height <= 60


@pytest.mark.parametrize("scale", [1, 2])
def test_contact_sheet_grid_of_13(scale):
    rng = np.random.default_rng(1)
    images = rng.random((13, SIDE, SIDE))
    recons = rng.random((13, 1, SIDE, SIDE))
    captions = [f"#{i} score {s:.2f}" for i, s in enumerate(rng.random(13) * 5)]
    captions[3] = "a caption far too long to fit under one triplet " * 5
    png = plots.contact_sheet_png(images, recons, captions, ncols=8, scale=scale)
    img = _open(png)
    cell_w = 3 * SIDE * scale + 2 * GAP
    assert img.width == 2 * plots.MARGIN + 8 * cell_w + 7 * plots.CELL_GAP
    rows_of_tiles = 2 * SIDE * scale + 2 * plots.MARGIN + plots.CELL_GAP
    line = 10  # the smallest plausible line of text
    assert rows_of_tiles + 2 * line <= img.height  # two rows, each with a caption
    assert img.height <= rows_of_tiles + 2 * 3 * 2 * line  # the long caption is cut to two lines
    assert plots.contact_sheet_png(images, recons, captions, ncols=8, scale=scale) == png
    # first tile of the first cell is the first image
    px = np.asarray(img.convert("RGB"))
    assert tuple(px[plots.MARGIN, plots.MARGIN]) == (round(images[0, 0, 0] * 255),) * 3


def test_contact_sheet_uses_fewer_columns_for_few_items():
    image, recon = _digit_pair()
    img = _open(plots.contact_sheet_png([image] * 2, [recon] * 2, ["a", "b"], ncols=8, scale=1))
    assert img.width == 2 * plots.MARGIN + 2 * (3 * SIDE + 2 * GAP) + plots.CELL_GAP


def test_contact_sheet_rejects_mismatched_lengths():
    image, recon = _digit_pair()
    with pytest.raises(ValueError, match="differ in length"):
        plots.contact_sheet_png([image, image], [recon], ["a", "b"])


def _scores(seed=0, n=300):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, n), rng.normal(2, 1, n // 3)


def test_roc_curves_draw_exactly_the_metrics_curve_and_auroc():
    from sklearn.metrics import roc_curve

    from osr_core import metrics
    known, unknown = _scores()
    curves = {"recon error": (known, unknown), "max softmax": (known, unknown * 0.3)}
    fig = plots.roc_curves_figure(curves, "ROC")
    try:
        ax = fig.axes[0]
        lines = ax.get_lines()
        assert lines[0].get_label().startswith("chance")
        for line, (name, (k, u)) in zip(lines[1:], curves.items()):
            fpr, tpr, _ = roc_curve(np.r_[np.zeros(len(k)), np.ones(len(u))], np.r_[k, u])
            np.testing.assert_array_equal(line.get_xdata(), fpr)
            np.testing.assert_array_equal(line.get_ydata(), tpr)
            assert line.get_label() == f"{name} (AUROC {metrics.auroc(k, u):.3f})"
    finally:
        plt.close(fig)
    png = plots.roc_curves_png(curves, "ROC")
    assert _open(png).size == (550, 500) and plots.roc_curves_png(curves, "ROC") == png


def test_roc_curves_need_both_classes():
    with pytest.raises(ValueError, match="both known and unknown"):
        plots.roc_curves_png({"s": (np.arange(5.0), np.array([]))}, "ROC")


@pytest.mark.parametrize("threshold", [None, 1.05, 50.0])
def test_score_histograms_draw_the_densities_and_the_threshold(threshold):
    known, unknown = _scores()
    known = np.append(known, [1e6, np.inf])  # an outlier and a non-finite value must not break it
    fig = plots.score_histograms_figure(known, unknown, threshold, "scores")
    try:
        ax = fig.axes[0]
        finite = known[np.isfinite(known)]
        lo, hi = np.percentile(np.r_[finite, unknown], [0.5, 99.5])
        bins = np.linspace(lo, hi, 51)
        steps = [p for p in ax.patches]
        assert len(steps) == 2
        for step, values in zip(steps, (finite, unknown)):
            drawn = step.get_data()
            expected, _ = np.histogram(np.clip(values, lo, hi), bins=bins, density=True)
            np.testing.assert_allclose(drawn.values, expected)
            np.testing.assert_allclose(drawn.edges, bins)
            assert np.sum(drawn.values * np.diff(bins)) == pytest.approx(1.0)  # a density: the outlier is counted
        lines = [l for l in ax.get_lines() if l.get_label().startswith("threshold")]
        if threshold is None:
            assert not lines
        else:
            assert len(lines) == 1 and list(lines[0].get_xdata()) == [threshold, threshold]
            assert ax.get_xlim()[0] <= threshold <= ax.get_xlim()[1]
    finally:
        plt.close(fig)
    assert _open(plots.score_histograms_png(known, unknown, threshold, "scores")).size == (650, 400)


def test_confusion_matrix_writes_every_count_and_shades_by_row_share():
    rng = np.random.default_rng(2)
    matrix = rng.integers(0, 50, (7, 7)) + np.diag(np.full(7, 400))
    matrix[3] = 0  # a class never seen must not divide by zero
    labels = [str(i) for i in range(6)] + ["unknown"]
    fig = plots.confusion_matrix_figure(matrix, labels, "confusion")
    try:
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.texts] == [str(int(v)) for v in matrix.ravel()]
        shares = ax.images[0].get_array()
        rows = matrix.sum(1, keepdims=True)
        np.testing.assert_allclose(shares, np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0))
        assert [t.get_text() for t in ax.get_xticklabels()] == labels
    finally:
        plt.close(fig)
    png = plots.confusion_matrix_png(matrix, labels, "confusion")
    assert plots.confusion_matrix_png(matrix, labels, "confusion") == png


def test_confusion_matrix_checks_shape_and_labels():
    with pytest.raises(ValueError, match="square"):
        plots.confusion_matrix_png(np.zeros((3, 4)), ["a", "b", "c"], "x")
    with pytest.raises(ValueError, match="labels"):
        plots.confusion_matrix_png(np.zeros((3, 3)), ["a", "b"], "x")


def test_embedding_draws_each_group_at_its_points():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(200, 2))
    groups = np.array(["known 0", "known 1", "unknown"])[rng.integers(0, 3, 200)]
    fig = plots.embedding_figure(points, groups, "embedding")
    try:
        drawn = {c.get_label().split(" (n=")[0]: c.get_offsets() for c in fig.axes[0].collections}
        assert set(drawn) == set(groups)
        for name, offsets in drawn.items():
            np.testing.assert_array_equal(np.asarray(offsets), points[groups == name])
    finally:
        plt.close(fig)
    png = plots.embedding_png(points, groups, "embedding")
    assert _open(png).size == (650, 500) and plots.embedding_png(points, list(groups), "embedding") == png
    with pytest.raises(ValueError, match="group labels"):
        plots.embedding_png(points, groups[:10], "embedding")


def test_embedding_groups_listed_in_natural_order():
    names = ["unknown", "known 10", "known 2", "known 0"]
    assert sorted(names, key=plots._natural_key) == ["known 0", "known 2", "known 10", "unknown"]

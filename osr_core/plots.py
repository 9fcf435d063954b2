"""Pictures of the pipeline; every function returns PNG bytes for the caller to write atomically.

Output is deterministic: the same input gives the same bytes (no timestamps or software tags in
the PNG metadata), so re-running a stage does not change unchanged pictures.

Images are float arrays or tensors in [0, 1] of shape (28, 28); a leading channel of 1 is dropped.
Panels and contact sheets are drawn with PIL alone because thousands of them get written; the
charts use matplotlib on the headless Agg backend.
"""
from __future__ import annotations

import io
import math
import re
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display, and keeps rendering identical everywhere
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from .metrics import ranked  # noqa: E402

__all__ = [
    "anomaly_panel_png",
    "sprite_png",
    "contact_sheet_png",
    "roc_curves_png",
    "score_histograms_png",
    "confusion_matrix_png",
    "embedding_png",
]

IMAGE_SIDE = 28
TILE_GAP = 2  # px between the input, recon and error tiles
CELL_GAP = 8  # px between triplets on a contact sheet
MARGIN = 4  # px around a contact sheet
TEXT_PAD = 2  # px above and below each strip of text
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
DPI = 100


# ----------------------------------------------------------------------------- PIL pictures


def anomaly_panel_png(image, recon, title: str, scale: int = 4) -> bytes:
    """Input, reconstruction and |input - recon| side by side under a title strip.

    The panel is exactly ``3*28*scale + 4`` px wide; a title too long for one line wraps.
    """
    _check_scale(scale)
    triplet = _triplet(_as_image(image), _as_image(recon), scale)
    font = _font()
    title_lines = _wrap(title, triplet.width, font)
    line_h = _line_height(font)
    strip_h = TEXT_PAD + line_h * (len(title_lines) + 1) + TEXT_PAD  # title lines + tile labels

    panel = Image.new("RGB", (triplet.width, strip_h + triplet.height), WHITE)
    draw = ImageDraw.Draw(panel)
    for i, line in enumerate(title_lines):
        draw.text((0, TEXT_PAD + i * line_h), line, fill=BLACK, font=font)
    tile_w = IMAGE_SIDE * scale
    labels_y = TEXT_PAD + len(title_lines) * line_h
    for i, label in enumerate(("input", "recon", "|error|")):
        x = i * (tile_w + TILE_GAP) + (tile_w - font.getlength(label)) / 2
        draw.text((max(0, round(x)), labels_y), label, fill=BLACK, font=font)
    panel.paste(triplet, (0, strip_h))
    return _pil_png(panel)


def contact_sheet_png(images, recons, captions: list[str], ncols: int = 8, scale: int = 2,
                      legend: str | None = None) -> bytes:
    """A grid of (input | recon | error) triplets in the given order, a caption under each, and the `legend`
    (what a cell and a caption show) above the grid.

    Captions wrap to at most two lines and are cut with "..." beyond that. With no images the
    sheet is a small picture saying "no images".
    """
    _check_scale(scale)
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    images, recons, captions = list(images), list(recons), list(captions)
    if not len(images) == len(recons) == len(captions):
        raise ValueError(
            f"images, recons and captions differ in length: {len(images)}, {len(recons)}, {len(captions)}"
        )
    font = _font()
    if not images:
        return _message_png("no images", font)

    cell_w = 3 * IMAGE_SIDE * scale + 2 * TILE_GAP
    cell_h = IMAGE_SIDE * scale
    caption_lines = [_wrap(c, cell_w, font, max_lines=2) for c in captions]
    line_h = _line_height(font)
    caption_h = TEXT_PAD + line_h * max(len(lines) for lines in caption_lines) + TEXT_PAD
    cols = min(ncols, len(images))
    rows = math.ceil(len(images) / cols)
    pitch_x, pitch_y = cell_w + CELL_GAP, cell_h + caption_h + CELL_GAP
    width = 2 * MARGIN + cols * pitch_x - CELL_GAP
    legend_lines = _wrap(legend, max(width - 2 * MARGIN, cell_w), font) if legend else []
    legend_h = line_h * len(legend_lines) + (CELL_GAP if legend_lines else 0)
    sheet = Image.new("RGB", (max(width, 2 * MARGIN + cell_w), 2 * MARGIN + legend_h + rows * pitch_y - CELL_GAP), WHITE)
    draw = ImageDraw.Draw(sheet)
    for i, line in enumerate(legend_lines):
        draw.text((MARGIN, MARGIN + i * line_h), line, fill=BLACK, font=font)
    for k, (img, rec, lines) in enumerate(zip(images, recons, caption_lines)):
        x = MARGIN + (k % cols) * pitch_x
        y = MARGIN + legend_h + (k // cols) * pitch_y
        sheet.paste(_triplet(_as_image(img), _as_image(rec), scale), (x, y))
        for i, line in enumerate(lines):
            draw.text((x, y + cell_h + TEXT_PAD + i * line_h), line, fill=BLACK, font=font)
    return _pil_png(sheet)


SPRITE_LEVELS = 128  # levels per tile kind: a palette of 128 greys and 128 inferno colours, one byte a pixel


SPRITE_CHUNK = 1000  # triplets made at a time


def sprite_png(images, recons, columns: int = 50) -> bytes:
    """Every image's (input | reconstruction | error map) triplet, 84x28 px, packed into one PNG in rows of
    `columns` triplets: triplet i at x = 84 * (i % columns), y = 28 * (i // columns). images, recons: (N, 28, 28)
    in [0, 1], or lists of such arrays taken one after the other (a page of many sets need not join them first).
    One picture for a whole page, so a page of thousands of rows makes one request. A palette image of 128 grey
    levels (input, reconstruction) and 128 inferno colours (error): a third of the bytes of RGB."""
    as_parts = lambda a: [np.asarray(p) for p in a] if isinstance(a, (list, tuple)) else [np.asarray(a)]
    parts = list(zip(as_parts(images), as_parts(recons)))
    for x, r in parts:
        if x.ndim != 3 or x.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or r.shape != x.shape:
            raise ValueError(f"expected images and reconstructions of one shape (N, 28, 28), got {x.shape} and "
                             f"{r.shape}")
    n, side, top = sum(len(x) for x, _ in parts), IMAGE_SIDE, SPRITE_LEVELS - 1
    level = lambda x: np.rint(np.clip(x, 0.0, 1.0) * top).astype(np.uint8)
    rows = max(1, -(-n // columns))
    sheet = np.zeros((rows * side, columns * 3 * side), np.uint8)
    tiles = sheet.reshape(rows, side, columns, 3 * side)  # a view: tile i is tiles[i // columns, :, i % columns]
    done = 0
    for images, recons in parts:
        for start in range(0, len(images), SPRITE_CHUNK):  # in float64 a chunk at a time: a page's would be 100s of MB
            x = images[start:start + SPRITE_CHUNK].astype(np.float64)
            r = recons[start:start + SPRITE_CHUNK].astype(np.float64)
            row, column = np.divmod(np.arange(done, done + len(x)), columns)
            tiles[row, :, column, :] = np.concatenate([level(x), level(r), SPRITE_LEVELS + level(np.abs(x - r))], axis=2)
            done += len(x)
    greys = np.repeat(np.rint(np.linspace(0, 255, SPRITE_LEVELS)).astype(np.uint8)[:, None], 3, axis=1)
    inferno = _inferno_lut()[np.rint(np.linspace(0, 255, SPRITE_LEVELS)).astype(int)]
    img = Image.fromarray(sheet, mode="P")
    img.putpalette(np.concatenate([greys, inferno]).ravel().tolist())
    return _pil_png(img)


def _triplet(image: np.ndarray, recon: np.ndarray, scale: int) -> Image.Image:
    """(input | recon | error) tiles, each upscaled nearest-neighbour, on white with 2 px gaps."""
    # The error is coloured on a fixed [0, 1] scale, not stretched per image, so brightness means
    # the same thing on every panel and a good reconstruction stays dark.
    error = _inferno_lut()[_to_uint8(np.abs(image - recon))]  # (28, 28, 3)
    tiles = [_gray_rgb(image), _gray_rgb(recon), error]
    side = IMAGE_SIDE * scale
    out = Image.new("RGB", (3 * side + 2 * TILE_GAP, side), WHITE)
    for i, tile in enumerate(tiles):
        big = Image.fromarray(tile, mode="RGB").resize((side, side), Image.Resampling.NEAREST)
        out.paste(big, (i * (side + TILE_GAP), 0))
    return out


def _message_png(text: str, font) -> bytes:
    width = round(font.getlength(text)) + 2 * MARGIN + 8
    height = _line_height(font) + 2 * MARGIN + 8
    img = Image.new("RGB", (width, height), WHITE)
    ImageDraw.Draw(img).text((MARGIN + 4, MARGIN + 4), text, fill=BLACK, font=font)
    return _pil_png(img)


def _as_image(x: Any) -> np.ndarray:
    """A (28, 28) float64 array in [0, 1] from a numpy array or torch tensor, (1, 28, 28) allowed."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != (IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(f"expected an image of shape (28, 28) or (1, 28, 28), got {tuple(np.shape(x))}")
    return np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)


def _gray_rgb(arr: np.ndarray) -> np.ndarray:
    return np.repeat(_to_uint8(arr)[..., None], 3, axis=-1)


@lru_cache(maxsize=1)
def _inferno_lut() -> np.ndarray:
    """(256, 3) uint8 colours of matplotlib's 'inferno'; index 0 is (near) black."""
    return _to_uint8(matplotlib.colormaps["inferno"](np.linspace(0.0, 1.0, 256))[:, :3])


@lru_cache(maxsize=1)
def _font():
    return ImageFont.load_default()


def _line_height(font) -> int:
    return font.getbbox("Ag|y")[3] + 2  # bottom of the lowest glyph below the drawing origin, plus room


def _wrap(text: str, width: int, font, max_lines: int | None = None) -> list[str]:
    """Greedy word wrap to `width` px; a word wider than a line is cut, the last line ends "..."."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = word if not line else f"{line} {word}"
            if font.getlength(candidate) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    lines = [_truncate(line, width, font) for line in lines]
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [_truncate(lines[max_lines - 1], width, font, always=True)]
    return lines


def _truncate(line: str, width: int, font, always: bool = False) -> str:
    """`line` cut to fit `width` px, ending "..." when cut (or always, if asked)."""
    if not always and font.getlength(line) <= width:
        return line
    while line and font.getlength(line + "...") > width:
        line = line[:-1]
    return line.rstrip() + "..."


def _check_scale(scale: int) -> None:
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")


def _pil_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- matplotlib charts


def roc_curves_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> bytes:
    return _png_of(roc_curves_figure(curves, title))


def roc_curves_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    """ROC curves with unknown as the positive class (higher score = more unknown), AUROC in the legend."""
    if not curves:
        raise ValueError("no curves to plot")
    fig, ax = plt.subplots(figsize=(5.5, 5.0), layout="constrained")
    with _closed_on_error(fig):
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance (AUROC 0.500)")
        for name, (known, unknown) in curves.items():
            y_true, scores = _labelled_scores(name, known, unknown)
            fpr, tpr, _ = roc_curve(y_true, scores)
            auc = roc_auc_score(y_true, scores)
            ax.plot(fpr, tpr, linewidth=1.5, label=f"{name} (AUROC {auc:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate (known flagged as unknown)")
        ax.set_ylabel("true positive rate (unknown caught)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    return fig


def _labelled_scores(name: str, known, unknown) -> tuple[np.ndarray, np.ndarray]:
    known, unknown = ranked(np.asarray(known, dtype=np.float64).ravel(), np.asarray(unknown, dtype=np.float64).ravel())
    if known.size == 0 or unknown.size == 0:
        raise ValueError(f"curve {name!r} needs both known and unknown scores (got {known.size}, {unknown.size})")
    y_true = np.concatenate([np.zeros(known.size, dtype=int), np.ones(unknown.size, dtype=int)])
    return y_true, np.concatenate([known, unknown])


def score_histograms_png(known: np.ndarray, unknown: np.ndarray, threshold: float | None, title: str,
                         known_label: str = "MNIST test (known)", unknown_label: str = "unknown") -> bytes:
    return _png_of(score_histograms_figure(known, unknown, threshold, title, known_label, unknown_label))


def score_histograms_figure(known: np.ndarray, unknown: np.ndarray, threshold: float | None, title: str,
                            known_label: str = "MNIST test (known)", unknown_label: str = "unknown"):
    """Overlaid density histograms on shared bins, with the threshold as a dashed line.

    Bins span the 0.5..99.5 percentiles of both sets together; values beyond are counted in the
    outermost bins, so outliers neither vanish nor squash the plot. Non-finite scores are dropped.
    """
    known = _finite(known)
    unknown = _finite(unknown)
    both = np.concatenate([known, unknown])
    if both.size == 0:
        raise ValueError("no finite scores to plot")
    lo, hi = np.percentile(both, [0.5, 99.5])
    if hi <= lo:  # all scores (nearly) equal
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 51)

    fig, ax = plt.subplots(figsize=(6.5, 4.0), layout="constrained")
    with _closed_on_error(fig):
        for values, label, color in ((known, known_label, "tab:blue"), (unknown, unknown_label, "tab:orange")):
            if values.size:
                density, _ = np.histogram(np.clip(values, lo, hi), bins=bins, density=True)
                ax.stairs(density, bins, fill=True, alpha=0.5, color=color, label=f"{label} (n={values.size})")
        x_lo, x_hi = lo, hi
        if threshold is not None:
            ax.axvline(threshold, color="black", linestyle="--", linewidth=1.2, label=f"threshold {threshold:.3g}")
            x_lo, x_hi = min(lo, threshold), max(hi, threshold)
        pad = 0.02 * (x_hi - x_lo)
        ax.set_xlim(x_lo - pad, x_hi + pad)
        ax.set_xlabel("score (higher = more unknown; tails clipped to 0.5-99.5 percentile)")
        ax.set_ylabel("density")
        ax.set_title(title)
        ax.legend(fontsize="small")
    return fig


def _finite(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def confusion_matrix_png(matrix: np.ndarray, labels: list[str], title: str) -> bytes:
    return _png_of(confusion_matrix_figure(matrix, labels, title))


def confusion_matrix_figure(matrix: np.ndarray, labels: list[str], title: str):
    """Counts (rows = true, cols = predicted) written in cells coloured by their share of the row."""
    counts = np.asarray(matrix, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {counts.shape}")
    n = counts.shape[0]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for a {n}x{n} confusion matrix")
    row_sums = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)

    side = max(4.5, 0.5 * n + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.0, side), layout="constrained")
    with _closed_on_error(fig):
        im = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true class")
        fontsize = 8 if n <= 12 else 6
        for i in range(n):
            for j in range(n):
                # Inside the axes, so no concern of the layout, which would otherwise measure every count.
                ax.text(j, i, _count_text(counts[i, j]), ha="center", va="center", fontsize=fontsize,
                        color="white" if shares[i, j] > 0.5 else "black", in_layout=False)
        ticks = np.arange(n)
        ax.set_xticks(ticks, [str(s) for s in labels], rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(ticks, [str(s) for s in labels])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
    return fig


def _count_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2g}"


def embedding_png(points: np.ndarray, groups: list[str] | np.ndarray, title: str) -> bytes:
    return _png_of(embedding_figure(points, groups, title))


def embedding_figure(points: np.ndarray, groups: list[str] | np.ndarray, title: str):
    """2-D scatter, one colour per group; groups are drawn and listed in natural order ("known 2" < "known 10")."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {points.shape}")
    groups = np.asarray([str(g) for g in groups])
    if groups.shape[0] != points.shape[0]:
        raise ValueError(f"{groups.shape[0]} group labels for {points.shape[0]} points")
    names = sorted(set(groups.tolist()), key=_natural_key)
    colors = _group_colors(len(names))

    fig, ax = plt.subplots(figsize=(6.5, 5.0), layout="constrained")
    with _closed_on_error(fig):
        for name, color in zip(names, colors):
            sel = groups == name
            ax.scatter(points[sel, 0], points[sel, 1], s=4, alpha=0.5, color=color, linewidths=0,
                       label=f"{name} (n={int(sel.sum())})")
        if names:
            legend = ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small",
                               markerscale=3, frameon=False)
            for handle in legend.legend_handles:
                handle.set_alpha(1.0)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _natural_key(text: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def _group_colors(n: int) -> list:
    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    return [matplotlib.colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def time_to_quality_figure(runs: list[dict]):
    """Left: validation accuracy after each epoch against training seconds, one line per run ({"label", "points":
    [{"train_seconds", "val_accuracy"}, ...]}). Right: each finished run's leave-classes-out AUROC (of the score
    stage 2 chose for it) against its training seconds ({"train_seconds", "leave_classes_out"})."""
    if not runs:
        raise ValueError("no runs to plot")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    colors = _group_colors(len(runs))
    for run, color in zip(runs, colors):
        t = [p["train_seconds"] for p in run["points"]]
        axes[0].plot(t, [p["val_accuracy"] for p in run["points"]], marker="o", markersize=3, color=color,
                     label=run["label"])
        axes[1].plot([run["train_seconds"]], [run["leave_classes_out"]], marker="o", color=color, label=run["label"])
    for ax, name in zip(axes, ("validation accuracy", "leave-classes-out AUROC of the chosen score")):
        ax.set_xlabel("training time (s)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_title("closed-set accuracy after each epoch")
    axes[1].set_title("near-digit unknowns, after the last epoch")
    axes[1].legend(fontsize="x-small", loc="lower right")
    return fig


def time_to_quality_png(runs: list[dict]) -> bytes:
    return _png_of(time_to_quality_figure(runs))


@contextmanager
def _closed_on_error(fig):
    try:
        yield
    except BaseException:
        plt.close(fig)
        raise


def _png_of(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    try:
        return _fig_png(fig)
    finally:
        plt.close(fig)


def _fig_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None}, dpi=DPI)
    return buf.getvalue()

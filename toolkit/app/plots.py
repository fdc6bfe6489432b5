"""`dtk eval` figures: PSNR per kernel and the examples strip."""


from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.core.figures import pyplot, save_figure
from toolkit.core.metrics import capped


def psnr_figure(result):
    """One panel per kernel, each with its own PSNR axis: a box per restoring method, and the
    blurred input's and the Wiener baseline's mean as horizontal reference lines (a box too when
    they are the only methods). Returns the matplotlib figure."""
    import statistics

    plt = pyplot()
    references = {"blurred": ("blurred input", "0.35", "--"), "wiener": ("Wiener", "tab:red", ":")}
    boxed = [m for m in result.methods if m not in references] or list(result.methods)
    palette = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(result.kernels), squeeze=False,
                             figsize=(1.4 + (0.9 + 0.55 * len(boxed)) * len(result.kernels), 4.2))
    for ax, kernel in zip(axes[0], result.kernels, strict=True):
        def values(method, kernel=kernel):
            return [capped(s.psnr) for s in result.scores if s.kernel == kernel and s.method == method]

        data = [values(m) for m in boxed]
        boxes = ax.boxplot([d or [float("nan")] for d in data], widths=0.6, patch_artist=True)
        for i, patch in enumerate(boxes["boxes"]):
            patch.set_facecolor(palette(i))
            patch.set_alpha(0.6)
        ax.set_xticks(range(1, len(boxed) + 1), boxed, rotation=30, fontsize=8)
        for method, (label, color, style) in references.items():
            ref = values(method)
            if ref and method not in boxed:
                mean = statistics.fmean(ref)
                ax.axhline(mean, color=color, linestyle=style, linewidth=1.2, label=f"{label} {mean:.1f} dB")
        ax.set_title(kernel)
        ax.grid(axis="y", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("PSNR vs sharp (dB, identical = 100)")
    fig.suptitle(f"PSNR per kernel — {Path(result.root).name}", fontsize=10)
    return fig


def psnr_boxplot(result, path: Path | str) -> Path:
    """Write `psnr_figure(result)` to a PNG."""
    return save_figure(psnr_figure(result), path, dpi=110)


def detail_crop(reference: np.ndarray, other: np.ndarray | None = None, size: int = 96) -> tuple[int, int]:
    """Top-left (y, x) of the size x size window where the images differ most (mean absolute
    difference to `other`), or, without `other`, where `reference` has most detail (gradient
    energy). Clipped to the image; the whole image when it is smaller."""
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim == 3:
        ref = ref.mean(axis=2)
    if other is not None:
        oth = np.asarray(other, dtype=np.float64)
        score = np.abs(ref - (oth.mean(axis=2) if oth.ndim == 3 else oth))
    else:
        gy, gx = np.gradient(ref)
        score = np.hypot(gx, gy)
    h, w = score.shape
    ch, cw = min(size, h), min(size, w)
    total = np.pad(score, ((1, 0), (1, 0))).cumsum(axis=0).cumsum(axis=1)
    window = total[ch:, cw:] - total[:-ch, cw:] - total[ch:, :-cw] + total[:-ch, :-cw]
    y, x = np.unravel_index(int(np.argmax(window)), window.shape)
    return int(y), int(x)


def example_strip(examples: list[tuple[str, dict[str, np.ndarray]]], path: Path | str,
                  crop: int = 96) -> Path:
    """Rows of side-by-side images: each row is (title, {column name: RGB uint8 image}); the first
    column is the whole (sharp) frame with the zoomed region outlined, the others show that
    crop x crop region, where the second image (the blurred input) differs most from the first."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    cols = max(len(images) for _, images in examples)
    fig, axes = plt.subplots(len(examples), cols, figsize=(3.6 + 2.4 * (cols - 1), 2.6 * len(examples)),
                             squeeze=False)
    for row, (title, images) in enumerate(examples):
        frames = list(images.values())
        y, x = detail_crop(frames[0], frames[1] if len(frames) > 1 else None, crop)
        for col, (name, image) in enumerate(images.items()):
            ax = axes[row][col]
            if col == 0:
                ax.imshow(image)
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), crop, crop, fill=False, edgecolor="yellow",
                                       linewidth=1.5))
                ax.set_title(f"{title}\n{name} (box: zoomed {crop}x{crop} at x={x}, y={y})", fontsize=7)
            else:
                ax.imshow(image[y:y + crop, x:x + crop], interpolation="nearest")
                ax.set_title(name, fontsize=8)
            ax.axis("off")
        for col in range(len(images), cols):
            axes[row][col].axis("off")
    return save_figure(fig, path, dpi=100)

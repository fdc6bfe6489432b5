"""`dtk eval` figures: PSNR per kernel and the examples strip."""


from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.core.figures import pyplot, save_figure
from toolkit.core.metrics import capped


def psnr_boxplot(result, path: Path | str) -> Path:
    """PSNR per kernel, one box per method (identical frames drawn at the 100 dB cap)."""

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(result.kernels) * len(result.methods) / 2, 4.5))
    positions, data, labels, colors = [], [], [], []
    palette = plt.get_cmap("tab10")
    width = 0.8 / len(result.methods)
    for ki, kernel in enumerate(result.kernels):
        for mi, method in enumerate(result.methods):
            values = [capped(s.psnr) for s in result.scores if s.kernel == kernel and s.method == method]
            positions.append(ki + (mi - (len(result.methods) - 1) / 2) * width)
            data.append(values)
            colors.append(palette(mi))
        labels.append(kernel)
    boxes = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True, showfliers=True)
    for patch, color in zip(boxes["boxes"], colors, strict=True):
        patch.set_facecolor(color)
        patch.set_alpha(0.6)
    ax.set_xticks(range(len(result.kernels)), labels)
    ax.set_ylabel("PSNR vs sharp (dB, identical = 100)")
    ax.set_title(f"PSNR per kernel — {Path(result.root).name}")
    ax.legend([boxes["boxes"][i] for i in range(len(result.methods))], result.methods, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path, dpi=110)


def example_strip(examples: list[tuple[str, dict[str, np.ndarray]]], path: Path | str) -> Path:
    """Rows of side-by-side images: each row is (title, {column name: RGB uint8 image})."""
    plt = pyplot()
    cols = max(len(images) for _, images in examples)
    fig, axes = plt.subplots(len(examples), cols, figsize=(3.6 * cols, 2.3 * len(examples)), squeeze=False)
    for row, (title, images) in enumerate(examples):
        for col, (name, image) in enumerate(images.items()):
            ax = axes[row][col]
            ax.imshow(image)
            ax.set_title(f"{title}\n{name}" if col == 0 else name, fontsize=8)
            ax.axis("off")
        for col in range(len(images), cols):
            axes[row][col].axis("off")
    return save_figure(fig, path, dpi=100)

"""PNG figures (matplotlib on the Agg backend: no display needed), for every layer's reports."""

from __future__ import annotations

import io
from pathlib import Path

from toolkit.core.atomic import write_bytes_atomic


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path | str, dpi: int = 110) -> Path:
    """Tight layout, write the PNG atomically (parent folders made; a link at `path` is replaced,
    never written through), close the figure."""
    plt = pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())

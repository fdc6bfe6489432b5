"""A blind model's frame decision, outside the network (NumPy only: no torch here).

The head's evidence is an image's pooled features (N x width, all >= 0). Exported graphs take it
as the input `evidence` (rows < 0: decide from this image, the default) and give each image's own
as the output `tile_evidence`; tiles of one frame share one decision by running on the mean of
their evidence (`combine_evidence`). The network side is toolkit.core.models.head.
"""

from __future__ import annotations

import numpy as np

from toolkit.core.errors import DtkError

OWN_EVIDENCE = -1.0  # a negative evidence row means "decide from this batch item itself"
EVIDENCE_INPUT, EVIDENCE_OUTPUT = "evidence", "tile_evidence"  # their names in ONNX graphs and engines

# A blur the user knows (`--known-blur K`): the graphs' input `known_blur` (N x 1 float), a class of
# the decision (toolkit.core.models.fastwiener.CLASSES: pass, k7, k11), or DECIDE (the default) to
# let the head decide. k3 is a pass: its inverse gains nothing measurable (docs/known-blur.md).
# A model that decides by expected gain (config `gain_head`, round 4) was fitted on each frame's
# evidence as one large tile gives it: such a frame decides in its own pass (engines.tiled), with
# no head-only passes over a 256x448 grid.
WHOLE_FRAME_KEY = "gain_head"


def decides_whole_frame(architecture: dict | None) -> bool:
    """Does a model of this architecture (a checkpoint's or ONNX file's config) decide a frame on
    its own evidence?"""
    return bool((architecture or {}).get(WHOLE_FRAME_KEY, False))


KNOWN_INPUT = "known_blur"
DECIDE = -1.0
KNOWN_CLASS = {"k3": 0.0, "k7": 1.0, "k11": 2.0}
KNOWN_BLURS = tuple(KNOWN_CLASS)


def check_known_blur_name(blur: str | None) -> None:
    """DtkError unless `blur` is None or a blur the network can be told (KNOWN_BLURS); whether a
    model can be told is the runner's (engines.tiled.check_known_blur)."""
    if blur is not None and (not isinstance(blur, str) or blur not in KNOWN_CLASS):
        raise DtkError(f"unknown blur {blur!r} for --known-blur: choose one of {', '.join(KNOWN_CLASS)}")


def known_rows(blur: str | None, n: int) -> np.ndarray | None:
    """The `known_blur` rows (n x 1 float32) for a blur the user knows; None for none."""
    if blur is None:
        return None
    return np.full((n, 1), KNOWN_CLASS[blur], dtype=np.float32)


def combine_evidence(tiles: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """One frame's evidence from its tiles' (T x width): their mean, weighted by `weights` (T)."""
    tiles = np.asarray(tiles, dtype=np.float64)
    w = np.ones(len(tiles)) if weights is None else np.asarray(weights, dtype=np.float64)
    return (w[:, None] * tiles).sum(axis=0) / w.sum()

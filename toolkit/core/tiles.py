"""Native resolution: cut a frame into overlapping network-size tiles and stitch their interiors.

A frame of H x W goes through a network of fixed input size T (256 x 448) like this:

- **Pad** (bottom and right, reflect-101 as the blur's borders; replicate for a 1-pixel side) to
  H' = max(T_h, H rounded up to a multiple of 8) and likewise W'. A frame whose sides are
  multiples of 8 and at least T is not padded at all: its edges see exactly the border a
  whole-frame pass sees.
- **Tiles** of T along each axis, the first at 0 and the last at the end, spread evenly in steps
  that are multiples of 8 (`ALIGN`: the network's pixel-unshuffle and two stride-2 levels see the
  same pixel phases in a tile as in a whole-frame pass) and no longer than T - overlap.
- **Stitch**: between two neighbouring tiles the cut is in the middle of their overlap, so each
  tile contributes only pixels at least overlap/2 from its inner edges; frame edges come from the
  tile at that edge. Then the padding is cropped off.

Nothing is ever resized. How the default overlap was chosen: docs/native.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from toolkit import FRAME_SIZE
from toolkit.core.errors import DtkError

ALIGN = 8  # tile origins and padded sizes are multiples of this (the network's total stride)
DEFAULT_OVERLAP = 64  # pixels shared by neighbouring tiles: 2 x the network's reach (docs/native.md)


def check_overlap(overlap: int, tile: Sequence[int] = FRAME_SIZE) -> int:
    """The overlap if it is a multiple of ALIGN in [0, smallest tile side / 2]; else DtkError."""
    limit = min(tile) // 2
    if not isinstance(overlap, (int, np.integer)) or overlap < 0 or overlap > limit or overlap % ALIGN:
        raise DtkError(f"--tile-overlap must be a multiple of {ALIGN} from 0 to {limit} pixels, "
                       f"got {overlap}")
    return int(overlap)


def fitting_overlap(tile: Sequence[int], overlap: int = DEFAULT_OVERLAP) -> int:
    """`overlap`, or the largest valid one below it for a small tile (e.g. a 64x64 test network)."""
    return min(overlap, min(tile) // 2 // ALIGN * ALIGN)


def padded_length(length: int, tile: int) -> int:
    """The axis length after padding: at least `tile`, a multiple of ALIGN."""
    if length < 1:
        raise DtkError(f"a frame side of {length} pixels cannot be deblurred")
    return max(tile, -(-length // ALIGN) * ALIGN)


def axis_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one padded axis (length >= tile, both multiples of ALIGN)."""
    if length <= tile:
        return [0]
    span, max_step = length - tile, tile - overlap
    n = -(-span // max_step) + 1
    step = -(-span // ((n - 1) * ALIGN)) * ALIGN  # even spread, a multiple of ALIGN, <= max_step
    return [min(i * step, span) for i in range(n)]


def axis_cuts(origins: Sequence[int], tile: int, length: int) -> list[tuple[int, int]]:
    """[start, stop) of the pixels each tile contributes: cuts in the middle of each overlap."""
    bounds = [0] + [(origins[i + 1] + origins[i] + tile) // 2 for i in range(len(origins) - 1)] + [length]
    return [(bounds[i], bounds[i + 1]) for i in range(len(origins))]


@dataclass(frozen=True)
class Tile:
    """One network input: its origin in the padded frame and the region of it that is kept."""

    y: int
    x: int
    keep: tuple[int, int, int, int]  # y0, y1, x0, x1 in padded-frame coordinates

    def inner(self) -> tuple[slice, slice]:
        """The kept region in tile coordinates."""
        y0, y1, x0, x1 = self.keep
        return slice(y0 - self.y, y1 - self.y), slice(x0 - self.x, x1 - self.x)


@dataclass(frozen=True)
class TileGrid:
    """How one frame is cut: its size, padded size, tile size, tiles (row-major)."""

    height: int
    width: int
    padded: tuple[int, int]
    tile: tuple[int, int]
    tiles: tuple[Tile, ...]

    def __len__(self) -> int:
        return len(self.tiles)

    @property
    def overlap_share(self) -> float:
        """Share of the network's pixels spent on overlap and padding (0: none)."""
        return 1.0 - self.height * self.width / (len(self.tiles) * self.tile[0] * self.tile[1])


def tile_grid(height: int, width: int, tile: Sequence[int] = FRAME_SIZE,
              overlap: int = DEFAULT_OVERLAP) -> TileGrid:
    """The tiles of an H x W frame (see the module doc)."""
    th, tw = int(tile[0]), int(tile[1])
    if th % ALIGN or tw % ALIGN:
        raise DtkError(f"tile size {th}x{tw}: both sides must be multiples of {ALIGN}")
    check_overlap(overlap, (th, tw))
    ph, pw = padded_length(height, th), padded_length(width, tw)
    ys, xs = axis_origins(ph, th, overlap), axis_origins(pw, tw, overlap)
    ycut, xcut = axis_cuts(ys, th, ph), axis_cuts(xs, tw, pw)
    tiles = tuple(Tile(y, x, (*yc, *xc)) for y, yc in zip(ys, ycut, strict=True)
                  for x, xc in zip(xs, xcut, strict=True))
    return TileGrid(height, width, (ph, pw), (th, tw), tiles)


def evidence_tiles(grid: TileGrid) -> list[tuple[int, int]]:
    """Origins of the tiles a frame's decision is gathered from: the grid without overlap (each
    pixel seen about once), in padded-frame coordinates."""
    (ph, pw), (th, tw) = grid.padded, grid.tile
    return [(y, x) for y in axis_origins(ph, th, 0) for x in axis_origins(pw, tw, 0)]


def pad_frame(image: np.ndarray, padded: tuple[int, int]) -> np.ndarray:
    """H x W x C -> padded H' x W' x C, bottom and right: reflect-101, or replicate for a side of
    one pixel (no reflection exists). Returns `image` itself when no padding is needed."""
    h, w = image.shape[:2]
    dh, dw = padded[0] - h, padded[1] - w
    if dh == 0 and dw == 0:
        return image
    out = image
    for axis, (n, d) in enumerate(((h, dh), (w, dw))):
        if d == 0:
            continue
        widths = [(0, 0)] * image.ndim
        widths[axis] = (0, d)
        out = np.pad(out, widths, mode="reflect" if n > 1 else "edge")  # NumPy's reflect is reflect-101
    return out

"""Native resolution: cut a frame into overlapping network-size tiles and stitch their interiors.

Which tile T: a runner of fixed input sizes (a TensorRT engine's profiles, a graph exported at one
size) offers a few; one that takes any multiple of ALIGN (ONNX Runtime, OpenVINO, torch on a graph
exported with dynamic H and W) any. `choose_tile` picks it per frame under a pixel budget:

- **any size**: the whole frame (its sides rounded up to ALIGN only) when it fits the budget: one
  pass, exactly a whole-frame pass; else the tile of the fewest tiles that fit, sides rounded up to
  multiples of TILE_STEP (few sizes, so graphs and CUDA graphs are reused). A one-tile frame is
  never enlarged further: a tile larger than the frame pads it, and the padding changes its last
  rows (up to 12 grey levels measured on the shipped model's deblurred rows);
- **fixed sizes**: the largest no larger than the frame (so no padding beyond ALIGN) within the
  budget; the smallest when none is.

A frame of H x W then goes through a network of input size T (256 x 448 before large tiles) like this:

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

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from toolkit.core.constants import FRAME_SIZE
from toolkit.core.errors import DtkError

ALIGN = 8  # tile origins and padded sizes are multiples of this (the network's total stride)
DEFAULT_OVERLAP = 64  # pixels shared by neighbouring tiles: 2 x the network's reach (docs/native.md)
TILE_STEP = 64  # sides of the tiles of a frame cut in several are multiples of this (few sizes)
ANY_SIZE: tuple[tuple[int, int], ...] = ()  # a runner's input sizes when it takes any multiple of ALIGN


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
    """The tiles of an H x W frame (see the module doc); the overlap matters (and is checked
    against the tile) only where the frame takes more than one tile."""
    th, tw = int(tile[0]), int(tile[1])
    if th % ALIGN or tw % ALIGN or th < ALIGN or tw < ALIGN:
        raise DtkError(f"tile size {th}x{tw}: both sides must be multiples of {ALIGN}")
    ph, pw = padded_length(height, th), padded_length(width, tw)
    if ph > th or pw > tw:
        check_overlap(overlap, (th, tw))
    ys, xs = axis_origins(ph, th, overlap), axis_origins(pw, tw, overlap)
    ycut, xcut = axis_cuts(ys, th, ph), axis_cuts(xs, tw, pw)
    tiles = tuple(Tile(y, x, (*yc, *xc)) for y, yc in zip(ys, ycut, strict=True)
                  for x, xc in zip(xs, xcut, strict=True))
    return TileGrid(height, width, (ph, pw), (th, tw), tiles)


def _side(length: int, count: int, overlap: int) -> int:
    """The tile side that cuts a padded axis of `length` into `count` tiles overlapping by
    `overlap`: the whole axis for one; else a multiple of TILE_STEP (at least 2 x overlap and
    TILE_STEP), never longer than the axis."""
    if count == 1:
        return length
    side = -(-(length + (count - 1) * overlap) // count)
    side = max(-(-side // TILE_STEP) * TILE_STEP, 2 * overlap, TILE_STEP)
    return min(side, length)


@functools.lru_cache(maxsize=256)
def large_tile(height: int, width: int, max_pixels: int, overlap: int = DEFAULT_OVERLAP,
               smallest: tuple[int, int] = FRAME_SIZE) -> tuple[int, int]:
    """The tile (H, W) of an H x W frame for a runner that takes any multiple of ALIGN: the whole
    frame (padded as `tile_grid` pads it for a tile of `smallest`: sides rounded up to ALIGN, a
    side shorter than `smallest`'s to it, as before large tiles) when it holds at most
    `max_pixels`; else the tile of the fewest tiles of at most `max_pixels` each (then the fewest
    network pixels). DtkError when no tile of at least TILE_STEP x TILE_STEP fits."""
    ph, pw = padded_length(height, smallest[0]), padded_length(width, smallest[1])
    if ph * pw <= max_pixels:
        return ph, pw
    best: tuple[int, int, int, int] | None = None  # tiles, network pixels, tile H, tile W
    for ny in range(1, ph // ALIGN + 1):
        th = _side(ph, ny, overlap)
        nx = next((n for n in range(1, pw // ALIGN + 1) if _side(pw, n, overlap) * th <= max_pixels), None)
        if nx is not None:
            tw = _side(pw, nx, overlap)
            grid = tile_grid(ph, pw, (th, tw), overlap)
            key = (len(grid), len(grid) * th * tw, th, tw)
            best = key if best is None or key < best else best
        if th == min(ph, max(2 * overlap, TILE_STEP)):
            break  # the tile cannot get shorter
    if best is None:
        raise DtkError(f"--max-tile-pixels {max_pixels}: no tile of a {height}x{width} frame fits "
                       f"(the smallest is {TILE_STEP}x{TILE_STEP} with the overlap of {overlap} px on both "
                       "sides); give a larger budget")
    return best[2], best[3]


def fixed_tile(height: int, width: int, sizes: Sequence[tuple[int, int]],
               max_pixels: int | None = None) -> tuple[int, int]:
    """Among a runner's fixed input sizes: the largest (by area) no larger than the frame (sides
    rounded up to ALIGN) and within `max_pixels` (None: any); the smallest when none is."""
    ph, pw = padded_length(height, ALIGN), padded_length(width, ALIGN)
    sizes = sorted({(int(h), int(w)) for h, w in sizes}, key=lambda s: (s[0] * s[1], s))
    if not sizes:
        raise DtkError("the runner declares no input size")
    fits = [s for s in sizes
            if s[0] <= ph and s[1] <= pw and (max_pixels is None or s[0] * s[1] <= max_pixels)]
    return fits[-1] if fits else sizes[0]


def choose_tile(height: int, width: int, sizes: Sequence[tuple[int, int]], max_pixels: int,
                overlap: int = DEFAULT_OVERLAP, smallest: tuple[int, int] = FRAME_SIZE) -> tuple[int, int]:
    """The tile of an H x W frame for a runner taking `sizes` (ANY_SIZE: any multiple of ALIGN,
    frames padded to at least `smallest`; see the module doc) under a budget of `max_pixels` per
    tile."""
    if tuple(sizes) == ANY_SIZE:
        return large_tile(int(height), int(width), int(max_pixels), int(overlap),
                          (int(smallest[0]), int(smallest[1])))
    return fixed_tile(height, width, sizes, max_pixels)


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

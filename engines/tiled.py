"""Deblur frames at their own size through a runner: tiles of the sizes it takes, one decision per
frame, stitched interiors (the grid and the tile choice: toolkit.core.tiles).

For a list of frames (H x W x 3 uint8, any sizes):

0. Tiles: each frame's tile comes from the sizes the runner takes (`Runner.input_sizes`) under a
   pixel budget (`Tiling.max_tile_pixels`, default `default_tile_pixels()`: a whole 1080p frame
   where the memory is there): a runner of any size runs a frame that fits as one tile, exactly a
   whole-frame pass; a larger frame, or a runner of fixed sizes, in the fewest tiles that fit.
1. Decide (runners that `takes_evidence`, frames the 256x448 grid cuts in more than one tile):
   the head runs over each frame's evidence tiles (that grid without overlap, as before large
   tiles), their evidence is averaged (`combine_evidence`) and every tile of the frame, large or
   not, is run with that one frame evidence, so neighbouring tiles cannot disagree about the blur
   and the frame is decided at the thresholds the model calibrated for such frames
   (`_decision_grids`). A frame of one 256x448 tile decides on itself in the same pass.
2. Deblur: tiles of one size go through `runner.infer` together, at most `batch` a call and at
   most the budget's pixels (tiles of several frames share a call); only the call's tiles are in
   memory as float32, never more.
3. Stitch: each tile's kept region is converted to uint8 (core.convert's rule) straight into
   the frame's output, which is cropped to the frame's size.

A decided frame's middle tile runs first: when the runner gives it back bit for bit (a pass is
exactly the input; a deblurred tile with any texture never is, and fp16/bf16 runners never give
a bit-exact pass), the frame's decision was pass and its other tiles are not run: the frame
itself is its output. A frame in one large tile costs its evidence and one pass either way; it
is counted as passed when it comes back bit for bit.

With a blur the user knows (`known_blur`: k3, k7 or k11; toolkit.core.evidence), nothing is
decided: no head-only passes, every tile runs told that class, and k3 frames (a pass) are their
own output without a pass of the network.

A batch whose output is not its input's shape or holds NaN/inf fails the frames it touched.

Where the work happens: on the host (NumPy) for CPU runners; for a runner that
`accepts_device_tensors` (CUDA) each padded frame is copied to the GPU once as uint8 and cut,
converted, deblurred and stitched there, and only the uint8 result comes back: per tile, host
NumPy conversions cost more than the GPU's whole network pass. Both paths round alike
(core.convert's rule: clip, x255, round half to even).
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.base import Runner
from engines.machine import available_memory_bytes
from toolkit.core.bounds import check_number
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.convert import to_host, unit_to_uint8, unit_to_uint8_tensor
from toolkit.core.errors import DtkError
from toolkit.core.evidence import (
    KNOWN_CLASS,
    OWN_EVIDENCE,
    check_known_blur_name,
    combine_evidence,
    known_rows,
)
from toolkit.core.tiles import (
    ALIGN,
    ANY_SIZE,
    DEFAULT_OVERLAP,
    TILE_STEP,
    Tile,
    TileGrid,
    check_overlap,
    choose_tile,
    evidence_tiles,
    pad_frame,
    tile_grid,
)

DEFAULT_TILE_PIXELS = 1088 * 1920  # a whole 1080p frame in one pass
BYTES_PER_PIXEL = 1000  # host memory a pixel of one call takes (ONNX Runtime fp32: 0.85-0.95 KB measured)
MEMORY_SHARE = 0.5  # the most of the memory available at start that one call's tiles may take
MIN_TILE_PIXELS = TILE_STEP * TILE_STEP  # the smallest --max-tile-pixels


@functools.cache
def default_tile_pixels() -> int:
    """The pixels one runner call may hold by default: DEFAULT_TILE_PIXELS, less where half the
    memory available now (at BYTES_PER_PIXEL) holds fewer, never under one 256x448 tile. Decided
    once per process, so every frame of a run is cut alike."""
    available = available_memory_bytes()
    if available is None:
        return DEFAULT_TILE_PIXELS
    fits = int(available * MEMORY_SHARE / BYTES_PER_PIXEL)
    return max(FRAME_SIZE[0] * FRAME_SIZE[1], min(DEFAULT_TILE_PIXELS, fits))


def check_tile_pixels(pixels: int | None) -> None:
    """DtkError unless `pixels` (None: the default) is a whole number of at least MIN_TILE_PIXELS."""
    check_number("--max-tile-pixels", pixels, min=MIN_TILE_PIXELS, hint="pixels of one runner call, "
                 "e.g. 921600 for a 1280x720 frame")
    if pixels is not None and int(pixels) != pixels:
        raise DtkError(f"--max-tile-pixels must be a whole number of pixels, got {pixels}")


@dataclass(frozen=True)
class Tiling:
    """How frames are cut: the overlap of neighbouring tiles, the pixel budget of one runner call
    (None: `default_tile_pixels()`), and `tile`: the smallest a frame is padded to (as before
    large tiles), and the one tile of a runner that declares no sizes, or of every runner with
    `fixed` (the 256x448 tiling before large tiles, for comparisons). `own_decision`: a frame in
    one large tile decides on its own evidence in that pass, no head-only passes (for a model
    calibrated on whole-frame evidence; the shipped model decides large frames otherwise then:
    `_decision_grids`)."""

    tile: tuple[int, int] = FRAME_SIZE
    overlap: int = DEFAULT_OVERLAP
    max_tile_pixels: int | None = None
    fixed: bool = False
    own_decision: bool = False

    def __post_init__(self) -> None:
        check_overlap(self.overlap, self.tile)
        check_tile_pixels(self.max_tile_pixels)

    @property
    def budget(self) -> int:
        """The most pixels of one tile, and of one call of large tiles."""
        return int(self.max_tile_pixels or default_tile_pixels())

    def grid(self, height: int, width: int, sizes: Sequence[tuple[int, int]] | None = None) -> TileGrid:
        """The tiles of an H x W frame for a runner taking `sizes` (`Runner.input_sizes()`; None:
        this tiling's fixed `tile`)."""
        tile = self.tile if sizes is None or self.fixed else choose_tile(height, width, sizes, self.budget,
                                                                         self.overlap, self.tile)
        return tile_grid(height, width, tile, self.overlap)

    def per_call(self, tile: tuple[int, int], batch: int) -> int:
        """Tiles of this size in one runner call: at most `batch`, and at most the budget's pixels
        (or `batch` tiles of `self.tile` where those hold more: --batch keeps its meaning for
        small tiles)."""
        pixels = max(self.budget, batch * self.tile[0] * self.tile[1])
        return max(1, min(batch, pixels // (tile[0] * tile[1])))


def batch_problem(out: Any, input_shape: Sequence[int]) -> str | None:
    """Why a runner's output batch (NumPy, or a torch tensor) must not be used (None: fine): not
    the input batch's shape (N x 3 x H x W) or not all finite."""
    shape, expected = tuple(int(d) for d in out.shape), tuple(int(d) for d in input_shape)
    if shape != expected:
        return f"model output shape {shape} is not its input's {expected}; the model does not fit dtk"
    if isinstance(out, np.ndarray):
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    else:
        import torch  # a device tensor: torch is loaded already

        bad = int((~torch.isfinite(out)).sum())
    if bad:
        return f"model output has {bad} non-finite value(s) (NaN/inf); nothing written for this batch"
    return None


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _HostOps:
    """Tiles as NumPy arrays (CPU runners)."""

    def upload(self, frame: np.ndarray) -> np.ndarray:
        return frame

    def pad_upload(self, frame: Any, padded: tuple[int, int]) -> Any:
        """A frame (H x W x 3 uint8), padded to `padded` (core.tiles.pad_frame) where tiles are cut."""
        return self.upload(pad_frame(np.asarray(frame, dtype=np.uint8), padded))

    def tile(self, padded: np.ndarray, y: int, x: int, tile: tuple[int, int]) -> np.ndarray:
        """3 x th x tw float32 on the 0..1 scale from a padded H x W x 3 uint8 frame."""
        th, tw = tile
        return padded[y:y + th, x:x + tw].transpose(2, 0, 1).astype(np.float32) * (1.0 / 255.0)

    def stack(self, tiles: list) -> np.ndarray:
        return np.stack(tiles)

    def output(self, y: Any) -> np.ndarray:
        return np.asarray(to_host(y))

    def empty(self, shape: tuple[int, int]) -> np.ndarray:
        return np.empty((*shape, 3), dtype=np.uint8)

    def paste(self, out: np.ndarray, keep: tuple[int, int, int, int], chw: np.ndarray, inner) -> None:
        y0, y1, x0, x1 = keep
        out[y0:y1, x0:x1] = unit_to_uint8(chw[:, inner[0], inner[1]]).transpose(1, 2, 0)

    def download(self, out: np.ndarray, height: int, width: int) -> np.ndarray:
        return np.ascontiguousarray(out[:height, :width])

    def same(self, y: Any, x: Any) -> bool:
        """Is the runner's output `y` bit for bit its input `x` (a pass)?"""
        return bool(np.array_equal(np.asarray(y), np.asarray(x)))

    def textured(self, tile: Any) -> bool:
        """Would any deblurring change this 3 x h x w tile (0..1 scale)? Not when it is flat, or
        all at the ends of the scale (an output clamp keeps those)."""
        t = np.asarray(tile)
        inside = (t > 0) & (t < 1)
        return bool(inside.any() and float(np.ptp(t[inside])) >= 2.0 / 255.0)


class _DeviceOps(_HostOps):
    """Tiles as torch tensors on the runner's GPU: one uint8 upload and download per frame."""

    def __init__(self, device: Any):
        import torch

        self.torch, self.device = torch, device

    def upload(self, frame: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, non_blocking=True)

    def pad_upload(self, frame: Any, padded: tuple[int, int]):
        """A NumPy frame is padded on the host and copied once; a uint8 tensor already on the device
        is padded there, by gathering the rows and columns pad_frame's rule picks (no host copy)."""
        if not self.torch.is_tensor(frame):
            return super().pad_upload(frame, padded)
        frame = frame.to(self.device)
        for axis, size in enumerate(padded):
            if frame.shape[axis] != size:
                index = pad_frame(np.arange(frame.shape[axis])[:, None], (size, 1))[:, 0]
                frame = frame.index_select(axis, self.torch.from_numpy(index).to(self.device))
        return frame

    def tile(self, padded, y: int, x: int, tile: tuple[int, int]):
        th, tw = tile
        return padded[y:y + th, x:x + tw].permute(2, 0, 1).float().mul_(1.0 / 255.0)

    def stack(self, tiles: list):
        return self.torch.stack(tiles)

    def output(self, y: Any):
        return y if self.torch.is_tensor(y) else self.torch.from_numpy(np.asarray(y)).to(self.device)

    def empty(self, shape: tuple[int, int]):
        return self.torch.empty((*shape, 3), dtype=self.torch.uint8, device=self.device)

    def paste(self, out, keep: tuple[int, int, int, int], chw, inner) -> None:
        y0, y1, x0, x1 = keep
        out[y0:y1, x0:x1] = unit_to_uint8_tensor(chw[:, inner[0], inner[1]]).permute(1, 2, 0)

    def download(self, out, height: int, width: int) -> np.ndarray:
        return np.ascontiguousarray(out[:height, :width].cpu().numpy())

    def same(self, y: Any, x: Any) -> bool:
        return bool(self.torch.equal(y, x))

    def textured(self, tile: Any) -> bool:
        inside = tile[(tile > 0) & (tile < 1)]
        return bool(inside.numel() and float(inside.max() - inside.min()) >= 2.0 / 255.0)


class _DeviceResultOps(_DeviceOps):
    """_DeviceOps whose stitched frames stay on the device (uint8 tensors)."""

    def download(self, out, height: int, width: int):
        return out[:height, :width].contiguous()


def _ops(runner: Runner, on_device: bool = False) -> _HostOps:
    """Where a runner's tiles live: on its GPU when it takes device tensors, else on the host
    (`on_device`: the stitched frames stay on its GPU too)."""
    if not getattr(runner, "accepts_device_tensors", False):
        return _HostOps()
    import torch

    device = getattr(runner, "device", None)
    device = getattr(device, "device", device)  # TensorRT's TorchCudaDevice holds its torch.device
    if not isinstance(device, torch.device):
        device = torch.device("cuda", getattr(runner, "device_id", 0))
    return _DeviceResultOps(device) if on_device else _DeviceOps(device)


@dataclass
class TiledResult:
    """Per frame: the deblurred H x W x 3 uint8 image, or why it failed; and the work done."""

    images: list[np.ndarray | None]
    failures: list[str | None]
    tiles: int = 0  # network passes of the deblurring path
    evidence_tiles: int = 0  # network passes of the head only
    passed_frames: int = 0  # frames whose (probe or only) tile came back as its input: a pass
    tiles_per_frame: list[int] = field(default_factory=list)
    tile_sizes: dict[str, int] = field(default_factory=dict)  # "HxW" -> network passes of that size


def _sizes(runner: Runner) -> Sequence[tuple[int, int]] | None:
    """The sizes the runner takes (`Runner.input_sizes`); None for an object of the runner
    protocol that does not say (it takes `Tiling.tile`)."""
    declared = getattr(runner, "input_sizes", None)
    return declared() if declared is not None else None


def _grids(runner: Runner, images: Sequence[Any], tiling: Tiling) -> list[TileGrid]:
    """Each frame's tiles, of the sizes the runner takes."""
    sizes = _sizes(runner)
    return [tiling.grid(int(im.shape[0]), int(im.shape[1]), sizes) for im in images]


def _decision_grids(runner: Runner, images: Sequence[Any], tiling: Tiling,
                    grids: Sequence[TileGrid]) -> list[TileGrid]:
    """The grids each frame's decision is gathered over: the `tiling.tile` (256x448) grid, as
    before large tiles, wherever the runner takes that size; else the frame's own tiles.

    A frame that grid cuts in several tiles is decided on their evidence averaged, given to the
    network, which decides such frames at the thresholds calibrated for them (`gate_*_native`);
    deciding a large frame on its own evidence in its one pass would use the 256x448 thresholds
    instead and decide some frames otherwise (10 of 96 1280x720 photos, sharp and k3/k7/k11-
    blurred, by up to 178 grey levels, measured for issue 41); nor is a whole frame's own evidence
    its tiles' mean (given as the frame's, it decided 47 of 272 photos at 720p and 1080p otherwise).
    The evidence costs head-only passes (~0.35 of a network pass per pixel, on the grid's
    overlapping tiles); the frame still runs in its large tile(s), told it. `Tiling.own_decision`
    skips them (for a model calibrated on whole-frame evidence), as does a runner that
    `decides_whole_frame` (a model deciding by expected gain, fitted on such evidence)."""
    sizes = _sizes(runner)
    if tiling.own_decision or getattr(runner, "decides_whole_frame", False):
        return list(grids)
    if sizes is None or tuple(sizes) == ANY_SIZE or tuple(tiling.tile) in {tuple(s) for s in sizes}:
        return [tiling.grid(int(im.shape[0]), int(im.shape[1])) for im in images]
    return list(grids)


def _calls(jobs: Iterator[tuple], size_of: Callable[[tuple], tuple[int, int]], tiling: Tiling,
           batch: int) -> Iterator[list]:
    """Runner calls from jobs: tiles of one size (`size_of(job)`) together (a call is one array),
    `tiling.per_call` of them at most; in the order of each size's first job."""
    groups: dict[tuple[int, int], list] = {}
    for job in jobs:
        groups.setdefault(tuple(size_of(job)), []).append(job)
    for tile, group in groups.items():
        yield from _chunks(iter(group), tiling.per_call(tile, batch))


PROBE_SIZE = (128, 224)  # a frame's probe where its tiles are large (any-size runners): 1/32 of 720p
PROBE_RATIO = 8  # a separate probe where a frame's middle tile holds this many probes' pixels or more


def _probe(grid: TileGrid, sizes: Sequence[tuple[int, int]] | None) -> tuple[Tile, tuple[int, int]] | None:
    """(tile, size): a small tile from the middle of a frame whose tiles are large (PROBE_RATIO
    probes' pixels or more), the probe to run first (a blurred frame pays it on top: at most 1/8
    of a pass): PROBE_SIZE for a runner of any size, else its smallest size; None where the
    frame's middle tile is small enough to be the probe itself (its output kept), or no smaller
    size fits the frame."""
    if sizes is None:
        return None
    size = PROBE_SIZE if tuple(sizes) == ANY_SIZE else min(sizes, key=lambda s: s[0] * s[1])
    (ph, pw), (th, tw) = grid.padded, grid.tile
    if th * tw < PROBE_RATIO * size[0] * size[1] or size[0] > ph or size[1] > pw:
        return None
    y, x = (ph - size[0]) // 2 // ALIGN * ALIGN, (pw - size[1]) // 2 // ALIGN * ALIGN
    return Tile(y, x, (y, y + size[0], x, x + size[1])), (int(size[0]), int(size[1]))


def frame_evidence(runner: Runner, padded: Sequence[Any], grids: Sequence[TileGrid],
                   batch: int, ops: _HostOps | None = None,
                   tiling: Tiling | None = None) -> tuple[dict[int, np.ndarray], int]:
    """{frame index: its evidence} for the frames of more than one tile; and head passes made.
    `padded`: the padded frames (NumPy, or tensors on the runner's GPU with `ops`)."""
    ops = ops or _HostOps()
    jobs = [(i, y, x) for i, g in enumerate(grids) if len(g) > 1 for y, x in evidence_tiles(g)]
    per_frame: dict[int, list[np.ndarray]] = {}
    for chunk in _calls(iter(jobs), lambda job: grids[job[0]].tile, tiling or Tiling(), batch):
        x = ops.stack([ops.tile(padded[i], y, x0, grids[i].tile) for i, y, x0 in chunk])
        ev = np.asarray(runner.evidence(x), dtype=np.float32)
        for (i, _, _), row in zip(chunk, ev, strict=True):
            per_frame.setdefault(i, []).append(row)
    return {i: combine_evidence(np.stack(rows)) for i, rows in per_frame.items()}, len(jobs)


def frames_evidence(runner: Runner, images: Sequence[np.ndarray], tiling: Tiling = Tiling(),
                    batch: int = 8) -> np.ndarray:
    """N x width: each H x W x 3 uint8 frame's evidence as `deblur_frames` decides on it (its
    decision grid's tiles' evidence averaged; a frame of one tile: its own). For calibrating and
    fitting decisions."""
    grids = _decision_grids(runner, images, tiling, _grids(runner, images, tiling))
    padded = [pad_frame(np.asarray(im, dtype=np.uint8), g.padded)
              for im, g in zip(images, grids, strict=True)]
    evidence, _ = frame_evidence(runner, padded, grids, batch, tiling=tiling)
    single = [(i,) for i in range(len(images)) if i not in evidence]
    for chunk in _calls(iter(single), lambda job: grids[job[0]].tile, tiling, batch):
        x = np.stack([_HostOps().tile(padded[i], 0, 0, grids[i].tile) for i, in chunk])
        for (i,), row in zip(chunk, np.asarray(runner.evidence(x), dtype=np.float32), strict=True):
            evidence[i] = row
    return np.stack([evidence[i] for i in range(len(images))]).astype(np.float32)


def check_known_blur(runner: Runner, known_blur: str | None) -> None:
    """DtkError unless `runner` can be told `known_blur` (None: nothing to tell)."""
    if known_blur is None:
        return
    check_known_blur_name(known_blur)
    if not runner.takes_known_blur:
        raise DtkError(f"--known-blur {known_blur}: this model ({runner.describe().get('model')}) cannot be "
                       "told the blur (only a blind model with a decision input can: the shipped model, or "
                       "one exported again with `dtk export`)")


def deblur_frames(runner: Runner, images: Sequence[Any], tiling: Tiling = Tiling(), *,
                  batch: int = 8, on_tiles: Callable[[int], None] | None = None,
                  on_device: bool = False, known_blur: str | None = None) -> TiledResult:
    """Deblur H x W x 3 uint8 frames at their own size (see the module doc).

    `on_tiles(n)` is called after each runner call with the tiles it deblurred. For a runner that
    `accepts_device_tensors`, frames may be uint8 tensors on its GPU, and `on_device` keeps the
    results there (uint8 tensors): device in, device out, no host copy. `known_blur`: the blur
    every frame carries (k3, k7, k11), not decided."""
    check_known_blur(runner, known_blur)
    ops = _ops(runner, on_device)
    grids = _grids(runner, images, tiling)
    padded = [ops.pad_upload(im, g.padded) for im, g in zip(images, grids, strict=True)]
    evidence: dict[int, np.ndarray] = {}
    result = TiledResult([None] * len(images), [None] * len(images),
                         tiles_per_frame=[len(g) for g in grids])
    if known_blur is not None and KNOWN_CLASS[known_blur] == 0:  # told "pass": each frame is its output
        result.images = [ops.download(p, g.height, g.width) for p, g in zip(padded, grids, strict=True)]
        result.passed_frames = len(images)
        return result
    if runner.takes_evidence and known_blur is None:  # decided as before large tiles (_decision_grids)
        decisions = _decision_grids(runner, images, tiling, grids)
        frames = [p if d.padded == g.padded else ops.pad_upload(im, d.padded)
                  for im, p, g, d in zip(images, padded, grids, decisions, strict=True)]
        evidence, result.evidence_tiles = frame_evidence(runner, frames, decisions, batch, ops, tiling)
    outs = [ops.empty(g.padded) for g in grids]
    # probes first (a frame's decision was pass when its probe comes back bit for bit): a decided
    # frame's middle tile, or a small tile of its middle where its tiles are large (a passed frame
    # then costs a small pass, not a large one); a frame of one 256x448 tile decides in its own pass
    probes: dict[int, tuple[Tile, tuple[int, int], bool]] = {}  # frame -> (tile, size, its output kept)
    for i in evidence:
        small = _probe(grids[i], _sizes(runner))
        probes[i] = (*small, False) if small is not None else (
            grids[i].tiles[len(grids[i]) // 2], grids[i].tile, True)
    if known_blur is None:
        probes.update({i: (g.tiles[0], g.tile, True) for i, g in enumerate(grids) if len(g) == 1
                       and i not in evidence})
    passed: set[int] = set()
    sizes: Counter[str] = Counter()
    first = ((i, t, size, keep) for i, (t, size, keep) in probes.items())
    rest = ((i, t, grids[i].tile, True) for i, g in enumerate(grids) for t in g.tiles
            if not (i in probes and probes[i][2] and probes[i][0] is t))
    for chunk in itertools.chain(_calls(first, lambda job: job[2], tiling, batch),
                                 _calls(rest, lambda job: job[2], tiling, batch)):
        live = [job for job in chunk if result.failures[job[0]] is None and job[0] not in passed]
        if not live:
            continue
        tile_size = live[0][2]
        x = ops.stack([ops.tile(padded[i], t.y, t.x, tile_size) for i, t, _, _ in live])
        kwargs: dict[str, Any] = {}
        if known_blur is not None:
            kwargs["known"] = known_rows(known_blur, len(live))
        elif runner.takes_evidence:
            width = next(iter(evidence.values())).shape[-1] if evidence else None
            rows = [evidence.get(job[0]) for job in live]
            if width is not None:
                kwargs["evidence"] = np.stack([r if r is not None else np.full(width, OWN_EVIDENCE)
                                               for r in rows]).astype(np.float32)
        y = ops.output(runner.infer(x, **kwargs))
        result.tiles += len(live)
        sizes[f"{tile_size[0]}x{tile_size[1]}"] += len(live)
        problem = batch_problem(y, x.shape)
        if problem:
            for job in live:
                result.failures[job[0]] = problem
        else:
            for (i, t, _, keep), chw, tile in zip(live, y, x, strict=True):
                if keep:
                    ops.paste(outs[i], t.keep, chw, t.inner())
                if i in probes and probes[i][0] is t and ops.same(chw, tile) and ops.textured(tile):
                    passed.add(i)  # the frame's one decision was pass: its other tiles are its input
        if on_tiles is not None:
            on_tiles(len(live))
    for i, g in enumerate(grids):
        if result.failures[i] is None:
            source = padded[i] if i in passed else outs[i]
            result.images[i] = ops.download(source, g.height, g.width)
    result.passed_frames = len(passed)
    result.tile_sizes = dict(sizes)
    return result

"""Deblur frames at their own size through a runner of fixed input size: tiles, one decision per
frame, stitched interiors (the grid: toolkit.core.tiles).

For a list of frames (H x W x 3 uint8, any sizes):

1. Decide (runners that `takes_evidence`, frames of more than one tile): the head runs over each
   frame's evidence tiles (its grid without overlap), their evidence is averaged
   (`combine_evidence`) and every tile of the frame is run with that one frame evidence, so
   neighbouring tiles cannot disagree about the blur. A frame of one tile decides on itself in
   the same pass.
2. Deblur: the tiles of all the frames go through `runner.infer` in batches of `batch` (tiles
   of several frames share a batch); only the tile batch is in memory as float32, never a whole
   frame's activations.
3. Stitch: each tile's kept region is converted to uint8 (core.convert's rule) straight into
   the frame's output, which is cropped to the frame's size.

A decided frame's middle tile runs first: when the runner gives it back bit for bit (a pass is
exactly the input; a deblurred tile with any texture never is, and fp16/bf16 runners never give
a bit-exact pass), the frame's decision was pass and its other tiles are not run: the frame
itself is its output (a sharp 1280x720 frame costs 1 tile instead of 16).

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

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.base import Runner
from toolkit import FRAME_SIZE
from toolkit.core.convert import to_host, unit_to_uint8, unit_to_uint8_tensor
from toolkit.core.errors import DtkError
from toolkit.core.evidence import (
    KNOWN_CLASS,
    OWN_EVIDENCE,
    check_known_blur_name,
    combine_evidence,
    known_rows,
)
from toolkit.core.tiles import DEFAULT_OVERLAP, TileGrid, check_overlap, evidence_tiles, pad_frame, tile_grid


@dataclass(frozen=True)
class Tiling:
    """How frames are cut: the network's input size and the overlap of neighbouring tiles."""

    tile: tuple[int, int] = FRAME_SIZE
    overlap: int = DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        check_overlap(self.overlap, self.tile)

    def grid(self, height: int, width: int) -> TileGrid:
        return tile_grid(height, width, self.tile, self.overlap)


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
    passed_frames: int = 0  # frames of several tiles whose probe tile came back as its input
    tiles_per_frame: list[int] = field(default_factory=list)


def frame_evidence(runner: Runner, padded: Sequence[Any], grids: Sequence[TileGrid],
                   batch: int, ops: _HostOps | None = None) -> tuple[dict[int, np.ndarray], int]:
    """{frame index: its evidence} for the frames of more than one tile; and head passes made.
    `padded`: the padded frames (NumPy, or tensors on the runner's GPU with `ops`)."""
    ops = ops or _HostOps()
    jobs = [(i, y, x) for i, g in enumerate(grids) if len(g) > 1 for y, x in evidence_tiles(g)]
    per_frame: dict[int, list[np.ndarray]] = {}
    for chunk in _chunks(iter(jobs), batch):
        x = ops.stack([ops.tile(padded[i], y, x0, grids[i].tile) for i, y, x0 in chunk])
        ev = np.asarray(runner.evidence(x), dtype=np.float32)
        for (i, _, _), row in zip(chunk, ev, strict=True):
            per_frame.setdefault(i, []).append(row)
    return {i: combine_evidence(np.stack(rows)) for i, rows in per_frame.items()}, len(jobs)


def frames_evidence(runner: Runner, images: Sequence[np.ndarray], tiling: Tiling = Tiling(),
                    batch: int = 8) -> np.ndarray:
    """N x width: each H x W x 3 uint8 frame's evidence as `deblur_frames` decides on it (its tiles'
    evidence averaged; a frame of one tile: its own). For calibrating and fitting decisions."""
    grids = [tiling.grid(int(im.shape[0]), int(im.shape[1])) for im in images]
    padded = [pad_frame(np.asarray(im, dtype=np.uint8), g.padded)
              for im, g in zip(images, grids, strict=True)]
    evidence, _ = frame_evidence(runner, padded, grids, batch)
    single = [i for i in range(len(images)) if i not in evidence]
    for chunk in _chunks(iter(single), batch):
        x = np.stack([_HostOps().tile(padded[i], 0, 0, grids[i].tile) for i in chunk])
        for i, row in zip(chunk, np.asarray(runner.evidence(x), dtype=np.float32), strict=True):
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
    grids = [tiling.grid(int(im.shape[0]), int(im.shape[1])) for im in images]
    padded = [ops.pad_upload(im, g.padded) for im, g in zip(images, grids, strict=True)]
    evidence: dict[int, np.ndarray] = {}
    result = TiledResult([None] * len(images), [None] * len(images),
                         tiles_per_frame=[len(g) for g in grids])
    if known_blur is not None and KNOWN_CLASS[known_blur] == 0:  # told "pass": each frame is its output
        result.images = [ops.download(p, g.height, g.width) for p, g in zip(padded, grids, strict=True)]
        result.passed_frames = len(images)
        return result
    if runner.takes_evidence and known_blur is None:
        evidence, result.evidence_tiles = frame_evidence(runner, padded, grids, batch, ops)
    outs = [ops.empty(g.padded) for g in grids]
    probes = {i: grids[i].tiles[len(grids[i]) // 2] for i in evidence}  # a middle tile of each decided frame
    passed: set[int] = set()
    rest = ((i, t) for i, g in enumerate(grids) for t in g.tiles if probes.get(i) is not t)
    for chunk in itertools.chain(_chunks(iter(probes.items()), batch), _chunks(rest, batch)):
        live = [(i, t) for i, t in chunk if result.failures[i] is None and i not in passed]
        if not live:
            continue
        x = ops.stack([ops.tile(padded[i], t.y, t.x, grids[i].tile) for i, t in live])
        kwargs: dict[str, Any] = {}
        if known_blur is not None:
            kwargs["known"] = known_rows(known_blur, len(live))
        elif runner.takes_evidence:
            width = next(iter(evidence.values())).shape[-1] if evidence else None
            rows = [evidence.get(i) for i, _ in live]
            if width is not None:
                kwargs["evidence"] = np.stack([r if r is not None else np.full(width, OWN_EVIDENCE)
                                               for r in rows]).astype(np.float32)
        y = ops.output(runner.infer(x, **kwargs))
        result.tiles += len(live)
        problem = batch_problem(y, x.shape)
        if problem:
            for i, _ in live:
                result.failures[i] = problem
        else:
            for (i, t), chw, tile in zip(live, y, x, strict=True):
                ops.paste(outs[i], t.keep, chw, t.inner())
                if probes.get(i) is t and ops.same(chw, tile) and ops.textured(tile):
                    passed.add(i)  # the frame's one decision was pass: its other tiles are its input
        if on_tiles is not None:
            on_tiles(len(live))
    for i, g in enumerate(grids):
        if result.failures[i] is None:
            source = padded[i] if i in passed else outs[i]
            result.images[i] = ops.download(source, g.height, g.width)
    result.passed_frames = len(passed)
    return result

"""Native resolution through tiles: equal to one whole-frame pass, no seams, one decision per frame;
large tiles (a frame in one pass where the runner takes any size) within one grey level of the
256x448 tiling."""

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.onnxruntime import OrtRunner
from engines.tiled import Tiling, deblur_frames, frame_evidence
from engines.torch import TorchRunner
from toolkit.core.convert import to_nchw, unit_to_uint8
from toolkit.core.demo import photo_mosaic
from toolkit.core.kernels import blur
from toolkit.core.tiles import evidence_tiles

ASSETS = Path(__file__).resolve().parents[2] / "toolkit" / "assets"
CKPT, ONNX = ASSETS / "dtk-unet.safetensors", ASSETS / "dtk-unet.onnx"
FRAME = (1080, 1280)  # >= 1080 rows of real photos at their own scale
FIXED = Tiling(fixed=True)  # the 256x448 tiling before large tiles, whatever the runner takes


@pytest.fixture(scope="module")
def torch_runner():
    torch.set_num_threads(2)
    with TorchRunner(CKPT) as runner:
        yield runner


@pytest.fixture(scope="module")
def blurred_k7():
    return blur(photo_mosaic(*FRAME), "k7")


def whole_frame_pass(runner, image: np.ndarray, tiling: Tiling = Tiling()) -> np.ndarray:
    """The network over the whole frame at once with the frame's decision (fully convolutional)."""
    ev, _ = frame_evidence(runner, [image], [tiling.grid(*image.shape[:2])], 8)
    y = runner.infer(to_nchw([image]), evidence=ev[0][None].astype(np.float32))
    return unit_to_uint8(y[0]).transpose(1, 2, 0)


def test_stitched_equals_one_whole_frame_pass_torch(torch_runner, blurred_k7):
    whole = whole_frame_pass(torch_runner, blurred_k7)
    res = deblur_frames(torch_runner, [blurred_k7], FIXED, batch=4)
    tiled = res.images[0]
    assert tiled.shape == blurred_k7.shape
    assert res.tiles == len(Tiling().grid(*FRAME)) > 1
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert diff.max() <= 1  # within one grey level everywhere, edges included
    assert (diff > 0).mean() < 1e-3  # and equal almost everywhere (float rounding at .5 only)


def test_stitched_equals_one_whole_frame_pass_onnxruntime(tmp_path: Path, torch_runner, blurred_k7):
    from training.export import export_onnx

    whole_model = export_onnx(torch_runner.model, tmp_path / "whole.onnx", height=FRAME[0], width=FRAME[1],
                              check=False)
    with OrtRunner(whole_model, device="cpu") as whole_runner, \
            OrtRunner(ONNX, device="cpu") as tile_runner:
        assert tile_runner.takes_evidence and whole_runner.takes_evidence
        ev, _ = frame_evidence(tile_runner, [blurred_k7], [Tiling().grid(*FRAME)], 8)
        y = whole_runner.infer(to_nchw([blurred_k7]), evidence=ev[0][None].astype(np.float32))
        whole = unit_to_uint8(y[0]).transpose(1, 2, 0)
        tiled = deblur_frames(tile_runner, [blurred_k7], FIXED, batch=4).images[0]
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


def _seam_steps(image: np.ndarray, tiling: Tiling) -> tuple[float, float]:
    """(largest step between neighbouring pixels across a tile cut, largest step elsewhere)."""
    g = tiling.grid(*image.shape[:2])
    rows = sorted({t.keep[0] for t in g.tiles} - {0})
    cols = sorted({t.keep[2] for t in g.tiles} - {0})
    f = image.astype(np.int32)
    dy = np.abs(np.diff(f, axis=0)).max(axis=(1, 2))  # dy[i]: between rows i and i+1
    dx = np.abs(np.diff(f, axis=1)).max(axis=(0, 2))
    seam = max([dy[r - 1] for r in rows] + [dx[c - 1] for c in cols])
    inside = max(np.delete(dy, [r - 1 for r in rows]).max(), np.delete(dx, [c - 1 for c in cols]).max())
    return float(seam), float(inside)


def test_no_seam_on_a_flat_frame(torch_runner):
    flat = np.full((720, 1280, 3), (90, 140, 200), dtype=np.uint8)
    out = deblur_frames(torch_runner, [flat], FIXED, batch=4).images[0]
    seam, inside = _seam_steps(out, Tiling())
    assert seam <= inside
    assert np.abs(out.astype(int) - flat.astype(int)).max() <= 1  # a flat frame stays flat


def test_no_seam_on_a_real_photo(torch_runner, blurred_k7):
    tiling = FIXED
    tiled = deblur_frames(torch_runner, [blurred_k7], tiling, batch=4).images[0]
    seam, inside = _seam_steps(tiled, tiling)
    assert seam <= inside
    # and across every cut the step is the whole-frame pass's step within 2 grey levels
    whole = whole_frame_pass(torch_runner, blurred_k7).astype(np.int32)
    g = tiling.grid(*FRAME)
    t = tiled.astype(np.int32)
    for r in sorted({tile.keep[0] for tile in g.tiles} - {0}):
        assert np.abs((t[r] - t[r - 1]) - (whole[r] - whole[r - 1])).max() <= 2
    for c in sorted({tile.keep[2] for tile in g.tiles} - {0}):
        assert np.abs((t[:, c] - t[:, c - 1]) - (whole[:, c] - whole[:, c - 1])).max() <= 2


class Recording:
    """Wraps a runner and records the evidence rows each deblurring call gets."""

    def __init__(self, runner):
        self.runner, self.rows = runner, []
        self.takes_evidence = runner.takes_evidence

    def evidence(self, batch):
        return self.runner.evidence(batch)

    def infer(self, batch, evidence=None):
        self.rows.extend(list(evidence))
        return self.runner.infer(batch, evidence=evidence)


def test_every_tile_of_a_frame_gets_the_frames_one_decision(torch_runner):
    sharp = photo_mosaic(512, 900)
    half = blur(sharp, "k7")
    half[:, :450] = blur(sharp, "k11")[:, :450]  # tiles alone would disagree about the blur
    small = blur(photo_mosaic(256, 448), "k7")  # one tile: decides on itself
    rec = Recording(torch_runner)
    res = deblur_frames(rec, [half, small], batch=3)
    n = len(Tiling().grid(512, 900))
    assert res.passed_frames == 0  # deblurred: every tile runs
    assert res.tiles == n + 1 and res.evidence_tiles == len(evidence_tiles(Tiling().grid(512, 900)))
    rows = np.stack(rec.rows)
    own = (rows < 0).all(axis=1)
    assert own.sum() == 1  # the one-tile frame: its own
    decided = rows[~own]
    assert len(decided) == n and (decided >= 0).all() and np.ptp(decided, axis=0).max() == 0  # one for all


class NaNRunner:
    takes_evidence = False

    def infer(self, batch, evidence=None):
        out = np.array(batch, dtype=np.float32)
        out[0, 0, 0, 0] = np.nan
        return out


def test_a_bad_tile_batch_fails_the_frames_it_touched_only():
    frames = [np.zeros((256, 448, 3), np.uint8), np.zeros((300, 500, 3), np.uint8)]
    res = deblur_frames(NaNRunner(), frames, batch=1)
    assert res.images[0] is None and "non-finite" in res.failures[0]
    assert res.images[1] is None  # every one of its batches holds a NaN too
    res = deblur_frames(NaNRunner(), frames, batch=8)
    assert all(im is None for im in res.images)


class OnDevice:
    """The torch runner declared as taking device tensors: the tiler's GPU path, run on the CPU."""

    accepts_device_tensors = True

    def __init__(self, runner):
        self.runner, self.device, self.takes_evidence = runner, torch.device("cpu"), runner.takes_evidence
        self.decides_whole_frame = runner.decides_whole_frame

    def evidence(self, batch):
        assert torch.is_tensor(batch)
        return self.runner.evidence(batch)

    def infer(self, batch, evidence=None):
        assert torch.is_tensor(batch)
        return self.runner.infer(batch, evidence=evidence)

    def input_sizes(self):
        return self.runner.input_sizes()


@pytest.mark.parametrize("tiling", [Tiling(), Tiling(max_tile_pixels=110_000), FIXED],
                         ids=["one-tile", "large-tiles", "256x448"])
def test_device_path_equals_the_host_path(torch_runner, tiling):
    frames = [blur(photo_mosaic(300, 700), "k11"), blur(photo_mosaic(256, 448), "k7")]
    host = deblur_frames(torch_runner, frames, tiling, batch=3)
    device = deblur_frames(OnDevice(torch_runner), frames, tiling, batch=3)
    assert (host.tiles, host.evidence_tiles, host.tile_sizes) == (device.tiles, device.evidence_tiles,
                                                                  device.tile_sizes)
    for a, b in zip(host.images, device.images, strict=True):
        assert isinstance(b, np.ndarray) and b.dtype == np.uint8
        np.testing.assert_array_equal(a, b)


class Rounding(Recording):
    """A runner whose output is its network's rounded to fp16, as an fp16 engine's is."""

    def infer(self, batch, evidence=None):
        return np.asarray(super().infer(batch, evidence)).astype(np.float16).astype(np.float32)


class Flat(Recording):
    """A runner that gives every tile back as it came (a stand-in for a network that deblurs a flat
    tile into itself)."""

    def infer(self, batch, evidence=None):
        super().infer(batch, evidence)
        return np.asarray(batch)


def test_a_passed_frame_runs_one_tile_and_is_its_input(torch_runner):
    sharp = photo_mosaic(512, 900)  # the gate passes a sharp frame
    k7 = blur(sharp, "k7")
    res = deblur_frames(torch_runner, [sharp, k7], FIXED, batch=4)
    n = len(Tiling().grid(512, 900))
    assert res.passed_frames == 1 and res.tiles == 1 + n  # the sharp frame's probe tile, every k7 tile
    assert np.array_equal(res.images[0], sharp) and not np.array_equal(res.images[1], k7)
    alone = deblur_frames(torch_runner, [k7], FIXED, batch=4)  # the k7 frame as it comes out alone
    assert np.array_equal(alone.images[0], res.images[1])

    # a runner whose pass is not bit-exact (fp16) never skips; one that returns any tile unchanged
    # skips only where the probe tile has texture: a flat middle tile proves nothing
    rounded = deblur_frames(Rounding(torch_runner), [sharp], batch=4)
    assert rounded.passed_frames == 0 and rounded.tiles == n
    flat = sharp.copy()
    g = Tiling().grid(512, 900)
    middle = g.tiles[len(g) // 2]
    flat[middle.y:middle.y + 256, middle.x:middle.x + 448] = 0  # black (an output clamp keeps it)
    res = deblur_frames(Flat(torch_runner), [flat, sharp], batch=4)
    assert res.passed_frames == 1 and res.tiles == 2 + n - 1  # both probes, then the flat frame's other tiles
    assert np.array_equal(res.images[0], flat) and np.array_equal(res.images[1], sharp)


LARGE = (520, 936)  # 9 tiles of 256x448; one pass as a large tile


@pytest.fixture(scope="module")
def ort_runner():
    with OrtRunner(ONNX, device="cpu", threads=2) as runner:
        yield runner


@pytest.fixture(scope="module")
def gate_runner(round3c_dir):
    """Round 3c's gated model (decides a large frame over its 256x448 grid, unlike the shipped one)."""
    with OrtRunner(round3c_dir / "r3c.onnx", device="cpu", threads=2) as runner:
        assert not runner.decides_whole_frame
        yield runner


def test_a_frame_that_fits_is_one_pass_within_one_grey_level_of_the_256x448_tiling(gate_runner):
    from toolkit.core.tiles import ANY_SIZE

    ort_runner = gate_runner
    assert ort_runner.input_sizes() == ANY_SIZE  # the shipped graph takes any multiple of 8
    sharp = photo_mosaic(*LARGE)
    k7 = blur(sharp, "k7")
    res = deblur_frames(ort_runner, [k7, sharp], batch=4)
    # each decided on the 256x448 grid's evidence as before (9 head passes each), then a small probe
    # from its middle: the sharp frame's comes back as it went in (a pass), the k7 frame runs whole
    assert res.evidence_tiles == 2 * len(evidence_tiles(FIXED.grid(*LARGE))) == 18
    assert res.tile_sizes == {"128x224": 2, "520x936": 1} and res.passed_frames == 1
    assert np.array_equal(res.images[1], sharp)  # the sharp frame is passed exactly
    ev, _ = frame_evidence(ort_runner, [k7], [FIXED.grid(*LARGE)], 8)
    whole = unit_to_uint8(ort_runner.infer(to_nchw([k7]), evidence=ev[0][None].astype(np.float32))[0])
    np.testing.assert_array_equal(res.images[0], whole.transpose(1, 2, 0))  # exactly a whole-frame pass
    old = deblur_frames(ort_runner, [k7, sharp], FIXED, batch=4)
    assert old.tiles == 9 + 1 and old.evidence_tiles == res.evidence_tiles
    assert np.abs(res.images[0].astype(int) - old.images[0].astype(int)).max() <= 1
    assert not np.array_equal(res.images[0], k7)  # deblurred
    assert np.array_equal(old.images[1], sharp)


def test_own_decision_runs_a_large_frame_in_one_pass_without_head_passes(ort_runner):
    k7 = blur(photo_mosaic(*LARGE), "k7")
    res = deblur_frames(ort_runner, [k7], Tiling(own_decision=True), batch=4)
    assert (res.tiles, res.evidence_tiles, res.tile_sizes) == (1, 0, {"520x936": 1})
    whole = unit_to_uint8(ort_runner.infer(to_nchw([k7]))[0]).transpose(1, 2, 0)  # its own evidence
    np.testing.assert_array_equal(res.images[0], whole)


def test_large_frames_are_decided_as_the_256x448_tiling_decides_them(gate_runner):
    """A gated model's large frame in one pass is still decided on its 256x448 tiles' evidence,
    given to the network (which decides such frames at their own thresholds): decided on its own
    evidence in that pass, these k11 photos came out otherwise (by 39 and 96 grey levels with
    round 3c)."""
    ort_runner = gate_runner
    frames = [blur(photo_mosaic(720, 1280, photos=(p,)), "k11") for p in ("retina", "grass")]
    new = deblur_frames(ort_runner, frames, batch=4)
    old = deblur_frames(ort_runner, frames, FIXED, batch=4)
    assert new.tile_sizes.get("720x1280") == 2 - new.passed_frames and new.passed_frames == old.passed_frames
    for a, b in zip(new.images, old.images, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_a_frame_over_the_budget_takes_the_fewest_large_tiles(ort_runner):
    k7 = blur(photo_mosaic(*LARGE), "k7")
    budget = 200_000
    res = deblur_frames(ort_runner, [k7], Tiling(max_tile_pixels=budget), batch=4)
    sizes = {size: n for size, n in res.tile_sizes.items() if size != "128x224"}  # the probe aside
    (size, count), = sizes.items()
    h, w = (int(v) for v in size.split("x"))
    assert h * w <= budget and 1 < count < 9 and res.tiles == count + res.tile_sizes.get("128x224", 0)
    assert res.evidence_tiles > 0  # several tiles: their frame's evidence first, one decision
    ev, _ = frame_evidence(ort_runner, [k7], [FIXED.grid(*LARGE)], 8)
    whole = unit_to_uint8(ort_runner.infer(to_nchw([k7]), evidence=ev[0][None].astype(np.float32))[0])
    old = deblur_frames(ort_runner, [k7], FIXED, batch=4).images[0]
    for ref in (whole.transpose(1, 2, 0), old):
        assert np.abs(res.images[0].astype(int) - ref.astype(int)).max() <= 1


class Calls:
    """Records the shape of every deblurring call of a runner that takes any size."""

    takes_evidence = False

    def __init__(self):
        self.shapes = []

    def input_sizes(self):
        from toolkit.core.tiles import ANY_SIZE

        return ANY_SIZE

    def infer(self, batch, evidence=None):
        self.shapes.append(batch.shape)
        return np.asarray(batch, dtype=np.float32)


def test_calls_hold_one_tile_size_within_the_pixel_budget():
    frames = [np.zeros((720, 1280, 3), np.uint8)] * 3 + [np.zeros((256, 448, 3), np.uint8)] * 9
    rec = Calls()
    res = deblur_frames(rec, frames, Tiling(max_tile_pixels=2_000_000), batch=8)
    assert res.tile_sizes == {"720x1280": 3, "256x448": 9}
    # 720p frames: two a call (2 x 921,600 <= 2,000,000); 256x448 tiles: --batch 8 a call
    assert rec.shapes == [(2, 3, 720, 1280), (1, 3, 720, 1280), (8, 3, 256, 448), (1, 3, 256, 448)]
    assert all(np.array_equal(a, b) for a, b in zip(res.images, frames, strict=True))

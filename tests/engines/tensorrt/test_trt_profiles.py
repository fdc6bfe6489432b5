"""Frame-size profiles (`dtk build-engine --shapes 720x1280,1080x1920`): extra optimization profiles
over batches scaled to the default profile's pixels, run through one execution context each
(`set_optimization_profile_async`), and engines.tiled cutting each frame into the largest profile it
fits. Against the fake TensorRT (its names checked against the real 11.x bindings)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fake_trt import HostDevice
from tiny_onnx import tiny_model
from typer.testing import CliRunner

from engines.tensorrt import sidecar as sidecar_mod
from engines.tensorrt.build import build_engine, frame_profile, parse_shapes
from engines.tensorrt.runtime import TrtRunner
from engines.tensorrt.sidecar import BatchProfile, GpuFacts, load_sidecar, sidecar_path
from engines.tiled import deblur_frames
from toolkit.app.cli import app
from toolkit.core.convert import to_nchw, unit_to_uint8
from toolkit.core.errors import DtkError

GPU = GpuFacts("Fake H200", "9.0")


@pytest.fixture
def onnx_any(tmp_path):
    """The tiny residual conv with dynamic H and W (as dtk's export)."""
    path = tmp_path / "tiny-any.onnx"
    onnx.save(tiny_model(height=0, width=0), str(path))
    return path


def reference(onnx_path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.astype(np.float32)})[0]


def test_shapes_parse_as_height_by_width():
    assert parse_shapes("720x1280, 1080x1920") == [(720, 1280), (1080, 1920)]
    for bad in ("1280", "720x1279", "0x8", "axb", "720x1280x3", ""):
        with pytest.raises(DtkError, match="HEIGHTxWIDTH"):
            parse_shapes(bad)


def test_frame_profiles_keep_the_pixels_of_a_call():
    base = BatchProfile(1, 8, 32, 256, 448)
    assert frame_profile(base, 720, 1280) == BatchProfile(1, 1, 3, 720, 1280)  # 3 x 0.92 MP <= 32 x 0.11 MP
    assert frame_profile(base, 1080, 1920) == BatchProfile(1, 1, 1, 1080, 1920)
    assert frame_profile(BatchProfile(2, 2, 2, 256, 448), 1080, 1920) == BatchProfile(1, 1, 1, 1080, 1920)


def test_build_adds_a_profile_per_shape(fake_trt, onnx_any, tmp_path):
    out = tmp_path / "any.engine"
    sc = build_engine(onnx_any, out, min_batch=1, opt_batch=8, max_batch=32, gpu=GPU, log=lambda _m: None,
                      shapes=[(320, 512), (512, 896), (256, 448)])
    build = fake_trt.builds[-1]
    assert [p["input"] for p in build["profiles"]] == [
        [[1, 3, 256, 448], [8, 3, 256, 448], [32, 3, 256, 448]],  # the default first
        [[1, 3, 320, 512], [5, 3, 320, 512], [22, 3, 320, 512]],
        [[1, 3, 512, 896], [2, 3, 512, 896], [8, 3, 512, 896]]]  # 256x448 given again: not twice
    assert sc.profile == BatchProfile(1, 8, 32, 256, 448) and sc.sizes == [(256, 448), (320, 512), (512, 896)]
    assert load_sidecar(out) == sc


def test_shapes_need_a_graph_of_any_size(fake_trt11, onnx_fp32, tmp_path):
    with pytest.raises(DtkError, match="takes only 256x448: export it again with `dtk export`"):
        build_engine(onnx_fp32, tmp_path / "x.engine", gpu=GPU, log=lambda _m: None, shapes=[(720, 1280)])
    assert not (tmp_path / "x.engine").exists()


@pytest.mark.parametrize("graphs", [False, True], ids=["eager", "cuda-graphs"])
def test_each_profile_runs_on_its_own_context(fake_trt11, onnx_any, tmp_path, photo_batch, graphs):
    engine = tmp_path / "any.engine"
    build_engine(onnx_any, engine, min_batch=1, opt_batch=2, max_batch=4, gpu=GPU, log=lambda _m: None,
                 shapes=[(320, 512)])  # its batches: 1 / 1 / 2
    device = HostDevice()
    runner = TrtRunner(engine, device=device, cuda_graphs=graphs)
    assert runner.input_sizes() == ((256, 448), (320, 512))
    rng = np.random.default_rng(0)
    big = rng.random((3, 3, 320, 512), dtype=np.float32)
    np.testing.assert_allclose(runner.infer(big), reference(onnx_any, big), atol=1e-6, rtol=0)  # chunks 2 + 1
    np.testing.assert_allclose(runner.infer(photo_batch[:3]), reference(onnx_any, photo_batch[:3]),
                               atol=1e-6, rtol=0)  # the default profile still
    chosen = [c for c in fake_trt11.calls if c[0] == "set_optimization_profile_async"]
    assert chosen == [("set_optimization_profile_async", 1, device.stream_handle)]  # once, on our stream
    shapes = [c[2] for c in fake_trt11.calls if c[0] == "set_input_shape"]
    assert shapes == [(2, 3, 320, 512), (1, 3, 320, 512), (3, 3, 256, 448)]
    if graphs:
        assert runner.describe()["graphs_captured_by_profile"] == [[3], [1, 2]]
    assert [p["height"] for p in runner.describe()["profiles"]] == [256, 320]
    with pytest.raises(DtkError, match=r"takes N x 3 x 256 x 448 or N x 3 x 320 x 512 \(NCHW\)"):
        runner.infer(np.zeros((1, 3, 128, 128), np.float32))
    runner.close()


def test_frames_take_the_largest_profile_they_fit(fake_trt11, onnx_any, tmp_path, astronaut):
    engine = tmp_path / "any.engine"
    build_engine(onnx_any, engine, gpu=GPU, log=lambda _m: None, shapes=[(320, 512)])
    wide = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)  # 256 x 896
    frames = [np.concatenate([wide, wide[:64]], axis=0)[:, :512],  # 320 x 512: one tile of the profile
              np.concatenate([wide, wide[:48]], axis=0)[:, :600],  # 304 x 600: too short, 256x448 tiles
              astronaut]  # 256 x 448
    with TrtRunner(engine, device=HostDevice()) as runner:
        res = deblur_frames(runner, frames, batch=4)
    assert res.tile_sizes == {"320x512": 1, "256x448": 4 + 1} and res.tiles_per_frame == [1, 4, 1]
    for frame, out in zip(frames, res.images, strict=True):  # the conv's reach is 1 px: tiles stitch exactly
        whole = unit_to_uint8(reference(onnx_any, to_nchw([frame]))[0]).transpose(1, 2, 0)
        assert np.abs(out.astype(int) - whole.astype(int)).max() <= 1


def test_cli_builds_the_shapes_and_refuses_bad_ones(fake_trt11, monkeypatch, onnx_any, tmp_path):
    monkeypatch.setattr(sidecar_mod, "cuda_gpu_facts", lambda index=0: GPU)
    out = tmp_path / "m.engine"
    res = CliRunner().invoke(app, ["build-engine", str(onnx_any), "-o", str(out),
                                   "--shapes", "720x1280,1080x1920", "--json", "-"])
    assert res.exit_code == 0, res.output
    doc = json.loads(sidecar_path(out).read_text())
    assert [(p["height"], p["width"], p["max"]) for p in doc["profiles"]] == [(256, 448, 32), (720, 1280, 3),
                                                                             (1080, 1920, 1)]
    bad = CliRunner().invoke(app, ["build-engine", str(onnx_any), "-o", str(tmp_path / "b.engine"),
                                   "--shapes", "1280x719"])
    assert bad.exit_code == 2 and "HEIGHTxWIDTH" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "b.engine").exists()

"""OvRunner on the real OpenVINO (CPU): agreement with ONNX Runtime on the shipped blind model, its
evidence input and head, tiles, both modes, fp16 / Q/DQ graphs, IR, the model cache, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from engines.onnx_graph import has_evidence_default, parseable_onnx
from engines.onnxruntime import OrtRunner
from engines.spec import RunnerSpec
from engines.tiled import Tiling, deblur_frames
from toolkit import FRAME_SIZE
from toolkit.core.demo import skimage_photo_path
from toolkit.core.errors import DtkError
from toolkit.core.frames import discover_frames, read_frame, resize_frame
from toolkit.core.kernels import blur
from toolkit.core.modelfiles import default_model_path

ov = pytest.importorskip("openvino", reason="OpenVINO not installed (pip install .[cpu])")
from engines.openvino import OvRunner, default_ov_cache_dir  # noqa: E402 - after the skip

SHIPPED = default_model_path("onnxruntime")
FP16 = SHIPPED.with_name("dtk-unet-fp16.onnx")


def blurred_batch(demo_dir, n=3, kernel="k7") -> np.ndarray:
    images = [resize_frame(read_frame(f.path)) for f in discover_frames(demo_dir)[:n]]
    images = [blur(im, kernel) if kernel else im for im in images]
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ov-cache")
    ovr = OvRunner(SHIPPED, size=FRAME_SIZE, cache_dir=cache)
    ort = OrtRunner(SHIPPED, device="cpu")
    yield ovr, ort
    ovr.close()
    ort.close()


def test_infer_with_and_without_evidence_equals_onnxruntime(runners, demo_dir):
    ovr, ort = runners
    assert ovr.takes_evidence and ort.takes_evidence
    x = blurred_batch(demo_dir)
    sharp = ort.evidence(blurred_batch(demo_dir, kernel=None))  # another frame's decision: "no blur"
    given = np.stack([sharp[0], np.full_like(sharp[0], -1.0), sharp[2]]).astype(np.float32)  # < 0: own
    for evidence in (None, given):
        a, b = ovr.infer(x, evidence=evidence), ort.infer(x, evidence=evidence)
        assert a.shape == x.shape and a.dtype == np.float32
        assert float(np.abs(a - b).max()) <= 1e-5
    # the evidence changes the output (it is a real input, not OpenVINO's frozen default)
    assert float(np.abs(ovr.infer(x, evidence=given) - ovr.infer(x)).max()) > 1e-3


def test_head_only_evidence_equals_onnxruntime(runners, demo_dir):
    ovr, ort = runners
    x = blurred_batch(demo_dir, n=2)
    a, b = ovr.evidence(x), ort.evidence(x)
    assert a.shape == b.shape == (2, 32) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert len(ovr._head.get_runtime_model().get_ops()) < len(ovr.compiled.get_runtime_model().get_ops())


def test_native_size_frames_equal_onnxruntime_within_one_grey_level(runners):
    ovr, ort = runners
    sharp = read_frame(skimage_photo_path("astronaut"))  # 512 x 512: several tiles
    photo = blur(sharp, "k7")
    fixed = Tiling(fixed=True)  # 256x448 tiles: several
    a, b = deblur_frames(ovr, [photo], fixed, batch=3), deblur_frames(ort, [photo], fixed, batch=3)
    assert a.tiles == b.tiles > 1 and a.evidence_tiles == b.evidence_tiles > 1  # deblurred: every tile
    assert a.images[0].shape == photo.shape
    assert int(np.abs(a.images[0].astype(int) - b.images[0].astype(int)).max()) <= 1
    a, b = deblur_frames(ovr, [sharp], fixed, batch=3), deblur_frames(ort, [sharp], fixed, batch=3)  # passed
    assert a.passed_frames == b.passed_frames == 1 and a.tiles == b.tiles == 1
    assert np.array_equal(a.images[0], sharp) and np.array_equal(b.images[0], sharp)
    # large tiles: both take any size, so the frame is one pass on each (own evidence)
    a, b = deblur_frames(ovr, [photo], batch=3), deblur_frames(ort, [photo], batch=3)
    assert a.tile_sizes == b.tile_sizes == {"512x512": 1} and a.evidence_tiles == b.evidence_tiles == 0
    assert int(np.abs(a.images[0].astype(int) - b.images[0].astype(int)).max()) <= 1


def test_throughput_mode_gives_the_latency_outputs(runners, demo_dir, tmp_path):
    ovr, _ = runners
    fast = OvRunner(SHIPPED, hint="throughput", threads=2, cache_dir=tmp_path)
    x = blurred_batch(demo_dir, n=3)
    ev = ovr.evidence(x)
    np.testing.assert_allclose(fast.infer(x, evidence=ev), ovr.infer(x, evidence=ev), atol=1e-5)
    np.testing.assert_allclose(fast.infer(x[:1]), ovr.infer(x[:1]), atol=1e-5)
    d = fast.describe()
    assert d["hint"] == "THROUGHPUT" and "AsyncInferQueue" in d["mode"] and d["threads"] == 2
    assert int(fast.compiled.get_property("INFERENCE_NUM_THREADS")) == 2
    assert ovr.describe()["mode"].startswith("latency")


def test_second_start_is_served_by_the_model_cache(tmp_path):
    first = OvRunner(SHIPPED, cache_dir=tmp_path)
    second = OvRunner(SHIPPED, cache_dir=tmp_path)
    assert first.describe()["loaded_from_cache"] is False
    d = second.describe()
    assert d["loaded_from_cache"] is True and d["cache_dir"] == str(tmp_path) and d["startup_s"] > 0
    assert any(tmp_path.iterdir())


def test_cache_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_ov_cache_dir() == tmp_path / "dtk" / "openvino"


@pytest.mark.skipif(not FP16.is_file(), reason="no shipped fp16 graph")
def test_fp16_graph_runs_close_to_fp32(runners, demo_dir, tmp_path):
    ovr, _ = runners
    half = OvRunner(FP16, cache_dir=tmp_path)
    x = blurred_batch(demo_dir, n=2)
    err = float(np.abs(half.infer(x) - ovr.infer(x)).max())
    assert err < 2e-2  # fp16 weights; the README gives ORT's fp16 graph 3.1e-3 vs fp32


@pytest.mark.slow
def test_qdq_int8_graph_runs(demo_dir, tmp_path):
    from engines.quantize import quantize_model

    out = tmp_path / "q.onnx"
    quantize_model(SHIPPED, demo_dir, out, calib_frames=1, guard_frames=1, max_drop_db=60.0)
    x = blurred_batch(demo_dir, n=2)
    a = OvRunner(out, cache_dir=tmp_path).infer(x)
    b = OrtRunner(out, device="cpu").infer(x)
    assert float(np.abs(a - b).max()) < 0.15  # int8 arithmetic differs per runtime; both near fp32


def test_ir_files_run_like_the_onnx(runners, demo_dir, tmp_path):
    ovr, _ = runners
    with parseable_onnx(SHIPPED) as path:
        ov.save_model(ov.Core().read_model(str(path)), str(tmp_path / "ir.xml"), compress_to_fp16=False)
    assert has_evidence_default(SHIPPED)
    ir = RunnerSpec.choose("openvino", tmp_path / "ir.xml", size=FRAME_SIZE).open()
    assert ir.takes_evidence and ir.describe()["model"].endswith("ir.xml")
    x = blurred_batch(demo_dir, n=2)
    ev = ovr.evidence(x)
    assert float(np.abs(ir.infer(x, evidence=ev) - ovr.infer(x, evidence=ev)).max()) <= 1e-6


def test_spec_opens_openvino_with_its_options(tmp_path):
    runner = RunnerSpec.choose("openvino", None, threads=1, hint="latency", size=FRAME_SIZE).open()
    d = runner.describe()
    assert (d["backend"], d["device"], d["threads"], d["hint"]) == ("openvino", "cpu", 1, "LATENCY")
    assert d["frame_decision"] == "evidence input" and d["inference_precision"] == "f32"
    runner.close()
    runner.close()  # idempotent


def test_refusals_are_one_sentence(tmp_path):
    import onnx

    fixed = onnx.load(str(SHIPPED))  # the shipped graph, its input fixed at 256 x 448
    for dim, value in zip(fixed.graph.input[0].type.tensor_type.shape.dim[2:], FRAME_SIZE, strict=True):
        dim.dim_value = value
    onnx.save(fixed, str(tmp_path / "fixed.onnx"))
    with pytest.raises(DtkError, match=r"fixed input of .*256 x 448.*dtk feeds N x 3 x 128 x 128"):
        OvRunner(tmp_path / "fixed.onnx", size=(128, 128), cache_dir=tmp_path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DtkError, match="OpenVINO cannot read"):
        OvRunner(bad, cache_dir=tmp_path)
    with pytest.raises(DtkError, match="runs on the CPU"):
        OvRunner(SHIPPED, device="cuda", cache_dir=tmp_path)
    with pytest.raises(DtkError, match="--threads"):
        OvRunner(SHIPPED, threads=0, cache_dir=tmp_path)


def test_unwritable_cache_folder_is_a_warning_not_a_failure(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    runner = OvRunner(SHIPPED, cache_dir=blocker / "sub")
    assert runner.describe()["cache_dir"] is None and "cache off" in runner.warnings[0]


def test_missing_openvino_names_the_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(DtkError, match=r"OpenVINO not installed: pip install \.\[cpu\]"):
        OvRunner(SHIPPED, cache_dir=tmp_path)


def test_one_evidence_row_covers_the_batch(runners, demo_dir, tmp_path):
    ovr, ort = runners
    x = blurred_batch(demo_dir, n=2)
    row = ort.evidence(blurred_batch(demo_dir, n=1, kernel=None))
    want = ort.infer(x, evidence=np.repeat(row, 2, axis=0))
    assert float(np.abs(ovr.infer(x, evidence=row) - want).max()) <= 1e-5
    fast = OvRunner(SHIPPED, hint="throughput", cache_dir=tmp_path)
    assert float(np.abs(fast.infer(x, evidence=row) - want).max()) <= 1e-5


def test_bf16_is_asked_for_and_said(runners, demo_dir, tmp_path):
    """bf16 (OpenVINO's CPU default on bf16 CPUs) only when asked: close to fp32, not equal."""
    ovr, _ = runners
    half = RunnerSpec.choose("openvino", None, precision="bf16").open()
    assert half.describe()["inference_precision"] == "bf16" and ovr.describe()["inference_precision"] == "f32"
    x = blurred_batch(demo_dir, n=1)
    err = float(np.abs(half.infer(x) - ovr.infer(x)).max())
    assert 1e-4 < err < 0.2

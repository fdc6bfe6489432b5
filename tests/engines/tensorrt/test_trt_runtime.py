"""TrtRunner end to end on CPU: fake TensorRT engine computing with ONNX Runtime, HostDevice buffers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from fake_trt import HostDevice

from engines.base import Runner
from engines.tensorrt.build import build_engine
from engines.tensorrt.runtime import TrtRunner
from engines.tensorrt.sidecar import GpuFacts, load_sidecar, save_sidecar
from toolkit.core.errors import DtkError

GPU = GpuFacts("Fake H200", "9.0")


def build(onnx_path, tmp_path, **kw):
    out = tmp_path / "tiny.engine"
    build_engine(onnx_path, out, gpu=GPU, log=lambda _m: None, **kw)
    return out


def ort_reference(onnx_path, batch):
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    dtype = np.float16 if "fp16" in onnx_path.name else np.float32
    return sess.run(None, {"input": batch.astype(dtype)})[0].astype(np.float32)


@pytest.mark.parametrize("graphs", [False, True], ids=["eager", "cuda-graphs"])
def test_runner_matches_ort_with_chunking(fake_trt, onnx_fp32, tmp_path, photo_batch, device, graphs):
    engine = build(onnx_fp32, tmp_path, min_batch=2, opt_batch=2, max_batch=3)
    runner = TrtRunner(engine, device=device, cuda_graphs=graphs)
    assert isinstance(runner, Runner)
    out = runner.infer(photo_batch)  # 7 frames -> chunks 3, 3, 1 (padded to 2)
    assert out.dtype == np.float32 and out.shape == photo_batch.shape
    np.testing.assert_allclose(out, ort_reference(onnx_fp32, photo_batch), rtol=0, atol=1e-6)
    execs = [c for c in fake_trt.calls if c[0] == "execute_async_v3"]
    assert all(c[1] == device.stream_handle for c in execs)
    shapes = [c[2][0] for c in fake_trt.calls if c[0] == "set_input_shape"]
    assert shapes == [3, 2]  # rebinding only when the batch size changes
    if graphs:
        assert device.captures == 2 and device.replays == 3
        assert runner.describe()["graphs_captured"] == [2, 3]
    runner.close()


def test_graphs_on_and_off_equal(fake_trt11, onnx_fp32, tmp_path, photo_batch):
    engine = build(onnx_fp32, tmp_path, min_batch=1, opt_batch=4, max_batch=4)
    runners = [TrtRunner(engine, device=HostDevice(), cuda_graphs=g) for g in (False, True)]
    outs = [r.infer(photo_batch[:5]) for r in runners]
    np.testing.assert_array_equal(outs[0], outs[1])


def test_fp16_io_engine(fake_trt, onnx_fp16, tmp_path, photo_batch, device):
    engine = build(onnx_fp16, tmp_path, min_batch=1, opt_batch=2, max_batch=4)
    with TrtRunner(engine, device=device) as runner:
        assert (runner.input_dtype, runner.output_dtype) == (torch.float16, torch.float16)
        out = runner.infer(photo_batch[:3])
        facts = runner.describe()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ort_reference(onnx_fp16, photo_batch[:3]), rtol=0, atol=1e-3)
    assert facts["precision"] == "fp16" and facts["io_dtype"] == {"input": "float16", "output": "float16"}
    assert facts["device"] == "Fake H200" and facts["profile"]["max"] == 4


def test_protocol_order(fake_trt11, onnx_fp32, tmp_path, photo_batch, device):
    engine = build(onnx_fp32, tmp_path, max_batch=4, opt_batch=2)
    runner = TrtRunner(engine, device=device)
    fake_trt11.calls.clear()
    runner.infer(photo_batch[:2])
    names = [c[0] for c in fake_trt11.calls]
    assert names == ["set_input_shape", "set_tensor_address", "set_tensor_address", "execute_async_v3"]
    ctx = fake_trt11.contexts[-1]
    assert ctx.addresses == {"input": runner._d_in.data_ptr(), "output": runner._d_out.data_ptr()}


def test_torch_tensor_input_returns_tensor(fake_trt11, onnx_fp32, tmp_path, photo_batch, device):
    engine = build(onnx_fp32, tmp_path, max_batch=4, opt_batch=2)
    runner = TrtRunner(engine, device=device)
    out = runner.infer(torch.from_numpy(photo_batch[:2]))
    np.testing.assert_allclose(out, ort_reference(onnx_fp32, photo_batch[:2]), atol=1e-6, rtol=0)


def test_wrong_frame_size_refused(fake_trt11, onnx_fp32, tmp_path, device):
    runner = TrtRunner(build(onnx_fp32, tmp_path), device=device)
    with pytest.raises(DtkError, match=r"takes N x 3 x 256 x 448 \(NCHW\); got \(1, 3, 128, 128\)"):
        runner.infer(np.zeros((1, 3, 128, 128), np.float32))


def test_sidecar_mismatch_refused(fake_trt11, onnx_fp32, tmp_path):
    engine = build(onnx_fp32, tmp_path)
    with pytest.raises(DtkError, match="compute capability 9.0 .* this GPU is 8.6.*dtk build-engine"):
        TrtRunner(engine, device=HostDevice(compute_capability="8.6"))
    sc = load_sidecar(engine)
    sc.tensorrt_version = "10.14.1"
    save_sidecar(engine, sc)
    with pytest.raises(DtkError, match="built by TensorRT 10.14.1, this is TensorRT 11.4.0"):
        TrtRunner(engine, device=HostDevice())
    assert TrtRunner(engine, device=HostDevice(), check_sidecar=False).sidecar is None


def test_missing_or_corrupt_engine(fake_trt11, tmp_path, device):
    with pytest.raises(DtkError, match="not found.*dtk build-engine"):
        TrtRunner(tmp_path / "nope.engine", device=device)
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(DtkError, match="could not deserialize"):
        TrtRunner(bad, device=device, check_sidecar=False)


def test_without_tensorrt_says_how_to_install(monkeypatch, onnx_fp32, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as if not installed
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(DtkError, match=r"TensorRT not installed: pip install \.\[gpu\]"):
        TrtRunner(engine)


SHIPPED_ONNX = Path(__file__).resolve().parents[3] / "toolkit" / "assets" / "dtk-unet.onnx"


def test_blind_model_engine_keeps_the_evidence_input(fake_trt, tmp_path, photo_batch, device):
    """The shipped ONNX's `evidence` default is stripped for TensorRT: the engine takes a frame
    decision, gives each tile's own evidence, and tiles through it equal ONNX Runtime's."""
    from engines.onnxruntime import OrtRunner
    from engines.tiled import deblur_frames
    from toolkit.core.convert import from_nchw
    from toolkit.core.kernels import blur

    engine = build(SHIPPED_ONNX, tmp_path, min_batch=1, opt_batch=2, max_batch=3)
    build_info = fake_trt.builds[-1]
    assert build_info["io"]["evidence"][0] == "INPUT" and "evidence" in build_info["profile"]
    assert build_info["profile"]["evidence"] == [[1, 64], [2, 64], [3, 64]]  # 32 pooled + 32 bands
    blurred = np.stack([blur(im, "k11") for im in from_nchw(photo_batch[:4])])
    x = (blurred.transpose(0, 3, 1, 2) / 255.0).astype(np.float32)
    with TrtRunner(engine, device=device) as trt, OrtRunner(SHIPPED_ONNX, device="cpu") as ref:
        assert trt.takes_evidence and trt.describe()["frame_decision"] == "evidence input"
        own = trt.evidence(x)
        np.testing.assert_allclose(own, ref.evidence(x), rtol=1e-5, atol=1e-6)
        given = np.repeat(own[:1], len(x), axis=0)
        np.testing.assert_allclose(trt.infer(photo_batch[:4], evidence=given),
                                   ref.infer(photo_batch[:4], evidence=given), atol=1e-5)
        np.testing.assert_allclose(trt.infer(photo_batch[:4]), ref.infer(photo_batch[:4]), atol=1e-5)
        frame = np.concatenate([blurred[0], blurred[1]], axis=1)[:, :700]  # 256 x 700: 2 tiles
        a = deblur_frames(trt, [frame], batch=3).images[0]
        b = deblur_frames(ref, [frame], batch=3).images[0]
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1

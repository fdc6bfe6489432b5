"""Real TensorRT on a real GPU (marked `gpu`; skipped without CUDA): build from the shipped ONNX, compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolkit.core.metrics import psnr

ASSETS = Path(__file__).resolve().parents[3] / "toolkit" / "assets"
FP16_ONNX = ASSETS / "dtk-unet-fp16.onnx"
FP32_ONNX = ASSETS / "dtk-unet.onnx"

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    from toolkit.core.lazy import module_version

    if module_version("tensorrt") is None:  # also an empty `tensorrt` namespace folder, as on a GPU image
        pytest.skip("TensorRT not installed: pip install .[gpu]")
    onnx_path = FP16_ONNX if FP16_ONNX.is_file() else FP32_ONNX
    if not onnx_path.is_file():
        pytest.skip(f"no shipped ONNX model in {ASSETS} yet")
    from engines.tensorrt.build import build_engine

    out = tmp_path_factory.mktemp("trt") / "dtk-unet.engine"
    build_engine(onnx_path, out, min_batch=1, opt_batch=4, max_batch=8,
                 timing_cache=out.with_suffix(".cache"))
    return out


def ort_fp32(batch: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    if not FP32_ONNX.is_file():
        pytest.skip(f"no fp32 reference ONNX {FP32_ONNX}")
    sess = ort.InferenceSession(str(FP32_ONNX), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: batch})[0]


def test_engine_matches_onnxruntime_fp32(engine, photo_batch):
    from engines.tensorrt.runtime import TrtRunner

    batch = photo_batch[:3]
    with TrtRunner(engine) as runner:
        out = runner.infer(batch)
    ref = ort_fp32(batch)
    to_255 = lambda x: np.clip(x, 0, 1) * 255.0  # noqa: E731
    assert psnr(to_255(out), to_255(ref)) >= 40.0


def test_cuda_graphs_on_off_equal_and_chunking(engine, photo_batch):
    import torch

    from engines.tensorrt.runtime import TrtRunner

    batch = np.concatenate([photo_batch, photo_batch[:3]])  # 10 > max 8: two chunks
    with TrtRunner(engine) as eager, TrtRunner(engine, cuda_graphs=True) as graphs:
        a = eager.infer(batch)
        b = graphs.infer(batch)
        b2 = graphs.infer(batch)  # replay
        c = graphs.infer(torch.from_numpy(batch).cuda()).cpu().numpy()  # GPU input, no host copy
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, b2)
    np.testing.assert_array_equal(b, c)


def test_polygraphy_trt_runner_and_dtk_runner_agree(engine, photo_batch):
    """Polygraphy's TrtRunner (NVIDIA's reference runner, host arrays in and out) and dtk's runner
    (torch-owned device buffers, CUDA-graph replay) on the same engine and batch: equal outputs."""
    pytest.importorskip("polygraphy")
    from polygraphy.backend.common import BytesFromPath
    from polygraphy.backend.trt import EngineFromBytes
    from polygraphy.backend.trt import TrtRunner as PolygraphyTrtRunner

    from engines.tensorrt.runtime import TrtRunner

    batch = np.ascontiguousarray(photo_batch[:4])
    with PolygraphyTrtRunner(EngineFromBytes(BytesFromPath(str(engine)))) as reference:
        ref = np.asarray(reference.infer({"input": batch})["output"], dtype=np.float32)
    for graphs in (False, True):
        with TrtRunner(engine, cuda_graphs=graphs) as runner:
            out = runner.infer(batch)
        np.testing.assert_array_equal(out, ref, err_msg=f"cuda_graphs={graphs}")

"""OrtRunner: provider choice, fp32/fp16 graphs, and agreement with the torch runner on real frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.onnxruntime import CPU_EP, CUDA_EP, TRT_EP, OrtRunner, choose_providers
from engines.torch import TorchRunner
from toolkit.core.errors import DtkError
from toolkit.core.frames import discover_frames, read_frame, resize_frame
from toolkit.core.models import ModelConfig
from toolkit.core.models.checkpoint import save_checkpoint
from toolkit.core.models.unet import SeedUNet
from training.export import export_onnx


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A width-8 residual U-Net as X.safetensors + X.json + X.onnx + X-fp16.onnx."""
    pytest.importorskip("polygraphy", reason="ONNX export folds constants with Polygraphy (.[cpu])")
    torch.manual_seed(0)
    model = SeedUNet(ModelConfig(width=8, residual=True)).eval()
    root = tmp_path_factory.mktemp("tiny")
    save_checkpoint(root / "tiny.safetensors", model, {"note": "random init, tests only"})
    export_onnx(model, root / "tiny.onnx")
    export_onnx(model, root / "tiny-fp16.onnx", fp16=True)
    return root


def real_batch(demo_dir, n=3) -> np.ndarray:
    images = [resize_frame(read_frame(f.path)) for f in discover_frames(demo_dir)[:n]]
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def test_providers_prefer_trt_then_cuda_then_cpu(tmp_path):
    chosen = choose_providers([TRT_EP, CUDA_EP, CPU_EP], "auto", trt_fp16=True, trt_cache_dir=tmp_path)
    assert [p[0] if isinstance(p, tuple) else p for p in chosen] == [TRT_EP, CUDA_EP, CPU_EP]
    trt_opts = chosen[0][1]
    assert trt_opts["trt_engine_cache_enable"] and trt_opts["trt_fp16_enable"]
    assert trt_opts["trt_engine_cache_path"] == str(tmp_path)
    assert choose_providers([TRT_EP, CUDA_EP, CPU_EP], "cpu") == [CPU_EP]
    assert choose_providers([CPU_EP], "auto") == [CPU_EP]
    with pytest.raises(DtkError, match="no GPU provider"):
        choose_providers([CPU_EP], "cuda")


def test_ort_matches_torch_on_real_frames(tiny, demo_dir):
    x = real_batch(demo_dir)
    ort_runner = OrtRunner(tiny / "tiny.onnx", threads=1)
    torch_runner = TorchRunner(tiny / "tiny.safetensors")
    a, b = ort_runner.infer(x), torch_runner.infer(x)
    assert a.shape == b.shape == x.shape and a.dtype == np.float32
    assert float(np.abs(a - b).max()) <= 1e-4
    d = ort_runner.describe()
    assert d["backend"] == "onnxruntime" and d["providers"] == [CPU_EP] and d["threads"] == 1


def test_fp16_graph_runs_with_fp32_io(tiny, demo_dir):
    x = real_batch(demo_dir, 2)
    ref = OrtRunner(tiny / "tiny.onnx").infer(x)
    half = OrtRunner(tiny / "tiny-fp16.onnx")
    y = half.infer(x)
    assert y.dtype == np.float32
    assert float(np.abs(y - ref).max()) < 2e-2  # fp16 weights and compute: ~1e-3 on 0..1


def test_bad_model_file_is_a_dtk_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(DtkError, match="cannot load"):
        OrtRunner(bad)
    with pytest.raises(DtkError, match="not found"):
        OrtRunner(tmp_path / "missing.onnx")


@pytest.mark.gpu
def test_cuda_io_binding_with_torch_tensor(tiny, demo_dir):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("ONNX Runtime has no CUDA provider (onnxruntime-gpu not installed)")
    x = torch.from_numpy(real_batch(demo_dir, 2)).cuda()
    runner = OrtRunner(tiny / "tiny.onnx", device="cuda")
    y = runner.infer(x)
    assert y.is_cuda
    ref = OrtRunner(tiny / "tiny.onnx", device="cpu").infer(x.cpu().numpy())
    assert float(np.abs(y.cpu().numpy() - ref).max()) <= 1e-3


def test_qdq_int8_graph_runs(tiny, demo_dir, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    x = real_batch(demo_dir, 2)

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.items, None)

    qdq = tmp_path / "tiny-int8.onnx"
    quantize_static(str(tiny / "tiny.onnx"), str(qdq), Frames(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True})
    ref = OrtRunner(tiny / "tiny.onnx").infer(x)
    y = OrtRunner(qdq).infer(x)
    assert y.shape == ref.shape and y.dtype == np.float32
    assert float(np.abs(y - ref).mean()) < 0.05  # int8 of a random-init net: close, not equal


def test_model_input_size_and_channels_checked_when_opened(tmp_path, demo_dir):
    from typer.testing import CliRunner

    from toolkit.app.cli import app

    torch.manual_seed(0)
    model = SeedUNet(ModelConfig(width=8, residual=True)).eval()
    small = export_onnx(model, tmp_path / "small.onnx", height=128, width=224, check=False, any_size=False)
    with pytest.raises(DtkError, match=r"fixed input of batch x 3 x 128 x 224; dtk feeds N x 3 x 256 x 448"):
        OrtRunner(small, size=(256, 448))
    OrtRunner(small, size=(128, 224))
    OrtRunner(small)  # no size asked for: any fixed H x W
    for args in (["run", str(demo_dir), "-o", str(tmp_path / "out")], ["eval", str(demo_dir)]):
        result = CliRunner().invoke(app, [*args, "--model", str(small)])
        said = " ".join(result.output.split())  # undo Rich's line wrapping
        assert result.exit_code == 2 and "fixed input of batch x 3 x 128 x 224" in said, said
        assert "Traceback" not in said

    import onnx
    from onnx import TensorProto, helper

    grey = tmp_path / "grey.onnx"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 256, 448])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1, 256, 448])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g", [inp], [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(grey))
    with pytest.raises(DtkError, match="1-channel input"):
        OrtRunner(grey)

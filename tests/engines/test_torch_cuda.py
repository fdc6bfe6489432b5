"""Torch runner precisions end to end, CUDA graphs / pinned staging guarded by device, fp16 range check.

CPU tests run everywhere; `gpu` tests need CUDA and skip here with a reason (tests/conftest.py).
Stated bounds vs fp32 on real demo frames (uint8 outputs): bf16 >= 30 dB, fp16 >= 40 dB.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from engines.spec import RunnerSpec
from engines.torch import TorchRunner
from toolkit.app.cli import app
from toolkit.core.convert import from_nchw, to_nchw
from toolkit.core.errors import DtkError
from toolkit.core.frames import discover_frames, read_frame, resize_frame
from toolkit.core.metrics import psnr
from toolkit.core.models import ModelConfig
from toolkit.core.models.checkpoint import save_checkpoint
from toolkit.core.models.fp16 import FP16_MAX, blurred_demo_frames, check_fp16_range
from toolkit.core.models.unet import SeedUNet

MIN_DB = {"bf16": 30.0, "fp16": 40.0}


def tiny_model(**config) -> SeedUNet:
    torch.manual_seed(0)
    return SeedUNet(ModelConfig(width=8, residual=True, **config)).eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", tiny_model())


@pytest.fixture(scope="module")
def one_frame(demo_dir, tmp_path_factory):
    """A 1-frame tree of a real demo frame (CPU fp16 kernels are slow: keep `dtk run` small)."""
    root = tmp_path_factory.mktemp("one")
    for f in discover_frames(demo_dir)[:1]:
        (root / f.path.parent.name).mkdir(exist_ok=True)
        shutil.copy(f.path, root / f.path.parent.name / f.path.name)
    return root


@pytest.fixture(scope="module")
def batch(demo_dir) -> np.ndarray:
    images = [resize_frame(read_frame(f.path)) for f in discover_frames(demo_dir)[:3]]
    return to_nchw(images)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.stack(from_nchw(x))


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def dtk_run(src, out, ckpt, *extra):
    result = invoke("run", src, "-o", out, "--backend", "torch", "--model", ckpt, "--batch", 2,
                    "--resize", "--keep-size", *extra)
    assert result.exit_code == 0, result.output
    return {f.key: read_frame(f.path) for f in discover_frames(out)}


# ---- CPU -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fp32_outputs(one_frame, ckpt, tmp_path_factory):
    return dtk_run(one_frame, tmp_path_factory.mktemp("fp32"), ckpt, "--precision", "fp32")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_dtk_run_low_precision_stays_close_to_fp32(one_frame, ckpt, fp32_outputs, tmp_path, precision):
    got = dtk_run(one_frame, tmp_path / precision, ckpt, "--precision", precision)
    assert got.keys() == fp32_outputs.keys() and len(got) == 1
    for key, ref in fp32_outputs.items():
        db = psnr(ref, got[key])
        assert db >= MIN_DB[precision], f"{precision} vs fp32 on {key}: {db:.1f} dB"


def test_cpu_runner_reports_autocast_and_no_cuda_machinery(ckpt):
    info = TorchRunner(ckpt, precision="bf16").describe()
    assert info["precision"] == "bf16 (CPU autocast)"
    assert (info["cuda_graphs"], info["pinned_host_buffers"], info["streams"]) == (False, 0, "none (CPU)")


def test_graph_capture_refused_on_cpu(ckpt, one_frame, tmp_path):
    with pytest.raises(DtkError, match="graph capture guarded by device"):
        TorchRunner(ckpt, cuda_graphs=True)
    with pytest.raises(DtkError, match="graph capture guarded by device"):
        RunnerSpec.choose("torch", ckpt, device="cpu", cuda_graphs=True).open()
    if not torch.cuda.is_available():  # dtk run picks cuda when present
        result = invoke("run", one_frame, "-o", tmp_path / "o", "--backend", "torch", "--model", ckpt,
                        "--cuda-graphs")
        assert result.exit_code == 2 and "graph capture guarded by device" in result.output
        assert "Traceback" not in result.output


def test_cpu_never_enters_pinned_or_stream_paths(ckpt, batch, monkeypatch):
    import engines.torch_cuda as torch_cuda

    def refuse(*_a, **_k):
        raise AssertionError("CUDA executor entered on CPU")

    for name in ("__init__", "run_numpy", "run_tensor"):
        monkeypatch.setattr(torch_cuda.CudaExecutor, name, refuse)
    monkeypatch.setattr(torch.Tensor, "pin_memory", refuse)
    runner = TorchRunner(ckpt, cuda_graphs=False)
    assert runner._executor is None
    y = runner.infer(batch[:1])
    t = runner.infer(torch.from_numpy(batch[:1]))
    assert isinstance(y, np.ndarray) and t.device.type == "cpu"
    np.testing.assert_allclose(t.numpy(), y, atol=1e-6)


def test_cuda_executor_rejects_a_cpu_device():
    from engines.torch_cuda import CudaExecutor

    with pytest.raises(ValueError, match="CUDA device"):
        CudaExecutor(tiny_model(), torch.device("cpu"), torch.float32, channels_last=False, graphs=False)


# ---- fp16 range check ---------------------------------------------------------------------------

def test_fp16_check_reports_every_layer_on_blurred_demo_frames():
    frames = blurred_demo_frames(64, 96)
    assert frames.shape == (15, 3, 64, 96) and frames.dtype == np.float32  # 5 photos x 3 kernels
    check = check_fp16_range(tiny_model(), frames)
    conv = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    convs = [n for n, m in tiny_model().named_modules() if isinstance(m, conv)]
    assert set(check.peaks) == {*convs, "output"}
    assert check.frames == 15 and check.status == "ok" and 0 < check.peak < FP16_MAX / 4
    assert check.to_json()["worst_layer"] in check.peaks


def overflowing_model() -> SeedUNet:
    model = tiny_model(tail_convs=1)
    with torch.no_grad():
        model.out.bias.fill_(1e5)
    return model


def test_fp16_check_names_the_overflowing_layer():
    check = check_fp16_range(overflowing_model(), blurred_demo_frames(64, 96)[:3])
    assert check.status == "overflow" and "out" in check.overflows and "output" in check.overflows
    assert "overflowing layers" in check.message()


def test_dtk_run_fp16_refuses_an_overflowing_model(one_frame, tmp_path):
    bad = save_checkpoint(tmp_path / "bad.safetensors", overflowing_model())
    result = invoke("run", one_frame, "-o", tmp_path / "o", "--backend", "torch", "--model", bad,
                    "--precision", "fp16")
    assert result.exit_code == 2 and "refusing --precision fp16" in result.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.png"))


# ---- CUDA ---------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_graphs_on_and_off_give_equal_outputs(ckpt, batch, precision):
    on = TorchRunner(ckpt, device="cuda", precision=precision, channels_last=True)
    off = TorchRunner(ckpt, device="cuda", precision=precision, channels_last=True, cuda_graphs=False)
    assert on.describe()["cuda_graphs"] and not off.describe()["cuda_graphs"]
    first = on.infer(batch)
    for sub in (batch, batch[:1], batch[::-1].copy()):  # two batch sizes, new data into static buffers
        np.testing.assert_allclose(on.infer(sub), off.infer(sub), atol=1e-3 if precision != "fp32" else 1e-5)
    np.testing.assert_array_equal(first, on.infer(batch))  # returned outputs are clones, not the buffer
    assert on.describe()["graph_batch_sizes"] == [1, 3]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_low_precision_within_bound_of_fp32(ckpt, batch, precision):
    ref = TorchRunner(ckpt, device="cuda").infer(batch)
    y = TorchRunner(ckpt, device="cuda", precision=precision, channels_last=True).infer(batch)
    assert y.dtype == np.float32
    db = psnr(to_uint8(ref), to_uint8(y))
    assert db >= MIN_DB[precision], f"CUDA {precision} vs fp32: {db:.1f} dB"


@pytest.mark.gpu
@pytest.mark.parametrize("graphs", [True, False])
def test_cuda_tensor_input_stays_on_device(ckpt, batch, graphs, monkeypatch):
    from engines.torch_cuda import CudaExecutor

    runner = TorchRunner(ckpt, device="cuda", cuda_graphs=graphs)
    ref = runner.infer(batch)

    def no_host(*_a, **_k):
        raise AssertionError("a CUDA tensor went through the host path")

    monkeypatch.setattr(CudaExecutor, "run_numpy", no_host)
    x = torch.from_numpy(batch).cuda()
    y = runner.infer(x)
    assert y.is_cuda and y.dtype == torch.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.cpu().numpy(), ref, atol=1e-5)


@pytest.mark.gpu
def test_numpy_input_uses_pinned_buffers_and_copy_stream(ckpt, batch):
    runner = TorchRunner(ckpt, device="cuda")
    y = runner.infer(batch)
    ex = runner._executor
    pinned_in, dev_in, pinned_out = next(iter(ex._staging.values()))
    assert pinned_in.is_pinned() and pinned_out.is_pinned() and dev_in.is_cuda
    assert ex.copy_stream != torch.cuda.current_stream()
    assert runner.describe()["pinned_host_buffers"] == 1 and torch.backends.cudnn.benchmark
    np.testing.assert_allclose(y, runner.infer(torch.from_numpy(batch).cuda()).cpu().numpy(), atol=1e-5)
    ref = TorchRunner(ckpt).infer(batch)
    assert psnr(to_uint8(ref), to_uint8(y)) >= 45.0  # CUDA fp32 (TF32 convs allowed) vs CPU fp32
    runner.infer(batch)
    phases = runner.phases_ms  # CUDA events around H2D, compute, D2H of the last NumPy call
    assert set(phases) == {"h2d", "compute", "d2h"} and all(v > 0 for v in phases.values())
    assert TorchRunner(ckpt).phases_ms is None


@pytest.mark.gpu
def test_dtk_run_cuda_graphs_flag_on_and_off(one_frame, ckpt, tmp_path):
    on = dtk_run(one_frame, tmp_path / "on", ckpt, "--cuda-graphs")
    off = dtk_run(one_frame, tmp_path / "off", ckpt, "--no-cuda-graphs")
    for key, ref in off.items():
        assert psnr(ref, on[key]) >= 50.0


SHIPPED = Path(__file__).resolve().parents[2] / "toolkit" / "assets" / "dtk-unet.safetensors"


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graphs_take_the_frame_evidence_of_the_shipped_model(batch, precision):
    """A given frame evidence reaches the captured graph (static evidence buffer), not only eager."""
    from toolkit.core.kernels import blur

    cpu = TorchRunner(SHIPPED)
    on = TorchRunner(SHIPPED, device="cuda", precision=precision)
    off = TorchRunner(SHIPPED, device="cuda", precision=precision, cuda_graphs=False)
    assert on.takes_evidence and on.describe()["cuda_graphs"]
    blurred = to_nchw([blur(im, "k11") for im in from_nchw(batch)])
    given = np.repeat(cpu.evidence(blurred[:1]), len(batch), axis=0)  # decide every frame as frame 0
    ref = cpu.infer(batch, evidence=given)
    tol = 1e-2 if precision == "fp32" else 3e-2  # CUDA "fp32" convolutions run in TF32 (cuDNN default)
    for runner in (on, off):
        np.testing.assert_allclose(runner.infer(batch, evidence=given), ref, atol=tol)
        np.testing.assert_allclose(runner.infer(batch), cpu.infer(batch), atol=tol)  # own decisions
    np.testing.assert_allclose(on.evidence(blurred), cpu.evidence(blurred), rtol=2e-2, atol=1e-3)


@pytest.mark.gpu
def test_native_tiles_on_cuda_match_the_cpu():
    from engines.tiled import deblur_frames
    from toolkit.core.demo import photo_mosaic
    from toolkit.core.kernels import blur

    frame = blur(photo_mosaic(720, 1280), "k7")
    cpu = deblur_frames(TorchRunner(SHIPPED), [frame], batch=8).images[0]
    gpu = deblur_frames(TorchRunner(SHIPPED, device="cuda"), [frame], batch=8).images[0]
    assert np.abs(cpu.astype(int) - gpu.astype(int)).max() <= 1

"""TorchRunner: safetensors checkpoint, NumPy/tensor I/O, channels_last, CPU precisions, compile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.torch import TorchRunner
from toolkit.core.convert import from_nchw, to_nchw
from toolkit.core.errors import DtkError
from toolkit.core.frames import discover_frames, read_frame, resize_frame
from toolkit.core.metrics import psnr
from toolkit.core.models import ModelConfig
from toolkit.core.models.checkpoint import save_checkpoint
from toolkit.core.models.unet import SeedUNet


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = SeedUNet(ModelConfig(width=8, residual=True)).eval()
    return save_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", model)


@pytest.fixture(scope="module")
def batch(demo_dir) -> np.ndarray:
    images = [resize_frame(read_frame(f.path)) for f in discover_frames(demo_dir)[:2]]
    return to_nchw(images)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.stack(from_nchw(x))


def test_numpy_in_numpy_out_and_tensor_in_tensor_out(ckpt, batch):
    runner = TorchRunner(ckpt)
    y = runner.infer(batch)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == batch.shape
    t = runner.infer(torch.from_numpy(batch))
    assert torch.is_tensor(t)
    np.testing.assert_allclose(t.numpy(), y, atol=1e-6)
    assert runner.describe()["precision"] == "fp32" and runner.describe()["width"] == 8


def test_channels_last_matches_nchw(ckpt, batch):
    ref = TorchRunner(ckpt).infer(batch)
    y = TorchRunner(ckpt, channels_last=True).infer(batch)
    assert float(np.abs(y - ref).max()) <= 1e-5


@pytest.mark.parametrize("precision,min_db", [("bf16", 30.0), ("fp16", 40.0)])
def test_cpu_low_precision_stays_close_to_fp32(ckpt, batch, precision, min_db):
    batch = np.ascontiguousarray(batch[:1, :, :128, :128])  # CPU fp16 kernels are slow; crop
    ref = TorchRunner(ckpt).infer(batch)
    runner = TorchRunner(ckpt, precision=precision)
    y = runner.infer(batch)
    assert y.dtype == np.float32
    assert "autocast" in runner.describe()["precision"]
    db = psnr(to_uint8(ref), to_uint8(y))
    assert db >= min_db, f"{precision} vs fp32: {db:.1f} dB"


def test_bad_options_are_dtk_errors(ckpt, tmp_path):
    with pytest.raises(DtkError, match="precision"):
        TorchRunner(ckpt, precision="int4")
    with pytest.raises(DtkError, match="device"):
        TorchRunner(ckpt, device="tpu")
    with pytest.raises(DtkError, match="not found"):
        TorchRunner(tmp_path / "none.safetensors")


@pytest.mark.slow
def test_compile_matches_eager(ckpt, batch):
    ref = TorchRunner(ckpt).infer(batch)
    y = TorchRunner(ckpt, compile=True).infer(batch)
    assert float(np.abs(y - ref).max()) <= 1e-4


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_tensor_stays_on_device(ckpt, batch, precision):
    runner = TorchRunner(ckpt, device="cuda", precision=precision, channels_last=True)
    y = runner.infer(torch.from_numpy(batch).cuda())
    assert y.is_cuda and y.dtype == torch.float32
    ref = TorchRunner(ckpt).infer(batch)
    assert psnr(to_uint8(ref), to_uint8(y.cpu().numpy())) >= 30.0

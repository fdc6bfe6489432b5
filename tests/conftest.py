"""Shared fixtures: real demo frames from scikit-image's photos, GPU skip logic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The built-in demo tree (5 sequences x 2 frames of 256x448, real photos)."""
    from toolkit.core.demo import write_demo

    root = tmp_path_factory.mktemp("demo")
    write_demo(root, frames_per_sequence=2)
    return root


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real RGB photo, cropped to 256x448."""
    from toolkit.core.demo import skimage_photo_path
    from toolkit.core.frames import read_frame

    return read_frame(skimage_photo_path("astronaut"))[100:356, 32:480].copy()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A width-8 residual seed U-Net (seed 0) as m.safetensors + m.json + m.onnx (fp32)."""
    pytest.importorskip("polygraphy", reason="ONNX export folds constants with Polygraphy (.[cpu])")
    import torch

    from toolkit.core.models import ModelConfig
    from toolkit.core.models.checkpoint import save_checkpoint
    from toolkit.core.models.unet import SeedUNet
    from training.export import export_onnx

    torch.manual_seed(0)
    model = SeedUNet(ModelConfig(width=8, residual=True)).eval()
    root = tmp_path_factory.mktemp("tiny-model")
    save_checkpoint(root / "m.safetensors", model)
    export_onnx(model, root / "m.onnx", check=False)
    return root


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a runner is opened: a refusal must come before the model loads."""
    from engines.spec import RunnerSpec

    def boom(*_a, **_k):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(RunnerSpec, "open", boom)

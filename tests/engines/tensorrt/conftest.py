"""Fixtures for the TensorRT tests: tiny ONNX models, the fake `tensorrt` module, real frames."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from fake_trt import HostDevice, make_fake_trt
from onnx import TensorProto
from tiny_onnx import tiny_model


@pytest.fixture
def onnx_fp32(tmp_path) -> Path:
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_model(), str(path))
    return path


@pytest.fixture
def onnx_fp16(tmp_path) -> Path:
    path = tmp_path / "tiny-fp16.onnx"
    onnx.save(tiny_model(TensorProto.FLOAT16), str(path))
    return path


@pytest.fixture
def onnx_qdq(tmp_path) -> Path:
    path = tmp_path / "tiny-qdq.onnx"
    onnx.save(tiny_model(qdq=True), str(path))
    return path


def _forget_polygraphy_trt() -> None:
    """Make Polygraphy import `tensorrt` afresh: each of its modules caches the module it first got
    (a `mod.lazy_import` LazyModule), and its TensorRT logger subclasses that module's ILogger."""
    for name, module in list(sys.modules.items()):
        lazy = getattr(module, "trt", None) if name.startswith("polygraphy.") else None
        if lazy is not None and type(lazy).__name__ == "LazyModule":
            object.__setattr__(lazy, "module", None)
    trt_util = sys.modules.get("polygraphy.backend.trt.util")
    if trt_util is not None:
        trt_util.TRT_LOGGER = None


def _install(version, monkeypatch, tmp_path):
    mod = make_fake_trt(version)
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _forget_polygraphy_trt()
    return mod


@pytest.fixture(params=["11.4.0", "10.14.1"], ids=["trt11", "trt10"])
def fake_trt(request, monkeypatch, tmp_path):
    """The fake installed as `tensorrt` (both flavours); the timing cache goes to tmp_path."""
    yield _install(request.param, monkeypatch, tmp_path)
    _forget_polygraphy_trt()


@pytest.fixture
def fake_trt11(monkeypatch, tmp_path):
    yield _install("11.4.0", monkeypatch, tmp_path)
    _forget_polygraphy_trt()


@pytest.fixture
def device() -> HostDevice:
    return HostDevice()


@pytest.fixture(scope="session")
def photo_batch(astronaut) -> np.ndarray:
    """7 x 3 x 256 x 448 float32 in [0, 1]: the astronaut photo, flipped and rolled."""
    base = astronaut.astype(np.float32).transpose(2, 0, 1) / 255.0
    frames = [np.roll(base, 17 * i, axis=2)[:, :, :: (-1 if i % 2 else 1)] for i in range(7)]
    return np.ascontiguousarray(np.stack(frames))

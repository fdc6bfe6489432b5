"""Model resolution (siblings, shipped default) and backend choice, including --backend auto."""

from __future__ import annotations

import sys

import pytest

import engines.models as models
from engines.loaders import choose_backend, load_runner
from toolkit.errors import DtkError

CPU_INFO = {"cuda_available": False, "torch": "2", "onnxruntime": "1", "tensorrt": None}
GPU_TRT_INFO = {"cuda_available": True, "torch": "2", "onnxruntime": "1", "tensorrt": "10"}


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return tiny_model_dir


def test_siblings_are_found_from_any_file(tiny):
    for given in ("m.onnx", "m.safetensors", "m.json"):
        assert models.resolve_model(tiny / given, "onnxruntime") == tiny / "m.onnx"
        assert models.resolve_model(tiny / given, "torch") == tiny / "m.safetensors"


def test_missing_sibling_says_what_to_do(tiny, tmp_path):
    (tmp_path / "only.onnx").write_bytes((tiny / "m.onnx").read_bytes())
    with pytest.raises(DtkError, match="X.safetensors"):
        models.resolve_model(tmp_path / "only.onnx", "torch")
    for f in ("ck.safetensors", "ck.json"):
        (tmp_path / f).write_bytes((tiny / f.replace("ck", "m")).read_bytes())
    with pytest.raises(DtkError, match="dtk export"):
        models.resolve_model(tmp_path / "ck.safetensors", "onnxruntime")
    with pytest.raises(DtkError, match="dtk build-engine"):
        models.resolve_model(tmp_path / "ck.safetensors", "tensorrt")
    with pytest.raises(DtkError, match="model not found"):
        models.resolve_model(tmp_path / "nope.onnx", "onnxruntime")
    with pytest.raises(DtkError, match="unknown model type"):
        (tmp_path / "w.pt").write_bytes(b"x")
        models.resolve_model(tmp_path / "w.pt", "torch")


def test_shipped_default_points_into_assets(tiny, monkeypatch, tmp_path):
    monkeypatch.setattr(models, "ASSETS_DIR", tmp_path)
    with pytest.raises(DtkError, match="shipped model"):
        models.resolve_model(None, "onnxruntime")
    for suffix in (".onnx", ".safetensors", ".json"):
        (tmp_path / f"dtk-unet{suffix}").write_bytes((tiny / f"m{suffix}").read_bytes())
    assert models.resolve_model(None, "onnxruntime") == tmp_path / "dtk-unet.onnx"
    assert models.resolve_model(None, "torch") == tmp_path / "dtk-unet.safetensors"


def test_auto_picks_and_falls_back_with_a_reason(tiny, tmp_path):
    choice = choose_backend("auto", tiny / "m.onnx", info=CPU_INFO)
    assert choice.backend == "onnxruntime" and "fastest" in choice.reason
    # a GPU with TensorRT but no built engine: ORT (its TensorRT EP) instead, and say why
    choice = choose_backend("auto", tiny / "m.onnx", info=GPU_TRT_INFO)
    assert choice.backend == "onnxruntime" and "tensorrt not usable" in choice.reason
    # bf16 is a torch precision
    assert choose_backend("auto", tiny / "m.onnx", "bf16", info=CPU_INFO).backend == "torch"
    # a checkpoint without an ONNX sibling runs on torch
    for f in ("ck.safetensors", "ck.json"):
        (tmp_path / f).write_bytes((tiny / f.replace("ck", "m")).read_bytes())
    assert choose_backend("auto", tmp_path / "ck.json", info=CPU_INFO).backend == "torch"


def test_explicit_backends_load_runners(tiny):
    ort = load_runner("onnxruntime", tiny / "m.json", threads=1)
    assert ort.name == "onnxruntime" and ort.describe()["model"].endswith("m.onnx")
    tr = load_runner("torch", tiny / "m.onnx", precision="bf16")
    assert tr.name == "torch" and tr.describe()["precision"].startswith("bf16")
    with pytest.raises(DtkError, match="bf16"):
        load_runner("onnxruntime", tiny / "m.onnx", precision="bf16")
    with pytest.raises(DtkError, match="unknown backend"):
        load_runner("openvino", tiny / "m.onnx")


def test_tensorrt_without_tensorrt_is_a_hint(tmp_path, monkeypatch):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on a machine without TensorRT
    with pytest.raises(DtkError, match=r"pip install \.\[gpu\]"):
        load_runner("tensorrt", engine)


def test_threads_are_bounded_before_anything_loads(tiny, monkeypatch):
    from engines.loaders import check_threads, max_threads

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert max_threads() == 8
    check_threads(None)
    check_threads(8)
    for bad in (0, 9, 10000):
        with pytest.raises(DtkError, match="--threads"):
            check_threads(bad)
    with pytest.raises(DtkError, match="at most 8"):
        load_runner("onnxruntime", tiny / "m.onnx", threads=10000)
    monkeypatch.setattr("os.cpu_count", lambda: 512)
    assert max_threads() == 256

"""Model resolution (siblings, shipped default), backend choice (--backend auto) and RunnerSpec."""

from __future__ import annotations

import sys

import pytest

import toolkit.core.modelfiles as models
from engines.options import check_threads, max_threads
from engines.spec import RunnerSpec
from toolkit.core.errors import DtkError

CPU_INFO = {"cuda_available": False, "torch": "2", "onnxruntime": "1", "tensorrt": None}
GPU_TRT_INFO = {"cuda_available": True, "torch": "2", "onnxruntime": "1", "tensorrt": "10"}
CPU_OV_INFO = {**CPU_INFO, "openvino": "2026.4"}


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
    choice = RunnerSpec.choose("auto", tiny / "m.onnx", info=CPU_INFO)
    assert choice.backend == "onnxruntime" and "fastest" in choice.reason
    # a GPU with TensorRT but no built engine: ORT (its TensorRT EP) instead, and say why
    choice = RunnerSpec.choose("auto", tiny / "m.onnx", info=GPU_TRT_INFO)
    assert choice.backend == "onnxruntime" and "tensorrt not usable" in choice.reason
    # bf16 is a torch precision
    assert RunnerSpec.choose("auto", tiny / "m.onnx", precision="bf16", info=CPU_INFO).backend == "torch"
    # a checkpoint without an ONNX sibling runs on torch
    for f in ("ck.safetensors", "ck.json"):
        (tmp_path / f).write_bytes((tiny / f.replace("ck", "m")).read_bytes())
    assert RunnerSpec.choose("auto", tmp_path / "ck.json", info=CPU_INFO).backend == "torch"


def test_auto_keeps_onnxruntime_ahead_of_openvino_on_a_cpu(tiny, tmp_path):
    """OpenVINO's exact fp32 measured slower than ONNX Runtime on the dev CPU: auto picks it only
    without ONNX Runtime."""
    assert RunnerSpec.choose("auto", tiny / "m.onnx", info=CPU_OV_INFO).backend == "onnxruntime"
    only_ov = {**CPU_OV_INFO, "onnxruntime": None}
    choice = RunnerSpec.choose("auto", tiny / "m.onnx", info=only_ov)
    assert choice.backend == "openvino" and "fastest" in choice.reason
    assert choice.model == tiny / "m.onnx"
    # a GPU machine keeps TensorRT / torch first
    assert RunnerSpec.choose("auto", tiny / "m.onnx", info={**GPU_TRT_INFO, "openvino": "2026.4"}
                             ).backend == "onnxruntime"
    # precisions OpenVINO does not take fall through to the next backend, saying why
    # bf16 on a CPU: ONNX Runtime cannot, OpenVINO can (its CPU's bf16 arithmetic)
    bf16 = RunnerSpec.choose("auto", tiny / "m.onnx", precision="bf16", info=CPU_OV_INFO)
    assert bf16.backend == "openvino"
    choice = RunnerSpec.choose("auto", tiny / "m.onnx", precision="fp16", info=only_ov)
    assert choice.backend == "torch" and "openvino not usable" in choice.reason
    # a checkpoint without an ONNX sibling runs on torch
    for f in ("ck.safetensors", "ck.json"):
        (tmp_path / f).write_bytes((tiny / f.replace("ck", "m")).read_bytes())
    assert RunnerSpec.choose("auto", tmp_path / "ck.json", info=CPU_OV_INFO).backend == "torch"


def test_openvino_options_are_checked_before_loading(tiny):
    with pytest.raises(DtkError, match="unknown OpenVINO mode"):
        RunnerSpec.choose("openvino", tiny / "m.onnx", hint="fast")
    with pytest.raises(DtkError, match="--ov-mode does not apply to the onnxruntime backend"):
        RunnerSpec.choose("onnxruntime", tiny / "m.onnx", hint="latency")
    with pytest.raises(DtkError, match="OpenVINO runs fp32 .exact. or bf16"):
        RunnerSpec.choose("openvino", tiny / "m.onnx", precision="fp16")
    assert RunnerSpec.choose("openvino", tiny / "m.onnx", precision="bf16").precision == "bf16"
    with pytest.raises(DtkError, match="--compile does not apply to the openvino backend"):
        RunnerSpec.choose("openvino", tiny / "m.onnx", compile=True)
    spec = RunnerSpec.choose("openvino", tiny / "m.json", threads=1, hint="throughput")
    assert (spec.model.name, spec.threads, spec.hint) == ("m.onnx", 1, "throughput")


def test_openvino_reads_onnx_or_ir(tiny, tmp_path):
    assert models.resolve_model(tiny / "m.safetensors", "openvino") == tiny / "m.onnx"
    (tmp_path / "ir.xml").write_text("<net/>")
    assert models.resolve_model(tmp_path / "ir.xml", "openvino") == tmp_path / "ir.xml"
    (tmp_path / "ir.onnx").write_bytes((tiny / "m.onnx").read_bytes())
    assert models.resolve_model(tmp_path / "ir.xml", "openvino") == tmp_path / "ir.xml"  # the file given
    assert models.resolve_model(tmp_path / "ir.onnx", "openvino") == tmp_path / "ir.onnx"
    with pytest.raises(DtkError, match="OpenVINO needs an .onnx model or its IR"):
        models.resolve_model(_checkpoint_only(tiny, tmp_path), "openvino")


def _checkpoint_only(tiny, folder):
    for f in ("solo.safetensors", "solo.json"):
        (folder / f).write_bytes((tiny / f.replace("solo", "m")).read_bytes())
    return folder / "solo.safetensors"


def test_explicit_backends_load_runners(tiny):
    ort = RunnerSpec.choose("onnxruntime", tiny / "m.json", threads=1).open()
    assert ort.name == "onnxruntime" and ort.describe()["model"].endswith("m.onnx")
    tr = RunnerSpec.choose("torch", tiny / "m.onnx", precision="bf16").open()
    assert tr.name == "torch" and tr.describe()["precision"].startswith("bf16")
    with pytest.raises(DtkError, match="bf16"):
        RunnerSpec.choose("onnxruntime", tiny / "m.onnx", precision="bf16")
    with pytest.raises(DtkError, match="unknown backend"):
        RunnerSpec.choose("onnxrt", tiny / "m.onnx")


def test_tensorrt_without_tensorrt_is_a_hint(tmp_path, monkeypatch):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on a machine without TensorRT
    with pytest.raises(DtkError, match=r"pip install \.\[gpu\]"):
        RunnerSpec.choose("tensorrt", engine).open()


def test_threads_are_bounded_before_anything_loads(tiny, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert max_threads() == 8
    check_threads(None)
    check_threads(8)
    for bad in (0, 9, 10000):
        with pytest.raises(DtkError, match="--threads"):
            check_threads(bad)
    with pytest.raises(DtkError, match="at most 8"):
        RunnerSpec.choose("onnxruntime", tiny / "m.onnx", threads=10000)
    monkeypatch.setattr("os.cpu_count", lambda: 512)
    assert max_threads() == 256


def test_spec_is_picklable_and_opens_what_it_names(tiny):
    import pickle

    spec = RunnerSpec.choose("onnxruntime", tiny / "m.safetensors", threads=1, size=(256, 448))
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and again.model == tiny / "m.onnx"
    with again.open() as runner:
        assert runner.name == "onnxruntime" and runner.describe()["threads"] == 1


@pytest.mark.parametrize("backend,options,flag,taker", [
    ("onnxruntime", {"compile": True}, "--compile", "torch"),
    ("onnxruntime", {"cuda_graphs": True}, "--cuda-graphs", "tensorrt"),
    ("tensorrt", {"threads": 2}, "--threads", "onnxruntime or openvino or torch"),
    ("tensorrt", {"channels_last": True}, "--channels-last", "torch"),
])
def test_an_option_the_backend_ignores_is_refused_naming_who_takes_it(tmp_path, tiny, backend, options,
                                                                         flag, taker):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    model = engine if backend == "tensorrt" else tiny / "m.onnx"
    with pytest.raises(DtkError, match=f"{flag}.*{backend}.*--backend {taker}"):
        RunnerSpec.choose(backend, model, **options)


def test_cuda_graphs_reach_tensorrt(tmp_path, monkeypatch):
    """--cuda-graphs is a TensorRT option too (it was unreachable from the CLI)."""
    import engines.spec as spec_module

    seen = {}

    class Recorder:
        def __init__(self, path, **kw):
            seen.update(kw, path=path)

    monkeypatch.setattr(spec_module, "TrtRunner", Recorder)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    RunnerSpec.choose("tensorrt", engine, cuda_graphs=True).open()
    assert seen == {"path": engine, "cuda_graphs": True}


def test_tensorrt_precision_is_the_engines_own(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(DtkError, match="built with"):
        RunnerSpec.choose("tensorrt", engine, precision="fp16")

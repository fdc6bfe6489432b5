"""`build_engine` against the fake TensorRT (10.x and 11.x flavours) and the precision decision table.

The build goes through Polygraphy's real loaders (network_from_onnx_path, CreateConfig, Profile,
engine_bytes_from_network) with `tensorrt` replaced by the fake: where the two disagree, the fake
is what is wrong (its names are checked against the real bindings in test_trt_bindings.py).
"""

from __future__ import annotations

import json
import os
import stat

import onnx
import pytest
from tiny_onnx import tiny_model

from engines.tensorrt.build import build_engine, graph_precision, plan_precision
from engines.tensorrt.sidecar import BatchProfile, GpuFacts, load_sidecar
from toolkit.core.errors import DtkError

GPU = GpuFacts("Fake H200", "9.0")


def quiet(_msg: str) -> None:
    pass


def test_graph_precision(onnx_fp32, onnx_fp16, onnx_qdq):
    assert [graph_precision(p) for p in (onnx_fp32, onnx_fp16, onnx_qdq)] == ["fp32", "fp16", "int8"]


@pytest.mark.parametrize(("version", "graph", "requested", "expected"), [
    ("11.4.0", "fp16", None, (False, False, "fp16")),  # 11: strongly typed always, no flags at all
    ("11.4.0", "int8", None, (False, False, "int8")),
    ("11.4.0", "fp32", "fp32", (False, False, "fp32")),
    ("10.14.1", "fp16", "fp16", (True, False, "fp16")),  # 10: STRONGLY_TYPED network
    ("10.14.1", "int8", None, (True, False, "int8")),
    ("10.14.1", "fp32", "fp16", (False, True, "fp16")),  # 10: BuilderFlag.FP16 fallback
    ("10.14.1", "fp32", None, (False, False, "fp32")),
])
def test_plan_precision(version, graph, requested, expected):
    plan = plan_precision(version, graph, requested)
    assert (plan.strongly_typed, plan.builder_fp16, plan.precision) == expected


@pytest.mark.parametrize(("version", "graph", "requested", "needle"), [
    ("11.4.0", "fp32", "fp16", "dtk export --fp16"),
    ("10.14.1", "fp16", "fp32", "this ONNX graph is fp16"),
    ("11.4.0", "int8", "fp16", "this ONNX graph is int8"),
    ("11.4.0", "fp32", "bf16", "unknown precision"),
])
def test_plan_precision_refusals(version, graph, requested, needle):
    with pytest.raises(DtkError, match=needle):
        plan_precision(version, graph, requested)


def test_build_writes_plan_and_sidecar(fake_trt, onnx_fp16, tmp_path):
    out = tmp_path / "engines" / "tiny.engine"
    sc = build_engine(onnx_fp16, out, min_batch=2, opt_batch=4, max_batch=6, workspace_gb=1.5,
                      gpu=GPU, log=quiet)
    build = fake_trt.builds[-1]
    assert json.loads(out.read_bytes()) == build
    assert build["profile"]["input"] == [[2, 3, 256, 448], [4, 3, 256, 448], [6, 3, 256, 448]]
    assert build["workspace"] == int(1.5 * (1 << 30))
    assert build["builder_flags"] == ["TF32"] and build["strongly_typed"]  # TF32: TensorRT's default, kept
    major = int(fake_trt.__version__.split(".")[0])
    typed_bit = 1 << int(fake_trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert build["flags"] == (0 if major >= 11 else typed_bit)  # STRONGLY_TYPED asked for on 10.x only
    # Polygraphy's code ran: its plugin init, its default verbosity, the cache set with ignore_mismatch=False.
    assert ("init_libnvinfer_plugins", "") in fake_trt.calls and build["profiling_verbosity"] == "DETAILED"
    assert ("set_timing_cache", False) in fake_trt.calls
    assert load_sidecar(out) == sc
    assert (sc.precision, sc.tensorrt_version, sc.compute_capability) == ("fp16", fake_trt.__version__, "9.0")
    assert sc.profile == BatchProfile(2, 4, 6, 256, 448)
    assert (sc.input_name, sc.output_name, len(sc.onnx_sha256)) == ("input", "output", 64)


def test_engine_and_sidecar_get_the_umask_mode(fake_trt, onnx_fp16, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "e" / "m.engine"
        build_engine(onnx_fp16, out, gpu=GPU, log=quiet)
    finally:
        os.umask(old)
    for p in (out, out.with_name("m.engine.json")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.engine", "m.engine.json"]  # no .part left


def test_qdq_graph_builds_as_int8(fake_trt, onnx_qdq, tmp_path):
    sc = build_engine(onnx_qdq, tmp_path / "q.engine", gpu=GPU, log=quiet)
    assert sc.precision == "int8" and fake_trt.builds[-1]["builder_flags"] == ["TF32"]
    major = int(fake_trt.__version__.split(".")[0])
    assert fake_trt.builds[-1]["flags"] == (0 if major >= 11 else 1 << 1)  # STRONGLY_TYPED is bit 1


def test_fp32_graph_fp16_request(fake_trt, onnx_fp32, tmp_path):
    out = tmp_path / "f.engine"
    if fake_trt.__version__.startswith("11"):
        with pytest.raises(DtkError, match="BuilderFlag.FP16 is removed"):
            build_engine(onnx_fp32, out, precision="fp16", gpu=GPU, log=quiet)
        assert not out.exists() and not fake_trt.calls  # refused before Polygraphy touched TensorRT
    else:
        sc = build_engine(onnx_fp32, out, precision="fp16", gpu=GPU, log=quiet)
        assert fake_trt.builds[-1]["builder_flags"] == ["FP16", "TF32"] and sc.builder_flags == ["FP16"]
        assert not fake_trt.builds[-1]["strongly_typed"]


def test_timing_cache_reused_across_builds(fake_trt11, onnx_fp16, onnx_fp32, tmp_path):
    cache = tmp_path / "timing.cache"
    build_engine(onnx_fp16, tmp_path / "a.engine", timing_cache=cache, gpu=GPU, log=quiet)
    build_engine(onnx_fp32, tmp_path / "b.engine", timing_cache=cache, gpu=GPU, log=quiet)
    loads = [c[1] for c in fake_trt11.calls if c[0] == "create_timing_cache"]
    assert loads[0] == 0 and loads[1] > 0  # created empty, then loaded the saved one
    assert cache.read_text().splitlines() == [f"tactics for {onnx_fp16}", f"tactics for {onnx_fp32}"]
    assert (tmp_path / "timing.cache.lock").is_file()  # Polygraphy's LockFile guarded load and save


def test_default_timing_cache_per_version_and_gpu(fake_trt11, onnx_fp16, tmp_path):
    messages = []
    build_engine(onnx_fp16, tmp_path / "a.engine", gpu=GPU, log=messages.append)
    assert (tmp_path / "cache" / "dtk" / "tensorrt" / "timing-trt11.4.0-sm90.cache").is_file()
    assert "(new)" in messages[0]
    build_engine(onnx_fp16, tmp_path / "b.engine", gpu=GPU, log=messages.append)
    assert "(reused)" in messages[2]


def test_parser_errors_name_the_node(fake_trt11, tmp_path):
    path = tmp_path / "bad.onnx"
    onnx.save(tiny_model(extra_op="DtkUnsupportedOp"), str(path))
    with pytest.raises(DtkError) as err:
        build_engine(path, tmp_path / "bad.engine", gpu=GPU, log=quiet)
    message = str(err.value)
    assert message.startswith(f"TensorRT's ONNX parser rejected {path}:")
    assert ("In node 1 (importFallbackPluginImporter): UNSUPPORTED_NODE: no importer registered for op: "
            "DtkUnsupportedOp [node 'mystery_node' (DtkUnsupportedOp)]") in message
    assert not (tmp_path / "bad.engine").exists()


def test_build_failure_is_a_dtk_error(fake_trt11, onnx_fp16, tmp_path, monkeypatch):
    monkeypatch.setattr(fake_trt11.Builder, "build_serialized_network", lambda self, network, config: None)
    with pytest.raises(DtkError, match="could not build an engine .* a larger --workspace"):
        build_engine(onnx_fp16, tmp_path / "x.engine", gpu=GPU, log=quiet)
    assert not (tmp_path / "x.engine").exists()


def test_polygraphy_log_stays_off_stdout(fake_trt, onnx_fp16, tmp_path, capsys):
    build_engine(onnx_fp16, tmp_path / "x.engine", gpu=GPU, log=quiet)
    assert capsys.readouterr().out == ""  # `--json -` writes the sidecar to stdout


def test_dynamic_hw_uses_default_geometry(fake_trt11, tmp_path):
    path = tmp_path / "dyn.onnx"
    onnx.save(tiny_model(height=0, width=0), str(path))
    sc = build_engine(path, tmp_path / "d.engine", max_batch=4, opt_batch=2, gpu=GPU, log=quiet)
    assert (sc.profile.height, sc.profile.width) == (256, 448)


def test_refuses_overwrite_and_bad_inputs(fake_trt11, onnx_fp16, tmp_path):
    out = tmp_path / "x.engine"
    out.write_bytes(b"old")
    with pytest.raises(DtkError, match="--overwrite"):
        build_engine(onnx_fp16, out, gpu=GPU, log=quiet)
    assert out.read_bytes() == b"old" and not fake_trt11.calls
    build_engine(onnx_fp16, out, overwrite=True, gpu=GPU, log=quiet)
    assert out.read_bytes() != b"old"
    with pytest.raises(DtkError, match="not found"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "y.engine", gpu=GPU, log=quiet)
    with pytest.raises(DtkError, match="min <= opt <= max"):
        build_engine(onnx_fp16, tmp_path / "z.engine", min_batch=8, opt_batch=4, gpu=GPU, log=quiet)

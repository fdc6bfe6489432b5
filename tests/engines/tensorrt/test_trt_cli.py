"""`dtk build-engine`: exit 2 with the install hint without TensorRT, overwrite refusal, plan + sidecar."""

from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

from engines.tensorrt import sidecar as sidecar_mod
from engines.tensorrt.sidecar import GpuFacts, sidecar_path
from toolkit.app.cli import app

cli = CliRunner()


def test_without_tensorrt_exit_2_with_hint(monkeypatch, onnx_fp16, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    # Polygraphy is imported only after the TensorRT check: were it first, this would name Polygraphy.
    monkeypatch.setitem(sys.modules, "polygraphy.backend.trt", None)
    out = tmp_path / "m.engine"
    res = cli.invoke(app, ["build-engine", str(onnx_fp16), "-o", str(out)])
    assert res.exit_code == 2
    assert "TensorRT not installed: pip install .[gpu]" in res.output
    assert "Traceback" not in res.output and not out.exists()


def test_refuses_to_overwrite(fake_trt11, onnx_fp16, tmp_path):
    out = tmp_path / "m.engine"
    out.write_bytes(b"keep me")
    res = cli.invoke(app, ["build-engine", str(onnx_fp16), "-o", str(out)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert out.read_bytes() == b"keep me" and not fake_trt11.calls


def test_builds_plan_and_sidecar_with_fake(fake_trt11, monkeypatch, onnx_fp16, tmp_path):
    monkeypatch.setattr(sidecar_mod, "cuda_gpu_facts", lambda index=0: GpuFacts("Fake H200", "9.0"))
    out = tmp_path / "m.engine"
    cache = tmp_path / "t.cache"
    res = cli.invoke(app, ["build-engine", str(onnx_fp16), "-o", str(out), "--min-batch", "1",
                           "--opt-batch", "2", "--max-batch", "4", "--workspace", "2",
                           "--timing-cache", str(cache), "--json", "-"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and cache.is_file()
    assert json.loads(res.stdout) == json.loads(sidecar_path(out).read_text())  # no Polygraphy log in it
    sc = json.loads(sidecar_path(out).read_text())
    assert sc["precision"] == "fp16" and sc["profile"]["max"] == 4 and sc["gpu_name"] == "Fake H200"
    assert fake_trt11.builds[-1]["workspace"] == 2 << 30


def test_fp32_flag_on_fp16_graph_refused(fake_trt11, monkeypatch, onnx_fp16, tmp_path):
    monkeypatch.setattr(sidecar_mod, "cuda_gpu_facts", lambda index=0: GpuFacts("Fake H200", "9.0"))
    res = cli.invoke(app, ["build-engine", str(onnx_fp16), "-o", str(tmp_path / "m.engine"), "--fp32"])
    assert res.exit_code == 2 and "this ONNX graph is fp16" in res.output

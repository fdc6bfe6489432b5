"""The one-command GPU check runs on a CPU machine and says plainly what it skipped and why."""

from __future__ import annotations

import json

from bench.gpu_check import main, missing_pieces


def test_missing_pieces_name_what_is_skipped():
    info = {"cuda_available": False, "tensorrt": None, "dali": None,
            "ort_providers": ["CPUExecutionProvider"]}
    missing = missing_pieces(info)
    assert set(missing) == {"cuda", "tensorrt", "dali", "onnxruntime-gpu"}
    assert "skipped" in missing["cuda"] and "build-engine" in missing["tensorrt"]
    full = {"cuda_available": True, "tensorrt": "11.4", "dali": "2.4",
            "ort_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
    assert missing_pieces(full) == {}


def test_cpu_machine_reports_no_cuda_and_writes_summary(tmp_path, capsys, monkeypatch):
    import bench.gpu_check

    real = bench.gpu_check.collect
    monkeypatch.setattr(bench.gpu_check, "collect", lambda: {**real(), "cuda_available": False})
    assert main(["--out", str(tmp_path), "--no-tests"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "cuda" in summary["missing"]
    assert summary["bench"] == {"skipped": summary["missing"]["cuda"]}
    assert "missing cuda" in capsys.readouterr().out

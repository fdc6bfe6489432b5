"""`dtk bench` end to end on a tiny random-init model: table, JSON schema, CSV, PNG; compare; errors."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from bench.compare import compare_reports
from bench.harness import SCHEMA
from bench.report import CSV_FIELDS, load_report
from bench.roofline import measure_ceiling
from toolkit.app.cli import app
from toolkit.core.errors import DtkError

runner = CliRunner()
TINY = [
    "bench",
    "--width",
    "8",
    "--height",
    "64",
    "--frame-width",
    "64",
    "--warmup",
    "0",
    "--iterations",
    "3",
    "--ceiling",
    "100",
    "--max-extend",
    "0",
]

LATENCY_KEYS = {"count", "min", "mean", "p50", "p90", "p95", "p99", "max", "std"}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    res = runner.invoke(
        app,
        [
            *TINY,
            "--backend",
            "onnxruntime,torch",
            "--batch",
            "1,2",
            "--json",
            str(out / "a.json"),
            "--csv",
            str(out / "a.csv"),
            "--plot",
            str(out / "a.png"),
        ],
    )
    assert res.exit_code == 0, res.output
    return out, res.output


def test_tiny_bench_writes_table_json_csv_png(tiny_report):
    out, output = tiny_report
    assert "onnxruntime/cpu-fp32" in output and "torch/channels_last" in output
    doc = json.loads((out / "a.json").read_text())
    assert doc["schema"] == SCHEMA
    for key in ("created", "model", "config", "environment", "ceilings", "rows", "skipped", "extra"):
        assert key in doc
    assert doc["environment"]["torch"] and "cpu_count" in doc["environment"]
    rows = doc["rows"]
    got = {(r["backend"], r["variant"], r["batch"]) for r in rows}
    assert got == {
        (b, v, n)
        for b, v in [("onnxruntime", "cpu-fp32"), ("torch", "eager"), ("torch", "channels_last")]
        for n in (1, 2)
    }
    for r in rows:
        assert r["mode"] == "compute" and r["iterations"] == 3 and len(r["samples_ms"]) == 3
        assert r["status"] == "ran" and r["reason"] == "" and r["extended_calls"] == 0
        assert r["cv"] >= 0 and r["stability"] in ("stable", "unstable") and r["cv_threshold"] == 0.05
        assert set(r["quality"]["psnr_db"]) == {"k7", "k11"} and r["quality"]["max_abs_err"] >= 0
        assert set(r["latency_ms"]) == LATENCY_KEYS
        assert r["latency_ms"]["min"] <= r["latency_ms"]["p50"] <= r["latency_ms"]["max"]
        assert isinstance(r["images_per_s"], float) and r["images_per_s"] > 0
        assert r["gflop_per_image"] == pytest.approx(0.13860864)  # width 8 at 64x64, counted
        assert r["gflops"] == pytest.approx(r["gflop_per_image"] * r["images_per_s"])
        assert r["ceiling_pct"] == pytest.approx(r["gflops"])  # ceiling given as 100 GFLOP/s
        assert r["peak_rss_mb"] > 0 and r["runner"]["backend"] == r["backend"]
    with (out / "a.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows) and set(table[0]) == set(CSV_FIELDS)
    png = (out / "a.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_compare_cli_same_report_is_ratio_one(tiny_report):
    out, _ = tiny_report
    res = runner.invoke(
        app, ["bench", "compare", str(out / "a.json"), str(out / "a.json"), "--json", str(out / "c.json")]
    )
    assert res.exit_code == 0, res.output
    result = json.loads((out / "c.json").read_text())
    assert len(result["ratios"]) == 6
    assert all(r["throughput_ratio"] == pytest.approx(1.0) for r in result["ratios"])


def test_compare_ratios(tiny_report):
    out, _ = tiny_report
    a = load_report(out / "a.json")
    b = json.loads(json.dumps(a))
    b["rows"] = b["rows"][1:]  # one row only in A
    for r in b["rows"]:
        r["images_per_s"] *= 2.0
        r["latency_ms"]["p50"] /= 2.0
    b["environment"]["torch"] = "9.9"
    result = compare_reports(a, b)
    assert len(result["ratios"]) == len(a["rows"]) - 1 and len(result["only_in_a"]) == 1
    for r in result["ratios"]:
        assert r["throughput_ratio"] == pytest.approx(2.0) and r["p50_ratio"] == pytest.approx(0.5)
    assert result["environment_diff"]["torch"][1] == "9.9"


def test_e2e_rows_through_the_pipeline(demo_dir, tmp_path):
    res = runner.invoke(
        app,
        [
            *TINY,
            "--backend",
            "onnxruntime",
            "--batch",
            "2",
            "--e2e-only",
            "--frames",
            str(demo_dir),
            "--e2e-pipeline",
            "fallback",
            "--json",
            str(tmp_path / "e.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "e.json").read_text())["rows"]
    assert [(r["mode"], r["batch"], r["iterations"]) for r in rows] == [("e2e", 2, 3)]
    assert rows[0]["images_per_s"] > 0


def test_user_errors_exit_2(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert runner.invoke(app, ["bench", "compare", str(bad), str(bad)]).exit_code == 2
    assert runner.invoke(app, [*TINY, "--batch", "one"]).exit_code == 2
    assert runner.invoke(app, [*TINY, "--variants", "warp-drive"]).exit_code == 2
    with pytest.raises(DtkError):
        load_report(tmp_path / "missing.json")


def test_help_explains_the_method():
    res = runner.invoke(app, ["bench", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.split())  # help is wrapped to the terminal
    assert "Warm-up is excluded" in text and "compare" in text


def test_roofline_measures_a_positive_ceiling():
    c = measure_ceiling("cpu", n=256, duration_s=0.05)
    assert c.repeats >= 3 and c.best_gflops >= c.median_gflops > 0


def test_default_bench_runs_the_shipped_model(tmp_path):
    """`dtk bench` with its defaults on dtk's own model (it once failed counting FLOPs of its bank):
    the backend and variant dtk run uses here, a few batches, a table within 100 columns."""
    out = tmp_path / "shipped.json"
    res = runner.invoke(app, ["bench", "--iterations", "1", "--warmup", "0", "--max-extend", "0",
                              "--json", str(out)], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [(r["backend"], r["variant"], r["batch"]) for r in rows] == [
        ("onnxruntime", "cpu-fp32", 1), ("onnxruntime", "cpu-fp32", 8)]  # auto on a CPU
    assert all(r["gflop_per_image"] > 5 and r["images_per_s"] > 0 for r in rows)
    table = [line for line in res.output.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and max(len(line) for line in table) <= 100, "\n".join(table)
    header = next(line for line in table if "batch" in line)
    assert "PSNR k7/k11" in header and "calls" not in header  # the wide columns: --wide
    wide = runner.invoke(app, ["bench", "--iterations", "1", "--warmup", "0", "--batch", "1", "--wide",
                               "--no-quality"], env={"COLUMNS": "300"})
    header = next(line for line in wide.output.splitlines() if "batch" in line and line[:1] == "┃")
    assert wide.exit_code == 0 and "calls" in header and "mean" in header, wide.output


def test_e2e_rows_time_blurred_frames_apart_from_passed_ones(tmp_path):
    """--e2e frames are k7-blurred by default (the work users ask for); frames the gate passes are
    counted apart: sharp photos (--blur none) are passed, blurred ones deblurred."""
    args = ["bench", "--e2e-only", "--batch", "2", "--iterations", "2", "--warmup", "0", "--max-extend", "0",
            "--no-quality"]
    for blur, key in ((None, "deblurred_per_s"), ("none", "passed_per_s")):
        out = tmp_path / f"{blur}.json"
        res = runner.invoke(app, [*args, *(["--blur", blur] if blur else []), "--json", str(out)],
                            env={"COLUMNS": "300"})
        assert res.exit_code == 0, res.output
        doc = json.loads(out.read_text())
        (row,) = doc["rows"]
        assert doc["extra"]["e2e_frames"]["blur"] == (None if blur else "k7")
        assert row[key] == pytest.approx(row["images_per_s"]) and row[key] > 0
        assert row["deblurred_per_s"] + row["passed_per_s"] == pytest.approx(row["images_per_s"])
        assert set(row["tile_sizes"]) == {"256x448"}  # the demo frames: one pass each
        assert row["mpx_per_s"] == pytest.approx(row["images_per_s"] * 256 * 448 / 1e6)
        assert "deblurred" in res.output and "passed" in res.output
    res = runner.invoke(app, [*args, "--blur", "k5"])
    assert res.exit_code == 2 and "k5" in res.output


def _trt_problem():
    from bench.variants import cuda_available, tensorrt_problem

    return tensorrt_problem(cuda_available())


def _all_output(res) -> str:
    """stdout + stderr with Rich's line wrapping undone."""
    return " ".join((res.output + (res.stderr if res.stderr_bytes is not None else "")).split())


def test_backend_tensorrt_that_cannot_run_gives_the_reason():
    problem = _trt_problem()
    if problem is None:
        pytest.skip("TensorRT runs here")
    res = runner.invoke(app, [*TINY, "--backend", "tensorrt", "--batch", "1"])
    out = _all_output(res)
    assert res.exit_code == 2, out
    assert "no runner to benchmark: " in out and not out.rstrip().endswith("benchmark:")
    assert "tensorrt/engine" in out and problem.split(":")[0] in out


def test_engine_without_tensorrt_exits_2_with_install_hint(tmp_path):
    if _trt_problem() is None:
        pytest.skip("TensorRT runs here")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not really an engine")
    res = runner.invoke(app, ["bench", "--engine", str(engine), "--batch", "1", "--iterations", "1"])
    out = _all_output(res)
    assert res.exit_code == 2, out
    assert "pip install .[gpu]" in out and "Traceback" not in out


def test_backend_all_lists_tensorrt_as_skipped_with_reason(tmp_path):
    problem = _trt_problem()
    if problem is None:
        pytest.skip("TensorRT runs here")
    out = tmp_path / "all.json"
    res = runner.invoke(app, [*TINY, "--backend", "all", "--variants", "cpu-fp32,engine", "--batch", "1",
                              "--json", str(out)])
    assert res.exit_code == 0, _all_output(res)
    report = json.loads(out.read_text())
    trt = [s for s in report["skipped"] if s["backend"] == "tensorrt"]  # the old key is kept
    assert trt and all(s["reason"] == problem for s in trt)
    assert {r["backend"] for r in report["rows"] if r["status"] == "ran"} == {"onnxruntime"}
    (row,) = [r for r in report["rows"] if r["backend"] == "tensorrt"]  # a row, with its reason
    assert row["status"] == "could not run" and row["reason"] == problem and row["latency_ms"] is None
    assert f"[1] {problem}" in _all_output(res)  # markup such as [gpu] shown


def test_backend_all_default_variants_keep_tensorrt(tmp_path):
    """Without --variants too: on a machine without TensorRT its default variant is a skipped row."""
    from bench.variants import select_variants

    assert ("tensorrt", "engine") in select_variants("all", None, gpu=False)
    assert ("tensorrt", "engine") in select_variants("all", None, gpu=True)
    assert select_variants("all", None, gpu=True).count(("tensorrt", "engine")) == 1


def test_batch_sizes_are_bounded_before_anything_loads():
    res = runner.invoke(app, [*TINY, "--batch", "1,100000"])
    assert res.exit_code == 2 and "1..1024" in res.output


def test_e2e_rows_on_a_video(make_clip, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, 25, frames=5, size=(96, 128))
    res = runner.invoke(app, [*TINY, "--backend", "onnxruntime", "--batch", "2", "--e2e-only",
                              "--frames", str(clip), "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "e.json").read_text())
    rows = doc["rows"]
    assert [(r["mode"], r["batch"], r["iterations"], r["status"]) for r in rows] == [("e2e", 2, 3, "ran")]
    # the ONNX graph takes any size: each 128x96 frame is one pass (64x64 tiles: 4 a frame)
    assert rows[0]["images_per_s"] > 0 and rows[0]["tiles_per_s"] == pytest.approx(rows[0]["images_per_s"])
    assert set(rows[0]["tile_sizes"]) == {"96x128"}
    assert doc["extra"]["e2e_frames"]["count"] == 5 and "PyAV" in doc["extra"]["e2e_frames"]["mode"]

"""Every requested row present with a status; quality columns against an independent PSNR; --min-psnr;
--export-times."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio
from test_bench_cli import TINY as CLI_TINY  # the tiny random-width bench both files run
from typer.testing import CliRunner

from bench.harness import BenchConfig, BenchTarget, sweep
from bench.quality import QualityCheck, load_inputs
from bench.variants import DEFAULT_CPU, DEFAULT_GPU, VARIANTS, cuda_available
from engines.base import Runner
from toolkit.app.cli import app
from toolkit.core.convert import unit_to_uint8
from toolkit.core.errors import DtkError
from toolkit.core.frames import discover_frames

runner = CliRunner()
TINY = [a for a in CLI_TINY if a not in ("--ceiling", "100")] + ["--quality-frames", "2"]


class Identity(Runner):
    """Returns its input (+ `offset`); fails at batch `fail_at`."""

    def __init__(self, offset: float = 0.0, fail_at: int | None = None):
        self.offset, self.fail_at = offset, fail_at

    def infer(self, batch):
        if self.fail_at is not None and len(batch) == self.fail_at:
            raise DtkError(f"batch {self.fail_at} does not fit")
        return np.asarray(batch, dtype=np.float32) + self.offset

    def describe(self):
        return {"backend": "fake"}

    def close(self):
        pass


def _no(reason):
    def opener():
        raise DtkError(reason)

    return opener


def test_sweep_gives_every_target_batch_a_row_with_a_status():
    cfg = BenchConfig(batches=(1, 2), size=(8, 8), warmup_s=0.0, iterations=2, max_extend_s=0)
    targets = [
        BenchTarget("fake", "ok", "cpu", Identity),
        BenchTarget("fake", "absent", "cpu", _no("not here")),
        BenchTarget("fake", "small", "cpu", lambda: Identity(fail_at=2)),
    ]
    rows, skipped = sweep(targets, cfg)
    got = {(r.variant, r.batch): (r.status, r.reason) for r in rows}
    assert got == {
        ("ok", 1): ("ran", ""),
        ("ok", 2): ("ran", ""),
        ("absent", 1): ("could not run", "not here"),
        ("absent", 2): ("could not run", "not here"),
        ("small", 1): ("ran", ""),
        ("small", 2): ("could not run", "failed at batch 2: batch 2 does not fit"),
    }
    assert {s["variant"] for s in skipped} == {"absent", "small"}
    assert all(r.to_json()["latency_ms"] is None for r in rows if r.status != "ran")


@pytest.mark.skipif(cuda_available(), reason="checks the CPU-only table")
def test_backend_all_on_cpu_lists_gpu_and_tensorrt_rows_as_could_not_run(tmp_path):
    out = tmp_path / "all.json"
    res = runner.invoke(
        app, [*TINY, "--backend", "all", "--batch", "1,2", "--no-quality", "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["rows"]
    wanted = {(b, v) for b in VARIANTS for v in DEFAULT_CPU[b] + DEFAULT_GPU[b]}
    assert {(r["backend"], r["variant"], r["batch"]) for r in rows} == {
        (b, v, n) for b, v in wanted for n in (1, 2)
    }
    assert len(rows) == 2 * len(wanted)  # one row each, none twice
    for r in rows:
        if r["backend"] == "tensorrt" or VARIANTS[r["backend"]][r["variant"]]["device"] == "cuda":
            assert r["status"] == "could not run" and r["reason"]
        else:
            assert r["status"] == "ran"
    assert "not run [1]" in res.output and "not run [2]" in res.output  # the narrow table's status


def test_openvino_rows_without_openvino_could_not_run_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)  # as if not installed
    out = tmp_path / "ov.json"
    res = runner.invoke(app, [*TINY, "--backend", "openvino,onnxruntime", "--batch", "1", "--no-quality",
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = {(r["backend"], r["variant"]): r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {("openvino", "cpu-latency"), ("openvino", "cpu-throughput"),
                         ("openvino", "cpu-bf16"), ("onnxruntime", "cpu-fp32")}
    for variant in ("cpu-latency", "cpu-throughput", "cpu-bf16"):
        row = rows[("openvino", variant)]
        assert row["status"] == "could not run" and "pip install .[cpu]" in row["reason"]
    assert rows[("onnxruntime", "cpu-fp32")]["status"] == "ran"


def test_quality_columns_equal_an_independent_psnr(demo_dir):
    frames = discover_frames(demo_dir)[:2]
    sharp, blurred = load_inputs(frames, (64, 96))
    assert set(blurred) == {"k7", "k11"} and blurred["k7"].shape == (2, 3, 64, 96)
    check = QualityCheck(
        sharp=sharp, blurred=blurred, open_reference=lambda: Identity(offset=0.01), reference_name="ref"
    )
    q = check.score(Identity())  # output = the blurred input itself
    for k, batch in blurred.items():
        out = [np.ascontiguousarray(unit_to_uint8(chw).transpose(1, 2, 0)) for chw in batch]
        expected = np.mean(
            [peak_signal_noise_ratio(s, o, data_range=255) for s, o in zip(sharp, out, strict=True)]
        )
        assert q["psnr_db"][k] == pytest.approx(expected, abs=1e-9)
    assert q["max_abs_err"] == pytest.approx(0.01, abs=1e-6) and q["p999_abs_err"] == pytest.approx(
        0.01, abs=1e-6
    )
    assert q["frames"] == 2 and q["reference"] == "ref"


def test_min_psnr_fails_rows_with_exit_3_and_export_times(tmp_path):
    out, times = tmp_path / "q.json", tmp_path / "times.json"
    res = runner.invoke(
        app,
        [
            *TINY,
            "--backend",
            "onnxruntime",
            "--batch",
            "1,2",
            "--min-psnr",
            "60",
            "--json",
            str(out),
            "--export-times",
            str(times),
        ],
    )
    assert res.exit_code == 3, res.output  # a random-init net is far below 60 dB
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(
        r["status"] == "failed quality" and "below --min-psnr 60" in r["reason"] for r in rows
    )
    exported = json.loads(times.read_text())
    assert [len(e["calls"]) for e in exported] == [r["iterations"] for r in rows]
    assert all(c["latency_ms"] > 0 and c["start_ms"] >= 0 for e in exported for c in e["calls"])
    ok = runner.invoke(app, [*TINY, "--backend", "onnxruntime", "--batch", "1", "--min-psnr", "1"])
    assert ok.exit_code == 0, ok.output


def test_second_model_is_scored_against_the_first_models_reference(tmp_path):
    """`--model m.onnx --model m-int8.onnx`: each model's rows carry PSNR and the error vs the first's
    fp32 reference (here the second is the shipped model with one weight perturbed, standing in for INT8)."""
    import onnx
    from onnx import numpy_helper

    from toolkit.core.modelfiles import resolve_model

    first = resolve_model(None, "onnxruntime")
    graph = onnx.load(first)
    rng = np.random.default_rng(0)
    for init in graph.graph.initializer:  # noise on every float weight (a scale alone a norm would undo)
        weight = numpy_helper.to_array(init)
        if weight.dtype == np.float32 and weight.size > 1:
            noise = rng.normal(0, 0.05 * (weight.std() + 1e-3), weight.shape).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(weight + noise, init.name))
    second = tmp_path / "perturbed.onnx"
    onnx.save(graph, second)
    out = tmp_path / "two.json"
    args = [
        "bench",
        "--model",
        str(first),
        "--model",
        str(second),
        "--backend",
        "onnxruntime",
        "--batch",
        "1",
        "--iterations",
        "1",
        "--warmup",
        "0",
        "--max-extend",
        "0",
        "--quality-frames",
        "1",
        "--json",
        str(out),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {first.stem, "perturbed"}
    assert rows[first.stem]["quality"]["max_abs_err"] == 0.0
    q = rows["perturbed"]["quality"]
    assert q["max_abs_err"] > 1e-3 and q["reference"] == f"{first.stem}: onnxruntime/cpu-fp32"
    assert (
        set(q["psnr_db"]) == {"k7", "k11"}
        and q["psnr_db"]["k7"] != rows[first.stem]["quality"]["psnr_db"]["k7"]
    )

"""The regression gate's exit codes; hints on synthetic phase timings; CPU environment and a fake NVML;
the Pareto front and the best batch under a latency budget."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bench import environment
from bench.compare import parse_percent
from bench.harness import SCHEMA
from bench.hints import machine_hints, row_hints
from bench.pareto import best_under_budget, pareto_front
from toolkit.app.cli import app
from toolkit.core.errors import DtkError

runner = CliRunner()


def _row(batch=1, images_per_s=100.0, p50=10.0, p99=12.0, count=200, psnr=(30.0, 28.0), **kw):
    lat = {
        "count": count,
        "min": p50 * 0.9,
        "mean": p50,
        "p50": p50,
        "p90": p99,
        "p95": p99,
        "p99": p99,
        "max": p99 * 1.1,
        "std": 0.1,
    }
    return {
        "model": "m",
        "backend": "onnxruntime",
        "variant": "cpu-fp32",
        "batch": batch,
        "mode": "compute",
        "status": "ran",
        "images_per_s": images_per_s,
        "latency_ms": lat,
        "quality": {"psnr_db": {"k7": psnr[0], "k11": psnr[1]}},
        **kw,
    }


def _report(path, *rows):
    path.write_text(json.dumps({"schema": SCHEMA, "rows": list(rows), "environment": {}}))
    return str(path)


def test_gate_exit_codes(tmp_path):
    base = _report(tmp_path / "a.json", _row(), _row(batch=4, images_per_s=200.0))
    slower = _report(tmp_path / "b.json", _row(images_per_s=90.0), _row(batch=4, images_per_s=200.0))
    blurrier = _report(tmp_path / "c.json", _row(psnr=(29.5, 28.0)), _row(batch=4, images_per_s=200.0))

    def gate(*args):
        return runner.invoke(app, ["bench", "compare", *args])

    assert gate(base, slower).exit_code == 0  # no gate asked: ratios only
    res = gate(base, slower, "--max-slowdown", "5%")
    assert res.exit_code == 1 and "11.1% slower" in res.output  # 100/90 - 1
    assert gate(base, slower, "--max-slowdown", "12%").exit_code == 0
    assert gate(base, base, "--max-slowdown", "0").exit_code == 0
    assert gate(base, blurrier, "--max-slowdown", "5%", "--max-psnr-drop", "0.3").exit_code == 1
    assert gate(base, blurrier, "--max-psnr-drop", "0.6").exit_code == 0
    assert gate(base, slower, "--max-slowdown", "fast").exit_code == 2
    out = tmp_path / "r.json"
    gate(base, slower, "--max-slowdown", "5", "--json", str(out))
    assert len(json.loads(out.read_text())["regressions"]) == 1


def test_rows_that_did_not_run_are_not_compared(tmp_path):
    missing = dict(_row(), status="could not run", latency_ms=None, images_per_s=None)
    a = _report(tmp_path / "a.json", _row())
    b = _report(tmp_path / "b.json", missing)
    assert runner.invoke(app, ["bench", "compare", a, b]).exit_code == 0
    # issue 27: a gate with no row that ran in both fails closed ("nothing to compare")
    res = runner.invoke(app, ["bench", "compare", a, b, "--max-slowdown", "5%"])
    assert res.exit_code == 2 and "nothing to compare" in res.output


def test_parse_percent():
    assert parse_percent("5%") == pytest.approx(0.05) and parse_percent("2.5") == pytest.approx(0.025)
    with pytest.raises(DtkError):
        parse_percent("-1%")


def test_hints_fire_on_synthetic_phase_timings():
    launch_bound = {
        "device": "cuda:0",
        "phases_ms": {"h2d": 0.2, "compute": 5.0, "d2h": 0.3},
        "host_latency_ms": {"mean": 10.0},
        "runner": {"cuda_graphs": False},
    }
    assert any("CUDA graphs" in h for h in row_hints(launch_bound, 8))
    graphed = {**launch_bound, "runner": {"cuda_graphs": True}}
    assert not any("CUDA graphs" in h for h in row_hints(graphed, 8))
    reported = {"device": "cuda:0", "phases_ms": {"enqueue": 4.5, "compute": 5.0}}
    assert any("CUDA graphs" in h for h in row_hints(reported, 8))
    transfer = {
        "device": "cuda:0",
        "phases_ms": {"h2d": 6.0, "compute": 5.0, "d2h": 1.0},
        "host_latency_ms": {"mean": 12.1},
    }
    hints = row_hints(transfer, 8)
    assert any("H2D" in h and "transfer-bound" in h for h in hints) and not any("D2H" in h for h in hints)
    balanced = {
        "device": "cuda:0",
        "phases_ms": {"h2d": 0.5, "compute": 5.0, "d2h": 0.5},
        "host_latency_ms": {"mean": 6.2},
    }
    assert row_hints(balanced, 8) == []
    assert any("oversubscribed" in h for h in row_hints({"device": "cpu", "runner": {"threads": 8}}, 2))
    assert row_hints({"device": "cpu", "runner": {"threads": 2}}, 2) == []


def test_machine_hints_busy_machine_and_governor():
    assert any("busy machine" in h for h in machine_hints({"load_1min": 3.0, "usable_cores": 2}))
    assert machine_hints({"load_1min": 0.2, "usable_cores": 2, "governor": "performance"}) == []
    assert any(
        "powersave" in h
        for h in machine_hints({"load_1min": 0.0, "usable_cores": 2, "governor": "powersave"})
    )


def test_cpu_environment_reads_model_and_governor(tmp_path):
    gov, info = tmp_path / "gov", tmp_path / "cpuinfo"
    gov.write_text("powersave\n")
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n")
    env = environment.cpu_environment(governor=gov, cpuinfo=info)
    assert env["cpu_model"] == "Test CPU 9000" and env["governor"] == "powersave"
    assert env["usable_cores"] >= 1 and env["logical_cores"] >= env["usable_cores"]
    assert environment.cpu_environment(governor=tmp_path / "absent", cpuinfo=info)["governor"] is None


class FakeNvml:
    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def __init__(self, sm=1980, reasons=0, fail=False):
        self.sm, self.reasons, self.fail, self.shut = sm, reasons, fail, False

    def nvmlInit(self):
        if self.fail:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return b"NVIDIA H100"

    def nvmlDeviceGetClockInfo(self, h, which):
        return self.sm if which == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetPowerUsage(self, h):
        return 350_000

    def nvmlDeviceGetTemperature(self, h, sensor):
        return 61

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h):
        return self.reasons


def test_nvml_snapshots_and_warnings():
    start = environment.gpu_snapshot(FakeNvml())
    assert start == [
        {
            "index": 0,
            "name": "NVIDIA H100",
            "sm_clock_mhz": 1980,
            "mem_clock_mhz": 2619,
            "power_w": 350.0,
            "temperature_c": 61,
            "throttle_reasons": 0,
        }
    ]
    assert environment.gpu_warnings(start, environment.gpu_snapshot(FakeNvml())) == []
    end = environment.gpu_snapshot(FakeNvml(sm=1500, reasons=0x40 | 0x4))
    warnings = environment.gpu_warnings(start, end)
    assert any("SM clock moved 1980 -> 1500" in w for w in warnings)
    assert any("hw thermal slowdown" in w and "sw power cap" in w and "end" in w for w in warnings)
    assert environment.gpu_snapshot(FakeNvml(fail=True)) is None


def test_pareto_front_and_best_batch_under_budget():
    # (latency ms, images/s): b1 (10, 100), b2 (15, 130), b4 (30, 120) dominated by b2, b8 (60, 200)
    points = [(10, 100), (15, 130), (30, 120), (60, 200)]
    assert pareto_front(points) == [0, 1, 3]
    rows = [
        _row(batch=b, images_per_s=t, p50=lat, p99=lat * 1.2)
        for b, (lat, t) in zip((1, 2, 4, 8), points, strict=True)
    ]
    (best,) = best_under_budget(rows, 40.0)
    assert best["batch"] == 2 and best["statistic"] == "p99"  # b8's p99 72 ms is over budget
    assert best_under_budget(rows, 5.0)[0]["batch"] is None
    few = [_row(batch=1, count=5, p50=10, p99=11)]
    assert best_under_budget(few, 11.5)[0]["statistic"] == "max"  # 12.1 ms max: the cautious figure
    assert best_under_budget(few, 11.5)[0]["batch"] is None


@pytest.mark.parametrize(("field", "value", "said"), [
    ("images_per_s", None, "images_per_s is null, not a number"),
    ("images_per_s", "fast", 'images_per_s is "fast", not a number'),
    ("latency_ms", {"p50": 10.0, "p99": "slow"}, 'latency_ms.p99 is "slow", not a number'),
    ("batch", "four", 'batch is "four", not a batch size'),
    ("quality", {"psnr_db": {"k7": "high"}}, "quality.psnr_db is"),
])
def test_compare_refuses_a_row_it_cannot_read_naming_file_and_row(tmp_path, field, value, said):
    """Issue 38: a row whose images_per_s was null or a string gave a traceback (TypeError)."""
    a = _report(tmp_path / "a.json", _row(), _row(batch=4))
    b = _report(tmp_path / "b.json", _row(), {**_row(batch=4), field: value})
    for gate in ([], ["--max-slowdown", "5%"]):
        res = runner.invoke(app, ["bench", "compare", a, b, *gate])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        line = " ".join(res.output.split())  # rich wraps the one line at the terminal width
        assert f"error: cannot read {b}: row 2 (m: onnxruntime/cpu-fp32 batch" in line and said in line


def test_a_row_that_did_not_run_or_measured_nan_is_still_read(tmp_path):
    """What dtk bench itself writes stays readable: a not-run row's nulls; NaN images/s (a zero wall
    time) is no throughput, which the gate counts as a regression."""
    a = _report(tmp_path / "a.json", _row(), dict(_row(batch=4), status="could not run", latency_ms=None,
                                                  images_per_s=None, quality=None))
    b = _report(tmp_path / "b.json", _row(images_per_s=float("nan")))
    assert runner.invoke(app, ["bench", "compare", a, b]).exit_code == 0
    res = runner.invoke(app, ["bench", "compare", a, b, "--max-slowdown", "5%"])
    assert res.exit_code == 1 and "no throughput to compare" in res.output


def test_a_psnr_floor_without_quality_is_refused_before_any_model_loads(no_model_load):
    """Issue 38: `dtk bench --no-quality --min-psnr 99` exited 0: a floor on PSNRs nobody measured.
    One line, exit 2, nothing loaded; the API refuses the same request."""
    from bench.suite import BenchRequest

    res = runner.invoke(app, ["bench", "--no-quality", "--min-psnr", "99"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert " ".join(res.output.split()) == ("error: --min-psnr needs the quality columns: drop --no-quality "
                                            "(without PSNRs no row can be checked against the floor)")
    with pytest.raises(DtkError, match="--min-psnr needs the quality columns"):
        BenchRequest(quality=False, min_psnr=30.0)
    BenchRequest(quality=True, min_psnr=30.0)
    BenchRequest(quality=False)

"""Stability on synthetic timings: CV, perf_analyzer's window rule, the extension and its caps, and
percentiles hidden when there are too few calls."""

from __future__ import annotations

import pytest

from bench.harness import BenchConfig, timed_loop
from bench.report import bench_table
from bench.timing import cv, shown_percentile, stability, windows_agree


class ScriptedTimer:
    """Returns the next scripted latency (ms) for each timed call; the call itself runs."""

    kind = "host"

    def __init__(self, values):
        self.values = iter(values)

    def time(self, fn):
        fn()
        return next(self.values)


def test_cv_of_synthetic_timings():
    assert cv([10.0] * 8) == 0.0
    assert cv([9.0, 11.0] * 5) == pytest.approx(0.1)  # std 1 over mean 10
    assert cv([5.0]) != cv([5.0])  # nan: one call has no spread


def test_windows_agree_within_the_bound():
    steady = [10.0] * 10 + [10.2] * 10 + [9.9] * 10
    assert windows_agree(steady, window=10)
    assert not windows_agree([10.0] * 10 + [12.0] * 10 + [10.0] * 10, window=10)  # middle window 13% off
    assert not windows_agree([10.0] * 29, window=10)  # fewer than 3 windows
    assert windows_agree([1.0, 3.0] * 20 + [10.0] * 30, window=10)  # only the last windows count


def test_stability_labels():
    assert stability([10.0, 10.1, 9.9], 0.05, 10) == "stable"
    noisy_then_steady = [1.0, 3.0, 1.0, 3.0, 1.0] + [10.0] * 30
    assert cv(noisy_then_steady) > 0.05 and stability(noisy_then_steady, 0.05, 10) == "settled"
    assert stability([1.0, 3.0] * 20, 0.05, 10) == "settled"  # noisy calls, but every window agrees
    drifting = [10.0 * 1.02**n for n in range(60)]
    assert stability(drifting, 0.05, 10) == "unstable"


def _config(**kw):
    return BenchConfig(batches=(1,), size=(8, 8), warmup_s=0.0, iterations=5, **kw)


def test_stable_run_is_not_extended():
    timed = timed_loop(lambda i: None, _config(), ScriptedTimer([10.0] * 100), threshold=0.05)
    assert len(timed.samples) == 5 and timed.extended_calls == 0 and len(timed.starts) == 5


def test_unstable_run_extends_until_the_last_windows_agree():
    values = [1.0, 3.0, 1.0, 3.0, 1.0] + [10.0] * 200  # CV 50 % over the first 5 calls, then steady
    timed = timed_loop(
        lambda i: None, _config(window=10, max_extend_s=60), ScriptedTimer(values), threshold=0.05
    )
    # the last 3 windows of 10 calls hold only the steady values from call 35 on
    assert len(timed.samples) == 35 and timed.extended_calls == 30
    assert stability(timed.samples, 0.05, 10) == "settled"


def test_run_that_never_settles_stops_at_the_cap_and_is_unstable():
    drifting = [10.0 * 1.05**n for n in range(1000)]
    timed = timed_loop(
        lambda i: None,
        _config(window=10, max_iterations=50, max_extend_s=60),
        ScriptedTimer(drifting),
        threshold=0.05,
    )
    assert len(timed.samples) == 50 and stability(timed.samples, 0.05, 10) == "unstable"


def test_max_extend_zero_never_extends():
    timed = timed_loop(
        lambda i: None, _config(max_extend_s=0), ScriptedTimer([1.0, 3.0] * 50), threshold=0.05
    )
    assert len(timed.samples) == 5


def _row(count: int) -> dict:
    lat = {
        "count": count,
        "min": 1.0,
        "mean": 2.0,
        "p50": 2.0,
        "p90": 3.0,
        "p95": 3.5,
        "p99": 12.345,
        "max": 13.0,
        "std": 0.5,
    }
    return {
        "backend": "onnxruntime",
        "variant": "cpu-fp32",
        "batch": 1,
        "mode": "compute",
        "status": "ran",
        "latency_ms": lat,
        "images_per_s": 500.0,
        "cv": 0.02,
        "stability": "stable",
        "iterations": count,
    }


def test_p99_is_shown_only_from_100_calls():
    from rich.console import Console

    assert not shown_percentile(99, 99) and shown_percentile(99, 100) and shown_percentile(50, 1)

    def render(count):
        console = Console(width=250, record=True)
        console.print(bench_table({"rows": [_row(count)]}))
        return console.export_text()

    assert "12.3" not in render(3) and "12.3" in render(100)
    assert "│     3 │" in render(3)  # the call count beside the percentiles

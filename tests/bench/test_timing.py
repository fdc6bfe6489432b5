"""Statistics on synthetic timings, the timed loop's stop rule, warm-up and input rotation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.harness import BenchConfig, bench_compute, make_inputs, timed_loop
from bench.timing import HostTimer, gflops, latency_stats, throughput
from engines.base import Runner
from toolkit.core.errors import DtkError


def test_latency_stats_match_numpy():
    rng = np.random.default_rng(3)
    samples = rng.lognormal(mean=2.0, sigma=0.5, size=997)
    s = latency_stats(samples)
    assert s.count == 997
    assert s.min == pytest.approx(samples.min())
    assert s.max == pytest.approx(samples.max())
    assert s.mean == pytest.approx(samples.mean())
    for q, got in zip((50, 90, 95, 99), (s.p50, s.p90, s.p95, s.p99), strict=True):
        assert got == pytest.approx(np.percentile(samples, q), rel=1e-12)
    assert s.min <= s.p50 <= s.p90 <= s.p95 <= s.p99 <= s.max


def test_latency_stats_small_and_empty():
    s = latency_stats([4.0])
    assert (s.min, s.p50, s.p99, s.max) == (4.0, 4.0, 4.0, 4.0)
    with pytest.raises(ValueError):
        latency_stats([])


def test_throughput_and_gflops():
    assert throughput(40, 2.0) == 20.0
    assert gflops(240.2, 2.0) == pytest.approx(480.4)
    assert gflops(None, 2.0) is None


def test_host_timer_measures_a_sleep():
    ms = HostTimer().time(lambda: time.sleep(0.02))
    assert 19.0 <= ms < 200.0


class CountingRunner(Runner):
    """A fake Runner that records which input buffer each call got."""

    name = "fake"

    def __init__(self):
        self.seen: list[int] = []

    def infer(self, batch):
        self.seen.append(id(batch))
        return batch

    def describe(self):
        return {"backend": "fake"}

    def close(self):
        pass


def test_iterations_alone_are_exact_and_warmup_is_excluded():
    cfg = BenchConfig(batches=(1,), size=(8, 8), warmup_s=0.0, iterations=7, buffers=3, max_extend_s=0)
    calls = []
    timed = timed_loop(lambda i: calls.append(i), cfg, HostTimer())
    samples, wall = timed.samples, timed.wall_s
    assert len(samples) == 7
    assert len(calls) == 8  # one warm-up call (warm-up runs at least once), untimed
    assert wall >= 0


def test_duration_is_honoured():
    cfg = BenchConfig(batches=(1,), size=(8, 8), warmup_s=0.0, duration_s=0.1, max_extend_s=0)
    timed = timed_loop(lambda i: time.sleep(0.01), cfg, HostTimer())
    samples, wall = timed.samples, timed.wall_s
    assert wall >= 0.1
    assert 3 <= len(samples) <= 12


def test_inputs_are_rotated_and_distinct():
    cfg = BenchConfig(batches=(2,), size=(8, 16), warmup_s=0.0, iterations=6, buffers=3, max_extend_s=0)
    inputs = make_inputs(2, cfg)
    assert len(inputs) == 3 and inputs[0].shape == (2, 3, 8, 16) and inputs[0].dtype == np.float32
    assert not np.array_equal(inputs[0], inputs[1])
    assert inputs[0].min() >= 0.0 and inputs[0].max() <= 1.0
    runner = CountingRunner()
    row = bench_compute(runner, 2, cfg, backend="fake", variant="v")
    assert len(set(runner.seen)) == 3  # every buffer used
    assert all(a != b for a, b in zip(runner.seen, runner.seen[1:], strict=False))  # never twice in a row
    assert row.iterations == 6 and row.batch == 2
    assert row.images_per_s == pytest.approx(12 / row.wall_s)
    assert row.peak_rss_mb and row.peak_rss_mb > 0


def test_bad_config_is_a_user_error():
    with pytest.raises(DtkError):
        BenchConfig(batches=(0,))
    with pytest.raises(DtkError):
        BenchConfig(size=(250, 448))
    with pytest.raises(DtkError):
        BenchConfig(iterations=0)


class SplitRunner(CountingRunner):
    """Reports an H2D / compute / D2H split per call, as the CUDA torch runner does."""

    reports_phases = True

    def __init__(self):
        super().__init__()
        self.calls = 0

    def infer(self, batch):
        self.calls += 1
        return super().infer(batch)

    @property
    def phases_ms(self):
        return {"h2d": 1.0, "compute": float(self.calls), "d2h": 0.5}


def test_phase_split_is_averaged_over_timed_calls():
    from bench.report import bench_table, csv_rows

    cfg = BenchConfig(batches=(1,), size=(8, 8), warmup_s=0.0, iterations=4, buffers=2, max_extend_s=0)
    row = bench_compute(SplitRunner(), 1, cfg, backend="fake", variant="v")
    # call 1 is the warm-up; the timed calls 2..5 report compute 2..5 ms
    assert row.phases_ms == {"h2d": 1.0, "compute": 3.5, "d2h": 0.5}
    plain = bench_compute(CountingRunner(), 1, cfg, backend="fake", variant="v")
    assert plain.phases_ms is None
    report = {"rows": [row.to_json(), plain.to_json()], "config": {}}
    assert [c.header for c in bench_table(report).columns].count("H2D/compute/D2H") == 1
    assert csv_rows(report)[0]["compute_ms"] == 3.5 and csv_rows(report)[1]["compute_ms"] is None

"""toolkit.app.execute: the one loop of every run (source -> step -> sink, overlapped) and the
reader thread a decoder runs on."""

from __future__ import annotations

import threading
import time

import pytest

from toolkit.app.execute import Timing, execute, prefetched
from toolkit.core.errors import DtkError


class ListSink:
    """Records what it was given; `slow` seconds a batch on a thread of its own."""

    def __init__(self, slow: float = 0.0, fail_at: int | None = None):
        self.got: list[tuple[int, int]] = []
        self.slow, self.fail_at = slow, fail_at
        self.pending: list[threading.Thread] = []
        self.failed = False

    def submit(self, batch, result):
        def write():
            time.sleep(self.slow)
            self.got.append((batch, result))
        t = threading.Thread(target=write)
        t.start()
        self.pending.append(t)
        if self.fail_at is not None and batch == self.fail_at:
            self.failed = True

    def drain(self):
        for t in self.pending:
            t.join()
        self.pending.clear()


def test_every_batch_reaches_the_sink_in_order_and_the_sink_is_drained_at_the_end():
    sink = ListSink(slow=0.01)
    timing = Timing()
    assert execute(iter(range(6)), lambda b: b * 10, sink, timing=timing) is False
    assert sink.got == [(i, i * 10) for i in range(6)]  # the last batch too: drained before return
    assert timing.wall_s >= timing.compute_s >= 0 and timing.write_wait_s >= 0


def test_reading_and_writing_overlap_the_step():
    def slow_source():
        for i in range(5):
            time.sleep(0.1)  # decoding a batch
            yield i

    sink, timing = ListSink(slow=0.1), Timing()  # encoding a batch

    def step(b):
        time.sleep(0.1)  # the runner
        return b

    execute(prefetched(slow_source), step, sink, timing=timing)
    assert len(sink.got) == 5
    # in turn it would take 1.5 s; overlapped ~0.6 s (the first read and the last write are not hidden)
    assert timing.wall_s < 1.1, timing
    assert timing.data_wait_s + timing.write_wait_s < timing.compute_s


def test_stop_ends_after_the_current_batch_and_says_interrupted():
    stop = threading.Event()
    sink = ListSink()

    def step(b):
        if b == 2:
            stop.set()  # Ctrl-C while batch 2 computes
        return b

    assert execute(iter(range(10)), step, sink, timing=Timing(), stop=stop) is True
    assert [b for b, _ in sink.got] == [0, 1, 2]


def test_a_failed_sink_stops_the_run():
    sink = ListSink(fail_at=1)
    execute(iter(range(10)), lambda b: b, sink, timing=Timing())
    assert [b for b, _ in sink.got] == [0, 1]


def test_an_error_in_the_step_still_drains_the_sink_and_closes_the_source():
    closed = []

    def source():
        try:
            yield from range(10)
        finally:
            closed.append(threading.current_thread().name)

    sink = ListSink(slow=0.05)

    def step(b):
        if b == 2:
            raise DtkError("bad batch")
        return b

    with pytest.raises(DtkError, match="bad batch"):
        execute(prefetched(source), step, sink, timing=Timing())
    assert [b for b, _ in sink.got] == [0, 1]  # what was submitted is written
    assert closed == ["dtk-read"]  # the reader closed its generator on its own thread


def test_prefetched_raises_the_readers_error_in_order():
    def source():
        yield 1
        yield 2
        raise DtkError("frame 3 is corrupt")

    got = []
    with pytest.raises(DtkError, match="frame 3"):
        for x in prefetched(source):
            got.append(x)
    assert got == [1, 2]


def test_closing_prefetched_early_stops_its_thread():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    it = prefetched(endless, depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    n = len(produced)
    time.sleep(0.2)
    assert len(produced) == n <= 3 + 2 + 1  # nothing read ahead beyond the queue, then nothing
    assert not [t for t in threading.enumerate() if t.name == "dtk-read"]

"""Bounds of the runner options every command shares, checked before anything loads."""

from __future__ import annotations

import os

from toolkit.core.errors import DtkError

PRECISIONS = ("fp32", "fp16", "bf16")
MAX_BATCH = 1024


def check_precision(precision: str) -> None:
    """DtkError for a --precision other than fp32, fp16 or bf16."""
    if precision not in PRECISIONS:
        raise DtkError(f"unknown --precision {precision!r}: choose one of {', '.join(PRECISIONS)}")


def check_batch(batch: int) -> None:
    """DtkError for a --batch below 1 or above MAX_BATCH."""
    if batch < 1:
        raise DtkError(f"--batch must be at least 1, got {batch}")
    if batch > MAX_BATCH:
        raise DtkError(f"--batch {batch} is too large (at most {MAX_BATCH}): every frame of a batch is held "
                       "in memory at once; 8 to 64 is plenty")


def max_threads() -> int:
    """The most intra-op threads dtk accepts: 4 per CPU core, at most 256."""
    return min(256, 4 * (os.cpu_count() or 1))


def check_threads(threads: int | None) -> None:
    """DtkError for a --threads value below 1 or above `max_threads()` (None: the backend's default)."""
    if threads is None:
        return
    if threads < 1:
        raise DtkError(f"--threads must be at least 1, got {threads}")
    if threads > max_threads():
        raise DtkError(f"--threads {threads} is more than this machine can use (at most {max_threads()}: "
                       f"4 per CPU core, {os.cpu_count()} cores here, and never above 256); "
                       "leave it out for the backend's default")

"""Peak memory over a span: host RSS (Linux VmHWM, reset per span) and CUDA device memory.

Host: on Linux, writing 5 to /proc/self/clear_refs resets the peak-RSS mark (VmHWM) to the
current RSS, so each row reports its own peak (weights and libraries already loaded count).
Elsewhere `resource.getrusage(RUSAGE_SELF).ru_maxrss` gives the process peak so far.
Device: torch's allocator peak (`torch.cuda.max_memory_allocated`) and, because TensorRT and
ONNX Runtime allocate outside torch, the device's used memory (`torch.cuda.mem_get_info`)
at the end of the span; the larger of the two is reported.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process; False where unsupported."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory (MiB): VmHWM since the last reset, else the process peak."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / (1024.0 * 1024.0) if sys.platform == "darwin" else ru / 1024.0


class PeakMemory:
    """Context manager measuring peak host RSS (and device memory on CUDA) over its body."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.peak_rss_mb: float | None = None
        self.peak_device_mb: float | None = None
        self.rss_reset = False

    def __enter__(self) -> PeakMemory:
        self.rss_reset = reset_peak_rss()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_rss_mb = round(peak_rss_mb(), 1)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            free, total = torch.cuda.mem_get_info()
            allocator = torch.cuda.max_memory_allocated()
            self.peak_device_mb = round(max(allocator, total - free) / 2**20, 1)

"""Hints as trtexec gives them, from a row's phase timings and the machine.

- enqueue (host launch) time >= 80 % of GPU compute (reported, else host time per call minus
  H2D + compute + D2H): launch-bound -> try CUDA graphs (unless the runner already replays one);
- H2D or D2H copy >= 80 % of GPU compute: the row is transfer-bound;
- a CPU row with more threads than usable cores: oversubscribed;
- a busy machine: 1-min load average at the start >= half the usable cores (other work competes).
"""

from __future__ import annotations

from typing import Any

CLOSE = 0.8  # "close to" / "as large as": at least 80 % of compute
BUSY_LOAD_PER_CORE = 0.5


def row_hints(row: dict[str, Any], cores: int | None) -> list[str]:
    """Hints for one row (its JSON dict)."""
    out: list[str] = []
    phases = row.get("phases_ms") or {}
    compute = phases.get("compute")
    if compute:
        enqueue = phases.get("enqueue")
        host = (row.get("host_latency_ms") or {}).get("mean")
        if enqueue is None and host is not None:  # host time the copies and compute do not explain
            enqueue = max(0.0, host - sum(phases.get(k, 0.0) for k in ("h2d", "compute", "d2h")))
        if (row.get("runner") or {}).get("cuda_graphs"):
            enqueue = None  # already replays a CUDA graph
        if enqueue is not None and enqueue >= CLOSE * compute:
            out.append(f"enqueue {enqueue:.2f} ms is close to compute {compute:.2f} ms: launch-bound, "
                       "try CUDA graphs")
        for k, name in (("h2d", "H2D"), ("d2h", "D2H")):
            v = phases.get(k)
            if v is not None and v >= CLOSE * compute:
                out.append(f"{name} copy {v:.2f} ms is as large as compute {compute:.2f} ms: transfer-bound "
                           "(keep data on the GPU, pinned memory, bigger batches)")
    threads = (row.get("runner") or {}).get("threads")
    if cores and threads and not str(row.get("device", "")).startswith("cuda") and threads > cores:
        out.append(f"{threads} threads on {cores} usable cores: oversubscribed, use --threads {cores}")
    return out


def machine_hints(cpu: dict[str, Any]) -> list[str]:
    """Report-level hints from the CPU environment (bench.environment.cpu_environment)."""
    out = []
    load, cores = cpu.get("load_1min"), cpu.get("usable_cores")
    if load is not None and cores and load >= BUSY_LOAD_PER_CORE * cores:
        out.append(f"busy machine: load average {load:.2f} on {cores} usable cores at the start; "
                   "other processes compete for the CPU, CPU figures are pessimistic and noisy")
    gov = cpu.get("governor")
    if gov and gov not in ("performance",):
        out.append(f"CPU frequency governor is {gov!r}: clocks may ramp during the run ('performance' "
                   "gives steadier figures)")
    return out

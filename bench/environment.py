"""Environment that explains a figure: CPU model, cores, frequency governor, load; NVIDIA GPU clocks,
power, temperature and throttle reasons at the start and end of a run (NVML via `nvidia-ml-py`,
optional, imported lazily), with warnings when clocks moved or the GPU throttled.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

GOVERNOR = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
CPUINFO = Path("/proc/cpuinfo")
# NVML clock-event (throttle) reason bits that mean the GPU slowed itself down
THROTTLE_REASONS = {
    0x4: "sw power cap",
    0x8: "hw slowdown",
    0x20: "sw thermal slowdown",
    0x40: "hw thermal slowdown",
    0x80: "hw power brake",
}
CLOCK_MOVED = 0.05  # a clock that changed by more than 5 % between start and end is reported


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    text = _read(cpuinfo) or ""
    for line in text.splitlines():
        if line.lower().startswith("model name") and ":" in line:
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """CPUs this process may run on (affinity / cgroup cpuset), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def cpu_environment(governor: Path = GOVERNOR, cpuinfo: Path = CPUINFO) -> dict[str, Any]:
    """CPU model, logical cores, usable cores, scaling governor (None where not readable), 1-min load."""
    return {"cpu_model": cpu_model(cpuinfo), "logical_cores": os.cpu_count(), "usable_cores": usable_cores(),
            "governor": _read(governor), "load_1min": load_average()}


def _nvml():
    try:
        import pynvml  # optional (pip install nvidia-ml-py): only for GPU snapshots
    except ImportError:
        return None
    return pynvml


def gpu_snapshot(nvml: Any = None) -> list[dict[str, Any]] | None:
    """Per GPU: name, SM and memory clocks (MHz), power (W), temperature (C), throttle reason bits;
    None without NVML or a GPU."""
    nvml = nvml or _nvml()
    if nvml is None:
        return None
    try:
        nvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver / no GPU: no snapshot
        return None
    try:
        out = []
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            name = nvml.nvmlDeviceGetName(h)
            reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
                nvml.nvmlDeviceGetCurrentClocksThrottleReasons
            out.append({
                "index": i, "name": name.decode() if isinstance(name, bytes) else str(name),
                "sm_clock_mhz": int(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM)),
                "mem_clock_mhz": int(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM)),
                "power_w": nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
                "temperature_c": int(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)),
                "throttle_reasons": int(reasons(h)),
            })
        return out
    except Exception as exc:  # noqa: BLE001 - a partial NVML (old driver) must not stop the bench
        return [{"error": str(exc)}]
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def throttle_names(bits: int) -> list[str]:
    return [name for bit, name in THROTTLE_REASONS.items() if bits & bit]


def gpu_warnings(start: list[dict] | None, end: list[dict] | None) -> list[str]:
    """Warnings when a GPU's clocks moved by more than 5 % or it throttled (at start or end)."""
    if not start or not end:
        return []
    out = []
    for a, b in zip(start, end, strict=False):
        if "error" in a or "error" in b:
            continue
        gpu = f"GPU {a['index']} ({a['name']})"
        for key in ("sm_clock_mhz", "mem_clock_mhz"):
            if a[key] and abs(b[key] - a[key]) > CLOCK_MOVED * a[key]:
                out.append(f"{gpu}: {key.split('_')[0].upper()} clock moved {a[key]} -> {b[key]} MHz during "
                           "the run; figures may not be comparable (lock clocks: nvidia-smi -lgc)")
        for when, snap in (("start", a), ("end", b)):
            names = throttle_names(snap["throttle_reasons"])
            if names:
                out.append(f"{gpu} throttled at the {when} of the run: {', '.join(names)}")
    return out

"""What this machine offers dtk: Python, torch/CUDA, ONNX Runtime, OpenVINO, TensorRT, DALI, Ray, GPU.

Read by `dtk doctor`, every bench report and `--backend auto`.
"""

from __future__ import annotations

import os
import platform
import sys

from engines.openvino import ov_devices
from engines.select import default_backend
from toolkit.core.constants import __version__
from toolkit.core.lazy import module_version


def _torch_info() -> dict:
    try:
        import torch
    except ImportError:
        return {"torch": None, "cuda": None, "gpu": None, "compute_capability": None}
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": None,
            "compute_capability": None, "cuda_available": False}
    try:
        if torch.cuda.is_available():
            info["cuda_available"] = True
            info["gpu"] = torch.cuda.get_device_name(0)
            major, minor = torch.cuda.get_device_capability(0)
            info["compute_capability"] = f"{major}.{minor}"
    except Exception:  # noqa: BLE001 - a broken driver reads as "no GPU"
        info["cuda_available"] = False
    return info


def _ort_info() -> dict:
    try:
        import onnxruntime as ort
    except ImportError:
        return {"onnxruntime": None, "ort_providers": []}
    return {"onnxruntime": ort.__version__, "ort_providers": list(ort.get_available_providers())}


def available_memory_bytes() -> int | None:
    """Memory the kernel could give this process now without swapping (Linux MemAvailable), None
    where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def collect() -> dict:
    """Machine facts as a JSON-ready dict (also embedded in every bench report)."""
    info: dict = {
        "dtk": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "executable": sys.executable,
    }
    info["cpu_count"] = os.cpu_count()
    info.update(_torch_info())
    info.update(_ort_info())
    info["openvino"] = module_version("openvino")
    info["ov_devices"] = ov_devices() if info["openvino"] else []
    info["tensorrt"] = module_version("tensorrt")
    info["dali"] = module_version("nvidia.dali")
    info["ray"] = module_version("ray")
    info["default_backend"] = default_backend(info)
    return info

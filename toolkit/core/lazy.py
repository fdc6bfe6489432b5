"""Lazy imports of heavy or optional modules, with an install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from toolkit.core.errors import DtkError

INSTALL_HINTS = {
    "tensorrt": "TensorRT not installed: pip install .[gpu] (needs an NVIDIA GPU and driver)",
    "nvidia.dali": "DALI not installed: pip install .[dali] (CPU operators) or .[gpu]",
    "onnxruntime": "ONNX Runtime not installed: pip install .[cpu] (or .[gpu] on a GPU machine)",
    "ray": "Ray not installed: pip install .[ray]",
    "openvino": "OpenVINO not installed: pip install .[cpu] (or pip install openvino)",
    "polygraphy": "Polygraphy not installed: pip install .[cpu] (or .[gpu])",
    "onnx_graphsurgeon": "ONNX-GraphSurgeon not installed: pip install .[cpu] (or .[gpu])",
    "av": "PyAV (video files) not installed: pip install .[cpu] (or pip install av)",
}


def optional_import(name: str) -> ModuleType:
    """Import `name` or raise DtkError with the install hint for it."""
    root = next((k for k in INSTALL_HINTS if name == k or name.startswith(k + ".")), None)
    hint = INSTALL_HINTS.get(root or "", f"{name} is not installed")
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        raise DtkError(f"{hint} ({exc})") from exc
    if _is_empty_namespace(mod):
        raise DtkError(f"{hint} (only an empty '{name}' namespace package is importable)")
    return mod


def _is_empty_namespace(mod: ModuleType) -> bool:
    """A folder on sys.path without __init__ (seen as `tensorrt` on a GPU image): not the package."""
    return getattr(mod, "__file__", None) is None and not hasattr(mod, "__version__")


def module_version(name: str) -> str | None:
    """Version string of an importable module, or None when it is absent or broken."""
    try:
        mod = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install counts as absent
        return None
    if _is_empty_namespace(mod):
        return None
    return str(getattr(mod, "__version__", "unknown"))

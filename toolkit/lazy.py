"""Lazy imports of heavy or optional modules, with an install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from toolkit.errors import DtkError

INSTALL_HINTS = {
    "tensorrt": "TensorRT not installed: pip install .[gpu] (needs an NVIDIA GPU and driver)",
    "nvidia.dali": "DALI not installed: pip install .[dali] (CPU operators) or .[gpu]",
    "onnxruntime": "ONNX Runtime not installed: pip install .[cpu] (or .[gpu] on a GPU machine)",
    "ray": "Ray not installed: pip install .[ray]",
}


def optional_import(name: str) -> ModuleType:
    """Import `name` or raise DtkError with the install hint for it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        root = next((k for k in INSTALL_HINTS if name == k or name.startswith(k + ".")), None)
        hint = INSTALL_HINTS.get(root or "", f"{name} is not installed")
        raise DtkError(f"{hint} ({exc})") from exc


def module_version(name: str) -> str | None:
    """Version string of an importable module, or None when it is absent or broken."""
    try:
        mod = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install counts as absent
        return None
    return str(getattr(mod, "__version__", "unknown"))

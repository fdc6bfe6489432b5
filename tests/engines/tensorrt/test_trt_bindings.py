"""Every TensorRT name dtk uses exists in the real 11.x bindings; the removed 10.x names do not.

The `tensorrt-cu13-bindings` wheel downloads here (~1.3 MB) but its `.so` cannot be imported
without libnvinfer, so its names are read from the extension's string table: pybind11 keeps
each registered attribute and enum value as a NUL-terminated string (the linker may merge a
short one into the tail of a longer one, so presence is "ends a string"). Skipped offline.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fake_trt import make_fake_trt

import engines.tensorrt.build as build_mod
import engines.tensorrt.runtime as runtime_mod

# Variables in our modules that hold TensorRT objects (builder, network, context, ...).
TRT_OBJECTS = {"builder", "network", "parser", "config", "profile", "cache", "err", "tensor", "ctx", "engine"}
SELF_TRT = {"_engine", "_context", "_runtime"}  # self._engine.X etc. in TrtRunner


@pytest.fixture(scope="module")
def bindings_names(tmp_path_factory) -> bytes:
    tmp = tmp_path_factory.mktemp("trtwheel")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
           "tensorrt-cu13-bindings", "-d", str(tmp), "-q"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"tensorrt-cu13-bindings wheel not downloadable here (offline?): {exc}")
    wheel = next(tmp.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        blobs = [zf.read(n) for n in zf.namelist() if n.endswith((".so", "__init__.py"))]
    return b"\0".join(blobs)


def used_names() -> dict[str, set[str]]:
    """`trt.X.Y` chains and methods called on TensorRT objects, per module."""
    found: dict[str, set[str]] = {}
    for mod in (build_mod, runtime_mod):
        names: set[str] = set()
        for node in ast.walk(ast.parse(Path(mod.__file__).read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            chain, cur = [node.attr], node.value
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            root = cur.id if isinstance(cur, ast.Name) else None
            chain.reverse()
            if root == "trt" or (root == "self" and chain[0] == "_trt"):
                names.update(c for c in chain if c != "_trt")
            elif root in TRT_OBJECTS:
                names.add(chain[0])
            elif root == "self" and chain[0] in SELF_TRT and len(chain) > 1:
                names.add(chain[1])
        found[mod.__name__] = names
    return found


def present(blob: bytes, name: str) -> bool:
    return re.search(re.escape(name.encode()) + rb"\0", blob) is not None


def test_names_we_use_exist_in_tensorrt_11(bindings_names):
    used = used_names()
    # The build's own TensorRT calls are Polygraphy's now (the fake's names are checked below).
    assert {"execute_async_v3", "set_tensor_address", "set_input_shape", "MemoryPoolType",
            "WORKSPACE"} <= set().union(*used.values())
    missing = {mod: sorted(n for n in names if not present(bindings_names, n)) for mod, names in used.items()}
    # BuilderFlag.FP16 is reached only through getattr on TensorRT 10.x, not as an attribute.
    assert missing == {mod: [] for mod in used}


def test_removed_apis_absent_and_unused(bindings_names):
    removed = ["execute_async_v2", "EXPLICIT_BATCH", "platform_has_fast_fp16", "get_binding_shape",
               "num_bindings", "int8_calibrator", "IInt8EntropyCalibrator2"]
    assert [n for n in removed if re.search(rb"\0" + re.escape(n.encode()) + rb"\0", bindings_names)] == []
    assert set(removed).isdisjoint(set().union(*used_names().values()))


# Set on instances in fake_trt.py (so not found in its class dicts) and read by dtk or Polygraphy.
FAKE_INSTANCE_ATTRS = {"name", "shape", "dtype", "is_shape_tensor", "type", "flags", "DLA_core",
                       "default_device_type", "profiling_verbosity"}
FAKE_ONLY = {"calls", "builds", "contexts"}  # the fake's own records for the tests
SPECIAL = {"__len__", "__getitem__", "__bool__"}  # Python protocols the bindings define


def fake_names(version: str) -> set[str]:
    """Every name the fake offers: module attributes, enum members, class methods and properties."""
    mod = make_fake_trt(version)
    names = set(FAKE_INSTANCE_ATTRS)
    classes = [v for v in vars(mod).values() if isinstance(v, type)] + mod._fake_classes
    names.update(n for n in vars(mod) if not n.startswith("_") and n not in FAKE_ONLY)
    for cls in classes:
        names.update(getattr(cls, "__members__", {}))
        names.update(k for k in vars(cls) if not k.startswith("_") or k in SPECIAL)
    return names


def test_fake_offers_only_real_11_names(bindings_names):
    """Polygraphy runs against the fake in test_trt_build.py; every name the fake gives it is real."""
    names = fake_names("11.4.0")
    assert {"ILogger", "init_libnvinfer_plugins", "num_layers", "get_layer", "get_flag", "clear_flag",
            "combine", "num_optimization_profiles", "ProfilingVerbosity", "IHostMemory"} <= names
    assert sorted(n for n in names if not present(bindings_names, n)) == []

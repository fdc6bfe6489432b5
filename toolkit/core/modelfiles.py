"""Model files without loading them (no torch): the shipped default, the sibling a backend
loads, a checkpoint's three paths and its JSON sidecar. The one home of model path resolution.

A dtk model is one stem with up to four files: `X.onnx` (ONNX Runtime, OpenVINO, TensorRT builds),
`X.safetensors` + `X.json` (torch checkpoint), `X.engine` / `X.plan` (a built TensorRT engine);
OpenVINO also reads its IR `X.xml` (+ `X.bin`).
Given any one of them, a backend finds the one it needs next to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from toolkit.core.errors import DtkError

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"  # shipped as package data
DEFAULT_STEM = "dtk-unet"
_CHECKPOINT_SUFFIXES = (".safetensors", ".json")
_ENGINE_SUFFIXES = (".engine", ".plan")
_IR_SUFFIX = ".xml"  # OpenVINO IR (X.xml + X.bin)
_KNOWN = (".onnx", *_CHECKPOINT_SUFFIXES, *_ENGINE_SUFFIXES, _IR_SUFFIX)


def default_model_path(backend: str) -> Path:
    """The shipped model file for `backend` (it may not exist in a source checkout)."""
    suffix = ".safetensors" if backend == "torch" else ".onnx"
    return ASSETS_DIR / (DEFAULT_STEM + suffix)


def _stem_path(path: Path) -> Path:
    """`run/best.safetensors` -> `run/best` (handles the two-part `.optim.safetensors`)."""
    name = path.name
    for suffix in (".optim.safetensors", *_KNOWN):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path


def resolve_model(path: Path | str | None, backend: str) -> Path:
    """The file `backend` loads for model `path` (None: the shipped default); DtkError when absent.

    onnxruntime: X.onnx. torch: X.safetensors (X.json must sit next to it). tensorrt: a built
    X.engine / X.plan. openvino: the IR X.xml when that is the file given, else X.onnx, else X.xml.
    """
    shipped = path is None
    given = default_model_path(backend) if shipped else Path(path)
    if not shipped and not given.exists():
        raise DtkError(f"model not found: {given}")
    if not shipped and given.is_dir():
        raise DtkError(f"--model takes a file (X.onnx or X.safetensors), got the folder {given}")
    if not shipped and given.suffix not in _KNOWN:
        raise DtkError(f"unknown model type {given.name}: expected .onnx, .safetensors(+.json), "
                       "a TensorRT .engine/.plan or an OpenVINO .xml")
    stem = _stem_path(given)
    where = "the shipped model" if shipped else str(given)
    if backend == "onnxruntime":
        onnx = stem.with_name(stem.name + ".onnx")
        if not onnx.is_file():
            raise DtkError(f"ONNX Runtime needs an .onnx model and {where} has none ({onnx} missing): "
                           + ("reinstall dtk or pass --model X.onnx" if shipped else
                              f"export it with `dtk export {stem}.safetensors -o {onnx}`, "
                              "or use --backend torch"))
        return onnx
    if backend == "openvino":
        onnx, ir = stem.with_name(stem.name + ".onnx"), stem.with_name(stem.name + _IR_SUFFIX)
        for candidate in ((ir, onnx) if given.suffix == _IR_SUFFIX else (onnx, ir)):
            if candidate.is_file():
                return candidate
        raise DtkError(f"OpenVINO needs an .onnx model or its IR (.xml + .bin) and {where} has neither "
                       f"({onnx} missing): " + ("reinstall dtk or pass --model X.onnx" if shipped else
                                                f"export it with `dtk export {stem}.safetensors -o {onnx}`, "
                                                "or use --backend torch"))
    if backend == "torch":
        weights = stem.with_name(stem.name + ".safetensors")
        sidecar = stem.with_name(stem.name + ".json")
        missing = [p for p in (weights, sidecar) if not p.is_file()]
        if missing:
            raise DtkError(f"the torch backend needs the checkpoint X.safetensors + X.json and {where} "
                           f"lacks {', '.join(str(p) for p in missing)}: "
                           + ("reinstall dtk or pass --model X.safetensors" if shipped else
                              "pass the training checkpoint with --model, or use --backend onnxruntime "
                              "for an ONNX-only model"))
        return weights
    if backend == "tensorrt":
        for suffix in _ENGINE_SUFFIXES:
            engine = stem.with_name(stem.name + suffix)
            if engine.is_file():
                return engine
        onnx = stem.with_name(stem.name + ".onnx")
        raise DtkError(f"the tensorrt backend needs a built engine and {where} has none "
                       f"({stem}.engine missing): build one with "
                       f"`dtk build-engine {onnx} -o {stem}.engine`, or use --backend onnxruntime "
                       "(its TensorRT EP builds and caches engines itself)")
    raise DtkError(f"unknown backend {backend!r}")


def checkpoint_paths(path: Path | str) -> tuple[Path, Path, Path]:
    """(weights .safetensors, sidecar .json, optimizer .optim.safetensors) for any of the three paths."""
    p = Path(path)
    name = p.name
    for suffix in (".optim.safetensors", ".safetensors", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    base = p.with_name(name)
    return (base.with_name(name + ".safetensors"), base.with_name(name + ".json"),
            base.with_name(name + ".optim.safetensors"))


def with_checkpoint_files(paths: Iterable[Path | str | None]) -> list[Path | str | None]:
    """`paths` with each checkpoint's other file beside it (X.safetensors <-> X.json): a tool's
    inputs, for toolkit.core.safepaths' checks, so that a report never lands on either."""
    out: list[Path | str | None] = []
    for path in paths:
        out.append(path)
        if path is not None and str(path).endswith((".safetensors", ".json")):
            out.extend(checkpoint_paths(path)[:2])
    return out


def check_checkpoint_output(path: Path | str, flag: str, *, inputs: Iterable[Path | str | None]) -> None:
    """DtkError unless a tool may write the checkpoint `path` (its .safetensors and .json; an
    existing one is replaced, as a report is): never an input, an input checkpoint's sidecar or a
    file inside an input folder (toolkit.core.safepaths' rule)."""
    from toolkit.core.safepaths import check_output_file

    inputs = with_checkpoint_files(inputs)
    for target in checkpoint_paths(path)[:2]:
        check_output_file(target, flag, inputs=inputs)


def read_sidecar(path: Path | str) -> dict:
    """The JSON sidecar of a checkpoint (DtkError when missing or corrupt)."""
    _, sidecar, _ = checkpoint_paths(path)
    if not sidecar.exists():
        raise DtkError(f"checkpoint sidecar not found: {sidecar} (a checkpoint is X.safetensors + X.json)")
    try:
        doc = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DtkError(f"corrupt checkpoint sidecar {sidecar}: {exc}") from None
    if not isinstance(doc, dict) or "config" not in doc:
        raise DtkError(f"{sidecar} is not a dtk checkpoint sidecar (no 'config')")
    return doc

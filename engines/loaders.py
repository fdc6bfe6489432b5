"""Loaders: backend name + model file + options -> a ready Runner (Polygraphy's loader/runner split).

Every backend module is imported here lazily, so `import engines.loaders` pulls in neither
torch, onnxruntime nor tensorrt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engines.base import Runner
from engines.models import resolve_model
from engines.select import BACKENDS
from toolkit.errors import DtkError

BACKEND_CHOICES = ("auto", *BACKENDS)
PRECISIONS = ("fp32", "fp16", "bf16")
MAX_BATCH = 1024


@dataclass(frozen=True)
class BackendChoice:
    """The backend a run uses, the model file it loads and why it was chosen."""

    backend: str
    model: Path
    reason: str


def _ort_gpu_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return [p for p in ort.get_available_providers() if p in ("TensorrtExecutionProvider",
                                                                "CUDAExecutionProvider")]


def _precision_problem(backend: str, precision: str) -> str | None:
    """Why `backend` cannot run `precision` here, or None."""
    if backend == "onnxruntime" and precision == "bf16":
        return "ONNX Runtime runs the graph's own types; bf16 is a torch option (--backend torch)"
    if backend == "onnxruntime" and precision == "fp16" and \
            "TensorrtExecutionProvider" not in _ort_gpu_providers():
        return ("ONNX Runtime without its TensorRT EP runs the graph's own types: pass an fp16 graph "
                "(`dtk export --fp16`) with --model and --precision fp32, or use --backend torch")
    return None


def choose_backend(backend: str, model: Path | str | None, precision: str = "fp32",
                   info: dict | None = None) -> BackendChoice:
    """Resolve `backend` ('auto' included) and its model file; DtkError with a hint when impossible."""
    if backend not in BACKEND_CHOICES:
        raise DtkError(f"unknown backend {backend!r}: choose one of {', '.join(BACKEND_CHOICES)}")
    check_precision(precision)
    if backend != "auto":
        problem = _precision_problem(backend, precision)
        if problem:
            raise DtkError(f"--precision {precision} with --backend {backend}: {problem}")
        return BackendChoice(backend, resolve_model(model, backend), "asked for")
    from engines.select import default_backend
    from toolkit.doctor import collect

    info = collect() if info is None else info
    first = default_backend(info)
    order = [first] + [b for b in ("onnxruntime", "torch") if b != first]
    notes: list[str] = []
    for name in order:
        problem = _precision_problem(name, precision)
        if problem is None:
            try:
                path = resolve_model(model, name)
            except DtkError as exc:
                problem = str(exc)
        if problem is None:
            why = "fastest available on this machine" if name == first else \
                f"auto: {first} not usable ({notes[0]})"
            return BackendChoice(name, path, why)
        notes.append(f"{name}: {problem}")
    raise DtkError("no backend can run this model here; " + "; ".join(notes))


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


def check_backend_options(backend: str, *, compile: bool = False, channels_last: bool = False,
                          cuda_graphs: bool | None = None) -> None:
    """DtkError when an option only torch uses is given with another backend (it would be ignored)."""
    if backend == "torch":
        return
    given = [name for name, on in (("--compile", compile), ("--channels-last", channels_last),
                                   ("--cuda-graphs" if cuda_graphs else "--no-cuda-graphs",
                                    cuda_graphs is not None)) if on]
    if given:
        raise DtkError(f"{', '.join(given)} only apply to the torch backend, and this run uses {backend}, "
                       f"which would ignore them: add --backend torch, or leave {', '.join(given)} out")


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


def load_runner(backend: str, model: Path | str | None = None, *, precision: str = "fp32",
                compile: bool = False, channels_last: bool = False, threads: int | None = None,
                device: str | None = None, cuda_graphs: bool | None = None,
                size: tuple[int, int] | None = None) -> Runner:
    """A loaded Runner for `backend` (auto|tensorrt|onnxruntime|torch) and `model` (None: shipped)."""
    check_threads(threads)
    choice = choose_backend(backend, model, precision)
    return open_runner(choice, precision=precision, compile=compile, channels_last=channels_last,
                       threads=threads, device=device, cuda_graphs=cuda_graphs, size=size)


def open_runner(choice: BackendChoice, *, precision: str = "fp32", compile: bool = False,
                channels_last: bool = False, threads: int | None = None,
                device: str | None = None, cuda_graphs: bool | None = None,
                size: tuple[int, int] | None = None) -> Runner:
    """Load the runner of an already made BackendChoice (`cuda_graphs`: torch only; None = auto).

    `size` (H, W): the frame size the caller will feed; an ONNX model with another fixed input
    size is refused when it is opened (None: any size the model takes).
    """
    check_threads(threads)
    if choice.backend == "onnxruntime":
        from engines.onnxruntime import OrtRunner

        return OrtRunner(choice.model, device=device or "auto", threads=threads,
                         trt_fp16=precision == "fp16", size=size)
    if choice.backend == "torch":
        import torch

        from engines.torch import TorchRunner

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return TorchRunner(choice.model, device=dev, precision=precision, compile=compile,
                           channels_last=channels_last, threads=threads, cuda_graphs=cuda_graphs)
    if choice.backend == "tensorrt":
        try:
            from engines.tensorrt.runtime import load_trt_runner
        except ImportError as exc:
            raise DtkError(f"the tensorrt backend is unavailable here ({exc}): install TensorRT with "
                           "pip install .[gpu] on an NVIDIA GPU machine, "
                           "or use --backend onnxruntime") from None
        return load_trt_runner(choice.model)
    raise DtkError(f"unknown backend {choice.backend!r}")

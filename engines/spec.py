"""RunnerSpec: which backend runs which model file with which options, validated once, opened anywhere.

Built once from the CLI options (`RunnerSpec.choose`) and used by `dtk run` (local and on Ray:
the spec is a plain picklable dataclass, each actor calls `.open()`), `dtk eval`, `dtk bench`
and the quantizer's guard. Every option reaches every backend that supports it; one that a
backend would ignore is refused here, naming the backend that takes it.
The backend modules load their libraries lazily, and torch's runner is imported only in `open`,
so this module pulls in neither torch, onnxruntime, openvino nor tensorrt.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from engines.base import Runner
from engines.machine import collect
from engines.onnxruntime import OrtRunner
from engines.openvino import OvRunner, check_hint
from engines.options import check_precision, check_threads
from engines.select import BACKENDS, default_backend
from engines.tensorrt.runtime import TrtRunner
from toolkit.core.errors import DtkError
from toolkit.core.modelfiles import resolve_model

BACKEND_CHOICES = ("auto", *BACKENDS)
# the options each backend uses (precision and device aside: see `_precision_problem`)
SUPPORTED_OPTIONS = {
    "torch": ("compile", "channels_last", "cuda_graphs", "threads"),
    "onnxruntime": ("threads",),
    "openvino": ("threads", "hint"),
    "tensorrt": ("cuda_graphs",),
}
_FLAGS = {"compile": "--compile", "channels_last": "--channels-last", "cuda_graphs": "--cuda-graphs",
          "threads": "--threads", "hint": "--ov-mode"}


@dataclass(frozen=True)
class RunnerSpec:
    """A backend, the model file it loads and its options; `open()` loads it (weights load there, once)."""

    backend: str
    model: Path
    precision: str = "fp32"
    device: str | None = None  # None: the backend's best (cuda when present)
    threads: int | None = None
    compile: bool = False
    channels_last: bool = False
    cuda_graphs: bool | None = None  # None: the backend's default
    size: tuple[int, int] | None = None  # (H, W) the caller feeds; an ONNX model of another is refused
    hint: str | None = None  # OpenVINO's mode: latency | throughput (None: latency)
    reason: str = field(default="asked for", compare=False)

    @classmethod
    def choose(cls, backend: str = "auto", model: Path | str | None = None, *, precision: str = "fp32",
               info: dict | None = None, **options) -> RunnerSpec:
        """Validate every option, resolve `backend` ('auto' included) and its model file (None:
        the shipped one); DtkError with a hint when impossible."""
        check_precision(precision)
        check_threads(options.get("threads"))
        if options.get("hint") is not None:
            check_hint(options["hint"])
        if backend not in BACKEND_CHOICES:
            raise DtkError(f"unknown backend {backend!r}: choose one of {', '.join(BACKEND_CHOICES)}")
        if backend != "auto":
            problem = _precision_problem(backend, precision)
            if problem:
                raise DtkError(f"--precision {precision} with --backend {backend}: {problem}")
            spec = cls(backend, resolve_model(model, backend), precision, **options)
        else:
            spec = _choose_auto(cls, model, precision, info, options)
        spec.check_options()
        return spec

    def check_options(self) -> None:
        """DtkError naming the options this backend would ignore (and the backend that takes them)."""
        given = {"compile": self.compile, "channels_last": self.channels_last,
                 "cuda_graphs": self.cuda_graphs is not None, "threads": self.threads is not None,
                 "hint": self.hint is not None}
        ignored = [name for name, on in given.items() if on and name not in SUPPORTED_OPTIONS[self.backend]]
        if ignored:
            flags = ", ".join("--no-cuda-graphs" if n == "cuda_graphs" and self.cuda_graphs is False
                              else _FLAGS[n] for n in ignored)
            takers = sorted({b for n in ignored for b, opts in SUPPORTED_OPTIONS.items() if n in opts})
            verb = "do" if len(ignored) > 1 else "does"
            raise DtkError(f"{flags} {verb} not apply to the {self.backend} backend, which would ignore "
                           f"{'them' if len(ignored) > 1 else 'it'}: add --backend {' or '.join(takers)}, "
                           f"or leave {flags} out")

    def with_options(self, **changes) -> RunnerSpec:
        """A copy with other options, checked again (bench variants, Ray workers)."""
        spec = replace(self, **changes)
        check_precision(spec.precision)
        check_threads(spec.threads)
        if spec.hint is not None:
            check_hint(spec.hint)
        spec.check_options()
        return spec

    def open(self) -> Runner:
        """Load the runner (the model's weights are read here, once)."""
        if self.backend == "onnxruntime":
            return OrtRunner(self.model, device=self.device or "auto", threads=self.threads,
                             trt_fp16=self.precision == "fp16", size=self.size)
        if self.backend == "openvino":
            return OvRunner(self.model, device=self.device or "auto", threads=self.threads,
                            hint=self.hint or "latency", size=self.size, precision=self.precision)
        if self.backend == "torch":
            import torch

            from engines.torch import TorchRunner  # imports torch: only when it runs

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            return TorchRunner(self.model, device=device, precision=self.precision, compile=self.compile,
                               channels_last=self.channels_last, threads=self.threads,
                               cuda_graphs=self.cuda_graphs)
        if self.backend == "tensorrt":
            return TrtRunner(self.model, cuda_graphs=bool(self.cuda_graphs))
        raise DtkError(f"unknown backend {self.backend!r}")


def _choose_auto(cls, model, precision: str, info: dict | None, options: dict) -> RunnerSpec:
    info = collect() if info is None else info
    first = default_backend(info)
    fallbacks = ("onnxruntime", "openvino", "torch") if info.get("openvino") else ("onnxruntime", "torch")
    order = [first] + [b for b in fallbacks if b != first]
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
            return cls(name, path, precision, reason=why, **options)
        notes.append(f"{name}: {problem}")
    raise DtkError("no backend can run this model here; " + "; ".join(notes))


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
    if backend == "openvino" and precision == "fp16":
        return ("OpenVINO runs fp32 (exact) or bf16 arithmetic on a CPU: for fp16 weights pass an fp16 "
                "graph (`dtk export --fp16`) with --model and leave --precision out, or use --backend torch")
    if backend == "tensorrt" and precision != "fp32":
        return ("a TensorRT engine runs the precision it was built with (`dtk build-engine --fp16`); "
                "leave --precision out")
    return None

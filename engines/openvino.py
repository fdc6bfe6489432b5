"""OpenVINO runner (CPU): the same ONNX files as ONNX Runtime (fp32, fp16 graphs, Q/DQ INT8) and
OpenVINO IR (X.xml + X.bin).

Two modes, OpenVINO's performance hints:
- `latency` (dtk run's default): one synchronous infer request per call, all threads on it;
- `throughput`: the THROUGHPUT hint's streams, and a call's batch is split image by image over an
  `AsyncInferQueue` of the compiled model's optimal number of requests, so the streams work side
  by side (it pays off only with batches of more images than one).

Numbers are exact fp32 by default: the inference precision is set to f32 (OpenVINO's CPU default
is bf16 on CPUs with bf16 instructions, about 2x faster and not exact); `precision="bf16"` (dtk's
`--precision bf16`) asks for that bf16 arithmetic.
A blind model's `evidence` input is an initializer-input in dtk's
ONNX, which OpenVINO's ONNX frontend would freeze, so the graph is read from a copy without that
default (engines.onnx_graph.parseable_onnx); `evidence(batch)` runs a second compiled model cut
from the same graph (input -> tile_evidence: the bank and the head only).

Compiled models are cached (OpenVINO's CACHE_DIR, under dtk's cache folder): the second start of
the same model skips compilation; `describe()` reports the start-up time and whether the cache
served it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Runner
from engines.onnx_graph import input_shape, parseable_onnx
from engines.onnxruntime import check_input_shape, declared_sizes
from engines.options import check_threads
from toolkit.core.convert import to_host
from toolkit.core.errors import DtkError
from toolkit.core.evidence import DECIDE, EVIDENCE_INPUT, EVIDENCE_OUTPUT, KNOWN_INPUT, OWN_EVIDENCE
from toolkit.core.lazy import module_version, optional_import

HINTS = ("latency", "throughput")
PRECISIONS = {"fp32": "f32", "bf16": "bf16"}  # dtk's --precision -> OpenVINO's inference precision
DEVICES = ("auto", "cpu")
IR_SUFFIX = ".xml"


def default_ov_cache_dir() -> Path:
    """Where OpenVINO keeps compiled models (CACHE_DIR), reused across runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dtk" / "openvino"


def check_hint(hint: str) -> None:
    """DtkError for an OpenVINO mode other than latency or throughput."""
    if hint not in HINTS:
        raise DtkError(f"unknown OpenVINO mode {hint!r}: choose one of {', '.join(HINTS)}")


def ov_devices() -> list[str]:
    """OpenVINO's devices here (e.g. ['CPU']), [] when OpenVINO is not installed or broken."""
    try:
        import openvino as ov
    except ImportError:
        return []
    try:
        return list(ov.Core().available_devices)
    except Exception:  # noqa: BLE001 - a broken plugin reads as "no device"
        return []


def _np_dtype(element_type) -> type | None:
    name = str(element_type.get_type_name())
    return {"f32": np.float32, "f16": np.float16}.get(name)


def _port(ports, name: str):
    """The port among `ports` that carries the tensor name `name`, else None."""
    return next((p for p in ports if name in p.get_names()), None)


class OvRunner(Runner):
    """An OpenVINO compiled model over an NCHW [0, 1] batch model (one image input, one image output)."""

    name = "openvino"

    def __init__(self, model: Path | str, *, device: str = "auto", threads: int | None = None,
                 hint: str = "latency", cache_dir: Path | str | None = None, cache: bool = True,
                 size: tuple[int, int] | None = None, precision: str = "fp32"):
        ov = optional_import("openvino")
        check_hint(hint)
        check_threads(threads)
        if device not in DEVICES:
            raise DtkError(f"the openvino backend runs on the CPU here (--device {device!r} asked for): "
                           "use --backend tensorrt, torch or onnxruntime for a GPU")
        self.model = Path(model)
        if not self.model.is_file():
            raise DtkError(f"model not found: {self.model}")
        if precision not in PRECISIONS:
            raise DtkError(f"OpenVINO runs fp32 (exact) or bf16 (the CPU's bf16 arithmetic), "
                           f"not {precision!r}")
        self.threads, self.hint, self.device, self.precision = threads, hint, "CPU", precision
        self.core = ov.Core()
        self.cache_dir: Path | None = None
        warnings: list[str] = []
        if cache:
            wanted = Path(cache_dir or default_ov_cache_dir())
            try:
                wanted.mkdir(parents=True, exist_ok=True)
                self.cache_dir = wanted
            except OSError as exc:
                warnings.append(f"OpenVINO model cache off: cannot create {wanted} ({exc.strerror})")
        self.warnings = tuple(warnings)
        start = time.perf_counter()
        source = self._read(ov)
        params = source.get_parameters()
        images = [p for p in params if not {EVIDENCE_INPUT, KNOWN_INPUT} & set(p.output(0).get_names())]
        ev_param = next((p for p in params if EVIDENCE_INPUT in p.output(0).get_names()), None)
        known_param = next((p for p in params if KNOWN_INPUT in p.output(0).get_names()), None)
        ev_out = _port(source.outputs, EVIDENCE_OUTPUT)
        self.takes_evidence = ev_param is not None and ev_out is not None
        outputs = [o for o in source.outputs if EVIDENCE_OUTPUT not in o.get_names()]
        if len(images) != 1 or len(outputs) != 1 or (ev_param is not None and not self.takes_evidence):
            raise DtkError(f"{self.model} has {len(images)} image inputs and {len(outputs)} image "
                           "outputs; dtk runs models with one image input and one image output")
        self.input_name = images[0].output(0).get_any_name()
        shape = [d.get_length() if d.is_static else None for d in images[0].get_partial_shape()]
        if self.model.suffix != IR_SUFFIX:  # the ONNX's own names of its free dimensions
            shape = input_shape(self.model, self.input_name)
        check_input_shape(self.model, shape, size)
        self._sizes = declared_sizes(shape)
        self.output_name = outputs[0].get_any_name()
        self.input_dtype = _np_dtype(images[0].get_element_type())
        self.evidence_dtype = _np_dtype(ev_param.get_element_type()) if ev_param is not None else None
        self.takes_known_blur = self.takes_evidence and known_param is not None  # the blur a user knows
        if self.input_dtype is None or _np_dtype(outputs[0].get_element_type()) is None:
            raise DtkError(f"{self.model}: input/output types {images[0].get_element_type()}/"
                           f"{outputs[0].get_element_type()} are not float32 or float16")
        self._head_source = self._head_model(ov, source) if self.takes_evidence else None
        self.compiled = self._compile(source, hint)
        self.startup_s = time.perf_counter() - start
        self.from_cache = self._loaded_from_cache(self.compiled)
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._request = self.compiled.create_infer_request()
        self._queue = (ov.AsyncInferQueue(self.compiled, max(self.requests, 1)) if hint == "throughput"
                       else None)
        self._head = self._head_request = None

    def _read(self, ov):
        """The ov.Model of the file: IR as it is; ONNX through a copy without the evidence default."""
        try:
            if self.model.suffix == IR_SUFFIX:
                return self.core.read_model(str(self.model))
            with parseable_onnx(self.model, prefix="dtk-ov-") as path:
                return self.core.read_model(str(path))
        except DtkError:
            raise
        except Exception as exc:  # noqa: BLE001 - OpenVINO and onnx raise their own types for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DtkError(f"OpenVINO cannot read {self.model}: {first} "
                           "(export an ONNX model with `dtk export`)") from None

    def _head_model(self, ov, source):
        """input -> tile_evidence only (a clone, cut: the bank and the head, ~1/3 of a pass)."""
        copy = source.clone()
        image = next(p for p in copy.get_parameters() if self.input_name in p.output(0).get_names())
        result = _port(copy.outputs, EVIDENCE_OUTPUT).get_node()
        return ov.Model([result.input_value(0)], [image], "dtk-evidence-head")

    def _config(self, hint: str) -> dict:
        config: dict[str, Any] = {"PERFORMANCE_HINT": hint.upper(),
                                  "INFERENCE_PRECISION_HINT": PRECISIONS[self.precision]}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.cache_dir is not None:
            config["CACHE_DIR"] = str(self.cache_dir)
        return config

    def _compile(self, model, hint: str):
        try:
            return self.core.compile_model(model, self.device, self._config(hint))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError with its log
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DtkError(f"OpenVINO cannot compile {self.model} for {self.device}: {first}") from None

    @staticmethod
    def _loaded_from_cache(compiled) -> bool | None:
        try:
            return bool(compiled.get_property("LOADED_FROM_CACHE"))
        except Exception:  # noqa: BLE001 - older OpenVINO: unknown
            return None

    def input_sizes(self) -> tuple[tuple[int, int], ...]:
        """ANY_SIZE for a model with dynamic H and W (dtk's export), else its fixed size."""
        return self._sizes

    def _feed(self, x: np.ndarray, evidence: np.ndarray | None,
              known: np.ndarray | None = None) -> dict[str, np.ndarray]:
        feed = {self.input_name: x}
        if self.takes_known_blur:  # N x 1: the class told, else DECIDE (the graph's own default)
            rows = np.full((len(x), 1), DECIDE) if known is None else np.asarray(known).reshape(-1, 1)
            feed[KNOWN_INPUT] = np.ascontiguousarray(np.broadcast_to(rows, (len(x), 1)),
                                                     dtype=self.evidence_dtype)
        if self.takes_evidence:
            if evidence is None:
                evidence = np.full((len(x), self._evidence_width()), OWN_EVIDENCE)
            evidence = np.asarray(evidence, dtype=self.evidence_dtype)
            if len(evidence) == 1 and len(x) > 1:  # one row for the whole batch
                evidence = np.broadcast_to(evidence, (len(x), evidence.shape[1]))
            feed[EVIDENCE_INPUT] = np.ascontiguousarray(evidence)
        return feed

    def _evidence_width(self) -> int:
        port = self.compiled.input(EVIDENCE_INPUT)
        return int(port.get_partial_shape()[1].get_length())

    def evidence(self, batch: Any) -> np.ndarray:
        """N x width: the graph's `tile_evidence` from the compiled head-only model."""
        if not self.takes_evidence:
            return super().evidence(batch)
        if self._head is None:
            self._head = self._compile(self._head_source, "latency")
            self._head_request = self._head.create_infer_request()
        x = np.ascontiguousarray(to_host(batch), dtype=self.input_dtype)
        out = self._head_request.infer({self.input_name: x})
        return np.array(out[self._head.output(0)], dtype=np.float32)

    def infer(self, batch: Any, evidence: np.ndarray | None = None,
              known: np.ndarray | None = None) -> np.ndarray:
        """N x 3 x H x W -> N x 3 x H x W float32 (NumPy in, NumPy out)."""
        x = np.ascontiguousarray(to_host(batch), dtype=self.input_dtype)
        if self._queue is not None and len(x) > 1:
            return self._infer_async(x, evidence, known)
        out = self._request.infer(self._feed(x, evidence, known))
        return np.array(out[self.compiled.output(self.output_name)], dtype=np.float32)  # a copy: the
        # request's output tensor is reused by its next call

    def _infer_async(self, x: np.ndarray, evidence: np.ndarray | None,
                     known: np.ndarray | None = None) -> np.ndarray:
        """One image per request over the queue; the streams run them side by side."""
        y = np.empty(x.shape, dtype=np.float32)
        port = self.compiled.output(self.output_name)

        def done(request, i: int) -> None:
            y[i] = request.get_tensor(port).data[0]

        self._queue.set_callback(done)
        for i in range(len(x)):
            ev = None if evidence is None else evidence[min(i, len(evidence) - 1):][:1]
            told = None if known is None else known[min(i, len(known) - 1):][:1]
            self._queue.start_async(self._feed(x[i:i + 1], ev, told), i)
        self._queue.wait_all()
        return y

    def describe(self) -> dict[str, Any]:
        mode = ("latency: one synchronous request" if self.hint == "latency" else
                f"throughput: AsyncInferQueue of {max(self.requests, 1)} requests over {self.streams} "
                "streams, one image per request")
        return {
            "backend": self.name,
            "device": "cpu",
            "model": str(self.model),
            "openvino": module_version("openvino"),
            "mode": mode,
            "hint": self.hint.upper(),
            "streams": self.streams,
            "inference_precision": PRECISIONS[self.precision],
            "io_dtype": np.dtype(self.input_dtype).name,
            "threads": self.threads,
            "cache_dir": str(self.cache_dir) if self.cache_dir is not None else None,
            "startup_s": round(self.startup_s, 3),
            "loaded_from_cache": self.from_cache,
            "frame_decision": "evidence input" if self.takes_evidence else None,
        }

    def close(self) -> None:
        self._queue = self._request = self._head_request = None
        self.compiled = self._head = self._head_source = None


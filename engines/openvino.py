"""OpenVINO runner (CPU): the same ONNX files as ONNX Runtime (fp32, fp16 graphs, Q/DQ INT8) and
OpenVINO IR (X.xml + X.bin).

Two modes, OpenVINO's performance hints:
- `latency` (dtk run's default): one synchronous infer request per call, all threads on it;
- `throughput`: the THROUGHPUT hint's streams, and a call's batch is split image by image over the
  compiled model's optimal number of infer requests, started asynchronously and waited for on the
  caller's thread, so the streams work side by side (it pays off only with batches of more images
  than one). No Python code runs on OpenVINO's threads: an `AsyncInferQueue` callback did, and
  closing a runner right after a batch aborted ("Resource deadlock avoided": a thread joining
  itself, as when a compiled model's last reference goes on its own worker thread) or hung (issue 38).

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

import collections
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Runner
from engines.onnx_graph import graph_architecture, input_shape, parseable_onnx
from engines.onnxruntime import check_input_shape, declared_sizes
from engines.options import check_threads
from toolkit.core.convert import to_host
from toolkit.core.errors import DtkError
from toolkit.core.evidence import (
    DECIDE,
    EVIDENCE_INPUT,
    EVIDENCE_OUTPUT,
    KNOWN_INPUT,
    OWN_EVIDENCE,
    decides_whole_frame,
)
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


_DEQUANTIZE = ("Convert", "Subtract", "Multiply", "Reshape")  # how the ONNX frontend spells DequantizeLinear
_CONVS = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData")


def _int8_constant_behind(port) -> bool:
    """True when `port` is an int8/uint8 constant behind a dequantization chain (int8 weights)."""
    node = port.get_node()
    for _ in range(8):
        kind = node.get_type_name()
        if kind == "Constant":
            return node.get_output_element_type(0).get_type_name() in ("i8", "u8")
        if kind not in _DEQUANTIZE:
            return False
        node = node.input_value(0).get_node()
    return False


def concat_int8_convs(model) -> list[str]:
    """Int8 convs of `model` (an ov.Model) whose input is quantized right after a Concat.

    OpenVINO 2026.4's CPU plugin computes Concat -> FakeQuantize (a Q/DQ pair) -> int8 Conv wrongly
    (errors as large as the output; ONNX Runtime exact on the same graph; tests/engines/
    test_openvino.py builds a 5-node case). dtk quantize keeps such convs float (engines.quantize)."""
    found = []
    for fq in model.get_ordered_ops():
        if fq.get_type_name() != "FakeQuantize" or fq.input_value(0).get_node().get_type_name() != "Concat":
            continue
        todo = [t.get_node() for t in fq.output(0).get_target_inputs()]
        for _ in range(64):
            if not todo:
                break
            node = todo.pop()
            if node.get_type_name() in _CONVS and _int8_constant_behind(node.input_value(1)):
                found.append(node.get_friendly_name())
            elif node.get_type_name() in _DEQUANTIZE:
                todo += [t.get_node() for t in node.output(0).get_target_inputs()]
    return found


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
        wrong = concat_int8_convs(source)
        if wrong:
            raise DtkError(f"OpenVINO would compute {self.model} wrongly: its CPU plugin miscomputes an int8 "
                           f"conv quantized right after a Concat ({len(wrong)} here, e.g. {wrong[0]}); "
                           "quantize the fp32 model again with `dtk quantize` (it keeps such convs in float) "
                           "or run this one with --backend onnxruntime")
        params = source.get_parameters()
        images = [p for p in params if not p.output(0).get_names() & {EVIDENCE_INPUT, KNOWN_INPUT}]
        ev_param = next((p for p in params if EVIDENCE_INPUT in p.output(0).get_names()), None)
        known_param = next((p for p in params if KNOWN_INPUT in p.output(0).get_names()), None)
        ev_out = _port(source.outputs, EVIDENCE_OUTPUT)
        self.takes_evidence = ev_param is not None and ev_out is not None
        self.takes_known_blur = self.takes_evidence and known_param is not None
        self.decides_whole_frame = self.takes_evidence and self.model.suffix != IR_SUFFIX and \
            decides_whole_frame(graph_architecture(self.model))
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
        if self.input_dtype is None or _np_dtype(outputs[0].get_element_type()) is None:
            raise DtkError(f"{self.model}: input/output types {images[0].get_element_type()}/"
                           f"{outputs[0].get_element_type()} are not float32 or float16")
        self._head_source = self._head_model(ov, source) if self.takes_evidence else None
        self.compiled = self._compile(source, hint)
        self.startup_s = time.perf_counter() - start
        self.inference_precision = self._granted_precision(self.compiled)
        if self.inference_precision != PRECISIONS[precision]:  # bf16 asked on a CPU without it
            self.warnings += (f"OpenVINO runs {self.inference_precision} here, not the "
                              f"{PRECISIONS[precision]} asked for (this CPU has no such arithmetic)",)
        elif self.inference_precision == "bf16" and self.takes_evidence:
            # OpenVINO's bf16 hint runs the whole graph in bf16, the decision's fp32 region too
            self.warnings += ("bf16 also runs this model's decision: frames may be decided otherwise "
                              "than in fp32 (the shipped model on the demo frames: k7 -0.46 dB, k11 "
                              "-2.76 dB against fp32); --precision fp32 is exact",)
        self.from_cache = self._loaded_from_cache(self.compiled)
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._request = self.compiled.create_infer_request()
        self._pool = ([self.compiled.create_infer_request() for _ in range(max(self.requests, 1))]
                      if hint == "throughput" else [])
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
    def _granted_precision(compiled) -> str:
        """The inference precision OpenVINO compiled for ('f32', 'bf16'): a bf16 hint on a CPU
        without bf16 arithmetic runs f32, and describe() says what runs, not what was asked."""
        return str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())

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
        if self.takes_known_blur:  # a real input here (no default once parsed): DECIDE unless told
            rows = np.full((len(x), 1), DECIDE) if known is None else np.asarray(known)
            if len(rows) == 1 and len(x) > 1:
                rows = np.broadcast_to(rows, (len(x), 1))
            feed[KNOWN_INPUT] = np.ascontiguousarray(rows, dtype=self.evidence_dtype)
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
        if self._pool and len(x) > 1:
            return self._infer_async(x, evidence, known)
        out = self._request.infer(self._feed(x, evidence, known))
        return np.array(out[self.compiled.output(self.output_name)], dtype=np.float32)  # a copy: the
        # request's output tensor is reused by its next call

    def _infer_async(self, x: np.ndarray, evidence: np.ndarray | None,
                     known: np.ndarray | None = None) -> np.ndarray:
        """One image per request, the pool's requests in flight side by side (the streams run them);
        each is waited for and read here, on the caller's thread, oldest first."""
        y = np.empty(x.shape, dtype=np.float32)
        port = self.compiled.output(self.output_name)
        free, busy = list(self._pool), collections.deque()
        try:
            for i in range(len(x)):
                if not free:
                    free.append(self._collect(busy.popleft(), port, y))
                ev = None if evidence is None else evidence[min(i, len(evidence) - 1):][:1]
                kn = None if known is None else known[min(i, len(known) - 1):][:1]
                request = free.pop()
                request.start_async(self._feed(x[i:i + 1], ev, kn))
                busy.append((request, i))
            while busy:
                self._collect(busy.popleft(), port, y)
        finally:
            for request, _ in busy:  # an error or an interrupt: nothing left running on return
                request.wait()
        return y

    @staticmethod
    def _collect(item, port, y: np.ndarray):
        request, i = item
        request.wait()
        y[i] = request.get_tensor(port).data[0]
        return request

    def describe(self) -> dict[str, Any]:
        mode = ("latency: one synchronous request" if self.hint == "latency" else
                f"throughput: {max(self.requests, 1)} async infer requests over {self.streams} streams, "
                "one image per request")
        return {
            "backend": self.name,
            "device": "cpu",
            "model": str(self.model),
            "openvino": module_version("openvino"),
            "mode": mode,
            "hint": self.hint.upper(),
            "streams": self.streams,
            "inference_precision": self.inference_precision,
            "io_dtype": np.dtype(self.input_dtype).name,
            "threads": self.threads,
            "cache_dir": str(self.cache_dir) if self.cache_dir is not None else None,
            "startup_s": round(self.startup_s, 3),
            "loaded_from_cache": self.from_cache,
            "frame_decision": "evidence input" if self.takes_evidence else None,
        }

    def close(self) -> None:
        """Release the requests, then the compiled models, here and now (idempotent): requests
        first, as each holds its compiled model; nothing is in flight between calls."""
        for request in self._pool:
            request.wait()
        self._pool = []
        self._request = self._head_request = None
        self.compiled = self._head = self._head_source = None


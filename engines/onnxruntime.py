"""ONNX Runtime runner: TensorRT EP / CUDA EP when the install offers them, CPU otherwise.

Runs fp32 graphs, fp16 graphs (fp16 or fp32 I/O: the input is cast to what the graph declares,
the output returned as float32) and Q/DQ (INT8) graphs. On a GPU provider the input and output
are bound with IO binding: a torch CUDA tensor is bound in place (no host copy) and its result
comes back as a torch CUDA tensor; a NumPy batch is copied to the device once and back once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Runner
from engines.onnx_graph import graph_architecture
from engines.options import check_threads
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.convert import to_host
from toolkit.core.errors import DtkError
from toolkit.core.evidence import EVIDENCE_INPUT, EVIDENCE_OUTPUT, KNOWN_INPUT, decides_whole_frame
from toolkit.core.lazy import optional_import
from toolkit.core.tiles import ANY_SIZE

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")
_NP_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def default_trt_cache_dir() -> Path:
    """Where the TensorRT EP keeps built engines and its timing cache (reused across runs)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dtk" / "ort-trt"


def choose_providers(available: list[str], device: str = "auto", *, trt_fp16: bool = False,
                     trt_cache_dir: Path | str | None = None, device_id: int = 0) -> list:
    """ORT provider list (names or (name, options)) in preference order for `device`.

    auto: TensorRT EP, then CUDA EP, then CPU, whichever the install has; cpu: CPU only;
    cuda: GPU providers, DtkError when the install has none.
    """
    if device not in DEVICES:
        raise DtkError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    chosen: list = []
    if device in ("auto", "cuda"):
        if TRT_EP in available:
            cache = str(trt_cache_dir or default_trt_cache_dir())
            chosen.append((TRT_EP, {
                "device_id": device_id,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": cache,
                "trt_fp16_enable": bool(trt_fp16),
            }))
        if CUDA_EP in available:
            chosen.append((CUDA_EP, {"device_id": device_id}))
        if device == "cuda" and not chosen:
            raise DtkError("ONNX Runtime has no GPU provider here (providers: "
                           f"{', '.join(available)}); install onnxruntime-gpu (pip install .[gpu]) "
                           "or use --device cpu")
    chosen.append(CPU_EP)
    return chosen


def check_input_shape(model: Path, shape: list, size: tuple[int, int] | None) -> None:
    """DtkError unless an ONNX input `shape` (ints or symbolic names) takes N x 3 x H x W batches
    at `size` (H, W; None: any fixed H and W)."""
    expected = f"N x 3 x {size[0]} x {size[1]}" if size else "N x 3 x H x W"
    actual = " x ".join(str(d) if isinstance(d, int) else (d or "?") for d in shape)
    hint = (f"export one for this size with `dtk export --height {size[0]} --width {size[1]}`" if size
            else "export one with `dtk export`")
    if len(shape) != 4:
        raise DtkError(f"{model} takes a {len(shape)}-D input ({actual}); dtk expects {expected}: {hint}")
    if isinstance(shape[1], int) and shape[1] != 3:
        raise DtkError(f"{model} takes {shape[1]}-channel input ({actual}); dtk expects {expected} "
                       f"(RGB): {hint}")
    if size is not None:
        fixed = [(d, want) for d, want in zip(shape[2:], size, strict=True) if isinstance(d, int)]
        if any(d != want for d, want in fixed):
            raise DtkError(f"{model} takes a fixed input of {actual}; dtk feeds {expected} "
                           f"(frames are resized to {size[0]}x{size[1]}): {hint}")


def declared_sizes(shape: list) -> tuple[tuple[int, int], ...]:
    """The (H, W) sizes an ONNX image input of `shape` (N x 3 x H x W: ints or symbolic names)
    takes: ANY_SIZE when H and W are both free (a graph exported with dynamic H and W), else its
    one size (a free side read as the network's 256 or 448)."""
    h, w = shape[2], shape[3]
    if not isinstance(h, int) and not isinstance(w, int):
        return ANY_SIZE
    return ((h if isinstance(h, int) else FRAME_SIZE[0], w if isinstance(w, int) else FRAME_SIZE[1]),)


def cpu_session(model: Path | str, threads: int | None = None):
    """A plain CPU ONNX Runtime session (full graph optimisation, warnings off): the one dtk uses
    outside a runner, for export parity, the quantizer's guard and the INT8 benchmark."""
    ort = optional_import("onnxruntime")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(model), opts, providers=[CPU_EP])


class OrtRunner(Runner):
    """An ONNX Runtime session over an NCHW [0, 1] batch model (input and output one tensor each)."""

    name = "onnxruntime"

    def __init__(self, model: Path | str, *, device: str = "auto", threads: int | None = None,
                 trt_fp16: bool = False, trt_cache_dir: Path | str | None = None, device_id: int = 0,
                 spin: bool = False, size: tuple[int, int] | None = None):
        ort = optional_import("onnxruntime")
        self.model = Path(model)
        if not self.model.is_file():
            raise DtkError(f"ONNX model not found: {self.model}")
        self.threads = threads
        self.spin = spin
        self.trt_fp16 = trt_fp16
        self.device_id = device_id
        self.trt_cache_dir = Path(trt_cache_dir or default_trt_cache_dir())
        providers = choose_providers(list(ort.get_available_providers()), device, trt_fp16=trt_fp16,
                                     trt_cache_dir=self.trt_cache_dir, device_id=device_id)
        if isinstance(providers[0], tuple) and providers[0][0] == TRT_EP:
            self.trt_cache_dir.mkdir(parents=True, exist_ok=True)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only (ORT notes the evidence input's default otherwise)
        if not spin:  # idle intra-op threads sleep instead of spinning: they leave the cores to the
            # decode/write threads that overlap compute (on a shared 2-core CPU: ~10% more frames/s)
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            check_threads(threads)
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.model), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types for bad/foreign files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DtkError(f"ONNX Runtime cannot load {self.model}: {first} "
                           "(export one with `dtk export`)") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        images = [i for i in inputs if i.name not in (EVIDENCE_INPUT, KNOWN_INPUT)]
        overridable = {i.name for i in self.session.get_overridable_initializers()}
        named = overridable | {i.name for i in inputs}
        self.takes_evidence = EVIDENCE_INPUT in named and any(o.name == EVIDENCE_OUTPUT for o in outputs)
        self.takes_known_blur = self.takes_evidence and KNOWN_INPUT in named
        self.decides_whole_frame = self.takes_evidence and decides_whole_frame(graph_architecture(self.model))
        outputs = [o for o in outputs if not (self.takes_evidence and o.name == EVIDENCE_OUTPUT)]
        if len(images) != 1 or len(outputs) != 1:
            raise DtkError(f"{self.model} has {len(images)} image inputs and {len(outputs)} image "
                           "outputs; dtk runs models with one image input and one image output")
        check_input_shape(self.model, list(images[0].shape), size)
        self._sizes = declared_sizes(list(images[0].shape))
        self.input_name, self.output_name = images[0].name, outputs[0].name
        self.input_dtype = _NP_DTYPES.get(images[0].type)
        self.output_dtype = _NP_DTYPES.get(outputs[0].type)
        if self.input_dtype is None or self.output_dtype is None:
            raise DtkError(f"{self.model}: input/output types {images[0].type}/{outputs[0].type} "
                           "are not float32 or float16")
        self.providers = list(self.session.get_providers())
        self.on_gpu = self.providers[0] in (TRT_EP, CUDA_EP)
        self.accepts_device_tensors = self.on_gpu
        self._opts, self._providers = opts, providers
        self._head = None  # the evidence subgraph's session, built on first use

    def input_sizes(self) -> tuple[tuple[int, int], ...]:
        """ANY_SIZE for a graph with dynamic H and W (dtk's export), else its fixed size."""
        return self._sizes

    def _evidence_feed(self, evidence: np.ndarray | None, known: np.ndarray | None = None) -> dict:
        feed = {}
        if evidence is not None and self.takes_evidence:
            feed[EVIDENCE_INPUT] = np.ascontiguousarray(evidence, dtype=self.input_dtype)
        if known is not None and self.takes_known_blur:
            feed[KNOWN_INPUT] = np.ascontiguousarray(known, dtype=self.input_dtype)
        return feed

    def evidence(self, batch: Any) -> np.ndarray:
        """N x width: the graph's `tile_evidence` from a session over only the nodes it needs (the
        bank and the head: ~1/3 of a whole pass)."""
        if not self.takes_evidence:
            return super().evidence(batch)
        if self._head is None:
            import onnx

            ort = optional_import("onnxruntime")
            sub = onnx.utils.Extractor(onnx.load(str(self.model))).extract_model(
                [self.input_name], [EVIDENCE_OUTPUT])
            self._head = ort.InferenceSession(sub.SerializeToString(), sess_options=self._opts,
                                              providers=self._providers)
        x = np.ascontiguousarray(to_host(batch), dtype=self.input_dtype)
        return self._head.run(None, {self.input_name: x})[0].astype(np.float32, copy=False)

    def infer(self, batch: Any, evidence: np.ndarray | None = None, known: np.ndarray | None = None) -> Any:
        """N x 3 x H x W -> N x 3 x H x W float32 (NumPy in, NumPy out; torch CUDA in, torch CUDA out)."""
        if self.on_gpu:
            return self._infer_bound(batch, evidence, known)
        x = np.ascontiguousarray(np.asarray(batch), dtype=self.input_dtype)
        feed = {self.input_name: x, **self._evidence_feed(evidence, known)}
        y = self.session.run([self.output_name], feed)[0]
        return y.astype(np.float32, copy=False)

    def _infer_bound(self, batch: Any, evidence: np.ndarray | None = None,
                     known: np.ndarray | None = None) -> Any:
        """IO binding: device buffers in and out, one synchronisation per batch."""
        binding = self.session.io_binding()
        for name, value in self._evidence_feed(evidence, known).items():
            binding.bind_cpu_input(name, value)
        if type(batch).__module__.startswith("torch") and getattr(batch, "is_cuda", False):
            import torch

            tdtype = torch.float16 if self.input_dtype == np.float16 else torch.float32
            x = batch.to(dtype=tdtype).contiguous()
            out = torch.empty(tuple(x.shape), dtype=torch.float16 if self.output_dtype == np.float16
                              else torch.float32, device=x.device)
            binding.bind_input(self.input_name, "cuda", x.device.index or 0, self.input_dtype,
                               tuple(x.shape), x.data_ptr())
            binding.bind_output(self.output_name, "cuda", out.device.index or 0, self.output_dtype,
                                tuple(out.shape), out.data_ptr())
            torch.cuda.current_stream(x.device).synchronize()  # x is ready before ORT reads it
            self.session.run_with_iobinding(binding)
            return out.float()
        ort = optional_import("onnxruntime")
        x = np.ascontiguousarray(np.asarray(batch), dtype=self.input_dtype)
        binding.bind_ortvalue_input(self.input_name,
                                    ort.OrtValue.ortvalue_from_numpy(x, "cuda", self.device_id))
        binding.bind_output(self.output_name, "cuda", self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0].astype(np.float32, copy=False)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "device": f"cuda:{self.device_id}" if self.on_gpu else "cpu",
            "model": str(self.model),
            "providers": self.providers,
            "io_dtype": f"{np.dtype(self.input_dtype).name}/{np.dtype(self.output_dtype).name}",
            "io_binding": self.on_gpu,
            "threads": self.threads,
            "spin": self.spin,
            "trt_fp16": self.trt_fp16 if TRT_EP in self.providers else None,
            "trt_cache": str(self.trt_cache_dir) if TRT_EP in self.providers else None,
            "frame_decision": "evidence input" if self.takes_evidence else None,
        }

    def close(self) -> None:
        self.session = self._head = None

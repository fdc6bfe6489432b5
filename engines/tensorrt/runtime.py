"""`TrtRunner`: run a serialized TensorRT engine through the 10.x/11.x named-tensor API.

CUDA binding: torch. torch is already a hard dependency of dtk, its CUDA tensors give
device buffers (`data_ptr()`), pinned host memory, streams (`Stream.cuda_stream` is the
raw handle `execute_async_v3` takes) and CUDA-graph capture (`torch.cuda.graph`) in one
library, and DALI / the GPU blur hand us torch CUDA tensors already. cuda-python or cupy
would add a second CUDA runtime wrapper for no gain.

Per batch size n: `set_input_shape` -> `set_tensor_address` for every I/O tensor ->
`execute_async_v3(stream)` (or replay of a CUDA graph captured for n). Buffers are
allocated once for the largest call of any profile, so tensor addresses never change and a
captured graph stays valid. TensorRT's docs ask for one `execute_async_v3` call after an
input-shape change before capturing a graph (developer guide, "CUDA Graphs":
https://docs.nvidia.com/deeplearning/tensorrt/latest/performance/best-practices.html);
the runner does that warm-up run. Batches above the profile's max are split into chunks;
a remainder below its min is zero-padded.

Frame sizes: an engine built with `dtk build-engine --shapes` has one optimization profile per
frame size (H x W fixed in each, the batch free); `input_sizes()` lists them, engines.tiled cuts
frames into the largest that fits, and a batch runs on the profile of its H x W, through an
execution context of its own (created on first use, set to that profile with
`set_optimization_profile_async`: a context serves one profile), with its own graphs.

A blind model's engine (built from dtk's export) has a second input `evidence` (N x width: the
frame's pooled head features, rows < 0 meaning "decide from this image") and a second output
`tile_evidence`: `infer(batch, evidence=E)` decides every image on E (tiles of one frame share one
decision, engines.tiled), and `evidence(batch)` returns each image's own (a whole pass: an engine
cannot run a subgraph).

Why dtk keeps its own runner next to Polygraphy's `TrtRunner` (issue 22): Polygraphy's runner
is NVIDIA's reference for checking an engine (`dtk compare`, the `gpu` test that requires both to
give equal outputs), but it takes and returns host arrays per call and allocates its own device
buffers. A batch-inference tool needs what it does not offer: torch-owned device buffers that
take DALI / GPU-blur output with no host copy between the pipeline and the engine, and replay of
a CUDA graph captured per batch size over fixed tensor addresses.

Device memory goes through a small `Device` object (`TorchCudaDevice` in production), so
tests can swap in a CPU one; the call protocol into TensorRT is the same either way.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engines.base import Runner
from engines.tensorrt.sidecar import BatchProfile, EngineSidecar, check_compatible, load_sidecar
from toolkit.core.errors import DtkError
from toolkit.core.evidence import DECIDE, EVIDENCE_INPUT, EVIDENCE_OUTPUT, KNOWN_INPUT, OWN_EVIDENCE
from toolkit.core.lazy import optional_import


class Device(Protocol):
    """Where the engine's buffers live; `TorchCudaDevice` is the real one."""

    name: str
    compute_capability: str
    supports_graphs: bool

    @property
    def stream_handle(self) -> int: ...

    def empty(self, shape: tuple[int, ...], dtype) -> Any: ...  # a torch tensor on the device

    def pinned(self, shape: tuple[int, ...], dtype) -> Any: ...  # a torch tensor in (pinned) host memory

    def on_stream(self) -> AbstractContextManager: ...

    def wait_for_current_stream(self) -> None: ...

    def synchronize(self) -> None: ...

    def capture(self, launch) -> Any: ...  # returns a callable that replays `launch`


class TorchCudaDevice:
    """CUDA memory, one non-default stream and graph capture through torch.cuda."""

    supports_graphs = True

    def __init__(self, device_index: int = 0):
        import torch

        if not torch.cuda.is_available():
            raise DtkError("the TensorRT backend needs an NVIDIA GPU with CUDA; torch sees none here "
                           "(use --backend onnxruntime or torch)")
        self._torch = torch
        self.device = torch.device("cuda", device_index)
        major, minor = torch.cuda.get_device_capability(self.device)
        self.name = torch.cuda.get_device_name(self.device)
        self.compute_capability = f"{major}.{minor}"
        self.stream = torch.cuda.Stream(self.device)  # graph capture needs a non-default stream

    @property
    def stream_handle(self) -> int:
        return int(self.stream.cuda_stream)

    def empty(self, shape, dtype):
        return self._torch.empty(shape, dtype=dtype, device=self.device)

    def pinned(self, shape, dtype):
        return self._torch.empty(shape, dtype=dtype, pin_memory=True)

    def on_stream(self):
        return self._torch.cuda.stream(self.stream)

    def wait_for_current_stream(self) -> None:
        """Order our stream after the producer's (DALI / GPU blur wrote the input on it)."""
        self.stream.wait_stream(self._torch.cuda.current_stream(self.device))

    def synchronize(self) -> None:
        self.stream.synchronize()

    def capture(self, launch):
        graph = self._torch.cuda.CUDAGraph()
        with self._torch.cuda.graph(graph, stream=self.stream):
            launch()
        return graph.replay


def _dtypes(trt) -> dict:
    import torch

    return {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}


class TrtRunner(Runner):
    """A deserialized engine with one image input and output (N x 3 x H x W), Runner protocol;
    `evidence` in and `tile_evidence` out beside them for a blind model."""

    name = "tensorrt"

    def __init__(self, engine_path: Path, *, cuda_graphs: bool = False, device: Device | None = None,
                 device_index: int = 0, check_sidecar: bool = True):
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise DtkError(f"TensorRT engine not found: {self.engine_path}; "
                           f"build one with: dtk build-engine MODEL.onnx -o {self.engine_path}")
        trt = optional_import("tensorrt")
        self._trt = trt
        self.device = device if device is not None else TorchCudaDevice(device_index)
        # dtk run hands a CUDA runner GPU batches (DALI GPU pipeline) without a host copy
        self.accepts_device_tensors = isinstance(self.device, TorchCudaDevice)
        self.sidecar: EngineSidecar | None = None
        if check_sidecar:
            self.sidecar = load_sidecar(self.engine_path)
            check_compatible(self.sidecar, tensorrt_version=trt.__version__,
                             compute_capability=self.device.compute_capability, engine_path=self.engine_path)
        if cuda_graphs and not self.device.supports_graphs:
            raise DtkError("CUDA graphs need a CUDA device")
        self.cuda_graphs = cuda_graphs

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise DtkError(f"TensorRT could not deserialize {self.engine_path} (see its log above); "
                           "rebuild it here: dtk build-engine MODEL.onnx -o ENGINE --overwrite")
        self._context = self._engine.create_execution_context()  # profile 0's
        self.input_name, self.output_name = self._io_names()
        dtypes = _dtypes(trt)
        try:
            self.input_dtype = dtypes[self._engine.get_tensor_dtype(self.input_name)]
            self.output_dtype = dtypes[self._engine.get_tensor_dtype(self.output_name)]
        except KeyError as exc:
            raise DtkError(f"engine I/O must be fp32 or fp16; got {exc.args[0]}") from exc
        self.profiles = [self._profile(k) for k in range(max(1, int(self._engine.num_optimization_profiles)))]
        self.profile = self.profiles[0]
        out_shape = tuple(self._engine.get_tensor_shape(self.output_name))
        if len(out_shape) != 4:
            raise DtkError(f"expected an N x C x H x W output; the engine's is {out_shape}")
        self._out_tails = [tuple(d if d > 0 else s for d, s in zip(out_shape[1:], p.shape(1)[1:],
                                                                   strict=True)) for p in self.profiles]
        self._out_tail = self._out_tails[0]

        # one flat buffer each, viewed per profile and batch: its address never changes
        max_in = max(p.max * int(np.prod(p.shape(1)[1:])) for p in self.profiles)
        max_out = max(p.max * int(np.prod(t)) for p, t in zip(self.profiles, self._out_tails, strict=True))
        self._d_in = self.device.empty((max_in,), self.input_dtype)
        self._d_out = self.device.empty((max_out,), self.output_dtype)
        self._h_in = self.device.pinned((max_in,), self.input_dtype)
        self._h_out = self.device.pinned((max_out,), self.output_dtype)
        rows = max(p.max for p in self.profiles)
        self.takes_evidence = self._evidence_io is not None
        if self.takes_evidence:
            width = int(self._engine.get_tensor_shape(EVIDENCE_INPUT)[1])
            ev_in = dtypes.get(self._engine.get_tensor_dtype(EVIDENCE_INPUT), self.input_dtype)
            ev_out = dtypes.get(self._engine.get_tensor_dtype(EVIDENCE_OUTPUT), self.output_dtype)
            self._evidence_width = width
            self._d_ev_in = self.device.empty((rows, width), ev_in)
            self._h_ev_in = self.device.pinned((rows, width), ev_in)
            self._d_ev_out = self.device.empty((rows, width), ev_out)
            self._h_ev_out = self.device.pinned((rows, width), ev_out)
        self.takes_known_blur = self.takes_evidence and self._known_input
        self.decides_whole_frame = bool(self.takes_evidence and self.sidecar is not None
                                        and self.sidecar.decides_whole_frame)
        if self.takes_known_blur:
            known = dtypes.get(self._engine.get_tensor_dtype(KNOWN_INPUT), self.input_dtype)
            self._d_known = self.device.empty((rows, 1), known)
            self._h_known = self.device.pinned((rows, 1), known)
        self._contexts: dict[int, Any] = {0: self._context}  # profile -> its execution context
        self._bound: dict[int, int] = {}  # profile -> the batch size its context is bound for
        self._graphs: dict[tuple[int, int], Any] = {}  # (profile, batch) -> replay

    # -- engine facts --------------------------------------------------------------------------
    def _io_names(self) -> tuple[str, str]:
        """(image input, image output); sets `_evidence_io` when the engine has the evidence pair."""
        trt, engine = self._trt, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        pair = EVIDENCE_INPUT in inputs and EVIDENCE_OUTPUT in outputs
        self._evidence_io = (EVIDENCE_INPUT, EVIDENCE_OUTPUT) if pair else None
        self._known_input = pair and KNOWN_INPUT in inputs
        if pair:
            inputs = [n for n in inputs if n not in (EVIDENCE_INPUT, KNOWN_INPUT)]
            outputs = [n for n in outputs if n != EVIDENCE_OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise DtkError(f"expected an engine with one image input and one image output; it has inputs "
                           f"{inputs}, outputs {outputs}")
        return inputs[0], outputs[0]

    def _profile(self, index: int) -> BatchProfile:
        lo, opt, hi = (tuple(s) for s in self._engine.get_tensor_profile_shape(self.input_name, index))
        if len(lo) != 4 or lo[1:] != hi[1:]:
            raise DtkError(f"expected a profile over the batch only (N x C x H x W fixed); got {lo} .. {hi}")
        return BatchProfile(lo[0], opt[0], hi[0], height=lo[2], width=lo[3], channels=lo[1])

    # -- execution ------------------------------------------------------------------------------
    def _context_for(self, k: int):
        """The execution context of profile `k` (created and set to it on first use)."""
        ctx = self._contexts.get(k)
        if ctx is None:
            ctx = self._engine.create_execution_context()
            if not ctx.set_optimization_profile_async(k, self.device.stream_handle):
                raise DtkError(f"TensorRT refused optimization profile {k} ({self.profiles[k]})")
            self._contexts[k] = ctx
        return ctx

    def _bind(self, k: int, n: int) -> None:
        """Input shape first, then the address of every I/O tensor (same buffers for every n and
        profile), on profile `k`'s context."""
        if self._bound.get(k) == n:
            return
        ctx, batches = self._context_for(k), self.profiles[k]
        if not ctx.set_input_shape(self.input_name, batches.shape(n)):
            raise DtkError(f"TensorRT refused input shape {batches.shape(n)} (profile {batches})")
        buffers = [(self.input_name, self._d_in), (self.output_name, self._d_out)]
        if self.takes_evidence:
            if not ctx.set_input_shape(EVIDENCE_INPUT, (n, self._evidence_width)):
                raise DtkError(f"TensorRT refused evidence shape {(n, self._evidence_width)}")
            buffers += [(EVIDENCE_INPUT, self._d_ev_in), (EVIDENCE_OUTPUT, self._d_ev_out)]
        if self.takes_known_blur:
            if not ctx.set_input_shape(KNOWN_INPUT, (n, 1)):
                raise DtkError(f"TensorRT refused known-blur shape {(n, 1)}")
            buffers.append((KNOWN_INPUT, self._d_known))
        expected = (n, *self._out_tails[k])
        if tuple(ctx.get_tensor_shape(self.output_name)) != expected:
            raise DtkError(f"engine output shape {tuple(ctx.get_tensor_shape(self.output_name))}, "
                           f"expected {expected}")
        for name, buf in buffers:
            if not ctx.set_tensor_address(name, int(buf.data_ptr())):
                raise DtkError(f"TensorRT refused the address of tensor {name!r}")
        self._bound[k] = n

    def _launch(self, k: int = 0) -> None:
        ctx = self._contexts[k]
        if not ctx.execute_async_v3(self.device.stream_handle):
            raise DtkError("TensorRT execute_async_v3 failed (see its log above)")

    def _execute(self, k: int, n: int) -> None:
        self._bind(k, n)
        if not self.cuda_graphs:
            self._launch(k)
            return
        replay = self._graphs.get((k, n))
        if replay is None:
            self._launch(k)  # one run after the shape change, before capture (see module docstring)
            self.device.synchronize()
            replay = self._graphs[(k, n)] = self.device.capture(lambda: self._launch(k))
        replay()

    def input_sizes(self) -> tuple[tuple[int, int], ...]:
        """(H, W) of each optimization profile: the frame sizes this engine takes."""
        return tuple((p.height, p.width) for p in self.profiles)

    def _check_batch(self, batch) -> tuple[int, int]:
        """(the profile of the batch's C x H x W, its batch size); DtkError when no profile has it."""
        shape = tuple(batch.shape)
        for k, p in enumerate(self.profiles):
            if len(shape) == 4 and shape[1:] == p.shape(1)[1:]:
                return k, shape[0]
        want = " or ".join(f"N x {c} x {h} x {w}" for _, c, h, w in (p.shape(1) for p in self.profiles))
        raise DtkError(f"engine {self.engine_path.name} takes {want} (NCHW); got {shape}")

    def _view(self, buf, k: int, rows: int, tail: tuple[int, ...] | None = None):
        """The first `rows` images of a flat buffer as rows x C x H x W of profile `k`."""
        tail = tail or tuple(self.profiles[k].shape(1)[1:])
        return buf[:rows * int(np.prod(tail))].view(rows, *tail)

    def infer(self, batch, evidence: np.ndarray | None = None, known: np.ndarray | None = None):
        """N x 3 x H x W in [0, 1] -> same shape, float32.

        NumPy in -> NumPy out (through pinned host buffers). A torch CUDA tensor in -> a torch
        CUDA tensor out: the input is copied device-to-device, never through the host.
        `evidence` (N x width, rows < 0: own) where `takes_evidence`; `known` (N x 1, rows < 0:
        decide) where `takes_known_blur`.
        """
        return self._run(batch, evidence, known=known)[0]

    def evidence(self, batch) -> np.ndarray:
        """N x width float32: each image's own `tile_evidence` (a whole pass of the engine)."""
        if not self.takes_evidence:
            return super().evidence(batch)
        return self._run(batch, None, collect=True)[1]

    def _set_evidence(self, evidence: np.ndarray | None, start: int, rows: int, size: int) -> None:
        """Fill the evidence input of one chunk (`size` rows; given rows, else -1: own)."""
        self._d_ev_in[:size].fill_(OWN_EVIDENCE)
        if evidence is not None:
            import torch

            given = torch.from_numpy(np.ascontiguousarray(evidence[start:start + rows], dtype=np.float32))
            self._h_ev_in[:rows].copy_(given)
            self._d_ev_in[:rows].copy_(self._h_ev_in[:rows], non_blocking=True)

    def _set_known(self, known: np.ndarray | None, start: int, rows: int, size: int) -> None:
        """Fill the known-blur input of one chunk (given rows, else DECIDE)."""
        self._d_known[:size].fill_(DECIDE)
        if known is not None:
            import torch

            given = torch.from_numpy(np.ascontiguousarray(known[start:start + rows], dtype=np.float32))
            self._h_known[:rows].copy_(given)
            self._d_known[:rows].copy_(self._h_known[:rows], non_blocking=True)

    def _run(self, batch, evidence: np.ndarray | None, collect: bool = False,
             known: np.ndarray | None = None):
        """(outputs, own evidence N x width as float32 NumPy when `collect`, else None)."""
        import torch

        k, n = self._check_batch(batch)
        batches, out_tail = self.profiles[k], self._out_tails[k]
        own = np.empty((n, self._evidence_width), dtype=np.float32) if collect else None
        on_gpu = isinstance(batch, torch.Tensor) and batch.device.type != "cpu"
        if on_gpu:
            self.device.wait_for_current_stream()
            result = torch.empty((n, *out_tail), dtype=torch.float32, device=batch.device)
        else:
            src = torch.from_numpy(np.ascontiguousarray(batch)) if isinstance(batch, np.ndarray) else batch
            result_np = np.empty((n, *out_tail), dtype=np.float32)
        with self.device.on_stream():
            for start, stop, size in batches.chunks(n):
                rows = stop - start
                d_in, h_in = self._view(self._d_in, k, size), self._view(self._h_in, k, size)
                d_out = self._view(self._d_out, k, size, out_tail)
                if on_gpu:
                    d_in[:rows].copy_(batch[start:stop], non_blocking=True)
                else:
                    h_in[:rows].copy_(src[start:stop])  # host-side cast into pinned memory
                    d_in[:rows].copy_(h_in[:rows], non_blocking=True)
                if size > rows:
                    d_in[rows:size].zero_()
                if self.takes_evidence:
                    self._set_evidence(evidence, start, rows, size)
                if self.takes_known_blur:
                    self._set_known(known, start, rows, size)
                self._execute(k, size)
                if own is not None:
                    self._h_ev_out[:rows].copy_(self._d_ev_out[:rows], non_blocking=True)
                    self.device.synchronize()
                    own[start:stop] = self._h_ev_out[:rows].float().numpy()
                if on_gpu:
                    result[start:stop].copy_(d_out[:rows], non_blocking=True)
                else:
                    h_out = self._view(self._h_out, k, size, out_tail)
                    h_out[:rows].copy_(d_out[:rows], non_blocking=True)
                    self.device.synchronize()
                    result_np[start:stop] = h_out[:rows].numpy()
        if on_gpu:
            torch.cuda.current_stream(batch.device).wait_stream(self.device.stream)
            return result, own
        return result_np, own

    def describe(self) -> dict[str, Any]:
        sc = self.sidecar
        precision = sc.precision if sc else ("fp16" if str(self.input_dtype).endswith("16") else "unknown")
        return {
            "backend": self.name,
            "engine": str(self.engine_path),
            "device": self.device.name,
            "compute_capability": self.device.compute_capability,
            "tensorrt": self._trt.__version__,
            "precision": precision,
            "io_dtype": {"input": str(self.input_dtype).removeprefix("torch."),
                         "output": str(self.output_dtype).removeprefix("torch.")},
            "profile": {"min": self.profile.min, "opt": self.profile.opt, "max": self.profile.max,
                        "height": self.profile.height, "width": self.profile.width},
            "profiles": [{"min": p.min, "opt": p.opt, "max": p.max, "height": p.height, "width": p.width}
                         for p in self.profiles],
            "cuda_graphs": self.cuda_graphs,
            "graphs_captured": sorted(n for k, n in self._graphs if k == 0),
            "graphs_captured_by_profile": [sorted(n for k, n in self._graphs if k == i)
                                           for i in range(len(self.profiles))],
            "frame_decision": "evidence input" if self.takes_evidence else None,
            "onnx_sha256": sc.onnx_sha256 if sc else None,
        }

    def close(self) -> None:
        """Drop graphs, context, engine and buffers (in that order: graphs reference the context)."""
        self._graphs.clear()
        self._contexts.clear()
        self._context = None
        self._engine = None
        self._runtime = None
        self._d_in = self._d_out = self._h_in = self._h_out = None
        self._d_ev_in = self._h_ev_in = self._d_ev_out = self._h_ev_out = None
        self._d_known = self._h_known = None
        self._bound = {}

"""CUDA machinery of the torch runner: a CUDA-graph per input shape, pinned host staging, a copy stream.

Only `engines.torch.TorchRunner` on a CUDA device builds a `CudaExecutor`; nothing here runs on CPU.

Graphs (torch.cuda.CUDAGraph): per input shape (batch size), a static input buffer in the model's
dtype/memory format is warmed up on a side stream (cuDNN autotuning happens there), then captured
with `torch.cuda.graph` into one memory pool shared by all shapes; a call copies into the static
input, replays, and clones the static output (the next replay overwrites it).

NumPy I/O: per shape and dtype, a pinned host input and output buffer and a device staging buffer.
Order of one call, made explicit with events:
  copy stream:    pinned_in -> dev_in (H2D)       record h2d
  compute stream: wait h2d; dev_in -> static_in; replay (or eager)   record done
  copy stream:    wait done; out -> pinned_out (D2H)   record d2h; host waits d2h
The copies are asynchronous DMA from page-locked memory, so the host thread is free (GIL released
while it waits) for the pipeline's decode/write threads, and other work on the compute stream
(e.g. the GPU blur of the next batch) is not serialised behind the copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

GRAPH_WARMUP_CALLS = 3  # eager calls on a side stream before capture (torch's CUDA-graph recipe)


class CudaExecutor:
    """Runs `model` on a CUDA device: NCHW float input -> NCHW float32 output, graphs optional."""

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype, *,
                 channels_last: bool, graphs: bool, evidence_width: int | None = None):
        if device.type != "cuda":
            raise ValueError(f"CudaExecutor needs a CUDA device, got {device}")
        self.model = model
        self.device = device
        self.dtype = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.graphs = graphs
        self.evidence_width = evidence_width  # the model takes frame evidence (N x width, < 0: own)
        self.copy_stream = torch.cuda.Stream(device)
        self._graphs: dict[tuple, tuple] = {}  # shape -> graph, static in, evidence, known blur, out
        self._pool = torch.cuda.graph_pool_handle() if graphs else None
        self._staging: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        # timing events bracket each phase of run_numpy: H2D (copy stream), compute, D2H (copy stream)
        self._t0, self._h2d, self._c0, self._done, self._d0, self._d2h = (
            torch.cuda.Event(enable_timing=True) for _ in range(6))
        self.last_phases_ms: dict[str, float] | None = None

    def _forward(self, x: torch.Tensor, evidence: torch.Tensor | None,
                 known: torch.Tensor | None = None) -> torch.Tensor:
        y = self.model(x) if evidence is None else self.model(x, evidence=evidence, known=known)
        return y.float().contiguous()

    def _known(self, n: int, known: Any) -> torch.Tensor | None:
        """The known-blur rows on the device (-1: decide), None for models without a decision."""
        if self.evidence_width is None:
            return None
        if known is None:
            return torch.full((n, 1), -1.0, dtype=self.dtype, device=self.device)
        return torch.as_tensor(np.asarray(known, dtype=np.float32)).to(self.device, self.dtype)

    def _evidence(self, n: int, evidence: Any) -> torch.Tensor | None:
        """The evidence rows on the device (-1: each image its own), None for models without."""
        if self.evidence_width is None:
            return None
        if evidence is None:
            return torch.full((n, self.evidence_width), -1.0, dtype=self.dtype, device=self.device)
        return torch.as_tensor(np.asarray(evidence, dtype=np.float32)).to(self.device, self.dtype)

    def _graph(self, shape: tuple[int, ...]) -> tuple[Any, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The captured graph of `shape` with its static input(s) and output (captured on first use)."""
        if shape in self._graphs:
            return self._graphs[shape]
        static_in = torch.zeros(shape, dtype=self.dtype, device=self.device).contiguous(
            memory_format=self.memory_format)
        static_ev = self._evidence(shape[0], None)
        static_known = self._known(shape[0], None)
        compute = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(compute)
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(GRAPH_WARMUP_CALLS):
                self._forward(static_in, static_ev, static_known)
        compute.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, pool=self._pool):
            static_out = self._forward(static_in, static_ev, static_known)
        self._graphs[shape] = (graph, static_in, static_ev, static_known, static_out)
        return self._graphs[shape]

    def _compute(self, x: torch.Tensor, evidence: Any = None, known: Any = None) -> torch.Tensor:
        """x on the device (any float dtype/layout) -> float32 NCHW output owned by the caller."""
        if self.graphs:
            graph, static_in, static_ev, static_known, static_out = self._graph(tuple(x.shape))
            static_in.copy_(x)
            if static_ev is not None:
                static_ev.copy_(self._evidence(x.shape[0], evidence))
                static_known.copy_(self._known(x.shape[0], known).expand_as(static_known))
            graph.replay()
            return static_out.clone()
        x = x.to(self.dtype).contiguous(memory_format=self.memory_format)
        with torch.inference_mode():
            return self._forward(x, self._evidence(x.shape[0], evidence), self._known(x.shape[0], known))

    def run_tensor(self, x: torch.Tensor, evidence: Any = None, known: Any = None) -> torch.Tensor:
        """A tensor (already on the GPU: no host round trip) -> a CUDA float32 tensor."""
        return self._compute(x.to(self.device, non_blocking=True), evidence, known)

    def _buffers(self, shape: tuple[int, ...], dtype: np.dtype) -> tuple[torch.Tensor, ...]:
        """(pinned host input, device input, pinned host float32 output) for this shape and dtype."""
        key = (shape, np.dtype(dtype).str)
        if key not in self._staging:
            tdtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
            self._staging[key] = (torch.empty(shape, dtype=tdtype, pin_memory=True),
                                  torch.empty(shape, dtype=tdtype, device=self.device),
                                  torch.empty(shape, dtype=torch.float32, pin_memory=True))
        return self._staging[key]

    def run_numpy(self, batch: np.ndarray, evidence: Any = None, known: Any = None) -> np.ndarray:
        """N x 3 x H x W NumPy -> float32 NumPy via pinned buffers and the copy stream."""
        batch = np.ascontiguousarray(batch)
        pinned_in, dev_in, pinned_out = self._buffers(batch.shape, batch.dtype)
        pinned_in.numpy()[...] = batch  # the previous call's copies finished: we waited on its d2h
        compute = torch.cuda.current_stream(self.device)
        self.copy_stream.wait_stream(compute)  # dev_in may still be read by the previous compute
        with torch.cuda.stream(self.copy_stream):
            self._t0.record(self.copy_stream)
            dev_in.copy_(pinned_in, non_blocking=True)
            self._h2d.record(self.copy_stream)
        compute.wait_event(self._h2d)
        self._c0.record(compute)
        y = self._compute(dev_in, evidence, known)
        self._done.record(compute)
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(self._done)
            self._d0.record(self.copy_stream)
            y.record_stream(self.copy_stream)  # y is freed by the compute stream's allocator
            pinned_out.copy_(y, non_blocking=True)
            self._d2h.record(self.copy_stream)
        self._d2h.synchronize()
        self.last_phases_ms = {"h2d": self._t0.elapsed_time(self._h2d),
                               "compute": self._c0.elapsed_time(self._done),
                               "d2h": self._d0.elapsed_time(self._d2h)}
        return pinned_out.numpy().copy()

    def describe(self) -> dict[str, Any]:
        return {
            "cuda_graphs": self.graphs,
            "graph_batch_sizes": sorted({s[0] for s in self._graphs}),
            "pinned_host_buffers": len(self._staging),
            "streams": "compute (current) + copy (H2D/D2H, event-ordered)",
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        }

    def close(self) -> None:
        self._graphs.clear()
        self._staging.clear()
        self.model = None

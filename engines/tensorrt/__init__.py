"""TensorRT engines: build (ONNX -> plan + JSON sidecar), sidecar checks, and the runner.

Nothing here imports `tensorrt` or touches CUDA at import time.
"""

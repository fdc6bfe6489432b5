"""Inference backends behind one Runner interface (ONNX Runtime, PyTorch, TensorRT).

Nothing here imports a GPU library at import time.
"""

"""Counted FLOPs of a model: 2 x the multiply-accumulates of every Conv / ConvTranspose.

Only convolutions are counted (bias adds, ReLU, pooling, concat are < 0.1 % of this U-Net);
one MAC = 2 FLOP. The seed U-Net (width 64) at 1 x 3 x 256 x 448 counts 120.1 GMAC = 240.2 GFLOP.
Two sources that agree: the ONNX graph (shape inference) and a torch module (forward hooks on
the meta device, so nothing is computed or allocated).
"""

from __future__ import annotations

from math import prod
from pathlib import Path
from typing import Any

from toolkit.core.errors import DtkError


def conv_macs(out_shape: tuple[int, ...], weight_shape: tuple[int, ...]) -> int:
    """Conv: each output element costs (Cin / groups) x kH x kW MACs; weight is Cout x Cin/g x kH x kW."""
    return prod(out_shape) * prod(weight_shape[1:])


def conv_transpose_macs(in_shape: tuple[int, ...], weight_shape: tuple[int, ...]) -> int:
    """ConvTranspose: each input element scatters into (Cout / groups) x kH x kW outputs.

    The weight is Cin x Cout/g x kH x kW (the same layout in torch and ONNX).
    """
    return prod(in_shape) * prod(weight_shape[1:])


def count_torch_macs(module: Any, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass of `module` on an input of `input_shape`, counted on the meta device.

    Every conv call is counted, modules and functional ones alike (a fixed filter bank applied
    with `F.conv2d` is invisible to module hooks).
    """
    import copy

    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    meta = copy.deepcopy(module).to("meta") if _has_real_params(module) else module
    total = 0
    convs = {F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d}
    transposed = {
        F.conv_transpose1d,
        F.conv_transpose2d,
        F.conv_transpose3d,
        torch.conv_transpose1d,
        torch.conv_transpose2d,
        torch.conv_transpose3d,
    }

    class Counter(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            nonlocal total
            out = func(*args, **(kwargs or {}))
            if func in convs or func in transposed:
                x = args[0]
                w = args[1] if len(args) > 1 else (kwargs or {})["weight"]
                if func in convs:
                    total += conv_macs(tuple(out.shape), tuple(w.shape))
                else:
                    total += conv_transpose_macs(tuple(x.shape), tuple(w.shape))
            return out

    with torch.no_grad(), Counter():
        meta(torch.empty(input_shape, device="meta"))
    return total


def frame_flops(module: Any, height: int = 256, width: int = 448) -> int:
    """Counted FLOPs (2 x MACs) of a torch model for one 3 x H x W frame."""
    return 2 * count_torch_macs(module, (1, 3, height, width))


def _has_real_params(module: Any) -> bool:
    return any(p.device.type != "meta" for p in module.parameters())


def unet_macs(width: int, input_shape: tuple[int, ...] = (1, 3, 256, 448), **config: Any) -> int:
    """MACs of the seed U-Net of a given width, built directly on the meta device."""
    import torch  # torch and the model definitions: only when a torch model is counted (start-up)

    from toolkit.core.models import ModelConfig
    from toolkit.core.models.unet import SeedUNet

    with torch.device("meta"):
        model = SeedUNet(ModelConfig(width=width, **config))
    return count_torch_macs(model, input_shape)


def count_onnx_macs(model: Path | str | Any, input_shape: tuple[int, ...]) -> int:
    """MACs of Conv / ConvTranspose nodes of an ONNX model (path or ModelProto) at `input_shape`.

    The first graph input's dims are fixed to `input_shape`, then ONNX shape inference gives
    every tensor's shape. Works for Q/DQ graphs (weights behind DequantizeLinear).
    """
    import onnx

    if isinstance(model, (str, Path)):
        try:
            proto = onnx.load(str(model))
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends: not an ONNX model
            raise DtkError(f"{model} is not a readable ONNX model ({type(exc).__name__}: {exc}); "
                           "export one with `dtk export`") from None
    else:
        proto = model
    proto = _with_input_shape(proto, input_shape)
    try:
        return _count(proto)
    except DtkError:
        # shapes computed at run time (e.g. pads of a reflect Pad): let ONNX Runtime fold them first
        return _count(_ort_folded(proto))


def _ort_folded(proto: Any) -> Any:
    """`proto` after ONNX Runtime's basic graph optimizations (constant folding) at its fixed input shape."""
    import os
    import tempfile

    import onnx

    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DtkError("cannot count FLOPs of this graph without onnxruntime (pip install .[cpu])") from exc
    fd, tmp = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = tmp
        ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return onnx.load(tmp)
    finally:
        os.unlink(tmp)


def _count(proto: Any) -> int:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types
        raise DtkError(f"ONNX shape inference failed: {exc}") from exc
    shapes = _tensor_shapes(inferred.graph)
    total = 0
    for node in inferred.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        w = shapes.get(node.input[1])
        x = shapes.get(node.input[0])
        y = shapes.get(node.output[0])
        if node.op_type == "Conv":
            if w is None or y is None:
                raise DtkError(f"cannot count FLOPs: no static shape for Conv {node.name!r}")
            total += conv_macs(y, w)
        else:
            if w is None or x is None:
                raise DtkError(f"cannot count FLOPs: no static shape for ConvTranspose {node.name!r}")
            total += conv_transpose_macs(x, w)
    return total


def _with_input_shape(proto: Any, input_shape: tuple[int, ...]) -> Any:
    import onnx

    proto2 = onnx.ModelProto()
    proto2.CopyFrom(proto)
    inits = {i.name for i in proto2.graph.initializer}
    inputs = [i for i in proto2.graph.input if i.name not in inits]
    if not inputs:
        raise DtkError("the ONNX model has no graph input")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != len(input_shape):
        raise DtkError(f"the ONNX input has rank {len(dims)}, expected {len(input_shape)}")
    for d, n in zip(dims, input_shape, strict=True):
        d.ClearField("dim_param")
        d.dim_value = int(n)
    # Drop stale intermediate shapes so inference recomputes them for this input size.
    del proto2.graph.value_info[:]
    return proto2


def _tensor_shapes(graph: Any) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for init in graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    for node in graph.node:  # weights exported as Constant nodes (e.g. fixed filter banks)
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = tuple(int(d) for d in attr.t.dims)
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def gflop_per_image(macs: int, batch: int = 1) -> float:
    """GFLOP per image from the MACs of a batch of `batch` images (1 MAC = 2 FLOP)."""
    return 2 * macs / batch / 1e9

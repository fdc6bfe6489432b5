"""Tiny ONNX models for the TensorRT tests (real ONNX Runtime runs them inside the fake engine)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

H, W = 256, 448


def tiny_model(io_type=TensorProto.FLOAT, height=H, width=W, extra_op: str | None = None, qdq=False):
    """x + conv3x3(x): a residual 3->3 conv, dynamic batch, fixed H x W (or dynamic when 0)."""
    rng = np.random.default_rng(6)
    weight = (rng.standard_normal((3, 3, 3, 3)) * 0.05).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.zeros(3, np.float32), "b")]
    nodes, x = [], "input"
    if io_type == TensorProto.FLOAT16:
        nodes.append(helper.make_node("Cast", ["input"], ["x32"], to=TensorProto.FLOAT))
        x = "x32"
    conv_in = x
    if qdq:
        inits += [numpy_helper.from_array(np.array(1 / 127, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", [x, "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xdq"])]
        conv_in = "xdq"
    nodes.append(helper.make_node("Conv", [conv_in, "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv0"))
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["c"], ["c2"], name="mystery_node", domain="dtk.test"))
    nodes.append(helper.make_node("Add", [x, "c"], ["y32" if io_type == TensorProto.FLOAT16 else "output"]))
    if io_type == TensorProto.FLOAT16:
        nodes.append(helper.make_node("Cast", ["y32"], ["output"], to=TensorProto.FLOAT16))
    hw = [height or "H", width or "W"]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", io_type, ["N", 3, *hw])],
        [helper.make_tensor_value_info("output", io_type, ["N", 3, *hw])],
        inits,
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("dtk.test", 1)] if extra_op else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model

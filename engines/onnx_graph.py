"""ONNX graph edits that several backends share (the one home of `parseable_onnx`).

A blind model's graph has two more inputs, `evidence` and `known_blur`, with defaults:
initializers that are also listed as graph inputs, which ONNX Runtime overrides when they are fed.
TensorRT's parser and OpenVINO's ONNX frontend take such an initializer as a constant (the input
disappears), so they parse a copy without those defaults: `evidence` is then a real input (N x
width), so one decision can cover all tiles of a frame (engines.tiled), and `known_blur` (N x 1)
one the user knows.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from toolkit.core.evidence import EVIDENCE_INPUT, EVIDENCE_OUTPUT, KNOWN_INPUT

DEFAULTED_INPUTS = (EVIDENCE_INPUT, KNOWN_INPUT)  # inputs a blind graph gives defaults


def graph_architecture(onnx_path: Path | str) -> dict:
    """The model config `dtk export` records in the graph's metadata ("architecture"), {} without."""
    import json

    import onnx  # heavy: only when a graph is read

    model = onnx.load(str(onnx_path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    try:
        arch = json.loads(props.get("architecture", "{}"))
    except ValueError:
        return {}
    return arch if isinstance(arch, dict) else {}


def has_evidence_default(onnx_path: Path | str) -> bool:
    """True when the graph's `evidence` or `known_blur` input has a default (an initializer of that
    name)."""
    import onnx  # heavy: only when a graph is read

    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(t.name in DEFAULTED_INPUTS for t in model.graph.initializer)


def input_shape(onnx_path: Path | str, name: str) -> list[int | str | None]:
    """The declared shape of graph input `name`: ints, symbolic names (str) or None per dimension."""
    import onnx  # heavy: only when a graph is read

    model = onnx.load(str(onnx_path), load_external_data=False)
    inp = next(i for i in model.graph.input if i.name == name)
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in inp.type.tensor_type.shape.dim]


@contextlib.contextmanager
def parseable_onnx(onnx_path: Path | str, prefix: str = "dtk-onnx-") -> Iterator[Path]:
    """The file a parser that freezes initializer-inputs should read: `onnx_path` itself, or for a
    blind model a temporary copy whose `evidence` and `known_blur` inputs have no default (removed
    on exit)."""
    import onnx  # heavy: only when a graph is read

    onnx_path = Path(onnx_path)
    if not has_evidence_default(onnx_path):
        yield onnx_path
        return
    model = onnx.load(str(onnx_path))  # with any external weights, saved inline into the copy
    kept = [t for t in model.graph.initializer if t.name not in DEFAULTED_INPUTS]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        copy = Path(scratch) / onnx_path.name
        onnx.save(model, str(copy))
        yield copy


CONV_OPS = ("Conv", "ConvTranspose")


def evidence_ancestors(model) -> list[str]:
    """Names of the nodes the `tile_evidence` output depends on ([] for a model without it), in graph
    order: the bank and the head, whose output the gate decides on. `model`: an onnx.ModelProto."""
    producers = {o: n for n in model.graph.node for o in n.output}
    todo = [EVIDENCE_OUTPUT] if any(o.name == EVIDENCE_OUTPUT for o in model.graph.output) else []
    seen: set[str] = set()
    while todo:
        node = producers.get(todo.pop())
        if node is not None and node.name not in seen:
            seen.add(node.name)
            todo.extend(node.input)
    return [n.name for n in model.graph.node if n.name in seen]


def concat_fed_convs(model) -> list[str]:
    """Names of the Conv/ConvTranspose nodes whose data input is a Concat's output, directly or
    through one QuantizeLinear -> DequantizeLinear pair. `model`: an onnx.ModelProto."""
    producers = {o: n for n in model.graph.node for o in n.output}

    def source(name: str):
        node = producers.get(name)
        if node is not None and node.op_type == "DequantizeLinear":
            q = producers.get(node.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                return producers.get(q.input[0])
        return node

    return [n.name for n in model.graph.node
            if n.op_type in CONV_OPS and getattr(source(n.input[0]), "op_type", None) == "Concat"]

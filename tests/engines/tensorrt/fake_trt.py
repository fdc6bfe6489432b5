"""A fake `tensorrt` module that enforces the 10.x/11.x named-tensor call protocol on CPU.

`make_fake_trt("11.4.0")` has none of the APIs TensorRT 11 removed (BuilderFlag.FP16/INT8,
EXPLICIT_BATCH, platform_has_fast_fp16, execute_async_v2, get_binding_*, calibrators), so
touching one raises AttributeError; "10.14.1" still has the deprecated 10.x flags. The
"plan" is JSON naming the ONNX file; the execution context reads its input from the raw
address it was given, runs the ONNX model with ONNX Runtime, and writes the output to the
output address, so the runner's buffers are checked end to end. `HostDevice` is the
CPU stand-in for `TorchCudaDevice` (torch CPU tensors; `data_ptr()` is a real address).
"""

from __future__ import annotations

import base64
import ctypes
import json
import types
from contextlib import nullcontext
from enum import Enum, IntEnum
from pathlib import Path

import numpy as np
import onnx


class ProtocolError(AssertionError):
    """The code under test broke the TensorRT call protocol."""


class DataType(Enum):
    FLOAT = "float32"
    HALF = "float16"
    INT8 = "int8"
    INT32 = "int32"


class TensorIOMode(Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(Enum):
    WORKSPACE = 0


# What Polygraphy's loaders touch besides dtk's own calls (checked against the names in the real
# 11.x bindings by test_trt_bindings.py): enums with __members__, device type, profiling verbosity,
# layer types, IHostMemory as a context manager (tensorrt/__init__.py sets __enter__/__exit__).
class DeviceType(Enum):
    GPU = 0
    DLA = 1


class ProfilingVerbosity(Enum):
    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class LayerType(Enum):
    CONVOLUTION = 0
    ELEMENTWISE = 1
    CAST = 2
    SHAPE = 3
    IDENTITY = 4
    QUANTIZE = 5
    DEQUANTIZE = 6


_LAYER_TYPES = {"Conv": LayerType.CONVOLUTION, "Add": LayerType.ELEMENTWISE, "Cast": LayerType.CAST,
                "Shape": LayerType.SHAPE, "QuantizeLinear": LayerType.QUANTIZE,
                "DequantizeLinear": LayerType.DEQUANTIZE}


class HostMemory(bytes):
    """IHostMemory: a buffer (bytes here) that is also a context manager."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    @property
    def nbytes(self):
        return len(self)


_ONNX_TO_TRT = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF}


def _dims(value_info) -> tuple[int, ...]:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)


def make_fake_trt(version: str = "11.4.0", unsupported_ops: tuple[str, ...] = ("DtkUnsupportedOp",)):
    """A fresh fake module; `mod.calls` records every protocol-relevant call in order."""
    major = int(version.split(".")[0])
    mod = types.ModuleType("tensorrt")
    mod.__version__ = version
    mod.calls = []
    mod.builds = []
    mod.DataType, mod.TensorIOMode, mod.MemoryPoolType = DataType, TensorIOMode, MemoryPoolType
    mod.DeviceType, mod.ProfilingVerbosity, mod.LayerType = DeviceType, ProfilingVerbosity, LayerType
    mod.IHostMemory = HostMemory

    def record(*call):
        mod.calls.append(call)

    class ILogger:
        """Base class of loggers; Polygraphy subclasses it and calls `ILogger.__init__(self)`."""

        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self):
            pass

        def log(self, severity, msg):
            raise NotImplementedError

    class Logger(ILogger):
        def __init__(self, min_severity=ILogger.WARNING):
            super().__init__()
            self.min_severity = min_severity

        def log(self, severity, msg):
            pass

    def init_libnvinfer_plugins(logger, namespace):
        if not isinstance(logger, ILogger):
            raise ProtocolError(f"init_libnvinfer_plugins needs an ILogger, got {logger!r}")
        record("init_libnvinfer_plugins", namespace)
        return True

    # Real values: STRONGLY_TYPED is bit 1 (EXPLICIT_BATCH, gone in 11.x, was bit 0).
    flag_names = {"STRONGLY_TYPED": 1} | ({"EXPLICIT_BATCH": 0} if major < 11 else {})
    mod.NetworkDefinitionCreationFlag = IntEnum("NetworkDefinitionCreationFlag", flag_names)
    builder_flags = ["DEBUG", "GPU_FALLBACK", "REFIT", "TF32"]
    builder_flags += ["FP16", "INT8", "BF16"] if major < 11 else []
    mod.BuilderFlag = IntEnum("BuilderFlag", builder_flags)

    class Tensor:
        def __init__(self, name, shape, dtype):
            self.name, self.shape, self.dtype = name, shape, dtype
            self.is_shape_tensor = False

    class Layer:
        def __init__(self, node):
            self.name = node.name or node.output[0]
            self.type = _LAYER_TYPES.get(node.op_type, LayerType.IDENTITY)
            if major < 11:  # per-layer precision is weak typing: removed in 11.x
                self.precision_is_set = False

    class Network:
        def __init__(self, flags):
            self.flags = flags  # INetworkDefinition.flags: the NetworkDefinitionCreationFlag bitset
            self.inputs, self.outputs, self.layers, self.onnx_path = [], [], [], None

        def get_flag(self, flag):
            return bool(self.flags & (1 << int(flag)))

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

        def __len__(self):
            return len(self.layers)

        def __getitem__(self, i):
            if not 0 <= i < len(self.layers):
                raise IndexError(i)  # ends `for layer in network`, as pybind11's __getitem__ does
            return self.layers[i]

        @property
        def num_inputs(self):
            return len(self.inputs)

        @property
        def num_outputs(self):
            return len(self.outputs)

        def get_input(self, i):
            return self.inputs[i]

        def get_output(self, i):
            return self.outputs[i]

    class ParserError:
        def __init__(self, index, node):
            self._index, self._node = index, node

        def node(self):
            return self._index

        def node_name(self):
            return self._node.name

        def node_operator(self):
            return self._node.op_type

        def func(self):
            return "importFallbackPluginImporter"

        def __str__(self):  # the bindings' format: "In node N (func): CODE: desc"
            return f"In node {self.node()} ({self.func()}): {self.code()}: {self.desc()}"

        def desc(self):
            return f"no importer registered for op: {self._node.op_type}"

        def code(self):
            return "UNSUPPORTED_NODE"

    class OnnxParser:
        def __init__(self, network, logger):
            if not isinstance(logger, ILogger):
                raise ProtocolError(f"OnnxParser needs an ILogger, got {logger!r}")
            self.network, self.errors = network, []
            self.flags = 0  # OnnxParser.flags: OnnxParserFlag bitset

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

        def parse_from_file(self, path):
            record("parse_from_file", path)
            model = onnx.load(path)
            nodes = enumerate(model.graph.node)
            self.errors = [ParserError(i, n) for i, n in nodes if n.op_type in unsupported_ops]
            if self.errors:
                return False
            g = model.graph
            self.network.onnx_path = path
            self.network.onnx_bytes = Path(path).read_bytes()  # the parsed file may be a temporary copy
            self.network.inputs = [Tensor(v.name, _dims(v), _ONNX_TO_TRT[v.type.tensor_type.elem_type])
                                   for v in g.input]
            self.network.outputs = [Tensor(v.name, _dims(v), _ONNX_TO_TRT[v.type.tensor_type.elem_type])
                                    for v in g.output]
            self.network.layers = [Layer(n) for n in g.node]
            return True

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            if not all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)):
                raise ProtocolError(f"profile needs min <= opt <= max: {lo} {opt} {hi}")
            self.shapes[name] = [list(lo), list(opt), list(hi)]

        def __bool__(self):  # IOptimizationProfile.__bool__: isValid()
            return bool(self.shapes)

    class TimingCache:
        def __init__(self, data: bytes):
            self.entries = [ln for ln in bytes(data).decode().splitlines() if ln]

        def serialize(self):
            return HostMemory("\n".join(self.entries).encode() + b"\n")

        def combine(self, input_cache, ignore_mismatch):
            self.entries += [e for e in input_cache.entries if e not in self.entries]
            return True

    class Config:
        def __init__(self):
            self.profiles, self.pools, self.cache = [], {}, None
            self.flags = {mod.BuilderFlag.TF32}  # TensorRT's default config has TF32 on
            self.DLA_core, self.default_device_type = -1, DeviceType.GPU
            self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
            if major < 11:
                self.int8_calibrator = None

        @property
        def num_optimization_profiles(self):
            return len(self.profiles)

        def get_memory_pool_limit(self, pool):
            return self.pools.get(pool, 0)

        def add_optimization_profile(self, p):
            self.profiles.append(p)

        def set_memory_pool_limit(self, pool, size):
            if pool is not MemoryPoolType.WORKSPACE or not isinstance(size, int):
                raise ProtocolError(f"set_memory_pool_limit({pool}, {size!r})")
            self.pools[pool] = size

        def set_flag(self, flag):
            self.flags.add(mod.BuilderFlag(flag))

        def clear_flag(self, flag):
            self.flags.discard(mod.BuilderFlag(flag))

        def get_flag(self, flag):
            return flag in self.flags

        def create_timing_cache(self, data):
            record("create_timing_cache", len(data))
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            record("set_timing_cache", ignore_mismatch)
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            record("create_network", flags)
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            if not config.profiles or any(network.inputs[0].name not in p.shapes for p in config.profiles):
                raise ProtocolError("the input has no optimization profile")
            for p in config.profiles:  # every profile gives every input a shape range
                if set(p.shapes) != {t.name for t in network.inputs}:
                    raise ProtocolError(f"a profile covers {sorted(p.shapes)}, the inputs are "
                                        f"{sorted(t.name for t in network.inputs)}")
            if config.cache is None:
                raise ProtocolError("no timing cache set")
            config.cache.entries.append(f"tactics for {network.onnx_path}")
            strongly = major >= 11 or network.get_flag(mod.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            io = (("INPUT", network.inputs), ("OUTPUT", network.outputs))
            build = {"onnx": network.onnx_path, "onnx_bytes": base64.b64encode(network.onnx_bytes).decode(),
                     "version": version, "flags": network.flags,
                     "strongly_typed": strongly, "builder_flags": sorted(f.name for f in config.flags),
                     "profiling_verbosity": config.profiling_verbosity.name,
                     "workspace": config.pools.get(MemoryPoolType.WORKSPACE),
                     "profile": config.profiles[0].shapes,
                     "profiles": [p.shapes for p in config.profiles],
                     "io": {t.name: [mode, t.dtype.name, list(t.shape)]
                            for mode, ts in io for t in ts}}
            mod.builds.append(build)
            return HostMemory(json.dumps(build).encode())

    if major < 11:
        Builder.platform_has_fast_fp16 = property(lambda self: True)

    class Context:
        def __init__(self, engine):
            self.engine = engine
            self.shapes, self.addresses = {}, {}
            self.executions = 0
            self.profile = 0  # a new context runs profile 0 until told otherwise

        def set_optimization_profile_async(self, profile_index, stream_handle):
            record("set_optimization_profile_async", profile_index, stream_handle)
            if not isinstance(stream_handle, int) or isinstance(stream_handle, bool):
                raise ProtocolError(f"set_optimization_profile_async: an int stream, got {stream_handle!r}")
            if not 0 <= profile_index < self.engine.num_optimization_profiles:
                return False
            if any(c is not self and c.engine is self.engine and c.profile == profile_index
                   for c in mod.contexts if c.executions or c.shapes):
                raise ProtocolError(f"profile {profile_index} is in use by another execution context")
            self.profile, self.shapes, self.addresses = profile_index, {}, {}  # bindings invalidated
            return True

        def set_input_shape(self, name, shape):
            record("set_input_shape", name, tuple(shape))
            lo, _, hi = self.engine.get_tensor_profile_shape(name, self.profile)
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
                return False
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            if self.engine.get_tensor_mode(name) is TensorIOMode.INPUT:
                return self.shapes.get(name, self.engine.get_tensor_shape(name))
            given = self.shapes[self.engine.input_name]  # free dims follow the image input's (dtk's nets)
            dims = self.engine.get_tensor_shape(name)
            return (given[0], *(g if d < 0 else d for d, g in zip(dims[1:], given[1:], strict=False)))

        def set_tensor_address(self, name, ptr):
            record("set_tensor_address", name, ptr)
            if self.engine.input_name not in self.shapes:
                raise ProtocolError(f"set_tensor_address({name!r}) before set_input_shape")
            if not isinstance(ptr, int) or ptr == 0:
                raise ProtocolError(f"bad address for {name!r}: {ptr!r}")
            self.addresses[name] = ptr
            return True

        def execute_async_v3(self, stream_handle):
            record("execute_async_v3", stream_handle)
            if not isinstance(stream_handle, int) or isinstance(stream_handle, bool):
                raise ProtocolError(f"execute_async_v3 needs an int stream handle, got {stream_handle!r}")
            missing = [n for n in self.engine.names if n not in self.addresses]
            if missing:
                raise ProtocolError(f"execute_async_v3 with unbound tensors {missing}")
            self.executions += 1
            inputs = [n for n in self.engine.names if self.engine.io[n][0] == "INPUT"]
            feeds = {n: self._view(n, self.shapes[n]).copy() for n in inputs}
            names = [o.name for o in self.engine.session.get_outputs()]
            for name, y in zip(names, self.engine.session.run(names, feeds), strict=True):
                out = self._view(name, self.get_tensor_shape(name))
                out[...] = y.astype(out.dtype)
            return True

        def _view(self, name, shape):
            dtype = np.dtype(self.engine.get_tensor_dtype(name).value)
            count = int(np.prod(shape))
            raw = (ctypes.c_byte * (count * dtype.itemsize)).from_address(self.addresses[name])
            return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)

    class Engine:
        def __init__(self, plan):
            import onnxruntime as ort

            self.plan = plan
            self.io = plan["io"]
            self.names = list(self.io)
            self.input_name = next(n for n, v in self.io.items() if v[0] == "INPUT")
            self.output_name = next(n for n, v in self.io.items() if v[0] == "OUTPUT")
            self.session = ort.InferenceSession(base64.b64decode(plan["onnx_bytes"]),
                                                providers=["CPUExecutionProvider"])

        @property
        def num_io_tensors(self):
            return len(self.names)

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return TensorIOMode[self.io[name][0]]

        def get_tensor_dtype(self, name):
            return DataType[self.io[name][1]]

        def get_tensor_shape(self, name):
            return tuple(self.io[name][2])

        @property
        def num_optimization_profiles(self):
            return len(self.plan.get("profiles") or [self.plan["profile"]])

        def get_tensor_profile_shape(self, name, profile_index):
            profiles = self.plan.get("profiles") or [self.plan["profile"]]
            if not 0 <= profile_index < len(profiles):
                raise ProtocolError(f"profile {profile_index} of {len(profiles)}")
            return tuple(tuple(s) for s in profiles[profile_index][name])

        def create_execution_context(self):
            ctx = Context(self)
            mod.contexts.append(ctx)
            return ctx

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, data):
            try:
                plan = json.loads(bytes(data))
            except ValueError:
                return None
            if plan.get("version") != version:
                return None
            return Engine(plan)

    mod.contexts = []
    mod.Logger, mod.Builder, mod.OnnxParser, mod.Runtime = Logger, Builder, OnnxParser, Runtime
    mod.ILogger, mod.init_libnvinfer_plugins = ILogger, init_libnvinfer_plugins
    # Every class whose methods stand in for TensorRT's (test_trt_bindings checks their names are real).
    mod._fake_classes = [ILogger, Logger, Tensor, Layer, Network, ParserError, OnnxParser, Profile,
                         TimingCache, Config, Builder, Context, Engine, Runtime, HostMemory]
    return mod


class HostDevice:
    """CPU stand-in for TorchCudaDevice (test only): torch CPU tensors, a fake stream handle."""

    supports_graphs = True

    def __init__(self, name="Fake H200", compute_capability="9.0", stream_handle=0x5EED):
        self.name, self.compute_capability = name, compute_capability
        self._handle = stream_handle
        self.captures = 0
        self.replays = 0

    @property
    def stream_handle(self) -> int:
        return self._handle

    def empty(self, shape, dtype):
        import torch

        return torch.full(shape, float("nan"), dtype=dtype)  # NaN: stale rows would show

    def pinned(self, shape, dtype):
        return self.empty(shape, dtype)

    def on_stream(self):
        return nullcontext()

    def wait_for_current_stream(self):
        pass

    def synchronize(self):
        pass

    def capture(self, launch):
        """Like a CUDA graph: the launch is recorded once and replayed; replay re-runs it here."""
        self.captures += 1
        launch()

        def replay():
            self.replays += 1
            launch()

        return replay

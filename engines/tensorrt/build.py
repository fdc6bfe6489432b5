"""Build a TensorRT engine from an ONNX model through Polygraphy's loaders: plan + dtk's sidecar.

Polygraphy (NVIDIA's, tested against every TensorRT release) parses the ONNX
(`network_from_onnx_path`, strongly typed as decided below), configures the build (`CreateConfig`:
one `Profile` over the batch at the ONNX's H x W, the workspace pool limit, the timing cache) and
builds (`engine_bytes_from_network`, saving the timing cache back). dtk decides the precision,
writes the engine atomically and records the sidecar that `load_sidecar`/`check_compatible` use.

Frame sizes (`shapes`, `dtk build-engine --shapes 720x1280,1080x1920`): a graph of any H x W
(dtk's export) gets one more optimization profile per size, after the default 256x448 one, each
over a batch range scaled to the same pixels (at least 1), so the runner can deblur a frame of
that size in one pass (engines.tiled picks the largest profile a frame fits; TrtRunner keeps one
execution context per profile, each allocating for the largest, TensorRT's default).

Precision comes from the ONNX graph, because TensorRT 11 builds strongly typed networks
only: `BuilderFlag.FP16`/`INT8`/`BF16`, `EXPLICIT_BATCH`, `platform_has_fast_fp16` and the
INT8 calibrators are removed, and `NetworkDefinitionCreationFlag.STRONGLY_TYPED` is kept but
ignored. Sources: https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/
tensorrt-10x-to-11x-python-api-reference.html ("Removed Python APIs and Replacements") and
https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x.html
("Strongly Typed Networks Are Now Required").
So an FP16 engine comes from the FP16 ONNX export and an INT8 engine from a Q/DQ ONNX
(`dtk quantize`); TensorRT 10.x builds the same graphs with the STRONGLY_TYPED flag, and only
10.x can still turn an fp32 graph into an FP16 engine with `BuilderFlag.FP16` (deprecated
since 10.12).

A blind model's graph has a second input, `evidence`, with a default (an initializer listed as
a graph input, which ONNX Runtime overrides when fed). TensorRT's parser would take it as a
constant, so the build parses a copy without that default (engines.onnx_graph.parseable_onnx):
the engine keeps `evidence` as an input with its own profile (N x width over the same batch
range) and one decision can cover all tiles of a frame (engines.tiled).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from engines.onnx_graph import graph_architecture, parseable_onnx
from engines.polygraphy_log import polygraphy_failures
from engines.tensorrt import sidecar as _sidecar
from engines.tensorrt.sidecar import (
    BatchProfile,
    EngineSidecar,
    GpuFacts,
    save_sidecar,
    sidecar_path,
)
from toolkit.core.atomic import file_sha256, write_bytes_atomic
from toolkit.core.constants import __version__ as dtk_version
from toolkit.core.errors import DtkError
from toolkit.core.evidence import EVIDENCE_INPUT, EVIDENCE_OUTPUT, KNOWN_INPUT, decides_whole_frame
from toolkit.core.lazy import optional_import

PRECISIONS = ("fp16", "fp32", "int8")
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
ALIGN = 8  # the network's sides are multiples of this (toolkit.core.tiles.ALIGN)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """`--shapes 720x1280,1080x1920` (HEIGHTxWIDTH, comma-separated) -> [(720, 1280), (1080, 1920)];
    DtkError unless each is two positive multiples of 8."""
    shapes = []
    for item in (t.strip() for t in text.split(",")):
        parts = item.lower().split("x")
        try:
            h, w = (int(v) for v in parts) if len(parts) == 2 else (0, 0)
        except ValueError:
            h = w = 0
        if h < ALIGN or w < ALIGN or h % ALIGN or w % ALIGN:
            raise DtkError(f"--shapes wants HEIGHTxWIDTH sizes, multiples of {ALIGN}, comma-separated "
                           f"(e.g. 720x1280,1080x1920), got {item!r}")
        shapes.append((h, w))
    return shapes


def frame_profile(base: BatchProfile, height: int, width: int) -> BatchProfile:
    """The profile of frames of `height` x `width`: `base`'s batch range scaled to the same pixels
    per call (a 1080p profile over a 256x448 one of max batch 32: max 1), at least 1."""
    scale = base.height * base.width / (height * width)
    hi = max(1, int(base.max * scale))
    opt = max(1, min(hi, int(base.opt * scale)))
    return BatchProfile(min(base.min, opt), opt, hi, height, width, base.channels)


def graph_precision(onnx_path: Path) -> str:
    """The precision an ONNX graph carries: int8 (has Q/DQ nodes), fp16 (fp16 tensors), else fp32."""
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for a corrupt file
        raise DtkError(f"{onnx_path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    graph = model.graph
    if any(node.op_type in QDQ_OPS for node in graph.node):
        return "int8"
    fp16 = onnx.TensorProto.FLOAT16
    typed = [*graph.input, *graph.output, *graph.value_info]
    casts_to_fp16 = any(n.op_type == "Cast" and any(a.name == "to" and a.i == fp16 for a in n.attribute)
                        for n in graph.node)
    if casts_to_fp16 or any(t.data_type == fp16 for t in graph.initializer) or any(
        v.type.tensor_type.elem_type == fp16 for v in typed
    ):
        return "fp16"
    return "fp32"


@dataclass(frozen=True)
class PrecisionPlan:
    """How to reach the requested precision with this TensorRT version."""

    precision: str
    strongly_typed: bool  # pass NetworkDefinitionCreationFlag.STRONGLY_TYPED (10.x only)
    builder_fp16: bool  # set BuilderFlag.FP16 (10.x fallback for an fp32 graph)


def trt_major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError as exc:
        raise DtkError(f"cannot read the TensorRT version {version!r}") from exc


def plan_precision(trt_version: str, graph: str, requested: str | None) -> PrecisionPlan:
    """Pure decision table: graph precision x requested precision x TensorRT major version."""
    if requested not in (None, *PRECISIONS):
        raise DtkError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    want = requested or graph
    major = trt_major(trt_version)
    if want == graph:
        # 11.x: strongly typed always, no flag needed; 10.x: ask for it on reduced-precision graphs.
        return PrecisionPlan(graph, strongly_typed=major < 11 and graph != "fp32", builder_fp16=False)
    if graph == "fp32" and want == "fp16":
        if major >= 11:
            raise DtkError("TensorRT 11 builds FP16 engines only from an FP16 ONNX graph "
                           "(BuilderFlag.FP16 is removed); export one with `dtk export --fp16` "
                           "and build from it")
        return PrecisionPlan("fp16", strongly_typed=False, builder_fp16=True)
    raise DtkError(f"this ONNX graph is {graph}, so the engine is {graph}: TensorRT follows the graph's "
                   f"types; export or quantize a {want} ONNX to get a {want} engine")


def default_timing_cache(trt_version: str, gpu: GpuFacts) -> Path:
    """One timing cache per TensorRT version and compute capability, reused by every build."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dtk" / "tensorrt"
    return root / f"timing-trt{trt_version}-sm{gpu.compute_capability.replace('.', '')}.cache"


def _name_nodes(errors: list[str], onnx_path: Path) -> list[str]:
    """Append the ONNX node's name and operator to each parser error ('In node N (func): ...')."""
    import onnx  # heavy; already imported by graph_precision

    nodes = onnx.load(str(onnx_path), load_external_data=False).graph.node
    named = []
    for line in errors:
        found = re.match(r"In node (\d+) ", line)
        index = int(found.group(1)) if found else -1
        named.append(f"{line} [node {nodes[index].name!r} ({nodes[index].op_type})]"
                     if 0 <= index < len(nodes) else line)
    return named


def _evidence_width(network) -> int | None:
    """The width of the network's `evidence` input (N x width), None when it has none."""
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name == EVIDENCE_INPUT:
            return int(tuple(tensor.shape)[1])
    return None


def _has_input(network, name: str) -> bool:
    return any(network.get_input(i).name == name for i in range(network.num_inputs))


def _input_geometry(network, height: int, width: int) -> tuple[str, BatchProfile, bool]:
    images = [network.get_input(i) for i in range(network.num_inputs)
              if network.get_input(i).name not in (EVIDENCE_INPUT, KNOWN_INPUT)]
    if len(images) != 1:
        raise DtkError(f"expected an ONNX model with one image input (N x 3 x H x W); it has {len(images)}")
    tensor = images[0]
    shape = tuple(tensor.shape)
    if len(shape) != 4 or shape[1] not in (3, -1):
        raise DtkError(f"expected the input {tensor.name!r} to be N x 3 x H x W; it is {shape}")
    h = shape[2] if shape[2] > 0 else height
    w = shape[3] if shape[3] > 0 else width
    return tensor.name, BatchProfile(height=h, width=w), shape[2] <= 0 and shape[3] <= 0


def _poly_profile(poly, input_name: str, p: BatchProfile, evidence_width: int | None, known: bool):
    """One Polygraphy Profile: the image input over `p`; a blind model's `evidence` (N x width)
    and `known_blur` (N x 1) over the same batch range."""
    shapes = poly.Profile().add(input_name, *p.shapes())
    batches = (p.min, p.opt, p.max)
    if evidence_width is not None:  # the frame-decision input: the same batch range
        shapes.add(EVIDENCE_INPUT, *((b, evidence_width) for b in batches))
        if known:  # the blur the user knows (N x 1): the same range
            shapes.add(KNOWN_INPUT, *((b, 1) for b in batches))
    return shapes


def build_engine(
    onnx_path: Path,
    out_path: Path,
    *,
    precision: str | None = None,
    min_batch: int = 1,
    opt_batch: int = 8,
    max_batch: int = 32,
    height: int = 256,
    width: int = 448,
    workspace_gb: float = 4.0,
    timing_cache: Path | None = None,
    overwrite: bool = False,
    gpu: GpuFacts | None = None,
    log: Callable[[str], None] = print,
    shapes: Sequence[tuple[int, int]] = (),
) -> EngineSidecar:
    """ONNX -> serialized engine at `out_path` plus `<out_path>.json`; returns the sidecar.

    `precision` None follows the graph (fp16 graph -> fp16 engine, Q/DQ graph -> int8).
    `height`/`width` apply only when the ONNX input's H/W are dynamic; `shapes` (H, W): one more
    profile each (`frame_profile`), for a graph of any H x W only.
    """
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise DtkError(f"ONNX model not found: {onnx_path}")
    if out_path.exists() and not overwrite:
        raise DtkError(f"{out_path} exists; pass --overwrite to replace it")
    wanted = BatchProfile(min_batch, opt_batch, max_batch, height, width)  # validates the numbers
    shapes = [(int(h), int(w)) for h, w in shapes]
    if any(h < ALIGN or w < ALIGN or h % ALIGN or w % ALIGN for h, w in shapes):
        raise DtkError(f"--shapes: every size must be two multiples of {ALIGN}, got {shapes}")
    if workspace_gb <= 0:
        raise DtkError(f"--workspace must be > 0 GB; got {workspace_gb}")
    graph = graph_precision(onnx_path)

    trt = optional_import("tensorrt")  # first: without TensorRT, the install hint and nothing else
    # Polygraphy (NVIDIA's loaders; imports tensorrt lazily) only after that check.
    poly = optional_import("polygraphy.backend.trt")
    if gpu is None:
        gpu = _sidecar.cuda_gpu_facts()
    plan = plan_precision(trt.__version__, graph, precision)
    started = time.perf_counter()

    # parse_from_file (NetworkFromOnnxPath) keeps the model's directory, so external weights are found.
    named = partial(_name_nodes, onnx_path=onnx_path)
    with polygraphy_failures(f"TensorRT's ONNX parser rejected {onnx_path}", named), \
            parseable_onnx(onnx_path, prefix="dtk-trt-") as parsed:
        builder, network, parser = poly.network_from_onnx_path(str(parsed),
                                                               strongly_typed=plan.strongly_typed)
    input_name, geometry, any_size = _input_geometry(network, height, width)
    profile_dims = BatchProfile(wanted.min, wanted.opt, wanted.max, geometry.height, geometry.width)
    if shapes and not any_size:
        raise DtkError(f"--shapes needs a graph that takes any H x W; {onnx_path} takes only "
                       f"{geometry.height}x{geometry.width}: export it again with `dtk export` (any size "
                       "is its default) and build from that")
    profiles = [profile_dims] + [frame_profile(profile_dims, h, w) for h, w in dict.fromkeys(shapes)
                                 if (h, w) != (profile_dims.height, profile_dims.width)]
    evidence_width = _evidence_width(network)
    known_input = evidence_width is not None and _has_input(network, KNOWN_INPUT)
    poly_profiles = [_poly_profile(poly, input_name, p, evidence_width, known_input) for p in profiles]
    cache_path = Path(timing_cache) if timing_cache else default_timing_cache(trt.__version__, gpu)
    reused = cache_path.is_file()
    config = poly.CreateConfig(
        profiles=poly_profiles,
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(workspace_gb * (1 << 30))},
        load_timing_cache=str(cache_path) if reused else None,  # set with ignore_mismatch=False
        fp16=plan.builder_fp16,  # BuilderFlag.FP16: 10.x only, see the module docstring
        tf32=hasattr(trt.BuilderFlag, "TF32"),  # TensorRT's default; Polygraphy's is off
    )
    log(f"building {plan.precision} engine from {onnx_path} (TensorRT {trt.__version__}, {gpu.name}); "
        + "; ".join(f"batch {p.min}/{p.opt}/{p.max} at {p.height}x{p.width}" for p in profiles)
        + f"; timing cache {cache_path} ({'reused' if reused else 'new'})")

    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with polygraphy_failures(f"TensorRT could not build an engine from {onnx_path} (see its log above); "
                             "a larger --workspace or a smaller --max-batch may help"):
        # save_timing_cache: merged into the file under a lock (Polygraphy's LockFile, <cache>.lock).
        serialized = poly.engine_bytes_from_network((builder, network, parser), config=config,
                                                    save_timing_cache=str(cache_path))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # the old sidecar goes first, the new one comes last: an old sidecar never describes the new
    # engine (an interrupt in between leaves an engine without sidecar, which dtk refuses to load)
    sidecar_path(out_path).unlink(missing_ok=True)
    write_bytes_atomic(out_path, bytes(memoryview(serialized)))

    outputs = [network.get_output(i).name for i in range(network.num_outputs)
               if network.get_output(i).name != EVIDENCE_OUTPUT]
    sidecar = EngineSidecar(
        tensorrt_version=trt.__version__,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        precision=plan.precision,
        profile=profile_dims,
        onnx_sha256=file_sha256(onnx_path),
        decides_whole_frame=decides_whole_frame(graph_architecture(onnx_path)),
        onnx_path=str(onnx_path),
        input_name=input_name,
        output_name=outputs[0] if outputs else "",
        build_seconds=round(time.perf_counter() - started, 3),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        dtk_version=dtk_version,
        strongly_typed=plan.strongly_typed or trt_major(trt.__version__) >= 11,
        builder_flags=["FP16"] if plan.builder_fp16 else [],
        profiles=profiles,
    )
    save_sidecar(out_path, sidecar)
    log(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.1f} MB) and {sidecar_path(out_path).name}")
    return sidecar

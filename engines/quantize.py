"""INT8: one calibrated Q/DQ ONNX graph for ONNX Runtime (CPU, VNNI) and TensorRT (explicit INT8), guarded.

`quantize_model` runs `quant_pre_process`, then ONNX Runtime's `quantize_static` in QDQ format with
int8 activations and weights, both symmetric (zero points 0: TensorRT's parser rejects others),
per-channel weight scales for Conv (axis 0), a per-tensor scale for ConvTranspose (ORT would put its
per-channel axis on 1, TensorRT expects 0), float biases (TensorRT rejects int32 DequantizeLinear).
Some convs always stay float (`always_float_nodes`: the fixed bank, the decision head, convs fed by
a Concat), so every backend decides as the fp32 model does and OpenVINO computes the graph right.
Calibration inputs: real frames blurred with every seed kernel through the shared pipeline. A guard
runs fp32 and int8 on frames disjoint from those; a kernel whose PSNR drops more than `max_drop_db`
makes it measure each layer's sensitivity (the drop with only that layer in int8) and keep the most
sensitive layers in float; if that is not enough it refuses (DtkError) and writes nothing: the output
is staged in a temporary file and renamed only on success.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engines.base import Runner, infer_all
from engines.onnx_graph import CONV_OPS, concat_fed_convs, evidence_ancestors
from engines.spec import RunnerSpec
from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.convert import nchw_to_nhwc_uint8
from toolkit.core.errors import DtkError
from toolkit.core.frames import Frame, discover_frames
from toolkit.core.kernels import KERNEL_NAMES
from toolkit.core.lazy import optional_import
from toolkit.core.metrics import psnr_capped
from toolkit.core.pipeline import PipelineConfig, open_pipeline

METHODS = ("minmax", "entropy", "percentile")
QUANTIZED_OPS = CONV_OPS
CONV_TRANSPOSE_MODES = ("per-tensor", "float")
METADATA_KEY = "dtk_int8"


@dataclass
class KernelGuard:
    """Guard figures of one seed kernel, means over the guard frames (dB, outputs rounded to uint8)."""

    kernel: str
    fp32_psnr_db: float  # PSNR(fp32 output, sharp)
    int8_psnr_db: float  # PSNR(int8 output, sharp)
    drop_db: float  # fp32 minus int8: positive = int8 is worse
    int8_vs_fp32_psnr_db: float  # PSNR(int8 output, fp32 output)


@dataclass
class QuantizeReport:
    """What `quantize_model` did and measured; `passed` False means no file was written."""

    model: str
    output: str | None
    method: str
    max_drop_db: float
    calibration_frames: list[str]
    calibration_sha256: str
    guard_frames: list[str]
    conv_transpose: str
    float_layers: list[str]  # every layer kept in float: the fixed filters and those the search chose
    guard: list[KernelGuard]
    fixed_float_layers: list[str] = field(default_factory=list)  # kept in float from the start
    fixed_float_why: dict[str, str] = field(default_factory=dict)  # layer -> why (always_float_nodes)
    attempts: list[dict] = field(default_factory=list)  # float layers tried and worst drop of each
    sensitivity: dict[str, float] = field(default_factory=dict)  # layer -> worst drop with it alone int8
    passed: bool = False
    seconds: float = 0.0

    def float_summary(self) -> str:
        """The layers kept in float, by reason: 'fixed bank (3), decision (6); by the guard: X'."""
        chosen = [n for n in self.float_layers if n not in self.fixed_float_why]
        parts = [_float_summary(self.fixed_float_why)] if self.fixed_float_why else []
        if chosen:
            parts.append("by the guard: " + ", ".join(chosen))
        return "; ".join(parts) or "none"

    @property
    def worst_drop_db(self) -> float:
        return max(g.drop_db for g in self.guard)

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["worst_drop_db"] = self.worst_drop_db
        return doc


@dataclass(frozen=True)
class FrameSplit:
    calibration: list[Frame]
    guard: list[Frame]
    how: str


def _evenly(items: Sequence, n: int | None) -> list:
    """`n` items spread evenly over `items` (all of them when n is None or >= len)."""
    if n is None or n >= len(items):
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(idx.tolist()))]


def split_frames(calib_dir: Path | str, guard_dir: Path | str | None = None, *,
                 calib_frames: int | None = 16, guard_frames: int | None = 16) -> FrameSplit:
    """Calibration and guard frames, disjoint; deterministic.

    With `guard_dir` the guard frames come from it (same files in both: DtkError). Without it,
    `calib_dir` is split by sequence (odd-numbered sequences in natural order guard, the rest
    calibrate), or by alternate frames when it holds a single sequence.
    """
    frames = discover_frames(calib_dir)
    if guard_dir is not None:
        guard = discover_frames(guard_dir)
        shared = {f.path.resolve() for f in frames} & {g.path.resolve() for g in guard}
        if shared:
            raise DtkError(f"--guard shares {len(shared)} frame(s) with --calib (e.g. {sorted(shared)[0]}); "
                           "guard frames must be disjoint from calibration frames")
        calib, how = frames, "separate guard folder"
    else:
        sequences = list(dict.fromkeys(f.sequence for f in frames))  # natural order of first frames
        if len(sequences) >= 2:
            held = set(sequences[1::2])
            calib = [f for f in frames if f.sequence not in held]
            guard = [f for f in frames if f.sequence in held]
            how = f"by sequence: guard {', '.join(sorted(held))}"
        else:
            if len(frames) < 2:
                raise DtkError(f"{calib_dir} has {len(frames)} frame; quantizing needs at least 2 "
                               "(one to calibrate, one to guard) or a --guard folder")
            calib, guard, how = frames[0::2], frames[1::2], "alternate frames (one sequence)"
    if calib_frames is not None and calib_frames < 1:
        raise DtkError(f"--calib-frames must be at least 1, got {calib_frames}")
    return FrameSplit(_evenly(calib, calib_frames), _evenly(guard, guard_frames), how)


def model_frame_size(model_path: Path) -> tuple[int, int]:
    """(H, W) the model is calibrated and guarded at: its NCHW input's, or the network's 256 x 448
    for a graph that takes any H and W (dtk's export); DtkError unless it has one 3-channel input."""
    onnx = optional_import("onnx")
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises assorted types on foreign files
        raise DtkError(f"cannot read {model_path} as ONNX: {exc}") from None
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise DtkError(f"{model_path} has {len(inputs)} inputs; dtk quantizes one-input image models")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value != 3:
        raise DtkError(f"{model_path}: input must be N x 3 x H x W")
    if any(n.domain in ("", "ai.onnx") and n.op_type in ("QuantizeLinear", "DequantizeLinear")
           for n in model.graph.node):
        raise DtkError(f"{model_path} is already quantized (it has Q/DQ nodes); give the fp32 model")
    return int(dims[2].dim_value or FRAME_SIZE[0]), int(dims[3].dim_value or FRAME_SIZE[1])


def load_inputs(frames: Sequence[Frame], size: tuple[int, int], blur: str | None) -> np.ndarray:
    """N x 3 x H x W float32 in [0, 1] through the shared pipeline (blurred with `blur` if given)."""

    batches, failed = [], []
    for batch in open_pipeline(frames, PipelineConfig(batch_size=8, size=size, blur=blur), kind="fallback"):
        batches.append(np.asarray(batch.images, dtype=np.float32))
        failed += batch.failed
    if failed:
        path, reason = failed[0]
        raise DtkError(f"cannot read frame {path}: {reason} (remove it from the frame folder)")
    return np.concatenate(batches)


class _CalibrationReader:
    """ORT CalibrationDataReader over preloaded N x 3 x H x W samples, one image per run."""

    def __init__(self, input_name: str, samples: np.ndarray):
        self.input_name, self.samples, self.i = input_name, samples, 0

    def get_next(self) -> dict | None:
        if self.i >= len(self.samples):
            return None
        self.i += 1
        return {self.input_name: self.samples[self.i - 1:self.i]}

    def rewind(self) -> None:
        self.i = 0


def _guard_runner(model: Path, threads: int | None) -> Runner:
    """The guard's runner: ONNX Runtime on the CPU, as `dtk run --backend onnxruntime` opens it."""
    return RunnerSpec("onnxruntime", Path(model), device="cpu", threads=threads).open()


@dataclass
class GuardSet:
    """Guard frames per kernel: blurred inputs, sharp targets and the fp32 outputs (uint8 NHWC)."""

    inputs: dict[str, np.ndarray]
    sharp: np.ndarray
    fp32: dict[str, np.ndarray]

    def measure(self, int8_path: Path, threads: int | None = None,
                kernels: Sequence[str] | None = None) -> list[KernelGuard]:
        """Guard figures per kernel (of `kernels` only, when given)."""
        result = []
        with _guard_runner(int8_path, threads) as runner:
            outputs = {k: nchw_to_nhwc_uint8(infer_all(runner, x)) for k, x in self.inputs.items()
                       if kernels is None or k in kernels}
        for k, out in outputs.items():
            fp = self.fp32[k]
            f = [psnr_capped(o, s) for o, s in zip(fp, self.sharp, strict=True)]
            q = [psnr_capped(o, s) for o, s in zip(out, self.sharp, strict=True)]
            qf = [psnr_capped(o, r) for o, r in zip(out, fp, strict=True)]
            result.append(KernelGuard(k, float(np.mean(f)), float(np.mean(q)), float(np.mean(f) - np.mean(q)),
                                      float(np.mean(qf))))
        return result


def _worst(guard: list[KernelGuard]) -> float:
    return max(g.drop_db for g in guard)


# Fixed filters (the gated models' deconvolution bank, exported under the module name `bank`):
# known-kernel inverses with gains of up to ~10x that int8 cannot hold; never trained, cheap.
FIXED_FILTER_PREFIX = "/bank/"


def fixed_filter_nodes(nodes: Sequence[str]) -> list[str]:
    """The quantizable nodes of the fixed deconvolution bank (kept in float by default)."""
    return [n for n in nodes if n.startswith(FIXED_FILTER_PREFIX)]


def always_float_nodes(model_path: Path, nodes: Sequence[str], *,
                       quantize_bank: bool = False) -> dict[str, str]:
    """The quantizable nodes that stay float whatever the guard says, each with its reason.

    - the fixed bank (unless `quantize_bank`, an experiment: the bank feeds the decision too);
    - the decision: every other conv the `tile_evidence` output depends on (the head). The gate is
      a cliff on that evidence (P > 0.999); int8 evidence (pooled energies of small residuals) fell
      to 0-84 % of fp32's on the 40 blurred demo frames and an int8 head flipped ONNX Runtime's
      pass/deblur decision on 13 of them. In float every backend decides as fp32 does;
    - every conv fed by a Concat: OpenVINO's CPU plugin (2026.4) computes Concat -> QuantizeLinear ->
      DequantizeLinear -> int8 Conv wrongly (errors as large as the output; ONNX Runtime exact on
      the same graph): its int8 head passed every frame (issue 38). Float there, both run it right.
    """
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    wanted = set(nodes)
    bank = set(fixed_filter_nodes(nodes))
    why: dict[str, str] = {} if quantize_bank else {n: "fixed bank" for n in bank}
    why.update({n: "decision" for n in evidence_ancestors(model) if n in wanted and n not in bank})
    why.update({n: "fed by a Concat" for n in concat_fed_convs(model) if n in wanted and n not in why})
    return {n: why[n] for n in nodes if n in why}  # in graph order


def quantizable_nodes(model_path: Path, conv_transpose: str = "per-tensor") -> list[str]:
    """Names of the nodes the quantizer turns int8 (Conv; ConvTranspose unless kept in float)."""
    onnx = optional_import("onnx")
    ops = QUANTIZED_OPS if conv_transpose == "per-tensor" else ("Conv",)
    return [n.name for n in onnx.load(str(model_path)).graph.node if n.op_type in ops]


def _quantize_static(pre: Path, out: Path, reader, method: str, cache: Path, exclude: Sequence[str],
                     conv_transpose: str, percentile: float) -> None:
    """One ORT quantize_static call: QDQ, symmetric int8, Conv per channel, ConvTranspose per tensor."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(pre))
    weights = {i.name for i in model.graph.initializer}
    overrides = {n.input[1]: [{"symmetric": True}] for n in model.graph.node
                 if n.op_type == "ConvTranspose" and n.input[1] in weights}
    ops = list(QUANTIZED_OPS) if conv_transpose == "per-tensor" else ["Conv"]
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    # QuantizeBias False: biases stay float (TensorRT's parser rejects an int32 DequantizeLinear;
    # ORT still fuses DQ -> Conv -> Q into QLinearConv, measured).
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
             "TensorQuantOverrides": overrides}
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    reader.rewind()
    quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=ops,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=list(exclude), calibrate_method=calib, extra_options=extra,
                    calibration_cache_path=str(cache))
    _float_input_bypass(out)


def _float_input_bypass(path: Path) -> None:
    """Feed the graph input itself, not its int8 copy, to every non-conv consumer (the residual Add).

    Symmetric int8 of an image in [0, 1] has a step of 1/127 (2 LSB of the 8-bit output): measured on
    a near-identity residual model, it cost 22 dB of PSNR through the skip connection alone.
    """
    import onnx

    model = onnx.load(str(path))
    graph_inputs = {i.name for i in model.graph.input}
    dq_of_input = {}
    for q in model.graph.node:
        if q.op_type == "QuantizeLinear" and q.input[0] in graph_inputs:
            for dq in model.graph.node:
                if dq.op_type == "DequantizeLinear" and dq.input[0] == q.output[0]:
                    dq_of_input[dq.output[0]] = q.input[0]
    changed = False
    for node in model.graph.node:
        if node.op_type in QUANTIZED_OPS:
            continue
        for k, name in enumerate(node.input):
            if name in dq_of_input:
                node.input[k] = dq_of_input[name]
                changed = True
    if changed:
        onnx.save(model, str(path))


def _write_metadata(src: Path, dst: Path, meta: dict) -> None:
    """Copy the fp32 model's metadata_props onto the quantized graph, add the INT8 record, save."""
    import onnx

    model = onnx.load(str(dst))
    original = onnx.load(str(src), load_external_data=False)
    props = {p.key: p.value for p in original.metadata_props}
    props.update({p.key: p.value for p in model.metadata_props})
    props.update({k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in meta.items()})
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.producer_name = "dtk"
    onnx.save(model, str(dst))


def calibration_hash(samples: np.ndarray, names: Sequence[str]) -> str:
    """sha256 of the calibration tensors (float32 bytes, in order) and their frame/kernel names."""
    h = hashlib.sha256()
    h.update("\n".join(names).encode())
    h.update(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
    return h.hexdigest()


def quantize_model(model_onnx: Path | str, calib_dir: Path | str, out_path: Path | str, *,
                   calib_frames: int | None = 16, guard_frames: int | None = 16, method: str = "minmax",
                   max_drop_db: float = 0.1, guard_dir: Path | str | None = None,
                   conv_transpose: str = "per-tensor", max_float_layers: int = 4, percentile: float = 99.999,
                   threads: int | None = None, quantize_bank: bool = False,
                   log: Callable[[str], None] | None = None) -> QuantizeReport:
    """Quantize `model_onnx` to a Q/DQ INT8 graph at `out_path`; DtkError (and no file) if the guard fails.

    What always stays float, and why: `always_float_nodes` (the fixed deconvolution bank unless
    `quantize_bank`, the decision head, convs fed by a Concat); the guard may keep more."""
    start = time.perf_counter()
    say = log or (lambda _m: None)
    model_onnx, out_path = Path(model_onnx), Path(out_path)
    if method not in METHODS:
        raise DtkError(f"unknown calibration method {method!r}: choose one of {', '.join(METHODS)}")
    if conv_transpose not in CONV_TRANSPOSE_MODES:
        raise DtkError(f"conv_transpose must be one of {', '.join(CONV_TRANSPOSE_MODES)}")
    if not model_onnx.is_file():
        raise DtkError(f"model not found: {model_onnx}")
    if out_path.resolve() == model_onnx.resolve():
        raise DtkError("the output would overwrite the fp32 model: pick another -o path")
    if not math.isfinite(max_drop_db):
        raise DtkError(f"--max-drop must be a finite number of dB, got {max_drop_db}")
    optional_import("onnxruntime")
    size = model_frame_size(model_onnx)
    split = split_frames(calib_dir, guard_dir, calib_frames=calib_frames, guard_frames=guard_frames)
    say(f"calibration: {len(split.calibration)} frames x {len(KERNEL_NAMES)} kernels; guard: "
        f"{len(split.guard)} frames ({split.how})")

    names = [f"{f.rel}@{k}" for k in KERNEL_NAMES for f in split.calibration]
    samples = np.concatenate([load_inputs(split.calibration, size, k) for k in KERNEL_NAMES])
    digest = calibration_hash(samples, names)

    guard_inputs = {k: load_inputs(split.guard, size, k) for k in KERNEL_NAMES}
    sharp = nchw_to_nhwc_uint8(load_inputs(split.guard, size, None))
    with _guard_runner(model_onnx, threads) as fp32:
        guard_set = GuardSet(guard_inputs, sharp,
                             {k: nchw_to_nhwc_uint8(infer_all(fp32, x)) for k, x in guard_inputs.items()})

    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dtk-quantize-") as tmp_name:
        tmp = Path(tmp_name)
        pre, cache = tmp / "pre.onnx", tmp / "calibration.json"
        try:
            quant_pre_process(str(model_onnx), str(pre), skip_symbolic_shape=True)
        except Exception as exc:  # noqa: BLE001 - ORT raises assorted types on odd graphs
            raise DtkError(f"ONNX Runtime's quant_pre_process failed on {model_onnx}: {exc}") from None
        reader = _CalibrationReader(fp32_input_name(pre), samples)

        def attempt(exclude: Sequence[str], tag: str,
                    kernels: Sequence[str] | None = None) -> tuple[Path, list[KernelGuard]]:
            path = tmp / f"{tag}.onnx"
            _quantize_static(pre, path, reader, method, cache, exclude, conv_transpose, percentile)
            return path, guard_set.measure(path, threads, kernels)

        all_nodes = quantizable_nodes(pre, conv_transpose)
        fixed_why = always_float_nodes(pre, all_nodes, quantize_bank=quantize_bank)
        fixed = list(fixed_why)
        t0 = time.perf_counter()
        best_path, guard = attempt(fixed, "all")
        what = f"all layers but {_float_summary(fixed_why)} in float" if fixed else "all layers"
        say(f"int8, {what}: worst drop {_worst(guard):+.3f} dB ({time.perf_counter() - t0:.1f} s)")
        attempts = [{"float_layers": list(fixed), "worst_drop_db": _worst(guard)}]
        float_layers: list[str] = list(fixed)
        sensitivity: dict[str, float] = {}
        if _worst(guard) > max_drop_db and max_float_layers > 0:
            nodes = [n for n in all_nodes if n not in fixed]
            failing = [g.kernel for g in guard if g.drop_db > max_drop_db]  # the others cannot fail
            say(f"drop above {max_drop_db} dB ({', '.join(failing)}): measuring each of {len(nodes)} layers' "
                "drop alone in int8")
            for i, node in enumerate(nodes):
                path, g = attempt([n for n in all_nodes if n != node], f"one{i}", failing)
                path.unlink()  # one file per layer would add up on a large model
                sensitivity[node] = _worst(g)
            # the costliest layer alone first (with one dominant layer, "all but this one in int8"
            # ranks the others by noise: measured, 10 of 11 layers tied at +1.184 dB)
            ranked = sorted(nodes, key=lambda n: -sensitivity[n])
            cap = min(max_float_layers, len(ranked))
            for k in sorted({min(2 ** i, cap) for i in range(cap.bit_length() + 1)}):
                trial = [*fixed, *ranked[:k]]
                path, g = attempt(trial, f"keep{k}")
                attempts.append({"float_layers": trial, "worst_drop_db": _worst(g)})
                say(f"{k} layer(s) in float ({', '.join(ranked[:k])}): worst drop {_worst(g):+.3f} dB")
                if _worst(g) < _worst(guard):
                    best_path, guard, float_layers = path, g, trial
                if _worst(g) <= max_drop_db:
                    break
        report = QuantizeReport(
            model=str(model_onnx), output=None, method=method, max_drop_db=max_drop_db,
            calibration_frames=[str(f.path) for f in split.calibration], calibration_sha256=digest,
            guard_frames=[str(f.path) for f in split.guard], conv_transpose=conv_transpose,
            float_layers=float_layers, guard=guard, attempts=attempts, sensitivity=sensitivity,
            fixed_float_layers=list(fixed), fixed_float_why=fixed_why)
        report.seconds = time.perf_counter() - start
        if report.worst_drop_db > max_drop_db:
            failing = ", ".join(f"{g.kernel} {g.drop_db:+.3f} dB" for g in guard if g.drop_db > max_drop_db)
            err = DtkError(f"refusing to write {out_path}: INT8 loses more than {max_drop_db} dB PSNR on the "
                           f"guard frames ({failing}) even with {len(float_layers)} layer(s) kept in float"
                           f"{_why(report)}; try --method entropy/percentile, more --calib-frames, "
                           "or a larger --max-drop")
            err.report = report  # type: ignore[attr-defined]
            raise err
        meta = {
            "precision": "int8", "quantization": "onnxruntime quantize_static QDQ, symmetric int8 "
            "activations and weights, Conv per-channel, ConvTranspose " + conv_transpose,
            "int8_calibration_sha256": digest, "int8_calibration_method": method,
            "int8_calibration_count": str(len(names)), "int8_float_layers": float_layers,
            "int8_psnr_drop_db": {g.kernel: round(g.drop_db, 4) for g in guard},
            "int8_psnr_vs_fp32_db": {g.kernel: round(g.int8_vs_fp32_psnr_db, 3) for g in guard},
            "int8_max_drop_db": str(max_drop_db), "int8_source_model": model_onnx.name,
        }
        _write_metadata(model_onnx, best_path, meta)
        write_bytes_atomic(out_path, best_path.read_bytes())
    report.output, report.passed = str(out_path), True
    report.seconds = time.perf_counter() - start
    return report


def _float_summary(why: dict[str, str]) -> str:
    """'fixed bank (3), decision (6), fed by a Concat (4)': the always-float layers by reason."""
    counts: dict[str, int] = {}
    for reason in why.values():
        counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(f"{reason} ({n})" for reason, n in counts.items())


def _why(report: QuantizeReport) -> str:
    """Why the guard still fails: what was kept in float, and the layers that cost the most."""
    parts = []
    if report.fixed_float_layers:
        parts.append(f"{_float_summary(report.fixed_float_why)} in float")
    if report.sensitivity:
        worst = sorted(report.sensitivity, key=lambda n: -report.sensitivity[n])[:3]
        parts.append("the costliest layers alone in int8: " + ", ".join(
            f"{n} (drop {report.sensitivity[n]:+.2f} dB)" for n in worst))
    return f" ({'; '.join(parts)})" if parts else ""


def fp32_input_name(path: Path) -> str:
    onnx = optional_import("onnx")
    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)

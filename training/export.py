"""Export the U-Net to ONNX (fp32, or an fp16 graph) and check it against PyTorch through ONNX Runtime.

Input "input" and output "output": N x 3 x H x W float, values on the 0..1 scale, dynamic batch
axis; H and W dynamic too (any multiple of 8: the network is fully convolutional, so engines.tiled
can run a whole frame as one tile), or fixed at the example's H x W with `any_size=False`.
The example (and parity check) size is 256 x 448 by default. The fp16 graph has fp16 weights and
compute; its I/O is fp32 (Cast nodes at the edges) unless `fp16_io=True`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.onnxruntime import cpu_session
from engines.polygraphy_log import quiet_polygraphy
from toolkit.core.atomic import atomic_target, write_bytes_atomic
from toolkit.core.convert import to_uint8_hwc
from toolkit.core.errors import DtkError
from toolkit.core.evidence import DECIDE, EVIDENCE_INPUT, EVIDENCE_OUTPUT, KNOWN_CLASS, KNOWN_INPUT
from toolkit.core.kernels import blur
from toolkit.core.lazy import optional_import
from toolkit.core.metrics import psnr, psnr_capped
from toolkit.core.modelfiles import checkpoint_paths, read_sidecar
from toolkit.core.models.checkpoint import load_model
from toolkit.core.models.fp16 import FP16_MAX, blurred_demo_frames, check_fp16_range, real_frame

FP32_TOLERANCE = 1e-4  # max abs error ORT fp32 vs torch fp32, on the 0..1 scale


class _ExportIO(nn.Module):
    """What the graph computes: `input` -> `output`, cast to fp16 and back when `cast_half`.

    A blind model (`takes_evidence`) gets a second input `evidence` (the frame's pooled head
    features, N x width or 1 x width; rows < 0 mean "decide from this image") and a second
    output `tile_evidence` (each image's own pooled features), so tiles of one frame can share one
    decision (toolkit.core.models.head), and a third input `known_blur` (N x 1 or 1 x 1: the
    decision's class when the user knows the blur, < 0: decide; toolkit.core.evidence).
    """

    def __init__(self, net: nn.Module, cast_half: bool):
        super().__init__()
        self.net, self.cast_half = net, cast_half

    def forward(self, x: torch.Tensor, evidence: torch.Tensor | None = None,
                known: torch.Tensor | None = None):
        if self.cast_half:
            x = x.half()
        if evidence is None:
            y = self.net(x)
            return y.float() if self.cast_half else y
        y, _, own = self.net.decided(x, evidence, known=known)
        return (y.float(), own.float()) if self.cast_half else (y, own)


def _torch_export(module: nn.Module, example: torch.Tensor, path: Path, opset: int,
                  evidence: torch.Tensor | None = None, known: torch.Tensor | None = None,
                  any_size: bool = True) -> None:
    """Legacy TorchScript exporter (dynamo=False): stable on torch 2.13 and fast for this plain CNN.
    `any_size`: H and W are dynamic axes ("height", "width") besides the batch."""
    import warnings

    names_in, names_out = ["input"], ["output"]
    image_axes = {0: "batch", 2: "height", 3: "width"} if any_size else {0: "batch"}
    axes = {"input": dict(image_axes), "output": dict(image_axes)}
    args: tuple = (example,)
    if evidence is not None:
        names_in.append(EVIDENCE_INPUT)
        names_out.append(EVIDENCE_OUTPUT)
        axes.update({EVIDENCE_INPUT: {0: "evidence_batch"}, EVIDENCE_OUTPUT: {0: "batch"}})
        args = (example, evidence)
    if known is not None:
        names_in.append(KNOWN_INPUT)
        axes[KNOWN_INPUT] = {0: "known_batch"}
        args = (*args, known)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), input_names=names_in, output_names=names_out,
            dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=True,
        )


def _default_own_evidence(path: Path) -> None:
    """Give the `evidence` input a default (1 x width of -1: every image decides alone) and the
    `known_blur` input one (1 x 1 of -1: decide), so a caller that feeds only `input` (ONNX
    Runtime, OpenVINO) runs the whole model as one pass.

    The defaults are initializers listed as graph inputs: ONNX Runtime treats them as overridable
    initializers; TensorRT's build (engines.tensorrt.build) turns them back into inputs.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    for name, fill in ((EVIDENCE_INPUT, -1.0), (KNOWN_INPUT, DECIDE)):
        spec = next((i for i in graph.input if i.name == name), None)
        if spec is None:
            continue
        width = spec.type.tensor_type.shape.dim[1].dim_value
        dtype = onnx.helper.tensor_dtype_to_np_dtype(spec.type.tensor_type.elem_type)
        graph.initializer.append(numpy_helper.from_array(np.full((1, width), fill, dtype=dtype), name))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def fold_constants(path: Path) -> dict:
    """Fold the graph's constants in place with Polygraphy (ONNX-GraphSurgeon + ONNX Runtime).

    The legacy exporter leaves constant subgraphs as Constant nodes (the Wiener bank's weight among
    them), which FLOP counters and some parsers do not look through; after folding every Conv
    weight is an initializer. Returns {"nodes_before", "nodes_after", "constant_nodes_after"}.
    """
    # polygraphy and onnx_graphsurgeon: optional (.[cpu] / .[gpu] extras), and only export needs them
    fold = optional_import("polygraphy.backend.onnx").fold_constants
    optional_import("onnx_graphsurgeon")
    import onnx

    model = onnx.load(str(path))
    before = len(model.graph.node)
    with quiet_polygraphy():
        folded = fold(model, error_ok=False)
    onnx.checker.check_model(folded)
    onnx.save(folded, str(path))
    return {"nodes_before": before, "nodes_after": len(folded.graph.node),
            "constant_nodes_after": sum(n.op_type == "Constant" for n in folded.graph.node)}


def _set_metadata(path: Path, metadata: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = str(key)
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    model.producer_name = "dtk"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def check_parity(model: nn.Module, path: Path, height: int, width: int, *, fp16: bool = False,
                 fp16_io: bool = False, tolerance: float | None = None, shown: Path | None = None) -> dict:
    """Compare ORT CPU vs torch fp32 on a random batch and a real photo; DtkError beyond tolerance
    (naming `shown`, the file being written, when `path` is its temporary file).

    Inputs: random, a real photo and that photo blurred with k7 and with k11. Returns
    {"random_max_abs": ..., "real_max_abs": ..., "real_k7_max_abs": ..., "real_k11_max_abs": ...,
    "real_psnr_vs_fp32_db": the lower of the blurred photos' PSNR, ORT vs torch}.
    """

    tol = tolerance if tolerance is not None else (FP32_TOLERANCE if not fp16 else 2e-2)
    sess = cpu_session(path)
    # checking an export's temporary file: name the target; a refused file is never renamed to it
    verdict = "the file was not trusted" if shown is None else f"{shown} was not written"
    shown = shown or path
    rng = np.random.default_rng(0)
    real = real_frame(height, width)
    # the blurred frames drive a gated model through its deconvolution paths: sharp and random
    # inputs may only exercise its pass-through, where any export agrees exactly
    inputs = {"random": rng.random((2, 3, height, width), dtype=np.float32), "real": real}
    for k in ("k7", "k11"):
        blurred = blur(to_uint8_hwc(real[0]), k)
        inputs[f"real_{k}"] = (blurred.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()
    result: dict = {}
    for name, x in inputs.items():
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        feed = x.astype(np.float16) if fp16_io else x
        got = sess.run(["output"], {"input": feed})[0].astype(np.float32)
        if not np.all(np.isfinite(got)):
            raise DtkError(f"ONNX export check failed: {shown} gives non-finite outputs on the {name} input; "
                           f"{verdict}")
        err = float(np.max(np.abs(got - ref)))
        result[f"{name}_max_abs"] = err
        if name in ("real_k7", "real_k11"):
            sharp = np.clip(ref[0].transpose(1, 2, 0), 0, 1) * 255
            db = psnr(np.clip(got[0].transpose(1, 2, 0), 0, 1) * 255, sharp)
            result["real_psnr_vs_fp32_db"] = min(db, result.get("real_psnr_vs_fp32_db", db))
        if err > tol:
            raise DtkError(f"ONNX export check failed: {shown} differs from PyTorch by max abs {err:.3g} "
                           f"on the {name} input (tolerance {tol:g}); {verdict}")
    if getattr(model, "takes_evidence", False):
        # a frame decision given from outside: the sharp frame decided on the k11 frame's evidence
        x = real
        with torch.no_grad():
            given = model.evidence(torch.from_numpy(inputs["real_k11"]))
            ref = model(torch.from_numpy(x), evidence=given).numpy()
        feed = {"input": x.astype(np.float16) if fp16_io else x,
                EVIDENCE_INPUT: given.numpy().astype(np.float16 if fp16_io else np.float32)}
        got, own = sess.run(["output", EVIDENCE_OUTPUT], feed)
        err = float(np.max(np.abs(got.astype(np.float32) - ref)))
        result["given_evidence_max_abs"] = err
        if err > tol or not np.all(np.isfinite(own)):
            raise DtkError(f"ONNX export check failed: {shown} differs from PyTorch by max abs {err:.3g} "
                           f"with a given frame evidence (tolerance {tol:g}); {verdict}")
        # a blur the user knows: the sharp frame told it carries k11 (a decision it would not make)
        known = torch.full((1, 1), KNOWN_CLASS["k11"])
        with torch.no_grad():
            ref = model(torch.from_numpy(real), known=known).numpy()
        feed = {"input": real.astype(np.float16) if fp16_io else real,
                KNOWN_INPUT: known.numpy().astype(np.float16 if fp16_io else np.float32)}
        got = sess.run(["output"], feed)[0]
        err = float(np.max(np.abs(got.astype(np.float32) - ref)))
        result["known_blur_max_abs"] = err
        if err > tol:
            raise DtkError(f"ONNX export check failed: {shown} differs from PyTorch by max abs {err:.3g} "
                           f"when told the blur (tolerance {tol:g}); {verdict}")
    return result


def export_onnx(model: nn.Module, path: Path | str, *, height: int = 256, width: int = 448, opset: int = 18,
                fp16: bool = False, fp16_io: bool = False, metadata: dict | None = None,
                check: bool = True, any_size: bool = True) -> Path:
    """Write `model` as ONNX; with `check`, raise DtkError unless ORT matches torch (see module doc).
    `any_size`: the graph takes any H x W (multiples of 8); else only `height` x `width`.

    Atomic (`toolkit.core.atomic.atomic_target`): the graph is exported, folded and checked in a
    temporary file beside `path`, renamed to `path` only when the check passed; a failed check or an
    interrupt leaves `path` as it was (an existing file untouched) and no temporary file."""
    return _export(model, path, height=height, width=width, opset=opset, fp16=fp16, fp16_io=fp16_io,
                   metadata=metadata, check=check, any_size=any_size)[0]


def _export(model: nn.Module, path: Path | str, *, height: int, width: int, opset: int, fp16: bool,
            fp16_io: bool, metadata: dict | None, check: bool,
            any_size: bool = True) -> tuple[Path, dict | None]:
    """export_onnx's work: (the path written, the parity check's result, None without `check`)."""
    import copy

    if opset < 17:
        raise DtkError(f"opset {opset} is too old: dtk exports opset 17 or newer")
    if height % 8 or width % 8:
        raise DtkError(f"frame size {height}x{width}: height and width must be multiples of 8")
    if fp16_io and not fp16:
        raise DtkError("--fp16-io needs --fp16 (an fp16 graph)")
    path = Path(path)
    model = copy.deepcopy(getattr(model, "module", model)).float().eval()
    meta = {"producer": "dtk", "input_layout": "NCHW RGB float 0..1", "fp16": str(fp16).lower(),
            "fp16_io": str(fp16_io).lower()}
    config = getattr(model, "config", None)
    if config is not None:
        meta["architecture"] = json.dumps({"name": type(model).__name__, **config.to_dict()}, sort_keys=True)
    meta.update(metadata or {})

    example = torch.from_numpy(real_frame(height, width))
    if fp16:
        ranges = check_fp16_range(model, np.concatenate([blurred_demo_frames(height, width),
                                                         torch.rand(1, 3, height, width).numpy()]))
        peak = ranges.peak
        if peak > FP16_MAX / 4:
            raise DtkError(f"refusing the fp16 export: an activation reaches {peak:.4g} (layer "
                           f"{ranges.worst_layer}), too close to fp16's max {FP16_MAX:g}; export fp32")
        meta["fp32_peak_activation"] = f"{peak:.6g}"
        module = _ExportIO(copy.deepcopy(model).half(), cast_half=not fp16_io)
        example_in = example.half() if fp16_io else example
    else:
        module, example_in = _ExportIO(model, cast_half=False), example
    blind = bool(getattr(model, "takes_evidence", False))
    evidence = None
    if blind:
        evidence = torch.full((1, model.evidence_width), -1.0, dtype=example_in.dtype)
        meta["evidence"] = json.dumps({"input": EVIDENCE_INPUT, "output": EVIDENCE_OUTPUT,
                                       "width": model.evidence_width, "own": -1.0,
                                       "known_blur": KNOWN_INPUT, "decide": DECIDE})
    known = torch.full((1, 1), DECIDE, dtype=example_in.dtype) if blind else None
    parity = None
    with atomic_target(path) as tmp:  # renamed to `path` only once checked
        _torch_export(module, example_in, tmp, opset, evidence, known, any_size=any_size)
        fold_constants(tmp)  # the parity check below runs on the folded graph
        if blind:
            _default_own_evidence(tmp)
        _set_metadata(tmp, meta)
        if check:
            parity = check_parity(model, tmp, height, width, fp16=fp16, fp16_io=fp16_io, shown=path)
    return path, parity


def fp16_error(model: nn.Module, frames: list[np.ndarray], fp16_path: Path | str,
               fp16_io: bool = False) -> dict:
    """Error of an fp16 ONNX graph vs torch fp32 on real HxWx3 uint8 frames.

    Returns max abs error (0..1 scale) and the mean/max PSNR drop (dB) vs the sharp frames.
    """

    sess = cpu_session(fp16_path)
    max_abs, drops = 0.0, []
    for img in frames:
        x = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(["output"], {"input": x.astype(np.float16) if fp16_io else x})[0].astype(np.float32)
        max_abs = max(max_abs, float(np.max(np.abs(got - ref))))

        def to_img(a):
            return np.clip(a[0].transpose(1, 2, 0), 0, 1) * 255

        drops.append(psnr_capped(to_img(ref), img) - psnr_capped(to_img(got), img))
    return {"max_abs": max_abs, "psnr_drop_mean_db": float(np.mean(drops)),
            "psnr_drop_max_db": float(np.max(drops))}


def export_checkpoint(checkpoint: Path | str, output: Path | str, *, overwrite: bool = False,
                      **kwargs) -> dict:
    """Load a checkpoint, export it (metadata from its sidecar) and return path, size and parity.

    DtkError before anything loads when the checkpoint is incomplete, or OUTPUT exists and not `overwrite`."""
    weights, sidecar, _ = checkpoint_paths(checkpoint)
    for needed in (weights, sidecar):
        if not needed.is_file():
            raise DtkError(f"checkpoint file {needed} not found (a checkpoint is X.safetensors with its "
                           "X.json beside it)")
    output = Path(output)
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise DtkError(f"{output} already exists: pass --overwrite to replace it, or choose another -o")

    doc = read_sidecar(checkpoint)
    model = load_model(checkpoint)
    meta = {"kernels": ",".join(doc.get("kernels", [])), "training_data_sha256": doc.get("data_sha256", ""),
            "training_step": str(doc.get("step", "")), "dtk_version": str(doc.get("dtk_version", ""))}
    options = {"height": 256, "width": 448, "opset": 18, "fp16": False, "fp16_io": False, **kwargs}
    path, parity = _export(model, output, metadata=meta, check=True, **options)
    return {"path": str(path), "bytes": path.stat().st_size, "parity": parity}


def ship_assets(checkpoint: Path | str, assets: Path | str | None = None, fp16: bool = True) -> dict:
    """Copy a checkpoint to `toolkit/assets/dtk-unet.{safetensors,json}` and export `dtk-unet.onnx`
    (+ `dtk-unet-fp16.onnx`, fp32 I/O), each parity-checked; returns {file: bytes}."""
    dest = Path(assets) if assets else Path(__file__).resolve().parent.parent / "toolkit" / "assets"
    dest.mkdir(parents=True, exist_ok=True)
    weights, sidecar, _ = checkpoint_paths(checkpoint)
    write_bytes_atomic(dest / "dtk-unet.safetensors", weights.read_bytes())
    write_bytes_atomic(dest / "dtk-unet.json", sidecar.read_bytes())
    export_checkpoint(dest / "dtk-unet.safetensors", dest / "dtk-unet.onnx", overwrite=True)
    if fp16:
        export_checkpoint(dest / "dtk-unet.safetensors", dest / "dtk-unet-fp16.onnx", fp16=True,
                          overwrite=True)
    return {p.name: p.stat().st_size for p in sorted(dest.glob("dtk-unet*"))}

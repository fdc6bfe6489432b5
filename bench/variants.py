"""What to benchmark: model sources (shipped, --model files, --engine, a random-init --width) and the
backend variants, each variant a set of runner options (`engines.spec.RunnerSpec`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import BenchTarget
from engines.machine import collect
from engines.options import MAX_BATCH
from engines.select import default_backend
from engines.spec import SUPPORTED_OPTIONS, RunnerSpec
from toolkit.core.bounds import parse_list
from toolkit.core.errors import DtkError
from toolkit.core.flops import count_onnx_macs, count_torch_macs, gflop_per_image
from toolkit.core.lazy import INSTALL_HINTS, module_version
from toolkit.core.modelfiles import read_sidecar, resolve_model

# (backend, variant) -> runner options. Devices: "cpu" or "cuda".
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "torch": {
        "eager": {"device": "cpu"},
        "channels_last": {"device": "cpu", "channels_last": True},
        "bf16": {"device": "cpu", "channels_last": True, "precision": "bf16"},
        "compile": {"device": "cpu", "channels_last": True, "compile": True},
        "cuda-fp32": {"device": "cuda", "channels_last": True},
        "cuda-fp16": {"device": "cuda", "channels_last": True, "precision": "fp16"},
        "cuda-bf16": {"device": "cuda", "channels_last": True, "precision": "bf16"},
        # the cuda-* variants above capture CUDA graphs (the runner's default); these run eager
        "cuda-fp32-nographs": {"device": "cuda", "channels_last": True, "cuda_graphs": False},
        "cuda-fp16-nographs": {"device": "cuda", "channels_last": True, "precision": "fp16",
                               "cuda_graphs": False},
        "cuda-bf16-nographs": {"device": "cuda", "channels_last": True, "precision": "bf16",
                               "cuda_graphs": False},
    },
    "onnxruntime": {
        "cpu-fp32": {"device": "cpu"},
        "gpu": {"device": "cuda"},
        "gpu-trt-fp16": {"device": "cuda", "precision": "fp16"},
    },
    "tensorrt": {"engine": {"device": "cuda"}},
    # OpenVINO's performance hints: one synchronous request (dtk run's default), or the THROUGHPUT
    # hint's streams fed a batch image by image through async infer requests
    "openvino": {
        "cpu-latency": {"device": "cpu", "hint": "latency"},
        "cpu-throughput": {"device": "cpu", "hint": "throughput"},
        "cpu-bf16": {"device": "cpu", "hint": "latency", "precision": "bf16"},  # not exact: see its PSNR
    },
}
# tensorrt has no CPU variant: named on a machine without a GPU, its row is skipped with the reason
DEFAULT_CPU = {"torch": ("eager", "channels_last"), "onnxruntime": ("cpu-fp32",), "tensorrt": ("engine",),
               "openvino": ("cpu-latency", "cpu-throughput", "cpu-bf16")}
DEFAULT_GPU = {"torch": ("cuda-fp32", "cuda-fp32-nographs", "cuda-fp16", "cuda-fp16-nographs", "cuda-bf16",
                         "cuda-bf16-nographs"),
               "onnxruntime": ("gpu",), "tensorrt": ("engine",), "openvino": ()}


@dataclass
class ModelSource:
    """One model to benchmark: the file each backend loads (None: that backend cannot run it)."""

    label: str
    files: dict[str, Path]
    gflop_per_image: float | None
    info: dict[str, Any] = field(default_factory=dict)


def parse_batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(t) for t in parse_list(text, "--batch"))
    except ValueError:
        raise DtkError(f"--batch takes comma-separated integers like 1,4,8, got {text!r}") from None
    if min(batches) < 1 or max(batches) > MAX_BATCH:
        raise DtkError(f"batch sizes must be 1..{MAX_BATCH}, got {text!r}")
    return batches


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# `--backend auto` (dtk bench's default): the backend `dtk run` picks here and the variant it runs
AUTO_VARIANT = {"cpu": {"onnxruntime": "cpu-fp32", "openvino": "cpu-latency", "torch": "eager"},
                "cuda": {"torch": "cuda-fp32", "onnxruntime": "gpu"}}


def auto_pairs(gpu: bool, info: dict | None = None) -> list[tuple[str, str]]:
    """`--backend auto`: [(the backend `dtk run --backend auto` uses here, its default variant)].
    TensorRT runs a built engine only (`--engine`), so on a GPU the next one, torch."""
    info = collect() if info is None else info
    backend = default_backend({**info, "tensorrt": None})
    return [(backend, AUTO_VARIANT["cuda" if gpu else "cpu"].get(backend, DEFAULT_CPU[backend][0]))]


def select_variants(backends: str, variants: str | None, gpu: bool) -> list[tuple[str, str]]:
    """(backend, variant) pairs: --variants names (any backend that has them) or each backend's defaults;
    `auto`: `auto_pairs`."""
    if backends == "auto":
        if variants:
            raise DtkError("--variants names variants of the backends given with --backend: add --backend "
                           "(e.g. --backend onnxruntime,torch) or drop --variants")
        return auto_pairs(gpu)
    names = list(VARIANTS) if backends == "all" else parse_list(backends, "--backend")
    for b in names:
        if b not in VARIANTS:
            raise DtkError(f"unknown backend {b!r}: choose from {', '.join(VARIANTS)} or all")
    if variants:
        wanted = parse_list(variants, "--variants")
        pairs = [(b, v) for b in names for v in wanted if v in VARIANTS[b]]
        unknown = [v for v in wanted if not any(v in VARIANTS[b] for b in names)]
        if unknown:
            known = sorted({v for b in names for v in VARIANTS[b]})
            raise DtkError(f"unknown variant(s) {', '.join(unknown)} for backend(s) {', '.join(names)}: "
                           f"choose from {', '.join(known)}")
        return pairs
    pairs = [(b, v) for b in names for v in DEFAULT_CPU[b]]
    if gpu:
        pairs += [(b, v) for b in names for v in DEFAULT_GPU[b] if (b, v) not in pairs]
    return pairs


def tensorrt_problem(gpu: bool) -> str | None:
    """Why the tensorrt backend cannot run on this machine (no TensorRT, no GPU), or None."""

    if module_version("tensorrt") is None:
        return INSTALL_HINTS["tensorrt"]
    if not gpu:
        return "TensorRT needs an NVIDIA GPU with CUDA and none is visible here"
    return None


def random_model(width: int, size: tuple[int, int], workdir: Path | None = None) -> ModelSource:
    """A random-init seed U-Net of `width`: checkpoint + ONNX (exported at `size`) in a temp folder."""
    import torch  # torch and the torch-backed modules: only for a --width model (start-up of dtk)

    from toolkit.core.models import ModelConfig
    from toolkit.core.models.checkpoint import save_checkpoint
    from toolkit.core.models.unet import SeedUNet
    from training.export import export_onnx

    if width < 1:
        raise DtkError(f"--width must be >= 1, got {width}")
    folder = Path(workdir or tempfile.mkdtemp(prefix="dtk-bench-"))
    stem = folder / f"random-w{width}"
    torch.manual_seed(0)
    model = SeedUNet(ModelConfig(width=width)).eval()
    save_checkpoint(stem.with_suffix(".safetensors"), model, meta={"note": "random init (dtk bench)"})
    export_onnx(model, stem.with_suffix(".onnx"), height=size[0], width=size[1], check=False)
    macs = count_torch_macs(model, (1, 3, *size))
    files = {"torch": stem.with_suffix(".safetensors"), "onnxruntime": stem.with_suffix(".onnx"),
             "openvino": stem.with_suffix(".onnx")}
    return ModelSource(f"random-w{width}", files, gflop_per_image(macs),
                       {"kind": "random-init", "width": width, "folder": str(folder)})


def file_model(path: Path | str | None, size: tuple[int, int], engine: bool = False) -> ModelSource:
    """A model file (or the shipped default when None) and its siblings for each backend."""

    files: dict[str, Path] = {}
    reasons: dict[str, str] = {}
    backends = ("tensorrt",) if engine else ("torch", "onnxruntime", "openvino", "tensorrt")
    for backend in backends:
        try:
            files[backend] = resolve_model(path, backend)
        except DtkError as exc:
            reasons[backend] = str(exc)
    if engine and "tensorrt" not in files:
        raise DtkError(reasons["tensorrt"])
    if not files:
        where = "the shipped model" if path is None else str(path)
        raise DtkError(f"no backend can load {where}: {'; '.join(reasons.values())}. "
                       "For a speed test without a trained model use --width 64 (random weights).")
    label = Path(path).stem if path is not None else "shipped"
    return ModelSource(label, files, _count_file_gflop(files, size),
                       {"kind": "engine" if engine else "file", "path": str(path) if path else "shipped",
                        "not_runnable": reasons})


def _count_file_gflop(files: dict[str, Path], size: tuple[int, int]) -> float | None:
    """Counted GFLOP/image: from the ONNX graph (a sibling .onnx of an engine too), else the checkpoint."""
    onnx = files.get("onnxruntime")
    if onnx is None:
        for p in files.values():
            sibling = p.with_suffix(".onnx")
            if sibling.is_file():
                onnx = sibling
    if onnx is not None:
        return gflop_per_image(count_onnx_macs(onnx, (1, 3, *size)))
    weights = files.get("torch")
    if weights is not None:
        import torch  # torch-backed: only when a checkpoint's FLOPs are counted

        from toolkit.core.models import ModelConfig, create_model

        with torch.device("meta"):
            model = create_model(ModelConfig.from_dict(read_sidecar(weights)["config"]))
        return gflop_per_image(count_torch_macs(model, (1, 3, *size)))
    return None


def runner_specs(sources: list[ModelSource], pairs: list[tuple[str, str]],
                 threads: int | None = None) -> tuple[list[BenchTarget], list[dict[str, str]]]:
    """A BenchTarget per source x (backend, variant) the source has a file for; the rest are skipped."""
    specs: list[BenchTarget] = []
    skipped: list[dict[str, str]] = []
    for src in sources:
        for backend, variant in pairs:
            if backend not in src.files:
                reason = src.info.get("not_runnable", {}).get(backend, f"{src.label} has no {backend} file")
                skipped.append({"model": src.label, "backend": backend, "variant": variant, "reason": reason})
                continue
            opts = dict(VARIANTS[backend][variant])
            specs.append(BenchTarget(backend=backend, variant=variant, device=opts["device"],
                                     open=_opener(backend, src.files[backend], opts, threads),
                                     model=src.label, gflop_per_image=src.gflop_per_image))
    return specs, skipped


def _opener(backend: str, path: Path, opts: dict[str, Any], threads: int | None):
    def make():
        options = {k: v for k, v in opts.items() if k != "precision"}
        if threads is not None and "threads" in SUPPORTED_OPTIONS[backend]:
            options["threads"] = threads
        spec = RunnerSpec.choose(backend, path, precision=opts.get("precision", "fp32"), **options)
        return spec.open()  # DtkError when this backend cannot run it

    return make


def reference_opener(src: ModelSource, threads: int | None = None):
    """(name, opener) of the source's fp32 CPU reference runner: ONNX Runtime cpu-fp32, else torch
    eager; ('', None) when it has neither file (an engine alone)."""
    for backend, variant in (("onnxruntime", "cpu-fp32"), ("torch", "eager")):
        if backend in src.files:
            opts = VARIANTS[backend][variant]
            return f"{backend}/{variant}", _opener(backend, src.files[backend], opts, threads)
    return "", None

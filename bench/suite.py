"""`dtk bench` as one library call: models x backends x variants x batch sizes -> a BenchReport."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.environment import cpu_environment, gpu_snapshot, gpu_warnings
from bench.harness import (
    STATUS_FAILED_QUALITY,
    STATUS_RAN,
    BenchConfig,
    BenchReport,
    VideoClip,
    not_run_rows,
    sweep,
)
from bench.hints import machine_hints, row_hints
from bench.pareto import best_under_budget
from bench.pipeline import pipeline_benchmark
from bench.quality import QualityCheck, below_floor, load_inputs
from bench.roofline import measure_ceiling
from bench.variants import (
    DEFAULT_GPU,
    VARIANTS,
    ModelSource,
    cuda_available,
    file_model,
    random_model,
    reference_opener,
    runner_specs,
    select_variants,
    tensorrt_problem,
)
from engines.machine import collect
from toolkit.core.demo import frames_or_demo, mosaic_frames
from toolkit.core.errors import DtkError
from toolkit.core.video import probe


@dataclass
class BenchRequest:
    """Everything `dtk bench` was asked for (CLI flags map one to one)."""

    config: BenchConfig = field(default_factory=BenchConfig)
    models: list[Path] = field(default_factory=list)  # empty: the shipped model (unless width/engine)
    engine: Path | None = None
    width: int | None = None  # random-init seed U-Net of this width
    backends: str = "auto"  # the backend and variant `dtk run` uses here (bench.variants.auto_pairs)
    variants: str | None = None
    threads: int | None = None
    e2e: bool = False
    frames_dir: Path | None = None  # --e2e input (a frame tree or a video file); default: demo frames
    e2e_size: tuple[int, int] | None = None  # --e2e on frames of this (H, W) made of real photos
    pipeline_kind: str = "auto"
    compute: bool = True  # compute-only rows (off with --e2e-only)
    roofline: bool = False  # measure the matmul ceiling(s)
    ceiling_gflops: float | None = None  # or give the CPU ceiling
    pipeline_bench: bool = False  # also run bench/pipeline.py (DALI vs fallback)
    quality: bool = True  # quality columns per row (bench/quality.py)
    quality_frames: int = 4  # frames scored per kernel (from frames_dir, else demo frames)
    min_psnr: float | None = None  # a row below this PSNR (any kernel) fails quality
    latency_budget_ms: float | None = None  # name the best batch per backend under this latency

    def __post_init__(self) -> None:
        # a gate needs what it gates on: without the quality columns no row has a PSNR, so a floor
        # would pass every row (exit 0) without checking one
        if self.min_psnr is not None and not self.quality:
            raise DtkError("--min-psnr needs the quality columns: drop --no-quality (without PSNRs no row "
                           "can be checked against the floor)")

    def to_json(self) -> dict:
        d = asdict(self)
        d["config"] = self.config.to_json()
        return d


def model_sources(req: BenchRequest) -> list[ModelSource]:
    size = req.config.size
    sources: list[ModelSource] = []
    if req.width is not None:
        sources.append(random_model(req.width, size))
    for path in req.models:
        sources.append(file_model(path, size))
    if req.engine is not None:
        sources.append(file_model(req.engine, size, engine=True))
    if not sources:
        sources.append(file_model(None, size))
    return sources


def measure_ceilings(req: BenchRequest, gpu: bool,
                     progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if req.ceiling_gflops:
        out.append({"device": "cpu", "dtype": "float32", "best_gflops": req.ceiling_gflops, "given": True})
    elif req.roofline:
        if progress:
            progress("roofline: fp32 matmul on cpu")
        out.append(measure_ceiling("cpu").to_json())
    if req.roofline and gpu:
        for dtype in ("float32", "float16", "bfloat16"):
            if progress:
                progress(f"roofline: {dtype} matmul on cuda")
            out.append(measure_ceiling("cuda", dtype).to_json())
    return out


def frame_tree(req: BenchRequest) -> Path | None:
    """--frames when it is a frame tree; None (demo frames) when absent or a video file (--e2e only)."""
    return req.frames_dir if req.frames_dir is not None and not Path(req.frames_dir).is_file() else None


def quality_check(req: BenchRequest, sources: list[ModelSource]) -> QualityCheck:
    """Frames (--frames or demo) blurred per kernel, and the fp32 CPU reference of the first model."""
    if req.quality_frames < 1:
        raise DtkError("--quality-frames must be >= 1")
    tree = frame_tree(req)
    known = req.config.known_blur
    with frames_or_demo(tree, req.quality_frames) as frames:
        if not frames:
            raise DtkError(f"no frames in {tree}")
        sharp, blurred = load_inputs(frames, req.config.size, *([(known,)] if known else []))
    where = str(tree) if tree is not None else "demo frames"
    name, opener = reference_opener(sources[0], req.threads)
    return QualityCheck(sharp=sharp, blurred=blurred, open_reference=opener,
                        reference_name=f"{sources[0].label}: {name}" if name else "", where=where,
                        known_blur=known)


def run_pipeline_bench(req: BenchRequest, gpu: bool) -> dict[str, Any]:
    """bench/pipeline.py's DALI vs fallback frames/s (over --frames, else demo frames)."""
    return pipeline_benchmark(frame_tree(req), device="gpu" if gpu else "cpu")


def run_bench(req: BenchRequest, progress: Callable[[str], None] | None = None) -> BenchReport:
    """Build the runners, sweep them, attach environment, FLOPs and ceilings."""

    if not req.compute and not req.e2e:
        raise DtkError("nothing to measure: --e2e-only needs --e2e")
    gpu = cuda_available()
    trt_problem = tensorrt_problem(gpu)
    if req.engine is not None and trt_problem:
        raise DtkError(f"cannot benchmark the engine {req.engine}: {trt_problem}")
    sources = model_sources(req)
    backends = "tensorrt" if req.engine is not None and not req.models and req.width is None \
        else req.backends
    pairs = select_variants(backends, req.variants, gpu)
    if req.engine is not None and ("tensorrt", "engine") not in pairs:
        pairs.append(("tensorrt", "engine"))
    if backends == "all" and not req.variants and not gpu:  # all backends on all devices: GPU rows too
        pairs += [(b, v) for b in VARIANTS for v in DEFAULT_GPU[b] if (b, v) not in pairs]
    # a requested backend that cannot run here is a 'could not run' row, never dropped
    skipped: list[dict[str, str]] = []
    if trt_problem:
        skipped = [{"model": s.label, "backend": b, "variant": v, "device": "cuda", "reason": trt_problem}
                   for s in sources for b, v in pairs if b == "tensorrt"]
        pairs = [(b, v) for b, v in pairs if b != "tensorrt"]
    if not gpu:
        no_gpu = "no CUDA GPU visible here (torch.cuda.is_available() is False)"
        cuda = [(b, v) for b, v in pairs if VARIANTS[b][v]["device"] == "cuda"]
        skipped += [{"model": s.label, "backend": b, "variant": v, "device": "cuda", "reason": no_gpu}
                    for s in sources for b, v in cuda]
        pairs = [p for p in pairs if p not in cuda]
    specs, skipped_specs = runner_specs(sources, pairs, threads=req.threads)
    skipped += skipped_specs
    if not specs:
        raise DtkError("no runner to benchmark: " + ("; ".join(
            f"{s['backend']}/{s['variant']}: {s['reason']}" for s in skipped) or
            f"no variant of {backends} chosen (--variants {req.variants})"))
    ceilings = measure_ceilings(req, gpu, progress)
    by_device: dict[str, float] = {}
    for c in ceilings:
        if c["dtype"] == "float32":
            by_device["cuda" if c["device"].startswith("cuda") else "cpu"] = c["best_gflops"]
    modes = (["compute"] if req.compute else []) + (["e2e"] if req.e2e else [])
    check = quality_check(req, sources) if req.quality else None
    cpu_env = cpu_environment()
    gpu_start = gpu_snapshot() if gpu else None
    if req.e2e and req.e2e_size is not None and req.frames_dir is not None:
        raise DtkError("give --frames or --e2e-size, not both")
    video = req.frames_dir if req.e2e and req.frames_dir is not None and frame_tree(req) is None else None
    e2e_frames = (contextlib.nullcontext(VideoClip(video, probe(video).frames)) if video is not None
                  else mosaic_frames(req.e2e_size) if req.e2e and req.e2e_size is not None
                  else frames_or_demo(req.frames_dir) if req.e2e else contextlib.nullcontext([]))
    with e2e_frames as frames:
        rows, skipped_run = sweep(specs, req.config, modes=modes, frames=frames, pipeline=req.pipeline_kind,
                                  ceilings=by_device, quality=check, progress=progress)
    gpu_end = gpu_snapshot() if gpu else None
    if not any(r.status == STATUS_RAN for r in rows):
        raise DtkError("no runner could be built, nothing was measured: " + "; ".join(
            f"{s['backend']}/{s['variant']}: {s['reason']}" for s in skipped + skipped_run))
    rows += not_run_rows(skipped, req.config.batches, modes)
    for r in rows:
        r.hints = row_hints(r.to_json(), cpu_env["usable_cores"]) if r.status == STATUS_RAN else []
        reason = below_floor(r.quality, req.min_psnr) if r.status == STATUS_RAN else None
        if reason:
            r.status, r.reason = STATUS_FAILED_QUALITY, reason
    extra: dict[str, Any] = {"hints": machine_hints(cpu_env),
                             "gpu_warnings": gpu_warnings(gpu_start, gpu_end)}
    if check is not None:
        extra["quality"] = {"where": check.where, "frames": len(check.sharp), "kernels": list(check.blurred),
                            "reference": check.reference_name, "min_psnr": req.min_psnr,
                            "known_blur": check.known_blur}
    if req.e2e:
        size = f"{req.e2e_size[1]}x{req.e2e_size[0]}" if req.e2e_size else ""
        where = (str(req.frames_dir) if req.frames_dir is not None else
                 f"{size} frames of real photos" if size else "demo frames")
        told, blurred = req.config.known_blur, req.config.e2e_blur
        extra["e2e_frames"] = {"where": where, "count": len(frames), "blur": blurred,
                               "mode": "native size, tiles as dtk run cuts them"
                               + (f", blurred with {blurred} first" if blurred
                                  else ", as given (--blur none)")
                               + (", video decoded with PyAV in the calling thread" if video else "")
                               + (f", told the blur {told}" if told else "")}
    if req.pipeline_bench:
        extra["pipeline"] = run_pipeline_bench(req, gpu)
    model = {"label": ", ".join(s.label for s in sources),
             "sources": [{"label": s.label, "files": {k: str(v) for k, v in s.files.items()},
                          "gflop_per_image": s.gflop_per_image, **s.info} for s in sources]}
    if req.latency_budget_ms is not None:
        extra["latency_budget"] = best_under_budget([r.to_json() for r in rows], req.latency_budget_ms)
    environment = {**collect(), **cpu_env, "threads": req.threads, "gpu_start": gpu_start, "gpu_end": gpu_end}
    return BenchReport(rows=rows, config=req.to_json(), environment=environment, model=model,
                       ceilings=ceilings, skipped=skipped + skipped_run, extra=extra)

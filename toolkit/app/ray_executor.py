"""`dtk run --executor ray`: the same job as `toolkit.app.run`, spread over a Ray cluster by Ray Data.

Ray schedules; dtk does not. The driver lists the frames and drops those already done (the
local resume rule, `toolkit.app.outputs.split_done`); only relative paths travel through Ray
(`ray.data.from_items`), never pixels. Each actor of an `ActorPoolStrategy` pool loads the
runner once and, per batch, reads, blurs when asked, infers and writes its own PNGs with the
local executor's naming (`output_path_for`) and atomic writer (`write_output`). Ray Data's
`write_images` cannot name files per row (ray-project/ray#64032), so it is not used.

Every node must see INPUT, OUTPUT and the model at the same paths (a shared file system);
fsspec URLs are not supported: paths are local file paths on every node.

Faults: Ray restarts a dead actor and reruns its task (actor pool defaults: max_restarts=-1,
max_task_retries=-1). Writes are atomic and names deterministic, so a rerun batch replaces
whole files with identical ones and never leaves half a file. A frame that cannot be decoded
is returned as failed (path, reason), not raised, so it is never retried forever. The summary
counts a frame as written only if its PNG is on disk and valid after the job.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from engines.spec import SUPPORTED_OPTIONS, RunnerSpec
from engines.tiled import check_known_blur
from toolkit.app.execute import deblur_batch
from toolkit.app.outputs import (
    RunSettings,
    check_frames_outside,
    check_output_dir,
    claim_output,
    expected_output_size,
    is_done,
    output_path_for,
    split_done,
)
from toolkit.app.request import RunRequest
from toolkit.app.run import RunSummary, batch_outputs, pipeline_config, write_output
from toolkit.core.errors import DtkError
from toolkit.core.frames import Frame, discover_frames
from toolkit.core.lazy import optional_import
from toolkit.core.pipeline import FrameBatch, open_pipeline

FAULT_ENV = "DTK_RAY_FAULT_MARKER"  # test hook: the first actor to see no marker file dies mid-batch


class DeblurActor:
    """One per Ray actor: opens the runner once; per batch it reads, resizes and blurs through the
    same pipeline as `dtk run` (DALI on a GPU when present, else the fallback), infers, writes PNGs."""

    def __init__(self, input_dir: str, output_dir: str, spec: RunnerSpec, request: RunRequest,
                 fault_marker: str | None = None):
        self.input_dir, self.output_dir = Path(input_dir), Path(output_dir)
        self.request = request.check()
        self.runner = spec.open()
        check_known_blur(self.runner, request.known_blur)
        self.fault_marker = fault_marker
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rels = [str(r) for r in batch["rel"]]
        frames = [Frame(self.input_dir, PurePosixPath(rel)) for rel in rels]
        r = self.request
        config = pipeline_config(r, batch=max(1, len(frames)), workers=1)
        device = "gpu" if self.runner.accepts_device_tensors else "cpu"
        failed: dict[str, str] = {}
        images: dict[str, int] = {}  # files of several images: how many (the first is deblurred)
        loaded: list[FrameBatch] = []
        for fb in open_pipeline(frames, config, device=device):
            failed.update(fb.failed)
            images.update(fb.multi_frame)
            if len(fb):
                loaded.append(fb)
        if self.fault_marker and not os.path.exists(self.fault_marker):
            Path(self.fault_marker).write_text(self.worker)
            os._exit(1)  # injected fault: the process dies mid-batch, before writing anything
        compute_s = 0.0
        for fb in loaded:
            t0 = time.perf_counter()
            res = deblur_batch(self.runner, fb.images, r.tiling, batch=r.batch, known_blur=r.known_blur)
            compute_s += time.perf_counter() - t0
            outputs, bad = batch_outputs(fb, res, r.keep_size)
            failed.update(bad)  # nothing of a failed frame is written
            for frame, data, size in outputs:
                write_output(output_path_for(frame, self.output_dir), data, size)
        status = ["failed" if str(f.path) in failed else "written" for f in frames]
        share = compute_s / max(1, status.count("written"))
        return {"rel": rels, "status": status, "reason": [failed.get(str(f.path), "") for f in frames],
                "worker": [self.worker] * len(rels), "images": [images.get(str(f.path), 1) for f in frames],
                "compute_s": [share if st == "written" else 0.0 for st in status]}


def actor_resources(cluster_cpus: float, workers: int, gpus_per_worker: float) -> float:
    """CPUs per actor: at most 1, and one whole CPU left free for Ray Data's own tasks.

    Actors holding every CPU starve the dataset's other tasks and it hangs (ray#44687).
    """
    if workers < 1:
        raise DtkError(f"--workers must be at least 1, got {workers}")
    spare = max(cluster_cpus - 1.0, 0.0)
    per = min(1.0, spare / workers)
    if per < 0.1 and gpus_per_worker <= 0:
        raise DtkError(f"the Ray cluster has {cluster_cpus:g} CPU(s): too few for {workers} worker(s) "
                       "plus Ray's own tasks; use fewer --workers or a bigger cluster")
    return math.floor(max(per, 0.1) * 100) / 100


def run_frames_ray(input_dir: Path | str, output_dir: Path | str, spec: RunnerSpec,
                   request: RunRequest) -> RunSummary:
    """Deblur `input_dir` into `output_dir` on Ray with `spec` (each actor opens it once) as
    `request` says (its executor options: workers, gpus_per_worker, ray_address); the output tree
    equals `toolkit.app.run.run_frames`'s. With `known_blur` the driver opens `spec` once first to
    ask whether the model can be told (a refusal before OUTPUT is claimed)."""
    ray = optional_import("ray")
    request.check()
    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir).resolve()
    check_output_dir(input_dir, output_dir)
    settings = RunSettings.for_spec(spec, request)
    unreadable: list[tuple[str, str]] = []
    frames = discover_frames(input_dir, unreadable)
    check_frames_outside(frames, output_dir)
    if request.known_blur is not None:  # can the model be told? Asked here, once, before OUTPUT is claimed
        with spec.open() as runner:
            check_known_blur(runner, request.known_blur)
    with claim_output(output_dir, settings, request.overwrite) as claim:
        summary = _run_ray_claimed(ray, frames, input_dir, output_dir, spec, request,
                                   overwrite=claim["overwrite"])
        summary.failed[:0] = unreadable  # folders left out are listed like unreadable frames
        claim["finished"] = not unreadable
    if request.strict and summary.failed:
        path, reason = summary.failed[0]
        raise DtkError(f"cannot read frame {path}: {reason} (--strict)")
    return summary


def _run_ray_claimed(ray: Any, frames: list[Frame], input_dir: Path, output_dir: Path, spec: RunnerSpec,
                     request: RunRequest, *, overwrite: bool) -> RunSummary:
    """run_frames_ray with OUTPUT locked and its manifest settled (`overwrite`: redo every frame)."""
    r = request
    workers, gpus_per_worker = r.workers, r.gpus_per_worker
    t_plan = time.perf_counter()
    todo, done = split_done(frames, output_dir, keep_size=r.keep_size, overwrite=overwrite)
    summary = RunSummary(str(input_dir), str(output_dir), len(frames), skipped_done=len(done),
                         batch=r.batch, blur=r.blur, known_blur=r.known_blur, keep_size=r.keep_size,
                         pipeline="ray", backend={"backend": spec.backend, "model": str(spec.model),
                                                  "executor": "ray", "workers": workers},
                         mode=r.mode, tile_overlap=None if r.resize else r.tile_overlap)
    summary.plan_s = time.perf_counter() - t_plan
    if not todo:
        return summary
    if not ray.is_initialized():
        ray.init(address=r.ray_address, ignore_reinit_error=True, log_to_driver=False)
    from ray.data import ActorPoolStrategy

    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    num_cpus = actor_resources(cpus, workers, gpus_per_worker)
    device = "cuda" if gpus_per_worker > 0 else "cpu"
    items = [{"rel": str(f.rel)} for f in todo]
    blocks = max(1, min(len(items), workers * 4))  # several blocks per worker: nobody idles
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    options: dict[str, Any] = {"device": device}
    if spec.threads is None and "threads" in SUPPORTED_OPTIONS[spec.backend]:
        options["threads"] = max(1, int(num_cpus))  # one actor's share of the node's cores
    map_kwargs: dict[str, Any] = dict(
        fn_constructor_kwargs=dict(
            input_dir=str(input_dir), output_dir=str(output_dir), spec=spec.with_options(**options),
            request=r, fault_marker=os.environ.get(FAULT_ENV)),
        compute=ActorPoolStrategy(size=workers),
        batch_size=r.batch,
        num_cpus=num_cpus,
    )
    if gpus_per_worker > 0:
        map_kwargs["num_gpus"] = gpus_per_worker
    t0 = time.perf_counter()
    rows = ds.map_batches(DeblurActor, **map_kwargs).take_all()
    summary.wall_s = time.perf_counter() - t0
    latest: dict[str, dict] = {r["rel"]: r for r in rows}  # a retried batch reports once per frame
    per_worker: Counter[str] = Counter()
    for f in todo:
        row = latest.get(str(f.rel))
        if row is not None and row["status"] == "failed":
            summary.failed.append((str(f.path), row["reason"]))
            continue
        if row is not None and int(row.get("images", 1)) > 1:
            summary.multi_frame.append((str(f.path), int(row["images"])))
        size = expected_output_size(f, r.keep_size)
        if size is not None and is_done(output_path_for(f, output_dir), size):
            summary.written += 1
            summary.compute_s += float(row["compute_s"]) if row else 0.0
            per_worker[row["worker"] if row else "?"] += 1
        else:
            summary.failed.append((str(f.path), "no valid output on disk after the Ray job"))
    summary.backend["frames_per_worker"] = dict(per_worker)
    return summary

"""dtk from Python: `Deblurrer` (frames in memory, or `dtk run` on a folder) and `run_folder`.

`from toolkit import Deblurrer` reaches this module lazily (toolkit/__init__.py), and this module
imports the engines (and with them torch) only when a `Deblurrer` is constructed or a folder is
run: importing dtk stays cheap and torch-free.

Example (runs on CPU with the shipped model; a doctest in tests/app/test_api.py):

>>> import numpy as np
>>> from toolkit import Deblurrer
>>> frame = np.full((120, 160, 3), 128, dtype=np.uint8)     # any H x W x 3 uint8 frame
>>> with Deblurrer("default", backend="auto") as deblur:
...     sharp = deblur(frame)
>>> sharp.shape, sharp.dtype
((120, 160, 3), dtype('uint8'))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.app import preflight
from toolkit.app.request import RunRequest
from toolkit.core.errors import DtkError
from toolkit.core.frames import DEFAULT_MAX_PIXELS
from toolkit.core.tiles import DEFAULT_OVERLAP
from toolkit.core.video import discover_videos

if TYPE_CHECKING:  # the engines import torch: at run time they are imported on first use
    from bench.suite import BenchReport, BenchRequest
    from engines.base import Runner
    from engines.spec import RunnerSpec
    from toolkit.app.evaluate import EvalResult
    from toolkit.app.run import RunSummary
    from toolkit.app.video_run import VideoRunSummary

__all__ = ["Deblurrer", "Evaluation", "FramesError", "ModelOutputError", "RunRequest", "bench",
           "evaluate_folder", "run_folder", "run_video"]


class FramesError(DtkError):
    """Frames a `Deblurrer` cannot take (type, dtype, shape or value range); the message says
    what it accepts."""


class ModelOutputError(DtkError):
    """The model returned an unusable batch for some frames (wrong shape, NaN/inf): the reason
    `dtk run` prints for those frames."""


def run_request(request: RunRequest | None, options: dict[str, Any]) -> RunRequest:
    """The run's options: `request`, or a RunRequest of the keywords given (its fields)."""
    if request is not None and options:
        raise DtkError(f"give the options in the RunRequest or as keywords, not both ({', '.join(options)})")
    if request is not None:
        return request
    unknown = sorted(set(options) - set(RunRequest.__dataclass_fields__))
    if unknown:
        raise DtkError(f"unknown run option(s): {', '.join(unknown)} (RunRequest's fields: "
                       f"{', '.join(RunRequest.__dataclass_fields__)})")
    return RunRequest(**options)


def run_folder(input_dir: Path | str, output_dir: Path | str, spec: RunnerSpec,
               request: RunRequest | None = None, *, on_open: Callable[[Runner], None] | None = None,
               progress: Callable[[int, int], None] | None = None,
               on_tiles: Callable[[int], None] | None = None,
               runner: Callable[[], Runner] | None = None,
               on_video: Callable[[int, int, Any], None] | None = None, **options: Any) -> RunSummary:
    """`dtk run INPUT -o OUTPUT` with `spec`: the command's checks (preflight.run_cmd), then the
    local job or the Ray one; returns the `RunSummary` whose `to_json()` `--json` prints. The run's
    options: `request` (a `RunRequest`), or its fields as keywords (batch=, blur=, known_blur=,
    resize=, keep_size=, tile_overlap=, max_tile_pixels=, overwrite=, strict=, pipeline=,
    max_pixels=, codec=, crf=, pix_fmt=, resumable=, executor=, workers=, gpus_per_worker=,
    ray_address=); defaults are `dtk run`'s.

    Videos under INPUT (any depth) are deblurred too, each into OUTPUT/<its path> as `run_video`
    writes one (`codec`, `crf`, `pix_fmt`, `resumable` apply to each; `on_video(i, n, video)`
    before each); the summary's `videos` say what became of them.

    `runner` (local only): a callable returning an open runner the caller owns and keeps open
    (a `Deblurrer`'s); by default the job opens `spec` and closes it at the end.

    `known_blur` (k3, k7 or k11): the blur the frames carry, told to the network instead of
    decided (k3: a pass); recorded in the run manifest. `blur` still blurs the frames first.
    `max_tile_pixels`: the most pixels one runner call holds (None: a whole 1080p frame where
    the memory is there; engines.tiled); a frame that fits is deblurred in one pass.
    """
    from toolkit.app.ray_executor import run_frames_ray  # engines and torch: on first use
    from toolkit.app.run import run_job
    from toolkit.app.video_run import run_tree_job

    request = run_request(request, options)
    unreadable: list[tuple[str, str]] = []
    videos = discover_videos(input_dir, unreadable) if Path(input_dir).is_dir() else []
    preflight.run_cmd(Path(input_dir), request, model=spec.model, threads=spec.threads, json_out=None,
                      videos=videos)
    if videos:
        return run_tree_job(input_dir, output_dir, spec, videos, request, unreadable=unreadable,
                            on_open=on_open, runner=runner, on_video=on_video, progress=progress,
                            on_tiles=on_tiles)
    if request.executor == "ray":
        return run_frames_ray(input_dir, output_dir, spec, request)
    return run_job(input_dir, output_dir, spec, request, on_open=on_open, progress=progress,
                   on_tiles=on_tiles, runner=runner)


def run_video(input_path: Path | str, spec: RunnerSpec, request: RunRequest | None = None, *,
              output: Path | str | None = None, frames_out: Path | str | None = None,
              on_open: Callable[[Runner], None] | None = None,
              progress: Callable[[int, int], None] | None = None,
              on_tiles: Callable[[int], None] | None = None,
              runner: Callable[[], Runner] | None = None, **options: Any) -> VideoRunSummary:
    """`dtk run CLIP -o OUT.mp4` (or `frames_out=DIR`): the checks (paths, options, the clip probed,
    the encoder) before the model loads, then the clip deblurred; returns the summary `--json`
    prints. Options as `run_folder`'s; for a clip: `codec` None: libx264 when PyAV has it; `crf`
    None: the codec's default; `resumable`: deblurred frames kept as PNGs beside the output until
    it is written, so a rerun resumes; `pipeline`: the decoder (fallback: PyAV, dali: DALI, auto:
    DALI on a GPU when it can, else PyAV; core.pipeline.dali_video)."""
    from toolkit.app.video_run import plan_video, run_video_job  # engines and PyAV: on first use

    request = run_request(request, options)
    out = None if output is None else Path(output)
    frames = None if frames_out is None else Path(frames_out)
    preflight.run_video_cmd(Path(input_path), request, output=out, frames_out=frames, model=spec.model,
                            threads=spec.threads, json_out=None)
    job = plan_video(input_path, output=out, frames_out=frames, codec=request.codec, crf=request.crf,
                     pix_fmt=request.pix_fmt, max_pixels=request.max_pixels, resumable=request.resumable,
                     pipeline=request.pipeline)
    return run_video_job(job, spec, request, on_open=on_open, runner=runner, progress=progress,
                         on_tiles=on_tiles)


@dataclass
class Evaluation:
    """What `dtk eval` renders: the scores, the model that was scored (its `describe()`, None for
    predictions or baselines alone) and the plot files written."""

    result: EvalResult
    model: dict[str, Any] | None = None
    plots: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """`dtk eval --json`: the result's JSON, with the model's description when one was scored."""
        return {**self.result.to_json(), **({"model": self.model} if self.model is not None else {})}


def evaluate_folder(sharp_dir: Path | str, *, model: str | Path | None = None, engine: Path | None = None,
                    predictions: Path | None = None, backend: str = "auto", kernels: str = "k3,k7,k11",
                    baselines: str = "prior,wiener", native: bool = False,
                    tile_overlap: int = DEFAULT_OVERLAP, strict: bool = False, ssim: bool = True,
                    max_pixels: int = DEFAULT_MAX_PIXELS, plot: Path | None = None,
                    json_out: Path | str | None = None, csv: Path | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    known_blur: bool = False) -> Evaluation:
    """`dtk eval SHARP_DIR`: blurred, a model (`model`: "default" or a file, or a TensorRT `engine`)
    or `predictions` made elsewhere, and the known-kernel `baselines`, scored against the sharp
    frames (resized to 256x448, or at their own size with `native`); writes the box plot and the
    example strip when `plot` is given. `known_blur`: the model is also scored told each kernel
    ("model (told)", as `dtk run --known-blur K` runs it). Checks every option and path (`json_out`,
    `csv` and `plot` too, which the caller writes) before any model loads, as the command does."""
    from engines.tiled import Tiling
    from toolkit.core.constants import FRAME_SIZE
    from toolkit.core.kernels import parse_kernels

    # checked with or without --native (as dtk run checks it), before a video is decoded
    ks = parse_kernels(kernels)
    tiling = Tiling(FRAME_SIZE, tile_overlap)
    if Path(sharp_dir).is_file():
        return _evaluate_video(Path(sharp_dir), model=model, engine=engine, predictions=predictions,
                               backend=backend, kernels=kernels, baselines=baselines, native=native,
                               tile_overlap=tile_overlap, strict=strict, ssim=ssim, max_pixels=max_pixels,
                               plot=plot, json_out=json_out, csv=csv, progress=progress,
                               known_blur=known_blur)
    if predictions is not None and Path(predictions).is_file():
        raise DtkError(f"--predictions {predictions} is a video: score it against the sharp video, "
                       f"`dtk eval SHARP.mp4 --predictions {predictions} --kernels K`")
    from engines.spec import RunnerSpec
    from engines.tiled import check_known_blur
    from toolkit.app import evaluate as ev  # scipy, scikit-image: on first use

    sharp_dir = Path(sharp_dir)
    preflight.eval_cmd(sharp_dir, kernels=ks, max_pixels=max_pixels,
                       model=None if model is None else str(model), engine=engine, predictions=predictions,
                       json_out=None if json_out is None else Path(json_out), csv=csv, plot=plot,
                       known_blur=known_blur)
    if sum(x is not None for x in (model, engine, predictions)) > 1:
        raise DtkError("give at most one of --model, --engine, --predictions")
    others = ev.baseline_methods(baselines)  # a typo fails before the model loads
    methods: dict[str, Any] = {}
    runner = None
    if predictions is not None:
        methods["predictions"] = ev.predictions_method(predictions, sharp_dir, ks, native=native)
    elif model is not None or engine is not None:
        spec = (RunnerSpec.choose("tensorrt", engine) if engine is not None
                else RunnerSpec.choose(backend, None if str(model) == "default" else model, size=FRAME_SIZE))
        runner = spec.open()
        methods["model"] = ev.runner_method(runner, tiling if native else None)
        if known_blur:
            methods[ev.TOLD] = ev.runner_method(runner, tiling if native else None, told=True)
    methods.update(others)
    try:
        if known_blur and runner is not None:
            check_known_blur(runner, ks[0].name)  # before any frame is scored
        result = ev.evaluate_tree(sharp_dir, ks, methods, strict=strict, with_ssim=ssim, progress=progress,
                                  max_pixels=max_pixels, native=native)
        evaluation = Evaluation(result, runner.describe() if runner is not None else None)
        if plot is not None:
            from toolkit.app.plots import example_strip, psnr_boxplot  # matplotlib: only for plots

            evaluation.plots.append(psnr_boxplot(result, plot))
            primary = next((m for m in ("model", "predictions") if m in methods), None)
            if primary:
                strip = Path(plot).with_name(Path(plot).stem + "-examples" + Path(plot).suffix)
                evaluation.plots.append(example_strip(ev.examples(result, methods, ks, primary,
                                                                  native=native), strip))
    finally:
        if runner is not None:
            runner.close()
    return evaluation


def _evaluate_video(sharp: Path, *, predictions: Path | None, **options: Any) -> Evaluation:
    """`dtk eval SHARP.mp4 [--predictions PRED.mp4]`: both decoded to PNG folders (frame i of one
    paired with frame i of the other, which must have the same timestamps), then scored as folders;
    frames that fail to decode are listed as skipped."""
    import contextlib

    from toolkit.core.video import frames_folder  # PyAV: on first use

    preflight.reports({"--json": options["json_out"], "--csv": options["csv"],
                       **preflight.plot_paths(options["plot"])}, inputs=[sharp, predictions])
    with contextlib.ExitStack() as stack:
        ref = stack.enter_context(frames_folder(sharp))
        pred_dir = None
        failed = list(ref.failed)
        if predictions is not None:
            if not Path(predictions).is_file():
                raise DtkError(f"{sharp} is a video: give --predictions as a video too (dtk run {sharp} -o "
                               "PRED.mp4), not a folder")
            pred = stack.enter_context(frames_folder(predictions))
            if pred.pts != ref.pts:
                raise DtkError(f"{predictions} does not hold {sharp}'s frames: {len(pred.pts)} frames vs "
                               f"{len(ref.pts)}, or other timestamps; score the output of `dtk run {sharp}`")
            pred_dir, failed = pred.folder, failed + pred.failed
        if failed and options["strict"]:
            raise DtkError(f"cannot decode {failed[0][0]}: {failed[0][1]} (--strict)")
        evaluation = evaluate_folder(ref.folder, predictions=pred_dir, **options)
        evaluation.result.skipped[:0] = failed
        evaluation.result.root = str(sharp)  # frames are named <index:08d> in the temporary folder
        return evaluation


def bench(request: BenchRequest, progress: Callable[[str], None] | None = None) -> BenchReport:
    """`dtk bench`: every backend x variant x batch of `request` measured; the `BenchReport` whose
    `to_json()` is the command's `--json` and whose rows its table shows."""
    from bench.suite import run_bench

    return run_bench(request, progress=progress)


class Deblurrer:
    """Deblur frames in memory (`deblur(frames)`) or a folder (`deblur.run(...)`) with one model,
    loaded once on first use and kept until `close()` (or the end of a `with` block).

    `model`: "default" (the shipped model) or any file `dtk run --model` takes; `backend`:
    auto|tensorrt|onnxruntime|openvino|torch; the keyword options are `dtk run`'s, checked here (before
    anything loads) by the same functions, with the same messages, as `DtkError`s.

    Frames go through `dtk run`'s path: at their own size, in one pass where the frame fits
    `max_tile_pixels` (else overlapping tiles, `tile_overlap` pixels shared), one blur decision
    per frame, `batch` frames at a time; the
    output equals the PNG `dtk run` writes for the same frame, byte for byte. `known_blur` (k3, k7,
    k11; `dtk run --known-blur`): the blur every frame carries, told to the network instead of
    decided (k3: each frame is returned as it is); `run()` uses it too.

    Thread safety: calls are serialized by an internal lock (the runner, its buffers and CUDA
    graphs are not shareable). For work in parallel use one `Deblurrer` per thread.

    >>> import numpy as np
    >>> with Deblurrer(batch=2) as deblur:
    ...     frames = [np.zeros((64, 96, 3), np.uint8), np.full((300, 500, 3), 200, np.uint8)]
    ...     [im.shape for im in deblur(frames)]
    [(64, 96, 3), (300, 500, 3)]
    """

    def __init__(self, model: str | Path = "default", backend: str = "auto", *, batch: int = 8,
                 tile_overlap: int = DEFAULT_OVERLAP, precision: str = "fp32", threads: int | None = None,
                 compile: bool = False, channels_last: bool = False,  # noqa: A002 - the CLI's name
                 cuda_graphs: bool | None = None, known_blur: str | None = None,
                 max_tile_pixels: int | None = None) -> None:
        from engines.spec import RunnerSpec  # engines.spec imports torch: on construction
        from toolkit.core.constants import FRAME_SIZE

        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))):
            raise DtkError(f"--threads must be a whole number, got {threads!r}")  # not a RunRequest field
        # `dtk run`'s checks and messages (kinds too); whether the model can be told the blur: once it opens
        self.request = RunRequest(batch=batch, tile_overlap=tile_overlap, known_blur=known_blur,
                                  max_tile_pixels=max_tile_pixels).check()
        self.tiling, self.batch, self.known_blur = self.request.tiling, batch, known_blur
        self.spec: RunnerSpec = RunnerSpec.choose(
            backend, None if str(model) == "default" else model, precision=precision, compile=compile,
            channels_last=channels_last, cuda_graphs=cuda_graphs, threads=threads, size=FRAME_SIZE)
        self._runner: Runner | None = None
        self._lock = threading.RLock()

    # -- the runner ---------------------------------------------------------------------------

    def open(self) -> Runner:
        """The loaded runner (loads the model the first time; later calls reuse it)."""
        with self._lock:
            if self._runner is None:
                self._runner = self.spec.open()
            return self._runner

    @property
    def loaded(self) -> bool:
        """Whether the model is loaded now."""
        return self._runner is not None

    def close(self) -> None:
        """Free the runner (its sessions, buffers and GPU memory); the next call loads it again."""
        with self._lock:
            runner, self._runner = self._runner, None
            if runner is not None:
                runner.close()
                _release_cuda_cache()

    def __enter__(self) -> Deblurrer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Deblurrer(backend={self.spec.backend!r}, model={str(self.spec.model)!r}, "
                f"batch={self.batch}, tile_overlap={self.tiling.overlap}, "
                f"precision={self.spec.precision!r}, known_blur={self.known_blur!r}, loaded={self.loaded})")

    # -- frames in memory ---------------------------------------------------------------------

    def __call__(self, frames: Any) -> Any:
        """Deblur `frames`, returned in their own type, layout, dtype and device:

        - an H x W x 3 uint8 NumPy array -> an H x W x 3 uint8 array;
        - an N x H x W x 3 uint8 array -> N x H x W x 3 uint8;
        - a list (or tuple) of H x W x 3 uint8 arrays, any sizes -> a list of them;
        - a torch N x 3 x H x W float tensor on the 0..1 scale -> the same shape, dtype and device
          (quantized to uint8 on the way in, as a PNG would be, by core.convert's rule).
        """
        if _is_tensor(frames):
            return self._call_torch(frames)
        if isinstance(frames, np.ndarray):
            _check_uint8(frames, "frames")
            if frames.ndim == 3:
                return self.deblur_images([frames])[0]
            if frames.ndim == 4:
                out = np.empty_like(frames)
                for i, im in enumerate(self.deblur_images(list(frames))):
                    out[i] = im
                return out
            raise FramesError(f"frames must be H x W x 3 or N x H x W x 3 uint8, got shape {frames.shape}")
        if isinstance(frames, (list, tuple)):
            for i, im in enumerate(frames):
                if not isinstance(im, np.ndarray):
                    raise FramesError(f"frames[{i}] is a {type(im).__name__}: a list holds H x W x 3 uint8 "
                                      "NumPy arrays")
                _check_uint8(im, f"frames[{i}]")
                if im.ndim != 3:
                    raise FramesError(f"frames[{i}] must be H x W x 3 uint8, got shape {im.shape}")
            return self.deblur_images(list(frames))
        raise FramesError(f"cannot deblur a {type(frames).__name__}: pass an H x W x 3 or N x H x W x 3 "
                          "uint8 NumPy array, a list of them, or a torch N x 3 x H x W float tensor (0..1)")

    def deblur_images(self, images: Sequence[Any], *, on_device: bool = False) -> list[Any]:
        """H x W x 3 uint8 frames (any sizes) -> their deblurred H x W x 3 uint8 frames, `batch`
        frames per step as `dtk run` batches them (toolkit.app.execute.deblur_images, the path of
        every run). With a runner that takes device tensors, frames may be uint8 tensors on its
        GPU, and `on_device` returns tensors there."""
        from toolkit.app.execute import deblur_images

        for i, im in enumerate(images):
            if _is_tensor(im):
                if im.dtype.is_floating_point or im.ndim != 3 or im.shape[-1] != 3:
                    raise FramesError(f"images[{i}] must be an H x W x 3 uint8 tensor, got "
                                      f"{tuple(im.shape)} {im.dtype}")
                continue
            if not isinstance(im, np.ndarray):
                raise FramesError(f"images[{i}] is a {type(im).__name__}: pass H x W x 3 uint8 NumPy arrays")
            _check_uint8(im, f"images[{i}]")
            if im.ndim != 3:
                raise FramesError(f"images[{i}] must be H x W x 3 uint8, got shape {im.shape}")
        out: list[Any] = []
        with self._lock:
            runner = self.open()
            for start in range(0, len(images), self.batch):
                chunk = [im if _is_tensor(im) else np.ascontiguousarray(im)
                         for im in images[start:start + self.batch]]
                res = deblur_images(runner, chunk, self.tiling, batch=self.batch, on_device=on_device,
                                    known_blur=self.known_blur)
                for k, (im, why) in enumerate(zip(res.images, res.failures, strict=True)):
                    if im is None:
                        raise ModelOutputError(f"frame {start + k}: {why}")
                    out.append(im)
        return out

    def _call_torch(self, x: Any) -> Any:
        """N x 3 x H x W float (0..1) -> the same. With a runner that takes device tensors (CUDA)
        the frames are converted, padded, deblurred and stitched on its GPU (no host copy);
        otherwise through the host, and the result is moved back to `x`'s device."""
        import torch  # the caller passed a tensor: torch is loaded already

        from toolkit.core.convert import nchw_to_nhwc_uint8, unit_to_uint8_tensor

        if x.ndim != 4 or x.shape[1] != 3 or not torch.is_floating_point(x):
            raise FramesError(f"a torch tensor must be N x 3 x H x W float on the 0..1 scale, got "
                              f"{tuple(x.shape)} {x.dtype}")
        _check_finite(int((~torch.isfinite(x)).sum()), "frames")
        if len(x) == 0:
            return x.clone()
        with self._lock:
            if self.open().accepts_device_tensors:
                frames = unit_to_uint8_tensor(x).permute(0, 2, 3, 1)  # N x H x W x 3 uint8, on x's device
                out = torch.stack(self.deblur_images(list(frames), on_device=True))
            else:
                out = torch.from_numpy(np.stack(self.deblur_images(list(nchw_to_nhwc_uint8(x)))))
        out = out.to(x.device).permute(0, 3, 1, 2)
        return out.float().div_(255.0).to(x.dtype).contiguous()

    # -- a folder: dtk run --------------------------------------------------------------------

    def run(self, input_dir: Path | str, output_dir: Path | str, *,
            progress: Callable[[int, int], None] | None = None, **options: Any) -> RunSummary:
        """`dtk run INPUT_DIR -o OUTPUT_DIR` with this model and options (same checks, resume and
        manifest), reusing the loaded runner (Ray workers load their own); returns the
        `RunSummary` (`.to_json()` is what `dtk run --json` prints). `options`: `run_folder`'s
        (blur=, resize=, keep_size=, overwrite=, strict=, pipeline=, max_pixels=, executor=, ...);
        batch, tile_overlap, max_tile_pixels and known_blur are this Deblurrer's.

        >>> import tempfile
        >>> from toolkit.core.demo import write_demo
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = write_demo(root / "frames", 1, photos=("astronaut", "coffee"))
        >>> with Deblurrer() as deblur:
        ...     summary = deblur.run(root / "frames", root / "out", blur="k7")
        >>> summary.written, sorted(p.name for p in (root / "out").rglob("*.png"))
        (2, ['00000000.png', '00000000.png'])
        >>> import shutil; shutil.rmtree(root)
        """
        mine = sorted(set(options) & {"batch", "tile_overlap", "max_tile_pixels", "known_blur"})
        if mine:
            raise DtkError(f"{', '.join(mine)}: set when the Deblurrer is made "
                           f"(Deblurrer(..., {mine[0]}=...))")
        r = self.request
        request = run_request(None, {**options, "batch": r.batch, "tile_overlap": r.tile_overlap,
                                     "max_tile_pixels": r.max_tile_pixels, "known_blur": r.known_blur})
        with self._lock:
            return run_folder(input_dir, output_dir, self.spec, request, progress=progress, runner=self.open)

    # -- quality: dtk eval -------------------------------------------------------------------

    def evaluate(self, sharp_dir: Path | str, *, kernels: str = "k3,k7,k11", baselines: str = "prior,wiener",
                 native: bool = False, strict: bool = False, ssim: bool = True,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 progress: Callable[[int, int], None] | None = None,
                 known_blur: bool = False) -> EvalResult:
        """`dtk eval SHARP_DIR --model <this model>`: every sharp frame blurred with each kernel,
        restored by this model (`native`: at its own size, in tiles, as `dtk run`; `known_blur`:
        also told each kernel, the method "model (told)") and the `baselines`, scored against the
        sharp frame; returns the `EvalResult` the command renders (`.to_json()` is its `--json`,
        less the "model" entry the command adds).

        >>> import tempfile
        >>> from toolkit.core.demo import write_demo
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = write_demo(root, 1, photos=("astronaut",))
        >>> with Deblurrer() as deblur:
        ...     result = deblur.evaluate(root, kernels="k7", baselines="none", ssim=False)
        >>> [(s.kernel, s.method) for s in result.summaries()]
        [('k7', 'blurred'), ('k7', 'model')]
        >>> import shutil; shutil.rmtree(root)
        """
        from engines.tiled import check_known_blur
        from toolkit.app import evaluate as ev  # scipy, scikit-image: on first use
        from toolkit.core.kernels import parse_kernels

        ks = parse_kernels(kernels)
        preflight.eval_cmd(Path(sharp_dir), kernels=ks, max_pixels=max_pixels, model=str(self.spec.model),
                           engine=None, predictions=None, json_out=None, csv=None, plot=None,
                           known_blur=known_blur)
        others = ev.baseline_methods(baselines)  # a typo fails before the model loads
        with self._lock:
            runner, tiling = self.open(), self.tiling if native else None
            methods = {"model": ev.runner_method(runner, tiling, self.batch)}
            if known_blur:
                check_known_blur(runner, ks[0].name)
                methods[ev.TOLD] = ev.runner_method(runner, tiling, self.batch, told=True)
            methods.update(others)
            return ev.evaluate_tree(sharp_dir, ks, methods, strict=strict, with_ssim=ssim, progress=progress,
                                    max_pixels=max_pixels, native=native)


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _check_finite(bad: int, name: str) -> None:
    """FramesError when `bad` values of the frames are not finite: NaN/inf would be quantized to
    some byte and deblurred as if it were a picture (the CLI reads only whole images)."""
    if bad:
        raise FramesError(f"{name} hold {bad} non-finite value(s) (NaN/inf): a frame is finite, on the 0..1 "
                          "scale (float) or 0..255 (uint8); nothing was deblurred")


def _check_uint8(frames: np.ndarray, name: str) -> None:
    if frames.dtype.kind in "fc":
        _check_finite(int(np.size(frames) - np.count_nonzero(np.isfinite(frames))), name)
    if frames.dtype != np.uint8:
        raise FramesError(f"{name} must be uint8 (0..255), got {frames.dtype}: convert it, e.g. "
                          "np.clip(x * 255, 0, 255).round().astype(np.uint8) for floats on the 0..1 scale")
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise FramesError(f"{name} must hold RGB frames (last axis 3: H x W x 3), got shape {frames.shape}")


def _release_cuda_cache() -> None:
    """Give the CUDA memory torch cached back to the device (when torch is loaded and has CUDA)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()

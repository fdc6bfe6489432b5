"""PSNR/SSIM of a frame tree: blurred vs sharp per kernel, and any deblurring method vs sharp.

Each sharp frame (resized to 256x448: the seed's protocol; at its own size with `native=True`) is
blurred with each kernel; each method turns the blurred frame back into an estimate of the sharp
one (a model at native size through tiles, engines.tiled; "model (told)": the same model told each
kernel instead of deciding, `dtk eval --known-blur`). "blurred" is the do-nothing method:
the seed's "Average PSNR of Blurred Images". Means count an identical frame (PSNR inf) as
`PSNR_CAP` dB; the count of identical frames is reported beside them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engines.tiled import Tiling, check_known_blur
from toolkit.app.execute import deblur_images
from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.baselines import BASELINES
from toolkit.core.bounds import parse_list
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.convert import from_nchw, to_nchw
from toolkit.core.errors import DtkError, FrameSkipped
from toolkit.core.evidence import known_rows
from toolkit.core.frames import (
    DEFAULT_MAX_PIXELS,
    Frame,
    FrameReadError,
    discover_frames,
    oriented_size,
    pair_frames,
    read_frame,
    resize_frame,
)
from toolkit.core.kernels import BlurKernel, blur
from toolkit.core.metrics import PSNR_CAP, capped, json_number, psnr, ssim, worse_share
from toolkit.core.pipeline import PipelineConfig, open_pipeline

# A method restores one frame's blurred copies: (frame, [blurred RGB uint8 HxWx3 per kernel],
# kernels) -> [restored RGB uint8 HxWx3 per kernel]. One call per frame lets a model batch them.
Method = Callable[[Frame, list[np.ndarray], list[BlurKernel]], list[np.ndarray]]

# Kernels left out of the summary row: k3 (3x3, sigma 0.3) barely blurs, every method scores
# ~60-70 dB on it, and averaging that with k7/k11 ranks methods by how well they pass k3 through.
SUMMARY_EXCLUDED = frozenset({"k3"})


class FrameNotScored(FrameSkipped):
    """A method cannot score this frame (e.g. a prediction of another size): the frame is skipped."""


@dataclass(frozen=True)
class FrameScore:
    rel: str
    sequence: str
    kernel: str
    method: str
    psnr: float
    ssim: float


@dataclass
class Summary:
    """Statistics of one (kernel, method) over frames; gains are against 'blurred'."""

    kernel: str
    method: str
    frames: int
    mean_psnr: float
    median_psnr: float
    worst_psnr: float
    worst_frame: str
    mean_ssim: float
    identical: int
    gain_db: float | None = None
    worse_share: float | None = None


@dataclass
class EvalResult:
    root: str
    kernels: list[str]
    methods: list[str]
    scores: list[FrameScore] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    multi_frame: list[tuple[str, int]] = field(default_factory=list)  # (path, images): first one scored

    def summaries(self, by_sequence: bool = False) -> list[Summary]:
        """Per kernel x method (and per sequence when asked), plus summary rows over kernels.

        The summary row averages the kernels that really blur (`summary_label()`, e.g. "k7+k11"):
        k3 (sigma 0.3) is nearly a pass-through, its ~70 dB would swamp the mean and misrank methods.
        """
        label = self.summary_label()
        groups: dict[tuple[str, str, str], list[FrameScore]] = {}
        for s in self.scores:
            seq = s.sequence if by_sequence else ""
            groups.setdefault((seq, s.kernel, s.method), []).append(s)
            if label and s.kernel in label.split("+"):
                groups.setdefault((seq, label, s.method), []).append(s)
        out = []
        for (seq, kernel, method), rows in groups.items():
            base = {(r.rel, r.kernel): r.psnr for r in groups.get((seq, kernel, "blurred"), [])}
            out.append(_summarise(kernel if not seq else f"{seq}/{kernel}", method, rows, base))
        order = {k: i for i, k in enumerate([*self.kernels, label])}
        morder = {m: i for i, m in enumerate(self.methods)}
        out.sort(key=lambda s: (s.kernel.split("/")[0] if by_sequence else "",
                                order.get(s.kernel.split("/")[-1], 99), morder.get(s.method, 99)))
        return out

    def summary_label(self) -> str | None:
        """The kernels the summary row averages, joined by '+' ("k7+k11"); None when that would be
        one kernel's row again or nothing (k3 alone, or one blurring kernel)."""
        kept = [k for k in self.kernels if k not in SUMMARY_EXCLUDED]
        return "+".join(kept) if len(kept) > 1 else None

    def to_json(self) -> dict:
        """JSON-ready dict: PSNR inf is written as null."""
        def clean(d: dict) -> dict:
            return {k: json_number(v) if isinstance(v, float) else v for k, v in d.items()}

        return {
            "root": self.root,
            "kernels": self.kernels,
            "methods": self.methods,
            "psnr_cap_db": PSNR_CAP,
            "summary_row": {"kernel": self.summary_label(), "excludes": sorted(SUMMARY_EXCLUDED)},
            "summary": [clean(asdict(s)) for s in self.summaries()],
            "per_sequence": [clean(asdict(s)) for s in self.summaries(by_sequence=True)],
            "frames": [clean(asdict(s)) for s in self.scores],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "multi_frame": [{"path": p, "images": n} for p, n in self.multi_frame],
        }


def _summarise(kernel: str, method: str, rows: list[FrameScore],
               base: dict[tuple[str, str], float]) -> Summary:
    values = [capped(r.psnr) for r in rows]
    worst = min(rows, key=lambda r: r.psnr)
    summary = Summary(
        kernel=kernel, method=method, frames=len(rows),
        mean_psnr=statistics.fmean(values), median_psnr=statistics.median(values),
        worst_psnr=worst.psnr, worst_frame=f"{worst.rel} ({worst.kernel})",
        mean_ssim=statistics.fmean(r.ssim for r in rows),
        identical=sum(math.isinf(r.psnr) for r in rows),
    )
    if method != "blurred" and base:
        pairs = [(capped(r.psnr), capped(base[(r.rel, r.kernel)])) for r in rows
                 if (r.rel, r.kernel) in base]
        if pairs:
            summary.gain_db = statistics.fmean(p - b for p, b in pairs)
            summary.worse_share = worse_share(pairs)
    return summary


def evaluate_tree(
    root: Path | str,
    kernels: Sequence[BlurKernel],
    methods: dict[str, Method] | None = None,
    *,
    strict: bool = False,
    with_ssim: bool = True,
    progress: Callable[[int, int], None] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    native: bool = False,
) -> EvalResult:
    """Score every frame of `root` for every kernel and method ('blurred' always included).

    A frame over `max_pixels` is an unreadable frame: skipped and listed (raised when strict); so
    is a folder of the tree that cannot be read. `native`: frames at their own size (else resized
    to 256x448, the seed's protocol)."""
    skipped: list[tuple[str, str]] = []
    frames = discover_frames(root, skipped)
    if skipped and strict:
        raise DtkError(f"cannot read {skipped[0][0]}: {skipped[0][1]} (--strict)")
    methods = dict(methods or {})
    result = EvalResult(str(root), [k.name for k in kernels], ["blurred", *methods])
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(frames))

    if not frames:
        return result
    for frame, sharp in _sharp_frames(frames, strict, max_pixels, skipped, tick, native, result.multi_frame):
        blurred = [blur(sharp, k) for k in kernels]
        estimates = {"blurred": blurred}
        try:
            estimates.update({name: fn(frame, blurred, list(kernels)) for name, fn in methods.items()})
        except FrameNotScored as exc:  # no method is scored on it, so every method has the same frames
            if strict:
                raise
            skipped.append((exc.path, exc.reason))
            tick()
            continue
        for name, images in estimates.items():
            for k, estimate in zip(kernels, images, strict=True):
                result.scores.append(FrameScore(
                    rel=str(frame.rel), sequence=frame.sequence, kernel=k.name, method=name,
                    psnr=psnr(estimate, sharp),
                    ssim=ssim(estimate, sharp) if with_ssim else float("nan"),
                ))
        tick()
    result.skipped = skipped
    return result


def _sharp_frames(frames: list[Frame], strict: bool, max_pixels: int | None, skipped: list[tuple[str, str]],
                  tick: Callable[[], None], native: bool = False,
                  multi_frame: list[tuple[str, int]] | None = None) -> Iterator[tuple[Frame, np.ndarray]]:
    """(frame, RGB uint8: 256x448, or its own size when `native`) read by the pipeline `dtk run`
    reads with; an unreadable frame is listed in `skipped` (raised when strict); a file of several
    images (its first scored) in `multi_frame`."""
    config = PipelineConfig(batch_size=4, max_pixels=max_pixels, size=None if native else FRAME_SIZE)
    for fb in open_pipeline(frames, config):
        if multi_frame is not None:
            multi_frame.extend(fb.multi_frame)
        for path, reason in fb.failed:
            if strict:
                raise FrameReadError(path, reason)
            skipped.append((path, reason))
            tick()
        yield from zip(fb.frames, fb.images if fb.native else from_nchw(fb.images), strict=True)


def baseline_method(fn: Callable[[np.ndarray, BlurKernel], np.ndarray]) -> Method:
    """A per-image deconvolution (toolkit.core.baselines) as a Method."""
    def method(_frame: Frame, blurred: list[np.ndarray], kernels: list[BlurKernel]) -> list[np.ndarray]:
        return [fn(b, k) for b, k in zip(blurred, kernels, strict=True)]

    return method


def baseline_methods(names: str) -> dict[str, Method]:
    """--baselines 'prior,wiener' (or 'none'): each known-kernel baseline as a Method; an empty
    list is refused (write 'none')."""
    chosen = [] if names.strip() == "none" else parse_list(names, "--baselines",
                                                           f"{', '.join(BASELINES)}, or none")
    for name in chosen:
        if name not in BASELINES:
            raise DtkError(f"unknown baseline {name!r}: choose from {', '.join(BASELINES)} or none")
    return {name: baseline_method(BASELINES[name]) for name in chosen}


TOLD = "model (told)"  # the method name of the model told each kernel (dtk eval --known-blur)


def runner_method(runner, tiling: Tiling | None = None, batch: int = 8, told: bool = False) -> Method:
    """A Runner (engines.base) as a Method: one frame's blurred copies go in as one batch, or with
    `tiling` (native size) as `dtk run` deblurs them: tiles, one decision per frame. `told`: each
    copy's kernel is told to the runner (`dtk run --known-blur`), nothing is decided."""
    def method(frame: Frame, blurred: list[np.ndarray], kernels: list[BlurKernel]) -> list[np.ndarray]:
        if tiling is None:
            if not told:
                return from_nchw(runner.infer(to_nchw(blurred)))
            for k in kernels:
                check_known_blur(runner, k.name)
            known = np.concatenate([known_rows(k.name, 1) for k in kernels])
            return from_nchw(runner.infer(to_nchw(blurred), known=known))
        if told:  # one kernel per call: deblur_frames tells every frame of a call the same blur
            results = [deblur_images(runner, [b], tiling, batch=batch, known_blur=k.name)
                       for b, k in zip(blurred, kernels, strict=True)]
            images = [res.images[0] for res in results]
            failures = [res.failures[0] for res in results]
        else:
            res = deblur_images(runner, blurred, tiling, batch=batch)
            images, failures = list(res.images), res.failures
        for why in failures:
            if why:
                raise FrameNotScored(str(frame.path), why)
        return images

    return method


def predictions_method(pred_root: Path | str, sharp_root: Path | str,
                       kernels: Sequence[BlurKernel], native: bool = False) -> Method:
    """Outputs made elsewhere (e.g. `dtk run --blur k7`), paired with sharp frames by relative path.

    Layout: `pred_root/<kernel>/<rel path>` when `pred_root` has a folder per kernel, else
    `pred_root/<rel path>` for a single kernel. Any image extension. A prediction must be
    256x448 (`dtk run --keep-size`) or the size of its sharp frame (`dtk run`, resized back),
    and is then resized to 256x448 like the sharp frame; any other size is never rescaled and
    scored: the frame is skipped with the reason (FrameNotScored). With `native` a prediction must
    be its sharp frame's size and is scored as it is.
    """
    from PIL import Image

    root = Path(pred_root)
    names = [k.name for k in kernels]
    per_kernel = all((root / n).is_dir() for n in names)
    if not per_kernel and len(names) != 1:
        raise DtkError(f"{root} has no folder per kernel ({', '.join(names)}); give one kernel "
                       "with --kernels, or lay predictions out as DIR/<kernel>/<frame path>")
    index = {n: {sharp.key: pred for sharp, pred in pair_frames(sharp_root, root / n if per_kernel else root)}
             for n in names}  # pair_frames lists unmatched frames of either side

    def method(frame: Frame, _blurred: list[np.ndarray], ks: list[BlurKernel]) -> list[np.ndarray]:
        out = []
        with Image.open(frame.path) as im:
            sharp_size = oriented_size(im)  # as read_frame shows it (EXIF orientation applied)
        for k in ks:
            path = index[k.name][frame.key].path
            pred = read_frame(path)
            if native and pred.shape[:2] != sharp_size:
                raise FrameNotScored(path, f"prediction is {pred.shape[1]}x{pred.shape[0]} but its sharp "
                                           f"frame {frame.rel} is {sharp_size[1]}x{sharp_size[0]}: with "
                                           "--native a prediction must be its sharp frame's size")
            if native:
                out.append(pred)
                continue
            if pred.shape[:2] not in (sharp_size, FRAME_SIZE):
                raise FrameNotScored(path, f"prediction is {pred.shape[1]}x{pred.shape[0]} but its sharp "
                                           f"frame {frame.rel} is {sharp_size[1]}x{sharp_size[0]}: a "
                                           f"prediction must be {sharp_size[1]}x{sharp_size[0]} or "
                                           f"{FRAME_SIZE[1]}x{FRAME_SIZE[0]} (dtk run --keep-size)")
            out.append(resize_frame(pred, FRAME_SIZE))
        return out

    return method


def write_csv(result: EvalResult, path: Path | str) -> Path:
    """One row per frame x kernel x method: rel, sequence, kernel, method, psnr, ssim (inf kept)."""
    import csv
    import io

    fh = io.StringIO(newline="")
    writer = csv.writer(fh)
    writer.writerow(["rel", "sequence", "kernel", "method", "psnr", "ssim"])
    for s in result.scores:
        writer.writerow([s.rel, s.sequence, s.kernel, s.method, f"{s.psnr:.4f}", f"{s.ssim:.6f}"])
    return write_bytes_atomic(path, fh.getvalue().encode())


def worst_and_median(result: EvalResult, method: str, kernel: str) -> list[tuple[str, FrameScore]]:
    """The worst and the median frame of `method` under `kernel`, by PSNR."""
    rows = sorted((s for s in result.scores if s.method == method and s.kernel == kernel),
                  key=lambda s: s.psnr)
    if not rows:
        return []
    return [("worst", rows[0]), ("median", rows[len(rows) // 2])]


def examples(result: EvalResult, methods: dict[str, Method], kernels: Sequence[BlurKernel],
             primary: str, native: bool = False) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Images for the strip: sharp / blurred / `primary` / best baseline, worst and median frames."""
    root = Path(result.root)
    baselines = [m for m in result.methods if m not in ("blurred", primary)]
    rows = []
    for k in kernels:
        for label, score in worst_and_median(result, primary, k.name):
            frame = next(f for f in discover_frames(root) if str(f.rel) == score.rel)
            sharp = read_frame(frame.path)
            sharp = sharp if native else resize_frame(sharp, FRAME_SIZE)
            blurred = blur(sharp, k)
            images = {"sharp": sharp, f"blurred {psnr(blurred, sharp):.2f} dB": blurred}
            pred = methods[primary](frame, [blurred], [k])[0] if primary in methods else blurred
            images[f"{primary} {psnr(pred, sharp):.2f} dB"] = pred
            if baselines:
                scored = {s.method: s.psnr for s in result.scores
                          if s.rel == score.rel and s.kernel == k.name}
                best = max(baselines, key=scored.__getitem__)
                est = methods[best](frame, [blurred], [k])[0]
                images[f"{best} {psnr(est, sharp):.2f} dB"] = est
            rows.append((f"{k.name} {label}: {score.rel}", images))
    return rows

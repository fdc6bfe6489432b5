"""Frame-pipeline throughput: DALI (CPU operators, or GPU) vs the no-DALI fallback, frames/s.

Method: each (pipeline, blur) pair reads the whole frame list `repeats` times after one warm-up
pass; a pass is timed from opening the pipeline (DALI builds its graph then) until the last batch
is in host memory (CPU) or the consumer's stream has finished (GPU). Reported: best and median
frames/s over the timed passes. Frames: a folder given by the caller, else the built-in demo
tree (real photos, 256x448, written to a temporary folder).

    python -m bench.pipeline [DIR] [--repeats N] [--batch-size B] [--workers W] [--device cpu|gpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from toolkit.core.demo import write_demo
from toolkit.core.errors import exits_on_dtk_error
from toolkit.core.frames import Frame, discover_frames
from toolkit.core.kernels import KERNEL_NAMES
from toolkit.core.pipeline import PipelineConfig, _dali_available, open_pipeline

BLURS: tuple[str | None, ...] = (None, *KERNEL_NAMES)


def time_pass(frames: Sequence[Frame], config: PipelineConfig, kind: str, device: str) -> tuple[float, int]:
    """Seconds to run `frames` through one pipeline once, and the number of frames delivered."""
    start = time.perf_counter()
    delivered = 0
    for batch in open_pipeline(frames, config, kind=kind, device=device):
        delivered += len(batch)
    if device == "gpu":
        import torch

        torch.cuda.current_stream().synchronize()
    return time.perf_counter() - start, delivered


def pipeline_benchmark(frames_dir: Path | str | None = None, *, repeats: int = 3, batch_size: int = 8,
                       workers: int = 2, prefetch: int = 2, device: str = "cpu",
                       kinds: Sequence[str] = ("dali", "fallback"), blurs: Sequence[str | None] = BLURS,
                       demo_frames_per_sequence: int = 16) -> dict:
    """Frames/s of each pipeline kind for each blur; a JSON-ready dict with one row per pair."""
    with tempfile.TemporaryDirectory(prefix="dtk-bench-pipeline-") as tmp:
        if frames_dir is None:
            write_demo(tmp, frames_per_sequence=demo_frames_per_sequence)
            frames_dir = tmp
        frames = discover_frames(frames_dir)
        kinds = [k for k in kinds if k != "dali" or _dali_available()]
        rows = []
        for blur in blurs:
            for kind in kinds:
                config = PipelineConfig(batch_size=batch_size, blur=blur, workers=workers, prefetch=prefetch)
                time_pass(frames, config, kind, device)  # warm-up: file cache, imports, first graph build
                passes = [time_pass(frames, config, kind, device) for _ in range(max(1, repeats))]
                rates = [n / s for s, n in passes]
                rows.append({"pipeline": kind, "device": device, "blur": blur or "none",
                             "frames": passes[0][1], "best_fps": max(rates),
                             "median_fps": statistics.median(rates), "all_fps": rates})
    return {"frames_dir": str(frames_dir) if frames_dir != tmp else "demo (temporary)",
            "frame_count": len(frames), "batch_size": batch_size, "workers": workers, "prefetch": prefetch,
            "repeats": repeats, "rows": rows}


def render_table(result: dict):
    """The benchmark as a rich Table (one row per pipeline and blur)."""
    from rich.table import Table

    table = Table(title=f"Frame pipeline throughput ({result['frame_count']} frames, batch "
                        f"{result['batch_size']}, {result['workers']} workers, best/median of "
                        f"{result['repeats']} passes after a warm-up)")
    for col in ("pipeline", "device", "blur", "best frames/s", "median frames/s"):
        table.add_column(col, justify="right" if "frames" in col else "left")
    for r in result["rows"]:
        table.add_row(r["pipeline"], r["device"], r["blur"], f"{r['best_fps']:.1f}", f"{r['median_fps']:.1f}")
    return table


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default=None, help="frame folder (default: the demo tree)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    args = parser.parse_args(argv)
    from rich.console import Console

    result = pipeline_benchmark(args.dir, repeats=args.repeats, batch_size=args.batch_size,
                                workers=args.workers, device=args.device)
    Console().print(render_table(result))
    return result


if __name__ == "__main__":
    raise SystemExit(exits_on_dtk_error(main)())

"""ONNX Runtime CPU: INT8 (Q/DQ) vs fp32 ms/frame at batch 1 and 4, and their ratio.

    python -m bench.int8 FP32.onnx INT8.onnx [--batches 1,4] [--iterations 20] [--warmup 3] [--threads N]

Method: one CPU EP session per file (graph optimisation ALL), random inputs of the model's H x W,
`warmup` untimed runs, then `iterations` timed runs that alternate fp32 and int8 (so machine noise
hits both alike); ms/frame = median batch latency / batch. Speedup = fp32 ms/frame / int8 ms/frame.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engines.onnxruntime import cpu_session
from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.errors import exits_on_dtk_error
from toolkit.core.safepaths import check_output_file


def _ms(session, x: np.ndarray) -> float:
    name = session.get_inputs()[0].name
    start = time.perf_counter_ns()
    session.run(None, {name: x})
    return (time.perf_counter_ns() - start) / 1e6


def compare_int8(fp32: Path | str, int8: Path | str, *, batches: Sequence[int] = (1, 4), iterations: int = 20,
                 warmup: int = 3, threads: int | None = None) -> list[dict]:
    """One row per batch: fp32 and int8 median ms/frame (and p90), speedup fp32/int8."""
    sessions = {"fp32": cpu_session(fp32, threads), "int8": cpu_session(int8, threads)}
    shape = sessions["fp32"].get_inputs()[0].shape
    h, w = int(shape[2]), int(shape[3])
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        x = rng.random((batch, 3, h, w), dtype=np.float32)
        for s in sessions.values():
            for _ in range(warmup):
                _ms(s, x)
        samples: dict[str, list[float]] = {"fp32": [], "int8": []}
        for _ in range(iterations):
            for name, s in sessions.items():
                samples[name].append(_ms(s, x))
        row: dict = {"batch": batch, "height": h, "width": w, "iterations": iterations}
        for name, ms in samples.items():
            row[f"{name}_ms_per_frame"] = float(np.median(ms)) / batch
            row[f"{name}_p90_ms_per_frame"] = float(np.percentile(ms, 90)) / batch
        row["speedup"] = row["fp32_ms_per_frame"] / row["int8_ms_per_frame"]
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m bench.int8", description=__doc__.splitlines()[0])
    parser.add_argument("fp32", type=Path)
    parser.add_argument("int8", type=Path)
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    check_output_file(args.json, "--json", inputs=[args.fp32, args.int8])
    rows = compare_int8(args.fp32, args.int8, batches=[int(b) for b in args.batches.split(",")],
                        iterations=args.iterations, warmup=args.warmup, threads=args.threads)
    for r in rows:
        print(f"batch {r['batch']} ({r['height']}x{r['width']}): fp32 {r['fp32_ms_per_frame']:.1f} ms/frame, "
              f"int8 {r['int8_ms_per_frame']:.1f} ms/frame (median of {r['iterations']}), "
              f"speedup {r['speedup']:.2f}x")
    if args.json:
        write_bytes_atomic(args.json, (json.dumps(rows, indent=2)).encode())
    return rows


if __name__ == "__main__":
    raise SystemExit(exits_on_dtk_error(main)())

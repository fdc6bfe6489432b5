"""One command that checks every GPU path dtk has on this machine and says what it could not check.

    python -m bench.gpu_check [--out gpu-check] [--no-tests] [--quick]

1. probes CUDA (torch), TensorRT, DALI and ONNX Runtime's CUDA provider (`dtk doctor`'s facts);
2. runs every `gpu`-marked test (`pytest -m gpu -rs`): skips carry their reason;
3. benchmarks every GPU backend present (`dtk bench --backend all --batch 1,8,32 --roofline`:
   torch fp32/fp16/bf16 with CUDA graphs on and off, ONNX Runtime CUDA, TensorRT engines given);
4. measures fp16/bf16 vs fp32 output PSNR of the shipped model on the demo frames.
Writes OUT/summary.json (+ bench.json/.csv/.png) and exits 1 if a test failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from engines.machine import collect
from engines.torch import TorchRunner
from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.convert import from_nchw, to_nchw
from toolkit.core.demo import DEMO_PHOTOS, pan_windows, skimage_photo_path
from toolkit.core.errors import exits_on_dtk_error
from toolkit.core.frames import read_frame
from toolkit.core.kernels import blur
from toolkit.core.metrics import psnr_capped
from toolkit.core.modelfiles import resolve_model
from toolkit.core.safepaths import check_output_folder


def missing_pieces(info: dict[str, Any]) -> dict[str, str]:
    """What is absent and what that skips, from `engines.machine.collect()`."""
    out = {}
    if not info.get("cuda_available"):
        out["cuda"] = ("no CUDA device visible to torch: every GPU test, the torch CUDA benchmark "
                       "and the fp16/bf16 quality check are skipped")
    if not info.get("tensorrt"):
        out["tensorrt"] = ("TensorRT not importable: dtk build-engine, the TensorRT runner and its "
                           "tests are skipped (pip install -e .[gpu])")
    if not info.get("dali"):
        out["dali"] = "DALI not importable: the DALI pipeline tests are skipped; the torch GPU blur is used"
    if "CUDAExecutionProvider" not in (info.get("ort_providers") or []):
        out["onnxruntime-gpu"] = "ONNX Runtime has no CUDA provider: its GPU benchmark rows are skipped"
    return out


def run_gpu_tests(out: Path) -> dict[str, Any]:
    """`pytest -m gpu -rs` in a subprocess; returns its exit code and the skip/summary lines."""
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-rs", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    write_bytes_atomic(out / "pytest-gpu.log", (proc.stdout + proc.stderr).encode())
    lines = proc.stdout.splitlines()
    return {"command": " ".join(cmd[1:]), "exit_code": proc.returncode,
            "skipped": [ln for ln in lines if ln.startswith("SKIPPED")],
            "summary": lines[-1] if lines else proc.stderr.strip()[-300:]}


def run_gpu_bench(out: Path, quick: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "toolkit.app.cli", "bench", "--backend", "all", "--batch", "1,8,32",
           "--roofline", "--json", str(out / "bench.json"), "--csv", str(out / "bench.csv"),
           "--plot", str(out / "bench.png")]
    if quick:
        cmd += ["--warmup", "0.5", "--duration", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    write_bytes_atomic(out / "bench.log", (proc.stdout + proc.stderr).encode())
    print(proc.stdout)
    return {"command": "dtk " + " ".join(cmd[3:]), "exit_code": proc.returncode}


def precision_quality() -> dict[str, float]:
    """PSNR (dB) of fp16 and bf16 CUDA outputs against fp32 CUDA outputs, shipped model, demo frames."""
    import numpy as np

    frames = [blur(w, "k7") for n in DEMO_PHOTOS for w in pan_windows(read_frame(skimage_photo_path(n)), 2)]
    batch = to_nchw(frames)
    ckpt = resolve_model(None, backend="torch")
    ref = from_nchw(TorchRunner(ckpt, device="cuda").infer(batch))
    out = {}
    for precision in ("fp16", "bf16"):
        y = from_nchw(TorchRunner(ckpt, device="cuda", precision=precision, channels_last=True).infer(batch))
        out[precision] = float(np.mean([psnr_capped(a, b) for a, b in zip(ref, y, strict=True)]))
    return out


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check"), help="folder for the reports")
    parser.add_argument("--no-tests", action="store_true", help="skip the pytest -m gpu run")
    parser.add_argument("--quick", action="store_true", help="shorter benchmark rows (1 s each)")
    args = parser.parse_args(argv)
    check_output_folder(args.out, "--out", inputs=())
    args.out.mkdir(parents=True, exist_ok=True)
    info = collect()
    summary: dict[str, Any] = {"environment": info, "missing": missing_pieces(info)}
    print(f"GPU: {info.get('gpu') or 'none'}; torch {info.get('torch')} (CUDA {info.get('cuda')}), "
          f"TensorRT {info.get('tensorrt') or '-'}, DALI {info.get('dali') or '-'}")
    for piece, why in summary["missing"].items():
        print(f"  missing {piece}: {why}")
    if not args.no_tests:
        summary["tests"] = run_gpu_tests(args.out)
        print(f"pytest -m gpu: {summary['tests']['summary']}")
    if info.get("cuda_available"):
        summary["bench"] = run_gpu_bench(args.out, args.quick)
        summary["fp_vs_fp32_psnr_db"] = precision_quality()
        print("fp16/bf16 vs fp32 (demo frames): "
              + ", ".join(f"{k} {v:.2f} dB" for k, v in summary["fp_vs_fp32_psnr_db"].items()))
    else:
        summary["bench"] = {"skipped": summary["missing"]["cuda"]}
    write_bytes_atomic(args.out / "summary.json",
                       (json.dumps(summary, indent=2, default=str) + "\n").encode())
    print(f"wrote {args.out / 'summary.json'}")
    failed = summary.get("tests", {}).get("exit_code", 0) not in (0, 5)  # 5: no test collected
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

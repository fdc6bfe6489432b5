"""Quality of `dtk run` at native size on the held-out photos, against `--resize` and classical.

    python -m bench.native_quality data/photoset -o reports/native [--size 1280x720] [--backend auto]
        [--model MODEL]

1. crops: every validation photo of the set (`sources.json`, split "val") whose *original* (in
   the package cache `dtk data photos` filled, ~/.cache/dtk/photos) holds a window of `--size`
   at its own scale (landscape, or portrait turned the other way) gives its centre window,
   written as OUT/frames/<photo>/00000000.png: never resized;
2. runs `dtk run` as a user would (a subprocess of the CLI) at native size unblurred and with
   --blur k3/k7/k11, and with --resize for k7/k11;
3. scores every output against its sharp window: mean, worst frame's gain over its input, frames
   made worse than their input by more than 0.1 dB (`toolkit.core.metrics.worse_share`'s rule),
   per kernel and per character (crisp / soft by nature), beside the known-kernel prior inverse.
   Writes OUT/native-quality.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.baselines import BASELINES
from toolkit.core.demo import parse_frame_size
from toolkit.core.errors import exits_on_dtk_error
from toolkit.core.frames import read_frame, write_png_atomic
from toolkit.core.kernels import blur, get_kernel
from toolkit.core.metrics import capped, psnr
from toolkit.core.modelfiles import with_checkpoint_files
from toolkit.core.safepaths import check_output_folder

KERNELS = ("sharp", "k3", "k7", "k11")  # "sharp": the frame as it is, unblurred
RESIZED = ("k7", "k11")
WORSE_DB = 0.1


def write_crops(photoset: Path, out: Path, size: tuple[int, int],
                cache: Path | None = None) -> dict[str, str]:
    """Write the validation photos' native windows; returns {photo: character}."""
    from training.photoset import native_crops

    records = json.loads((photoset / "sources.json").read_text())
    val = {r["name"]: r.get("character", "crisp") for r in records if r.get("split") == "val"}
    crops = native_crops(set(val), size, cache)
    for name, window in crops.items():
        write_png_atomic(out / name / "00000000.png", window)
    return {name: val[name] for name in crops}


def run_dtk(frames: Path, out: Path, kernel: str, resize: bool, backend: str,
            model: Path | None = None) -> None:
    args = [sys.executable, "-m", "toolkit.app.cli", "run", str(frames), "-o", str(out), "--backend", backend]
    if model is not None:
        args += ["--model", str(model)]
    if kernel != "sharp":
        args += ["--blur", kernel]
    if resize:
        args.append("--resize")
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def score(frames: Path, runs: Path, characters: dict[str, str]) -> list[dict]:
    rows = []
    for photo in sorted(characters):
        sharp = read_frame(frames / photo / "00000000.png")
        for k in KERNELS:
            inp = sharp if k == "sharp" else blur(sharp, get_kernel(k))
            row = {"photo": photo, "character": characters[photo], "kernel": k,
                   "input": capped(psnr(inp, sharp)),
                   "native": capped(psnr(read_frame(runs / f"native-{k}" / photo / "00000000.png"), sharp))}
            if k in RESIZED:
                row["resize"] = capped(psnr(read_frame(runs / f"resize-{k}" / photo / "00000000.png"), sharp))
                row["prior"] = capped(psnr(BASELINES["prior"](inp, get_kernel(k)), sharp))
            rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    """Per character (all, crisp, soft) and kernel: means, worst gain, frames worse."""
    out: dict = {}
    for group in ("all", "crisp", "soft"):
        for k in KERNELS:
            sel = [r for r in rows if r["kernel"] == k and group in ("all", r["character"])]
            if not sel:
                continue
            gains = [r["native"] - r["input"] for r in sel]
            entry = {"photos": len(sel), "input": float(np.mean([r["input"] for r in sel])),
                     "native": float(np.mean([r["native"] for r in sel])), "gain": float(np.mean(gains)),
                     "worst_gain": float(min(gains)),
                     "worst_photo": sel[int(np.argmin(gains))]["photo"],
                     "worse": sum(g < -WORSE_DB for g in gains)}
            for key in ("resize", "prior"):
                if key in sel[0]:
                    entry[key] = float(np.mean([r[key] for r in sel]))
            out.setdefault(group, {})[k] = entry
    return out


def markdown(summ: dict) -> str:
    lines = []
    for group, kernels in summ.items():
        lines += [f"\n{group}",
                  "| kernel | photos | input | native | gain | worst frame | worse | --resize | prior |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for k, e in kernels.items():
            lines.append(f"| {k} | {e['photos']} | {e['input']:.2f} | {e['native']:.2f} | {e['gain']:+.2f} | "
                         f"{e['worst_gain']:+.2f} ({e['worst_photo']}) | {e['worse']} | "
                         f"{e.get('resize', float('nan')):.2f} | {e.get('prior', float('nan')):.2f} |")
    return "\n".join(lines)


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photoset", type=Path, help="the photo set (dtk data photos DIR)")
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--size", default="1280x720", help="window WIDTHxHEIGHT (default 1280x720)")
    p.add_argument("--cache", type=Path, help="dtk data photos' package cache (default ~/.cache/dtk/photos)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--model", type=Path, help="the model dtk run uses (default: the shipped one)")
    a = p.parse_args(argv)
    check_output_folder(a.out, "-o", inputs=with_checkpoint_files([a.photoset, a.cache, a.model]))
    frames = a.out / "frames"
    characters = write_crops(a.photoset, frames, parse_frame_size(a.size), a.cache)
    if not characters:
        p.error(f"no validation photo's original holds a {a.size} window (is the package cache filled? "
                f"run `dtk data photos {a.photoset}`)")
    for k in KERNELS:
        run_dtk(frames, a.out / f"native-{k}", k, False, a.backend, a.model)
    for k in RESIZED:
        run_dtk(frames, a.out / f"resize-{k}", k, True, a.backend, a.model)
    rows = score(frames, a.out, characters)
    summ = summary(rows)
    doc = {"size": a.size, "summary": summ, "frames": rows}
    write_bytes_atomic(a.out / "native-quality.json", (json.dumps(doc, indent=1) + "\n").encode())
    print(markdown(summ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What limits a blind model on the validation frames: its gate, its evidence or its refiner.

    python -m training.ceiling toolkit/assets/dtk-unet.safetensors --photoset data/photoset \
        --bar k7=39.28 --bar k11=35.36

Per blurred kernel (k7, k11), the mean PSNR over the validation frames (256x448, one tile) of:

- gated: the model as it is (its one-tile thresholds; `training.calibrate.decisions`);
- true kernel: every frame deblurred as its true kernel (the refiner alone, no gate);
- perfect gate: per frame the better of that and the input (a gate told the answer);
- evidence bound: the perfect gate on the frames that some gate monotone in the evidence (the head's
  P(k7) + P(k11) and, with a second MLP, its own) can deblur without deblurring any sharp or k3
  frame of the same set; the others passed. An in-sample upper bound for any such gate.

A bar (`--bar k7=DB`, e.g. the best classical method + 1 dB of issue 28) marks which reach it: a
bar above the perfect gate needs a better refiner; above the evidence bound, better evidence.
`--outcomes NPZ` reuses the network's outcomes (written beside `--json`, or by an earlier run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.errors import exits_on_dtk_error
from toolkit.core.modelfiles import with_checkpoint_files
from toolkit.core.safepaths import check_output_file
from training.calibrate import decisions, load_outcomes, outcomes, save_outcomes

BLURRED = {"k7": 1, "k11": 2}
NEGATIVE = ("sharp", "k3")  # frames no gate may deblur
ROWS = ("gated", "true kernel", "perfect gate", "evidence bound")


def blurred_evidence(r: dict) -> np.ndarray:
    """N x m: each frame's P(k7) + P(k11) from the head and, with one, its second MLP."""
    cols = [r["probs"][:, 1] + r["probs"][:, 2]]
    if "strong" in r:
        cols.append(r["strong"][:, 1] + r["strong"][:, 2])
    return np.stack(cols, axis=1)


def separable(points: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Which points no negative dominates (>= in every column): a gate monotone in the columns
    can take each of them without taking any negative."""
    if len(negatives) == 0:
        return np.ones(len(points), dtype=bool)
    return ~(negatives[None, :, :] >= points[:, None, :]).all(axis=2).any(axis=1)


def ceiling(res: dict, deblur: float, strong: float, agree: float = 0.0) -> dict[str, dict[str, float]]:
    """{kernel: {row: mean dB}} (ROWS) for the outcomes `res` of training.calibrate.outcomes
    (computed for every decision: floor -1) and the gate thresholds."""
    negatives = np.concatenate([blurred_evidence(res[n]) for n in NEGATIVE if n in res])
    table = {}
    for label, c in BLURRED.items():
        r = res[label]
        psnr, inp = r["psnr"], r["psnr"][:, 0]
        d = decisions(r["probs"], deblur, strong, r.get("strong"), agree)
        best = np.maximum(inp, psnr[:, c])
        free = separable(blurred_evidence(r), negatives)
        table[label] = {"gated": float(psnr[np.arange(len(d)), d].mean()),
                        "true kernel": float(psnr[:, c].mean()), "perfect gate": float(best.mean()),
                        "evidence bound": float(np.where(free, best, inp).mean()),
                        "frames": len(d), "separable": int(free.sum())}
    return table


def render(table: dict, bars: dict[str, float]) -> str:
    lines = ["| kernel | frames | " + " | ".join(ROWS) + " | bar |", "|---" * (len(ROWS) + 3) + "|"]
    for label, row in table.items():
        bar = bars.get(label)
        cells = [f"{row[k]:.2f}" + (" (reaches)" if bar is not None and row[k] >= bar else "") for k in ROWS]
        lines.append(f"| {label} | {row['frames']} ({row['separable']} separable) | " + " | ".join(cells)
                     + f" | {'-' if bar is None else f'{bar:.2f}'} |")
    return "\n".join(lines)


def parse_bar(text: str) -> tuple[str, float]:
    label, _, value = text.partition("=")
    if label not in BLURRED or not value:
        raise argparse.ArgumentTypeError(f"--bar takes KERNEL=DB with KERNEL one of {', '.join(BLURRED)}")
    return label, float(value)


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--photoset", default="data/photoset")
    p.add_argument("--bar", type=parse_bar, action="append", default=[], metavar="KERNEL=DB")
    p.add_argument("--outcomes", help="reuse these outcomes (.npz) instead of running the network")
    p.add_argument("--json", help="write the table here (and the outcomes beside it, NAME.outcomes.npz)")
    args = p.parse_args(argv)
    from toolkit.core.models.checkpoint import load_model

    inputs = with_checkpoint_files([args.checkpoint, args.photoset, args.outcomes])
    check_output_file(args.json, "--json", inputs=inputs)
    if args.json and not args.outcomes:
        npz = Path(args.json).with_suffix(".outcomes.npz")
        check_output_file(npz, "--json (its outcomes)", inputs=inputs)
    res = load_outcomes(args.outcomes) if args.outcomes else None
    model = load_model(args.checkpoint)
    if res is None:
        from training.photoset import validation_frames
        from training.sampler import validation_tensors

        frames = validation_frames(args.photoset)
        res = outcomes(model, validation_tensors([f["frame"] for f in frames], "cpu"), floor=-1.0)
    c = model.config
    table = ceiling(res, c.gate_deblur, c.gate_strong, c.gate_agree)
    print(render(table, dict(args.bar)))
    if args.json:
        write_bytes_atomic(args.json, (json.dumps({"checkpoint": args.checkpoint, "ceiling": table,
                                                   "bars": dict(args.bar)}, indent=2) + "\n").encode())
        if not args.outcomes:
            save_outcomes(Path(args.json).with_suffix(".outcomes.npz"), res)


if __name__ == "__main__":
    raise SystemExit(main())

"""Numbers for the model card: FLOPs per frame and per-kernel PSNR of a checkpoint on frame trees.

    python -m training.card CKPT --data data/photos --demo /tmp/demo
prints a markdown table (held-out validation sequences of the checkpoint, and the demo frames).
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn


def count_flops(model: nn.Module, height: int = 256, width: int = 448) -> int:
    """FLOPs (2 x multiply-accumulates) of every Conv2d/ConvTranspose2d for one 3 x H x W frame."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.ConvTranspose2d):
            macs = inp[0].numel() * m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        else:
            macs = out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        total[0] += 2 * macs

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def wiener_means(pairs) -> dict[str, float]:
    """Mean PSNR of known-kernel Wiener (toolkit.baselines, tuned balance) per kernel label."""
    import numpy as np

    from toolkit.baselines import wiener
    from toolkit.kernels import KERNELS
    from toolkit.metrics import psnr_capped

    acc: dict[str, list[float]] = {}
    for label, inp, target in pairs:
        if label in KERNELS:
            acc.setdefault(label, []).append(psnr_capped(wiener(inp, KERNELS[label]), target))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def card_table(checkpoint: str, data: str | None, demo: str | None) -> tuple[str, dict]:
    """Markdown table of mean PSNR per kernel: blurred, known-kernel Wiener, model; and the raw numbers."""
    from toolkit.kernels import parse_kernels
    from training.checkpoint import load_model, read_sidecar
    from training.data import load_frames
    from training.train import evaluate_pairs, validation_pairs

    doc = read_sidecar(checkpoint)
    model = load_model(checkpoint)
    kernels = parse_kernels(",".join(doc.get("kernels", ["k3", "k7", "k11"])))
    sets = {}
    if data:
        sets["validation (held-out sequences)"] = load_frames(data).subset(doc["val_sequences"])
    if demo:
        sets["demo frames"] = load_frames(demo)
    rows = ["| frames | n | kernel | blurred dB | Wiener dB | model dB | model - blurred | model - Wiener |",
            "|---|---|---|---|---|---|---|---|"]
    raw = {}
    for name, frames in sets.items():
        pairs = validation_pairs(frames, kernels)
        metrics = evaluate_pairs(model, pairs)
        for label, value in wiener_means(pairs).items():
            metrics[label]["wiener"] = value
        raw[name] = metrics
        for label, m in metrics.items():
            w, out = m.get("wiener"), m["output"]
            wiener_cells = ("-", "-") if w is None else (f"{w:.2f}", f"{out - w:+.2f}")
            rows.append(f"| {name} | {m['frames']} | {label} | {m['input']:.2f} | {wiener_cells[0]} | "
                        f"{out:.2f} | {out - m['input']:+.2f} | {wiener_cells[1]} |")
    return "\n".join(rows), raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", help="the training tree (its held-out sequences are scored)")
    parser.add_argument("--demo", help="a demo tree (dtk data demo DIR)")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    from training.checkpoint import load_model
    from training.unet import count_parameters

    model = load_model(args.checkpoint)
    print(f"params {count_parameters(model):,}; {count_flops(model) / 1e9:.2f} GFLOP per 256x448 frame")
    table, raw = card_table(args.checkpoint, args.data, args.demo)
    print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=2)


if __name__ == "__main__":
    main()

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


def card_table(checkpoint: str, data: str | None, demo: str | None) -> tuple[str, dict]:
    """Markdown table of mean PSNR (input -> output) per kernel, and the raw numbers."""
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
    rows, raw = ["| frames | n | kernel | blurred dB | model dB | gain dB |", "|---|---|---|---|---|---|"], {}
    for name, frames in sets.items():
        metrics = evaluate_pairs(model, validation_pairs(frames, kernels))
        raw[name] = metrics
        for label, m in metrics.items():
            rows.append(f"| {name} | {m['frames']} | {label} | {m['input']:.2f} | {m['output']:.2f} | "
                        f"{m['output'] - m['input']:+.2f} |")
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

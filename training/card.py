"""Numbers for the model card: FLOPs per frame and per-kernel PSNR of a checkpoint on frame trees.

    python -m training.card CKPT --data data/photos --demo /tmp/demo
prints a markdown table (held-out validation sequences of the checkpoint, and the demo frames).
"""

from __future__ import annotations

import argparse
import json

import torch

from toolkit.core.baselines import BALANCE, PRIOR_BALANCE, _apply_gain, wiener
from toolkit.core.flops import frame_flops
from toolkit.core.kernels import KERNELS, parse_kernels
from toolkit.core.metrics import psnr_capped
from toolkit.core.modelfiles import read_sidecar
from toolkit.core.models import count_parameters
from toolkit.core.models.checkpoint import load_model
from training.data import load_frames
from training.fit import validate
from training.photoset import validation_set
from training.sampler import psnr_uint8, validation_tensors
from training.train import evaluate_pairs, validation_pairs


def wiener_means(pairs) -> dict[str, float]:
    """Mean PSNR of known-kernel Wiener (toolkit.core.baselines, tuned balance) per kernel label."""
    import numpy as np

    acc: dict[str, list[float]] = {}
    for label, inp, target in pairs:
        if label in KERNELS:
            acc.setdefault(label, []).append(psnr_capped(wiener(inp, KERNELS[label]), target))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def card_table(checkpoint: str, data: str | None, demo: str | None) -> tuple[str, dict]:
    """Markdown table of mean PSNR per kernel: blurred, known-kernel Wiener, model; and the raw numbers."""

    doc = read_sidecar(checkpoint)
    model = load_model(checkpoint)
    kernels = parse_kernels(",".join(doc.get("kernels", ["k3", "k7", "k11"])))
    sets = {}
    if data:
        sets["validation (held-out sequences)"] = load_frames(data).subset(doc["val_sequences"])
    if demo:
        sets["demo frames"] = load_frames(demo)
    rows = [
        "| frames | n | kernel | blurred dB | Wiener dB | model dB | model - blurred | model - Wiener |",
        "|---|---|---|---|---|---|---|---|",
    ]
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
            rows.append(
                f"| {name} | {m['frames']} | {label} | {m['input']:.2f} | {wiener_cells[0]} | "
                f"{out:.2f} | {out - m['input']:+.2f} | {wiener_cells[1]} |"
            )
    return "\n".join(rows), raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", help="the training tree (its held-out sequences are scored)")
    parser.add_argument("--demo", help="a demo tree (dtk data demo DIR)")
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument(
        "--photoset",
        help="score on this photo set's held-out photos (training.photoset) "
        "with the tuned classical baselines; more checkpoints with --also LABEL=PATH",
    )
    parser.add_argument("--also", action="append", default=[], help="LABEL=CHECKPOINT to score beside it")
    args = parser.parse_args()
    if args.photoset:
        ckpts = {"model": args.checkpoint} | dict(a.split("=", 1) for a in args.also)
        res = photoset_card(ckpts, args.photoset)
        print(f"{res['windows']} validation windows")
        for k in ("k7", "k11", "k3", "sharp"):
            for method, by_k in res["table"].items():
                if k in by_k:
                    m = by_k[k]
                    print(
                        f"| {k} | {method} | {m['mean']:.2f} | {m['half_a']:.2f} | {m['half_b']:.2f} | "
                        + " | ".join(f"{v:.2f}" for v in m["per_photo"].values())
                        + " |"
                    )
        for k, a in res["rank_agreement"].items():
            print(
                k,
                "Spearman between halves",
                round(a["spearman"], 3),
                a["methods"],
                a["rank_half_a"],
                a["rank_half_b"],
            )
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(res, fh, indent=1)
        return

    model = load_model(args.checkpoint)
    print(f"params {count_parameters(model):,}; {frame_flops(model) / 1e9:.2f} GFLOP per 256x448 frame")
    table, raw = card_table(args.checkpoint, args.data, args.demo)
    print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=2)


def photoset_card(checkpoints: dict[str, str], photos: str, batch: int = 4) -> dict:
    """Per kernel and per held-out photo: blurred, the tuned classical baselines and each checkpoint.

    Also the rank agreement of all methods between the two halves of the validation photos (the
    protocol's check that the set ranks methods consistently).
    """
    import numpy as np

    windows = validation_set(photos)
    names = [n for n, _ in windows]
    tensors = validation_tensors([w for _, w in windows], "cpu")
    per: dict[str, dict[str, list[float]]] = {}  # method -> kernel -> per-window PSNR

    def psnrs(a, b):
        return psnr_uint8(a, b).tolist()

    for k, (blurred, sharp) in tensors.items():
        per.setdefault("blurred", {})[k] = psnrs(blurred, sharp)
        if k not in ("k7", "k11"):
            continue
        for method, prior, bal in (
            ("flat Wiener", "flat", BALANCE[k]),
            ("prior inverse", "power", PRIOR_BALANCE[k]),
        ):
            outs = [_apply_gain(b.permute(1, 2, 0).numpy(), KERNELS[k], bal, prior) for b in blurred]
            out = torch.from_numpy(np.stack(outs).transpose(0, 3, 1, 2).copy())
            per.setdefault(method, {})[k] = psnrs(out, sharp)
    for label, path in checkpoints.items():
        model = load_model(path)
        res = validate(model, tensors, batch=batch, per_window=True)
        per[label] = {k: v["windows"] for k, v in res.items()}
    photos_sorted = sorted(set(names))
    half_a = set(photos_sorted[::2])
    table: dict = {}
    for method, by_k in per.items():
        for k, vals in by_k.items():
            v = np.array(vals)
            mask = np.array([n in half_a for n in names])
            table.setdefault(method, {})[k] = {
                "mean": float(v.mean()),
                "half_a": float(v[mask].mean()),
                "half_b": float(v[~mask].mean()),
                "per_photo": {p: float(v[np.array(names) == p].mean()) for p in photos_sorted},
            }
    agree = {}
    for k in ("k7", "k11"):
        methods = [m for m in table if k in table[m] and m != "blurred"]
        ra = np.argsort(np.argsort([-table[m][k]["half_a"] for m in methods]))
        rb = np.argsort(np.argsort([-table[m][k]["half_b"] for m in methods]))
        n = len(methods)
        agree[k] = {
            "methods": methods,
            "rank_half_a": ra.tolist(),
            "rank_half_b": rb.tolist(),
            "spearman": float(1 - 6 * np.sum((ra - rb) ** 2) / (n * (n * n - 1))) if n > 1 else 1.0,
            "halves": [sorted(half_a), sorted(set(photos_sorted) - half_a)],
        }
    return {"windows": len(windows), "table": table, "rank_agreement": agree}


if __name__ == "__main__":
    main()

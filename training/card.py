"""Numbers for the model card: FLOPs per frame and per-kernel PSNR of a checkpoint on frame trees.

    python -m training.card CKPT --data data/photos --demo /tmp/demo
prints a markdown table (held-out validation sequences of the checkpoint, and the demo frames).

    python -m training.card CKPT --photoset data/photoset [--also LABEL=CKPT] [--json F]
scores on the photo set's held-out photos per kernel and per character (crisp / soft): mean PSNR,
the worst frame's gain over its input and the share of frames made worse than their input by more
than 0.1 dB (the rule of dtk eval's 'worse' column), beside blurred and the tuned classical baselines.
"""

from __future__ import annotations

import argparse
import json

import torch

from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.baselines import BALANCE, PRIOR_BALANCE, _apply_gain, wiener
from toolkit.core.errors import exits_on_dtk_error
from toolkit.core.flops import frame_flops
from toolkit.core.kernels import KERNELS, parse_kernels
from toolkit.core.metrics import capped, psnr_capped, worse_share
from toolkit.core.modelfiles import read_sidecar, with_checkpoint_files
from toolkit.core.models import count_parameters
from toolkit.core.models.checkpoint import load_model
from toolkit.core.safepaths import check_output_file
from training.data import load_frames
from training.fit import validate
from training.photoset import TUNE_GRID, validation_frames
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
    kernels = parse_kernels(",".join(doc.get("kernels", ["k3", "k7", "k11"])), f"the kernels of {checkpoint}")
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


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> None:
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
    parser.add_argument(
        "--no-tune",
        action="store_true",
        help="--photoset: classical baselines at dtk eval's balances (default: tuned on these frames)",
    )
    parser.add_argument("--forced", action="store_true",
                        help="--photoset: also each blind model told the true kernel (its gate's headroom)")
    args = parser.parse_args(argv)
    alsos = [a.split("=", 1)[-1] for a in args.also]
    check_output_file(args.json, "--json", inputs=with_checkpoint_files(
        [args.checkpoint, *alsos, args.data, args.demo, args.photoset]))
    if args.photoset:
        ckpts = {"model": args.checkpoint} | dict(a.split("=", 1) for a in args.also)
        res = photoset_card(ckpts, args.photoset, tune=not args.no_tune, forced=args.forced)
        print(
            f"{res['windows']} validation frames of {sum(len(v) for v in res['photos'].values())} held-out "
            f"photos ({len(res['photos']['crisp'])} crisp, {len(res['photos']['soft'])} soft; "
            f"{res['frames']['squashed']} squashed to 256x448, {res['frames']['native']} at 1:1)"
        )
        print(character_table(res))
        print("classical balances:", json.dumps(res["baseline_balance"]))
        for k, a in res["rank_agreement"].items():
            print(k, "Spearman between halves", round(a["spearman"], 3), a["methods"])
        if args.json:
            write_bytes_atomic(args.json, json.dumps(res, indent=1).encode())
        return

    model = load_model(args.checkpoint)
    print(f"params {count_parameters(model):,}; {frame_flops(model) / 1e9:.2f} GFLOP per 256x448 frame")
    table, raw = card_table(args.checkpoint, args.data, args.demo)
    print(table)
    if args.json:
        write_bytes_atomic(args.json, json.dumps(raw, indent=2).encode())


GROUPS = ("crisp", "soft", "all")  # the characters of the held-out photos (training.photocatalog)


def group_stats(outputs: list[float], inputs: list[float]) -> dict:
    """Mean, input mean, the worst frame's gain over its input and the share of frames made worse
    than their input by more than 0.1 dB (`toolkit.core.metrics.worse_share`, as dtk eval)."""
    import numpy as np

    o, i = np.array([capped(v) for v in outputs]), np.array([capped(v) for v in inputs])
    gains = o - i
    return {
        "frames": len(o),
        "mean": float(o.mean()),
        "input": float(i.mean()),
        "worst_gain": float(gains.min()),
        "worst_output": float(o.min()),
        "worse_share": worse_share(zip(outputs, inputs, strict=True)),
    }


def forced_psnrs(model, tensors: dict, batch: int = 4) -> dict[str, list[float]]:
    """Per k7 / k11 frame: the PSNR of a blind model (one with a kernel head) told the true kernel,
    its decision forced: how far its gate is from its own network."""
    from toolkit.core.models.fastwiener import CLASSES
    from training.sampler import quantize

    model.eval()
    out = {}
    with torch.no_grad():
        for k in ("k7", "k11"):
            blurred, sharp = tensors[k]
            scores = []
            for i in range(0, len(blurred), batch):
                x = blurred[i : i + batch].float() / 255.0
                y, _, _ = model.decided(x, classes=torch.full((len(x),), CLASSES.index(k), dtype=torch.long))
                scores += psnr_uint8(quantize(y), sharp[i : i + batch]).tolist()
            out[k] = scores
    return out


def photoset_card(checkpoints: dict[str, str], photos: str, batch: int = 4, tune: bool = True,
                  forced: bool = False) -> dict:
    """Per kernel, per character of the held-out photos (crisp / soft / all) and per method (blurred,
    the tuned classical baselines, each checkpoint): mean PSNR, the worst frame's gain over its input
    and the share of frames made worse (`forced`: also each blind checkpoint told the true kernel,
    "LABEL (true kernel)"). The classical baselines are given the true kernel and, with
    `tune`, their balance is the best of `TUNE_GRID` on these very frames (an oracle the blind model
    does not have); else dtk eval's defaults. Frames: each held-out photo squashed to 256x448 and at 1:1
    (`training.photoset.validation_frames`). Also per photo, and the rank agreement of the methods
    between the two halves of the held-out photos (the protocol's check that the set ranks methods
    consistently).
    """
    import numpy as np

    frames = validation_frames(photos)
    names = [f["photo"] for f in frames]
    tensors = validation_tensors([f["frame"] for f in frames], "cpu")
    per: dict[str, dict[str, list[float]]] = {}  # method -> kernel -> per-frame PSNR
    balances: dict[str, dict[str, float]] = {}  # classical method -> kernel -> balance used

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
            scores = {}
            for b_ in TUNE_GRID if tune else (bal,):
                outs = [_apply_gain(b.permute(1, 2, 0).numpy(), KERNELS[k], b_, prior) for b in blurred]
                out = torch.from_numpy(np.stack(outs).transpose(0, 3, 1, 2).copy())
                scores[b_] = psnrs(out, sharp)
            best = max(scores, key=lambda b_: float(np.mean(scores[b_])))
            per.setdefault(method, {})[k] = scores[best]
            balances.setdefault(method, {})[k] = best
    for label, path in checkpoints.items():
        model = load_model(path)
        res = validate(model, tensors, batch=batch, per_window=True)
        per[label] = {k: v["windows"] for k, v in res.items()}
        if forced and hasattr(model, "decided"):
            per[f"{label} (true kernel)"] = forced_psnrs(model, tensors, batch)
    members = {
        "all": [True] * len(frames),
        **{c: [f["character"] == c for f in frames] for c in ("crisp", "soft")},
        **{s: [f["scale"] == s for f in frames] for s in ("squashed", "native")},
    }
    photos_sorted = sorted(set(names))
    half_a = set(photos_sorted[::2])
    table: dict = {}
    for method, by_k in per.items():
        for k, vals in by_k.items():
            v = np.array(vals)
            inp = per["blurred"][k]
            mask = np.array([n in half_a for n in names])
            row = {
                "mean": float(v.mean()),
                "half_a": float(v[mask].mean()),
                "half_b": float(v[~mask].mean()),
                "per_photo": {p: float(v[np.array(names) == p].mean()) for p in photos_sorted},
            }
            for group, keep in members.items():
                idx = [i for i, m in enumerate(keep) if m]
                if idx:
                    row[group] = group_stats([vals[i] for i in idx], [inp[i] for i in idx])
            table.setdefault(method, {})[k] = row
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
    characters = {f["photo"]: f["character"] for f in frames}
    return {
        "windows": len(frames),
        "photos": {c: sorted(p for p, ch in characters.items() if ch == c) for c in ("crisp", "soft")},
        "frames": {g: int(sum(m)) for g, m in members.items()},
        "table": table,
        "baseline_balance": balances,
        "rank_agreement": agree,
    }


def character_table(res: dict) -> str:
    """Markdown: per kernel x method x character, mean dB, the worst frame's gain, share made worse."""
    rows = [
        "| kernel | method | photos | frames | input dB | mean dB | worst frame's gain dB "
        "| worse by > 0.1 dB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k in ("sharp", "k3", "k7", "k11"):
        for method, by_k in res["table"].items():
            if k not in by_k:
                continue
            for g in GROUPS:
                m = by_k[k].get(g)
                if m is None:
                    continue
                worst = "-" if method == "blurred" else f"{m['worst_gain']:+.2f}"
                worse = "-" if method == "blurred" else f"{100 * m['worse_share']:.0f} %"
                rows.append(
                    f"| {k} | {method} | {g} | {m['frames']} | {m['input']:.2f} | {m['mean']:.2f} | "
                    f"{worst} | {worse} |"
                )
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())

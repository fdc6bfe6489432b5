"""Choose a blind model's decision thresholds on photos it never trained on, for no harm first.

    python -m training.calibrate runs/r3/head/best.safetensors --photos data/photoset -o runs/r3/gated

The photos: the training photos its fit held out (`--calibration N` of training.fit, named in its
sidecar), or `--calibration N` here (for a model trained before: photos it never saw), never the
validation photos. Each is cut into 256x448 windows (squashed and 1:1, as the
validation set) and blurred sharp / k3 / k7 / k11. For every frame: the head's class
probabilities and the PSNR of each decision (pass: the input itself; k7 or k11: the network mixing
that class). Then every (deblur, strong) threshold pair of a grid is scored by the frames it makes worse than
their input by more than 0.5 dB (a sharp frame: below 55 dB) and by what the frames gain over their
inputs (PSNR capped at 60 dB, so an untouched sharp frame is not worth 40 dB more than a blurred
one). The pair chosen harms the fewest frames, then gains the most, then is the most conservative
(issue 28: no frame made worse comes first). It goes into the model's config (`gate_deblur`,
`gate_strong`: toolkit.core.models.head.gate; with `--native` and a second MLP, its threshold for
frames of several tiles, `gate_strong_native`) of the checkpoint written to `-o`; the outcomes are
saved beside it (`-o`.outcomes.npz: choose again with `--outcomes`, no network pass).
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.errors import DtkError, exits_on_dtk_error
from toolkit.core.modelfiles import check_checkpoint_output, read_sidecar, with_checkpoint_files
from toolkit.core.models import create_model
from toolkit.core.models.checkpoint import load_model, save_checkpoint
from toolkit.core.safepaths import check_output_file
from training.photoset import calibration_split, load_sources, native_crops, photo_windows
from training.sampler import psnr_uint8, quantize, validation_tensors

CAP_DB = 60.0
HARM_MARGIN, SHARP_FLOOR = 0.5, 55.0  # the "no frame made worse" rule
GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)


def head_probabilities(model, evidence: torch.Tensor) -> dict[str, np.ndarray]:
    """{"probs": the head's class probabilities (N x 3), "strong": its second MLP's (without one: none)}."""
    with torch.no_grad():
        p, q = model.head.probabilities(evidence)
    return {"probs": p.numpy()} | ({} if q is None else {"strong": q.numpy()})


def possible(r: dict, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Which frames some threshold of the grid (all >= `floor`) could decide k7, and k11."""
    p = r["probs"]
    return p[:, 1] + p[:, 2] > floor, r.get("strong", p)[:, 2] > floor


@torch.no_grad()
def outcomes(model, tensors: dict, batch: int = 8,
             floor: float = GRID[0]) -> dict[str, dict[str, np.ndarray]]:
    """Per label: the head's probabilities (N x 3; "strong": its second MLP's) and the PSNR of
    each decision (pass, k7, k11).

    A decision no threshold of the grid can make (k7 while P(k7) + P(k11) <= `floor`, k11 while
    P(k11) <= `floor`) is not run: its PSNR is NaN."""
    model.eval()
    out = {}
    for label, (blurred, sharp) in tensors.items():
        ev = torch.cat([model.evidence(blurred[i : i + batch].float() / 255)
                        for i in range(0, len(blurred), batch)])
        r = head_probabilities(model, ev)
        psnr = torch.full((len(blurred), 3), float("nan"), dtype=torch.float64)
        psnr[:, 0] = psnr_uint8(blurred, sharp)
        for c, can in enumerate(possible(r, floor), start=1):
            idx = torch.from_numpy(np.flatnonzero(can))
            for j in range(0, len(idx), batch):
                part = idx[j : j + batch]
                x = blurred[part].float() / 255.0
                y, _, _ = model.decided(x, classes=torch.full((len(part),), c, dtype=torch.long))
                psnr[part, c] = psnr_uint8(quantize(y), sharp[part])
        out[label] = r | {"psnr": psnr.numpy()}
    return out


NATIVE_LABELS = ("sharp", "k7", "k11")  # k3 frames are decided as sharp ones (their blur is below the head's)


def native_outcomes(checkpoint: Path, frames: list[np.ndarray], batch: int = 8,
                    floor: float = GRID[0], log=print) -> dict[str, dict[str, np.ndarray]]:
    """`outcomes` for frames at their own size, through the product's path (engines.tiled): the
    head's probabilities on the frame's evidence (its tiles' evidence averaged), and the PSNR of
    each decision from `deblur_frames` with the decision forced (a copy of the model whose gate
    always takes it)."""
    import tempfile

    from engines.tiled import Tiling, deblur_frames, frames_evidence
    from engines.torch import TorchRunner
    from toolkit.core.kernels import KERNELS, blur
    from toolkit.core.metrics import capped, psnr

    model = load_model(checkpoint).eval()
    runner = TorchRunner(checkpoint)
    tiling = Tiling()
    res: dict[str, dict[str, np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        forced = {c: TorchRunner(save_checkpoint(Path(tmp) / f"forced{c}", with_gate(model, d, s, s, 0, 0),
                                                 {}))
                  for c, (d, s) in ((1, (1e-12, 2.0)), (2, (1e-12, 1e-12)))}
        for label in NATIVE_LABELS:
            inputs = [f if label == "sharp" else blur(f, KERNELS[label]) for f in frames]
            r = head_probabilities(model, torch.from_numpy(frames_evidence(runner, inputs, tiling, batch)))
            scores = np.full((len(inputs), 3), np.nan)
            scores[:, 0] = [capped(psnr(f, t)) for f, t in zip(inputs, frames, strict=True)]
            for c, can in enumerate(possible(r, floor), start=1):
                idx = np.flatnonzero(can)
                out = deblur_frames(forced[c], [inputs[i] for i in idx], tiling, batch=batch).images
                scores[idx, c] = [capped(psnr(o, frames[i])) for o, i in zip(out, idx, strict=True)]
            res[label] = r | {"psnr": scores}
            log(f"{label}: {len(inputs)} frames decided and scored")
    return res


def calibrated_on(checkpoint: str) -> set[str]:
    """The photos a calibrated model's thresholds were chosen on (its sidecar's `calibration`), so
    that a part trained afterwards never sees them and they still judge the thresholds fairly."""
    photos = (read_sidecar(checkpoint).get("calibration") or {}).get("photos")
    if not photos:
        raise DtkError(f"{checkpoint}: its sidecar names no calibration photos")
    return set(photos)


def with_gate(model, deblur: float, strong: float, strong_native: float | None = None,
              agree: float | None = None, agree_native: float | None = None):
    """A copy of `model` (same weights) whose gate has these thresholds (the `_native` ones: for
    frames of several tiles; None: keep the model's)."""
    c = model.config
    gated = create_model(replace(
        c, gate_deblur=deblur, gate_strong=strong,
        gate_strong_native=c.gate_strong_native if strong_native is None else strong_native,
        gate_agree=c.gate_agree if agree is None else agree,
        gate_agree_native=c.gate_agree_native if agree_native is None else agree_native))
    gated.load_state_dict(model.state_dict())
    return gated


def decisions(probs: np.ndarray, deblur: float, strong: float,
              strong_probs: np.ndarray | None = None, agree: float = 0.0) -> np.ndarray:
    """The class each frame is mixed as (0 pass, 1 k7, 2 k11): head.gate's rule, in NumPy."""
    d7 = probs[:, 1] + probs[:, 2] > deblur
    if strong_probs is None:
        return np.where(d7, np.where(probs[:, 2] > strong, 2, 1), 0)
    d = np.where(strong_probs[:, 2] > strong, 2, np.where(d7, 1, 0))
    if agree > 0:
        both = np.minimum(probs[:, 1] + probs[:, 2], strong_probs[:, 1] + strong_probs[:, 2])
        d = np.where(both > agree, d, 0)
    return d


def harmed(label: str, out: np.ndarray, inp: np.ndarray) -> np.ndarray:
    return out < SHARP_FLOOR if label == "sharp" else out < inp - HARM_MARGIN


def score_gate(res: dict, deblur: float, strong: float, agree: float = 0.0) -> dict:
    """Mean capped gain over the inputs and frames harmed, overall and per label."""
    gains, harm, per = [], 0, {}
    for label, r in res.items():
        d = decisions(r["probs"], deblur, strong, r.get("strong"), agree)
        out = r["psnr"][np.arange(len(d)), d]
        inp = r["psnr"][:, 0]
        assert not np.isnan(out).any(), "a decision below the grid's floor was chosen"
        g = np.minimum(out, CAP_DB) - np.minimum(inp, CAP_DB)
        h = int(harmed(label, out, inp).sum())
        gains.append(g)
        harm += h
        per[label] = {"mean": float(out.mean()), "gain": float(g.mean()), "harmed": h,
                      "worst_gain": float((out - inp).min()),
                      "decided": np.bincount(d, minlength=3).tolist()}
    all_g = np.concatenate(gains)
    return {"deblur": deblur, "strong": strong, "agree": agree, "gain": float(all_g.mean()), "harmed": harm,
            "labels": per}


AGREE_GRID = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


def calibrate(res: dict, grid=GRID, strong_floor: float = 0.0,
              deblur: float | None = None) -> tuple[dict, list[dict]]:
    """The thresholds (deblur, strong of `grid`; strong >= deblur unless a second MLP decides k11;
    strong >= `strong_floor`; with a second MLP, agree of `AGREE_GRID`; `deblur` given: only that
    one) that harm the fewest frames, then gain the most, then are the highest; and every row."""
    second = any("strong" in r for r in res.values())
    rows = [score_gate(res, d, s, a) for d, s in gate_pairs(grid, second, strong_floor)
            if deblur is None or d == deblur for a in (AGREE_GRID if second else (0.0,))]
    if not rows:
        raise DtkError(f"no threshold pair of the grid has deblur {deblur}")
    best = max(rows, key=lambda r: (-r["harmed"], round(r["gain"], 9), r["deblur"], r["strong"], r["agree"]))
    return best, rows


def gate_pairs(grid=GRID, second: bool = False, strong_floor: float = 0.0) -> list[tuple[float, float]]:
    """The (deblur, strong) threshold pairs a calibration weighs: strong >= deblur (one MLP: k11 is
    a stronger claim than a blur), any pair with a second MLP deciding k11; strong >= `strong_floor`."""
    return [(d, s) for d in grid for s in grid if (s >= d or second) and s >= strong_floor]


def frontier(rows: list[dict], harm: str = "harmed") -> list[dict]:
    """The rows no other row beats on both counts: fewer frames harmed (the count `harm`) and more
    gain."""
    best: dict[int, dict] = {}
    for r in rows:
        if r[harm] not in best or r["gain"] > best[r[harm]]["gain"]:
            best[r[harm]] = r
    out, top = [], -np.inf
    for h in sorted(best):
        if best[h]["gain"] > top:
            out.append(best[h])
            top = best[h]["gain"]
    return out


def save_outcomes(path: Path | str, res: dict[str, dict[str, np.ndarray]]) -> None:
    """Write `outcomes` to `path` (.npz: LABEL_probs, LABEL_psnr, LABEL_strong) for `load_outcomes`."""
    data = io.BytesIO()
    np.savez_compressed(data, **{f"{label}_{k}": v for label, r in res.items() for k, v in r.items()})
    write_bytes_atomic(path, data.getvalue())


def load_outcomes(path: Path | str) -> dict[str, dict[str, np.ndarray]]:
    """Outcomes saved by `save_outcomes` (calibrate -o NAME -> NAME.outcomes.npz); DtkError when
    there is no such file."""
    if not Path(path).is_file():
        raise DtkError(f"outcomes {path}: no such file")
    z = np.load(path)
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in z.files:  # LABEL_probs, LABEL_psnr and, with a second MLP, LABEL_strong
        label, name = key.rsplit("_", 1)
        out.setdefault(label, {})[name] = z[key]
    return out


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--photos", default="data/photoset")
    p.add_argument("-o", "--out", required=True, help="the calibrated checkpoint (without suffix)")
    p.add_argument("--threads", type=int)
    p.add_argument("--native", metavar="WxH",
                   help="calibrate on WxH windows of the photos' originals at their own scale (the package "
                        "cache of dtk data photos), decided and deblurred in tiles as dtk run does")
    p.add_argument("--calibration", type=int,
                   help="calibrate on this many crisp and as many soft training photos "
                        "(training.photoset.calibration_split) instead of those the fit held out")
    p.add_argument("--photos-of", metavar="MODEL",
                   help="calibrate on the photos MODEL was calibrated on (its sidecar's calibration), e.g. "
                        "at 256x448 after a native calibration; a part refitted since must have held them "
                        "out (training.fit --hold-out MODEL)")
    p.add_argument("--strong-floor", type=float, default=0.0,
                   help="never choose a strong threshold below this (a second MLP: see training.decision's "
                        "out-of-fold count of frames it took for k11 above each threshold)")
    p.add_argument("--keep-deblur", action="store_true",
                   help="keep the model's deblur threshold (it serves frames of every size): a 256x448 "
                        "calibration after a native one then sets only what frames of one tile use "
                        "(strong, agree), recorded as calibration_one_tile")
    p.add_argument("--outcomes", help="choose from these saved outcomes (NAME.outcomes.npz of an earlier "
                                      "run on the same checkpoint and photos) instead of running the network")
    args = p.parse_args(argv)
    inputs = with_checkpoint_files([args.checkpoint, args.photos, args.outcomes, args.photos_of])
    check_checkpoint_output(args.out, "-o", inputs=inputs)
    if not args.outcomes:
        check_output_file(f"{args.out}.outcomes.npz", "-o (its outcomes)", inputs=inputs)
    if args.threads:
        torch.set_num_threads(args.threads)
    doc = read_sidecar(args.checkpoint)
    names = set(doc.get("calibration_photos") or [])
    if args.calibration:
        names = calibration_split(args.photos, args.calibration)
    if args.photos_of:
        names = calibrated_on(args.photos_of)
    if not names:
        raise DtkError(f"{args.checkpoint} names no calibration photos: train with --calibration N, "
                       "or give --calibration N here (photos it never trained on)")
    model = load_model(args.checkpoint)
    if args.native:
        from toolkit.core.demo import parse_frame_size

        photos = native_crops(names, parse_frame_size(args.native))
        windows = sorted(photos.items())
    else:
        photos = {n: im for n, im in load_sources(args.photos, "train").items() if n in names}
        windows = photo_windows(photos)
    if args.outcomes:
        res = load_outcomes(args.outcomes)
    elif args.native:
        res = native_outcomes(Path(args.checkpoint), [w for _, w in windows])
    else:
        res = outcomes(model, validation_tensors([w for _, w in windows], "cpu"))
    if not args.outcomes:
        save_outcomes(f"{args.out}.outcomes.npz", res)
    c = model.config
    best, rows = calibrate(res, strong_floor=args.strong_floor,
                           deblur=c.gate_deblur if args.keep_deblur else None)
    if args.native and c.head_strong:  # its thresholds for frames of several tiles
        gated = with_gate(model, best["deblur"], c.gate_strong, best["strong"], c.gate_agree, best["agree"])
    else:
        gated = with_gate(model, best["deblur"], best["strong"], agree=best["agree"])
    meta = {k: v for k, v in doc.items() if k not in ("config", "tensor_sha256", "format", "arch")}
    keys = ("deblur", "strong", "agree", "gain", "harmed")
    front = [{k: r[k] for k in keys} for r in frontier(rows)]
    key = "calibration_one_tile" if args.keep_deblur and not args.native else "calibration"
    meta[key] = {"photos": sorted(photos), "frames": len(windows), "native": args.native,
                 "best": best, "cap_db": CAP_DB, "frontier": front,
                 "strong_floor": args.strong_floor, "keep_deblur": args.keep_deblur}
    save_checkpoint(args.out, gated, meta)
    print(json.dumps({k: best[k] for k in keys}))
    for label, r in best["labels"].items():
        print(f"{label}: mean {r['mean']:.2f} gain {r['gain']:+.2f} worst {r['worst_gain']:+.2f} "
              f"harmed {r['harmed']} decided pass/k7/k11 {r['decided']}")
    if args.strong_floor:
        print(f"strong >= {args.strong_floor} (--strong-floor)")
    print("frontier (the best gain for each count of frames harmed):")
    for r in front:
        print(f"  harmed {r['harmed']:3d}  gain {r['gain']:+.3f} dB  "
              f"deblur {r['deblur']}  strong {r['strong']}  agree {r['agree']}")

if __name__ == "__main__":
    raise SystemExit(main())

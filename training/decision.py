"""Fit a blind model's second decision MLP (the head's `strong` one: when to deconvolve as k11) on
frozen evidence from frames at the scales dtk meets.

    python -m training.decision toolkit/assets/dtk-unet.safetensors --photos data/photoset -o runs/r3/strong
    python -m training.calibrate runs/r3/strong.safetensors --native 1280x720 --calibration 200 \
        --strong-floor 0.999 -o runs/r3/strong-gated

Why: the head's features are fixed convolutions whose pooled means (the evidence, as `dtk run`
decides on it: engines.tiled.frames_evidence) are what its MLP judges. Round 2 fitted that MLP on
256x448 frames squashed from large photos; at a user's own scale, where photos are softer per pixel,
it is never sure of k11 (issue 28). A second MLP of the same shape, fitted on evidence of many photos
at their own scale (~1.1k weights, the features untouched: cheap on a CPU, it cannot learn a photo's
pixels), decides k11 alone (head.gate); the first keeps deciding whether to deblur at all, where a
refitted one was surer of soft sharp photos being blurred (cross-validation by photo).

Photos: the photo set's colour training photos, never the validation photos and never the ones
`training.calibrate --native WxH --calibration N` calibrates on (training photos whose original holds
a WxH window). Frames of each photo: its original at its own scale (the centre WxH window, or its
portrait turn, plus the top-left one when the original is twice as large; or the whole original when it
is smaller but holds one 256x448 tile) and the stored copy's validation-style 256x448 windows
(squashed and 1:1); each sharp, k3, k7 and k11. The evidence is cached (`-o`.evidence.npz).

Loss: cross-entropy plus `over` x -log P(no class stronger than the truth): deconvolving one class
too hard costs ~11 dB, one class too soft ~3 dB. Frames at their own scale weigh 3x, soft photos
2x. `--folds K` (default 5) first cross-validates by photo: the proxy frontier (`proxy_frontier`)
judges the settings on photos the fit did not see, and `false_strong` counts, per threshold and
scale (own scale; 256x448 windows), the frames it took for k11 that were not: the sidecar keeps the
counts, from which calibrate's `--strong-floor` is chosen (its 65 photos alone cannot see a
one-in-twenty error): the lowest threshold with none at own scale for `--native` (the model's
`gate_strong_native`, for frames of several tiles), with none in windows for 256x448 frames.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.errors import exits_on_dtk_error
from toolkit.core.modelfiles import check_checkpoint_output, with_checkpoint_files
from toolkit.core.models.checkpoint import load_model, save_checkpoint
from toolkit.core.safepaths import check_output_file
from training import photocatalog as cat
from training.photoset import calibration_split, centre_window, load_sources, photo_windows, read_index

LABEL_CLASS = {"sharp": 0, "k3": 0, "k7": 1, "k11": 2}  # pass / k7 / k11 (fastwiener.CLASSES)
LABELS = tuple(LABEL_CLASS)
OWN_SCALE = ("native", "native2", "whole")  # kinds of frame at the photo's own scale
# rough PSNR gain of deciding [true class][decided class] (dB, from calibrate's native outcomes): only
# to rank settings in cross-validation; training.calibrate scores the real outputs
PROXY_GAIN = np.array([[0.0, -30.0, -40.0], [0.0, 6.0, -9.0], [0.0, 1.5, 6.0]])


def own_scale_frames(original: np.ndarray, size: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """(kind, frame) cut from a photo's original at its own scale (module doc)."""
    h, w = original.shape[:2]
    centre = centre_window(original, size)
    if centre is not None:
        out = [("native", centre)]
        th, tw = centre.shape[:2]
        if h >= 2 * th or w >= 2 * tw:
            out.append(("native2", np.ascontiguousarray(original[:th, :tw])))
        return out
    if min(h, w) >= min(FRAME_SIZE) and max(h, w) >= max(FRAME_SIZE):
        return [("whole", original)]
    return []


def collect(checkpoint: Path, photos: Path, native: tuple[int, int], calibration: int,
            cache: Path | None = None, log=print) -> dict[str, np.ndarray]:
    """{ev, label, photo, kind, soft}: one row per frame (module doc); fetches nothing."""
    from engines.tiled import frames_evidence
    from engines.torch import TorchRunner
    from toolkit.core.kernels import KERNELS, blur
    from training.photoset import candidates
    from training.photosources import DEFAULT_CACHE, PackageCache

    records = {r["name"]: r for r in read_index(photos)}
    held = calibration_split(photos, calibration)
    stored = {n: im for n, im in load_sources(photos, "train").items() if records[n]["colour"]}
    runner = TorchRunner(checkpoint)
    rows: dict[str, list] = {"ev": [], "label": [], "photo": [], "kind": [], "soft": []}
    found = candidates(PackageCache(cache or DEFAULT_CACHE, fetch=False))
    originals = {c.name: c for c in found if c.name in stored}
    start, used, skipped = time.time(), 0, 0
    for name in sorted(stored):
        original = originals[name].load()[0] if name in originals else stored[name]
        if name in held and name in originals and centre_window(original, native) is not None:
            skipped += 1  # calibrate --native decides on this photo
            continue
        frames = own_scale_frames(original, native) + [("window", w) for _, w in
                                                       photo_windows({name: stored[name]})]
        for label in LABELS:
            blurred = [f if label == "sharp" else blur(f, KERNELS[label]) for _, f in frames]
            for (kind, _), ev in zip(frames, frames_evidence(runner, blurred), strict=True):
                for key, value in (("ev", ev), ("label", label), ("photo", name), ("kind", kind),
                                   ("soft", records[name].get("character") == "soft")):
                    rows[key].append(value)
        used += 1
        if used % 20 == 0:
            log(f"{used} photos, {len(rows['ev'])} frames, {time.time() - start:.0f} s")
    stand_ins = len(set(stored) - set(originals))
    log(f"{used} photos ({skipped} calibration photos left out; {stand_ins} without their original in the "
        f"package cache: own-scale frames from the stored copy), {len(rows['ev'])} frames, "
        f"{time.time() - start:.0f} s")
    return {k: np.array(v) for k, v in rows.items()}


def weights(data: dict[str, np.ndarray]) -> np.ndarray:
    return np.where(np.isin(data["kind"], OWN_SCALE), 3.0, 1.0) * np.where(data["soft"], 2.0, 1.0)


def too_strong(classes: torch.Tensor, n: int = 3) -> torch.Tensor:
    """N x n: 1 where a class is stronger than the true one (it would deconvolve too hard)."""
    return (torch.arange(n)[None, :] > classes[:, None]).float()


def fit_mlp(mlp: nn.Module, evidence: np.ndarray, classes: np.ndarray, w: np.ndarray, *, steps: int = 1500,
            lr: float = 3e-3, weight_decay: float = 1e-3, over: float = 4.0, seed: int = 0) -> nn.Module:
    """Full-batch Adam on log evidence (as KernelHead.decide sees it); returns `mlp`, fitted in place."""
    from toolkit.core.models.head import LOG_FLOOR

    torch.manual_seed(seed)
    x = torch.log(torch.from_numpy(evidence).float() + LOG_FLOOR)
    y = torch.from_numpy(classes).long()
    wt = torch.from_numpy(w).float()
    up = too_strong(y)
    opt = torch.optim.Adam(mlp.parameters(), lr=lr, weight_decay=weight_decay)
    mlp.train()
    for _ in range(steps):
        logits = mlp(x)
        p_over = (torch.softmax(logits, dim=1) * up).sum(dim=1).clamp(max=1 - 1e-6)
        loss = nn.functional.cross_entropy(logits, y, reduction="none") - over * torch.log1p(-p_over)
        loss = (loss * wt).sum() / wt.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mlp.eval()


def probabilities(mlp: nn.Module, evidence: np.ndarray) -> np.ndarray:
    from toolkit.core.models.head import LOG_FLOOR

    with torch.no_grad():
        return torch.softmax(mlp(torch.log(torch.from_numpy(evidence).float() + LOG_FLOOR)), dim=1).numpy()


def proxy_frontier(probs: np.ndarray, classes: np.ndarray, strong_probs: np.ndarray | None = None,
                   grid=(0.5, 0.8, 0.9, 0.95, 0.99, 0.999)) -> list[dict]:
    """For each count of frames decided too strong: the gate (deblur, strong) with the most proxy gain
    (head.gate's rule: with `strong_probs`, the second MLP's decides k11)."""
    from training.calibrate import decisions, frontier, gate_pairs

    rows = []
    for d, s in gate_pairs(grid, strong_probs is not None):
        dec = decisions(probs, d, s, strong_probs)
        rows.append({"deblur": d, "strong": s, "over": int((dec > classes).sum()),
                     "gain": float(PROXY_GAIN[classes, dec].mean()),
                     "k7_as_k7": float((dec[classes == 1] == 1).mean()),
                     "k11_as_k11": float((dec[classes == 2] == 2).mean())})
    return frontier(rows, harm="over")


def gate_counts(probs: np.ndarray, classes: np.ndarray, strong_probs: np.ndarray, deblur: float,
                strong: float, agree: float) -> dict:
    """What one gate (head.gate's rule) decides on frames of known blur: sharp or k3 frames it
    deblurs, k7 frames it takes for k11, the proxy gain."""
    from training.calibrate import decisions

    dec = decisions(probs, deblur, strong, strong_probs, agree)
    return {"deblur": deblur, "strong": strong, "agree": agree,
            "sharp_deblurred": int(((classes == 0) & (dec > 0)).sum()),
            "sharp_frames": int((classes == 0).sum()),
            "k7_as_k11": int(((classes == 1) & (dec == 2)).sum()),
            "gain": round(float(PROXY_GAIN[classes, dec].mean()), 3)}


def false_strong(strong_probs: np.ndarray, classes: np.ndarray) -> dict[str, int]:
    """{threshold: frames that are not k11 whose P(k11) from the second MLP exceeds it} for each
    threshold of calibrate's grid (out-of-fold probabilities: the rate at which it deconvolves a
    frame too hard on photos it did not see; calibrate --strong-floor is chosen from it)."""
    from training.calibrate import GRID

    wrong = strong_probs[classes < 2, 2]
    return {str(g): int((wrong > g).sum()) for g in GRID}


def cross_validate(start: nn.Module, data: dict[str, np.ndarray], folds: int, **fit_args) -> np.ndarray:
    """Probabilities of every frame from an MLP fitted without its photo (K folds by photo)."""
    import copy

    names = np.unique(data["photo"])
    order = np.random.default_rng(0).permutation(len(names)) % folds  # folds of equal size
    fold_of = dict(zip(names, order, strict=True))
    fold = np.array([fold_of[p] for p in data["photo"]])
    classes = np.array([LABEL_CLASS[lb] for lb in data["label"]])
    probs = np.zeros((len(classes), 3))
    for k in range(folds):
        train = fold != k
        mlp = fit_mlp(copy.deepcopy(start), data["ev"][train], classes[train], weights(data)[train],
                      **fit_args)
        probs[~train] = probabilities(mlp, data["ev"][~train])
    return probs


def with_strong(model: nn.Module) -> nn.Module:
    """A copy of `model` with a second decision MLP (config.head_strong), started as its first."""
    from dataclasses import replace

    from toolkit.core.models import create_model

    out = create_model(replace(model.config, head_strong=True))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.strong.")}
    missing, unexpected = out.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("head.strong.") for k in missing), (missing, unexpected)
    out.head.strong.load_state_dict(model.head.mlp.state_dict())
    return out


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> None:
    from toolkit.core.demo import parse_frame_size

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--photos", default="data/photoset")
    p.add_argument("-o", "--out", required=True, help="the refitted checkpoint (without suffix)")
    p.add_argument("--native", default="1280x720", metavar="WxH",
                   help="own-scale window (calibrate's --native)")
    p.add_argument("--calibration", type=int, default=200,
                   help="calibrate's --calibration N (its photos are left out)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--over", type=float, default=4.0, help="weight of -log P(no class too strong)")
    p.add_argument("--weight-decay", type=float, default=1e-3)
    p.add_argument("--folds", type=int, default=5,
                   help="cross-validate by photo first (0: no)")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    inputs = with_checkpoint_files([args.checkpoint, args.photos])
    check_checkpoint_output(args.out, "-o", inputs=inputs)
    check_output_file(f"{args.out}.evidence.npz", "-o (its evidence cache)", inputs=inputs)
    if args.threads:
        torch.set_num_threads(args.threads)
    cached = Path(f"{args.out}.evidence.npz")
    if cached.is_file():
        data = dict(np.load(cached))
        print(f"evidence from {cached}: {len(data['ev'])} frames")
    else:
        data = collect(Path(args.checkpoint), Path(args.photos), parse_frame_size(args.native),
                       args.calibration)
        packed = io.BytesIO()
        np.savez_compressed(packed, **data)
        write_bytes_atomic(cached, packed.getvalue())
    model = with_strong(load_model(args.checkpoint))
    classes = np.array([LABEL_CLASS[lb] for lb in data["label"]])
    own = np.isin(data["kind"], OWN_SCALE)
    fit_args = {"steps": args.steps, "over": args.over, "weight_decay": args.weight_decay}
    report, false = {}, None
    if args.folds:
        main_probs = probabilities(model.head.mlp, data["ev"])
        cv = cross_validate(model.head.mlp, data, args.folds, **fit_args)
        for name, strong in (("first MLP alone", None), ("cross-validated second MLP", cv)):
            report[name] = {scale: proxy_frontier(main_probs[sel], classes[sel], None if strong is None
                                                  else strong[sel])
                            for scale, sel in (("own scale", own), ("256x448 windows", ~own))}
            for scale, rows in report[name].items():
                print(f"{name}, {scale} ({int((own if scale == 'own scale' else ~own).sum())} frames):")
                for r in rows[:5]:
                    print(f"  over {r['over']:3d}  proxy gain {r['gain']:+.2f}  deblur {r['deblur']} strong "
                          f"{r['strong']}  k7 as k7 {r['k7_as_k7']:.2f}  k11 as k11 {r['k11_as_k11']:.2f}")
        false = {scale: false_strong(cv[sel], classes[sel])
                 for scale, sel in (("own scale", own), ("256x448 windows", ~own))}
        # the checkpoint's own gate, out of fold, on photos its first MLP (round 2's) never saw
        c, unseen = model.config, ~np.isin(data["photo"], list(cat.ROUND2_TRAINED))
        report["the model's gate"] = {
            scale: gate_counts(main_probs[sel], classes[sel], cv[sel], c.gate_deblur, strong, agree)
            for scale, sel, strong, agree in (
                ("own scale", own & unseen, c.gate_strong_native or c.gate_strong, c.gate_agree_native),
                ("256x448 windows", ~own & unseen, c.gate_strong, c.gate_agree))}
        for scale, r in report["the model's gate"].items():
            print(f"out of fold, the model's gate, {scale}: {r['sharp_deblurred']} of {r['sharp_frames']} "
                  f"sharp or k3 frames deblurred, {r['k7_as_k11']} k7 frames taken for k11, "
                  f"proxy gain {r['gain']:+.2f}")
        for scale, counts in false.items():
            print(f"out of fold, {scale}: frames that are not k11 taken for k11 above each threshold: "
                  + ", ".join(f"{g}: {n}" for g, n in counts.items()))
    fit_mlp(model.head.strong, data["ev"], classes, weights(data), **fit_args)
    meta = {"decision_fit": {"from": str(args.checkpoint), "photos": int(len(np.unique(data["photo"]))),
                             "frames": int(len(classes)), "own_scale_frames": int(own.sum()),
                             "native": args.native, "calibration": args.calibration, **fit_args,
                             "cross_validation": report, "false_k11_out_of_fold": false}}
    print(f"wrote {save_checkpoint(args.out, model, meta)}")


if __name__ == "__main__":
    raise SystemExit(main())

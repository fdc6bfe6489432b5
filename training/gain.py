"""What each way of deblurring a frame gains, measured on synthesised content: the data a decision
by expected gain is fitted on.

For a frame (any content category of training.content, blurred with none / k3 / k7 / k11 at its
size) the options are: pass (0 dB by definition), the network told k7 or k11 (its refined
output), and the bank's prior inverse of k7 or k11 alone (no refiner). `collect` records, per
frame, the head's evidence as `dtk run` decides on it, the frame's band energies and each option's
gain in dB over its input (clipped to +-GAIN_CLIP).
"""

from __future__ import annotations

import numpy as np

from toolkit.core.baselines import BASELINES
from toolkit.core.kernels import blur, get_kernel
from toolkit.core.metrics import capped, psnr

OPTIONS = ("k7", "k7-prior", "k11", "k11-prior")
BLURS = ("none", "k3", "k7", "k11")
GAIN_CLIP = 20.0


def option_gains(runner, inputs: list[np.ndarray], sharp: list[np.ndarray], batch: int = 8) -> np.ndarray:
    """N x len(OPTIONS): each option's PSNR gain over the input (dB, clipped)."""
    from engines.tiled import Tiling, deblur_frames

    base = np.array([capped(psnr(i, s)) for i, s in zip(inputs, sharp, strict=True)])
    cols = []
    for option in OPTIONS:
        kernel = option.split("-")[0]
        if option.endswith("prior"):
            outs = [BASELINES["prior"](i, get_kernel(kernel)) for i in inputs]
        else:
            outs = deblur_frames(runner, inputs, Tiling(), batch=batch, known_blur=kernel).images
        cols.append(np.array([capped(psnr(o, s)) for o, s in zip(outs, sharp, strict=True)]) - base)
    return np.clip(np.stack(cols, axis=1), -GAIN_CLIP, GAIN_CLIP)


def collect(runner, frames: list[dict], log=print) -> dict[str, np.ndarray]:
    """Per frame dict {frame, photo, category, ...} and blur: evidence (as `runner` gives it: a
    gain head's model includes the band energies), option gains and labels."""
    from engines.tiled import Tiling, frames_evidence

    rows: dict[str, list] = {k: [] for k in ("ev", "gains", "blur", "photo", "category", "size")}
    for b in BLURS:
        sharp = [f["frame"] for f in frames]
        inputs = sharp if b == "none" else [blur(s, get_kernel(b)) for s in sharp]
        rows["ev"].append(frames_evidence(runner, inputs, Tiling()))
        rows["gains"].append(option_gains(runner, inputs, sharp))
        for f in frames:
            rows["blur"].append(b)
            rows["photo"].append(f["photo"])
            rows["category"].append(f["category"])
            rows["size"].append(f["size"])
        log(f"{b}: {len(frames)} frames")
    return {"ev": np.concatenate(rows["ev"]), "gains": np.concatenate(rows["gains"]),
            **{k: np.array(rows[k]) for k in ("blur", "photo", "category", "size")}}


def told_rows(blurs: np.ndarray) -> np.ndarray:
    """The `known_blur` class of each row told its true blur (k7 -> 1, k11 -> 2; else -1: not told)."""
    return np.array([{"k7": 1.0, "k11": 2.0}.get(str(b), -1.0) for b in blurs], dtype=np.float32)


def option_mask(known: np.ndarray) -> np.ndarray:
    """N x 4: the options a row may take (every one blind; told k7 / k11: that kernel's two)."""
    mask = np.ones((len(known), len(OPTIONS)), dtype=np.float32)
    told = known >= 0
    mask[told] = 0.0
    mask[known == 1, 0:2] = 1.0
    mask[known == 2, 2:4] = 1.0
    return mask


def training_rows(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(evidence, known, gains, mask): each frame once blind and, when blurred with k7 / k11, once
    told its blur."""
    known = told_rows(data["blur"])
    told = known >= 0
    ev = np.concatenate([data["ev"], data["ev"][told]])
    k = np.concatenate([np.full(len(known), -1.0, dtype=np.float32), known[told]])
    gains = np.concatenate([data["gains"], data["gains"][told]])
    return ev.astype(np.float32), k, gains.astype(np.float32), option_mask(k)


FIT_CLIP = (-6.0, 12.0)  # gains the fit sees: a harm of 6 dB and of 60 dB decide alike


def fit_gain_head(head, data: dict[str, np.ndarray], *, steps: int = 3000, batch: int = 512,
                  lr: float = 3e-3, seed: int = 0) -> float:
    """Fit `head` (toolkit.core.models.head.GainHead) in place on collected rows: its feature
    standardisation from the data, then its MLP (Huber loss on the allowed options' clipped gains).
    Returns the last batch's loss."""
    import torch

    ev, known, gains, mask = (torch.from_numpy(a) for a in training_rows(data))
    torch.manual_seed(seed)
    with torch.no_grad():
        head.mean.zero_()
        head.std.fill_(1.0)
        z = head.features(ev)[:, :-2]
        head.mean.copy_(z.mean(0))
        head.std.copy_(z.std(0) + 1e-6)
        x = head.features(ev, known[:, None])
    target = gains.clamp(*FIT_CLIP)
    opt = torch.optim.Adam(head.mlp.parameters(), lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        idx = torch.randint(len(x), (min(batch, len(x)),))
        err = torch.nn.functional.smooth_l1_loss(head.mlp(x[idx]), target[idx], reduction="none")
        loss = (err * mask[idx]).sum() / mask[idx].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return float(loss)


def predicted(head, data: dict[str, np.ndarray], told: bool) -> np.ndarray:
    """N x 4 predicted gains of every frame, blind or told its true blur (rows not told: NaN)."""
    import torch

    known = told_rows(data["blur"]) if told else np.full(len(data["blur"]), -1.0, dtype=np.float32)
    with torch.no_grad():
        g = head(torch.from_numpy(data["ev"].astype(np.float32)), torch.from_numpy(known[:, None])).numpy()
    if told:
        g[known < 0] = np.nan
    return g


def realised(pred: np.ndarray, data: dict[str, np.ndarray], margin: float, told: bool) -> np.ndarray:
    """The gain each frame gets when the decision takes the best allowed predicted option above
    `margin` (else passes: 0 dB); told rows not blurred with k7 / k11: NaN (head.gain_decision)."""
    known = told_rows(data["blur"]) if told else np.full(len(pred), -1.0, dtype=np.float32)
    score = np.where(option_mask(known) > 0, np.nan_to_num(pred, nan=-1e4), -1e4)
    best = score.argmax(1)
    take = score[np.arange(len(score)), best] > margin
    out = np.where(take, data["gains"][np.arange(len(score)), best], 0.0)
    return np.where((known >= 0) | (not told), out, np.nan)

"""What each way of deblurring a frame gains, measured on synthesised content, and the decision by
expected gain fitted on it (round 4: toolkit.core.models.head.GainHead).

    python -m training.gain toolkit/assets/dtk-unet.safetensors --photoset data/photoset \
        -o runs/r4/gain [--per-photo 2] [--seeds 0,1,2own]

writes runs/r4/gain.safetensors/.json: the model with a gain head (its other weights as given)
fitted on frames of the photo set's training photos (never the validation photos, never the
calibration photos) made into every content category (training.content), at 256x448 and at
320x576 (several tiles, decided as `dtk run` decides), each unblurred and blurred k3 / k7 / k11.
The collected gains are kept (`-o`.gainsSEED.npz, one per seed's frames) and reused by a rerun.

For a frame (any content category of training.content, blurred with none / k3 / k7 / k11 at its
size) the options are: pass (0 dB by definition), the network told k7 or k11 (its refined
output), and the bank's prior inverse of k7 or k11 alone (no refiner). `collect` records, per
frame, the head's evidence as `dtk run` decides on it, the frame's band energies and each option's
gain in dB over its input (clipped to +-GAIN_CLIP).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from toolkit.core.baselines import BASELINES
from toolkit.core.bounds import parse_list
from toolkit.core.errors import DtkError, exits_on_dtk_error
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


def evidence_of(runner, frames: list[dict]) -> np.ndarray:
    """The evidence rows of `collect`'s order (blur-major) for `frames`, as `runner` decides."""
    from engines.tiled import Tiling, frames_evidence

    rows = []
    for b in BLURS:
        inputs = [f["frame"] if b == "none" else blur(f["frame"], get_kernel(b)) for f in frames]
        rows.append(frames_evidence(runner, inputs, Tiling()))
    return np.concatenate(rows)


def collect(runner, frames: list[dict], log=print, evidence_runner=None) -> dict[str, np.ndarray]:
    """Per frame dict {frame, photo, category, ...} and blur (BLURS-major rows): evidence as
    `evidence_runner` (default `runner`) decides on it (a gain head's model's includes the band
    energies), option gains (told, from `runner`) and labels."""
    rows: dict[str, list] = {k: [] for k in ("gains", "blur", "photo", "category", "size")}
    sharp = [f["frame"] for f in frames]
    for b in BLURS:
        inputs = sharp if b == "none" else [blur(s, get_kernel(b)) for s in sharp]
        rows["gains"].append(option_gains(runner, inputs, sharp))
        for f in frames:
            rows["blur"].append(b)
            for key in ("photo", "category", "size"):
                rows[key].append(f[key])
        log(f"{b}: {len(frames)} frames")
    return {"ev": evidence_of(evidence_runner or runner, frames), "gains": np.concatenate(rows["gains"]),
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


# the gain the decision reads (per option, OPTIONS order): a low quantile, not the mean; lower for
# the k11 options, since k11 taken for a k7 frame costs ~10 dB and k7 taken for a k11 frame ~2.
# Fitted on seeds 0,1,2own, scored on the 40 validation photos' collected gains (3,544 frames of
# every content category, `predicted` + `realised` below): k11 options at 0.15: 27 harmed by
# > 0.5 dB, mean blind k11 +5.10; at 0.20: 27, +5.26; at 0.25: 46, +5.46
QUANTILE = (0.35, 0.35, 0.2, 0.2)


def fit_gain_head(head, data: dict[str, np.ndarray], *, steps: int = 3000, batch: int = 512,
                  lr: float = 3e-3, seed: int = 0,
                  quantile: float | tuple[float, ...] | None = QUANTILE) -> float:
    """Fit `head` (toolkit.core.models.head.GainHead) in place on collected rows: its feature
    standardisation from the data, then its MLP on the allowed options' clipped gains: the
    `quantile` of each option's gain given the evidence (pinball loss), or with None its mean
    (Huber loss); a tuple gives each option (OPTIONS) its own. A low quantile is a cautious
    decision: an option that is right on most frames like this one but costs 10 dB on the others
    (k11 on a k7 frame) is not taken. The MLP starts from weights drawn from `seed` (whatever it
    held before), so a fit is a function of the data and the seed. Returns the last batch's loss."""
    import torch

    ev, known, gains, mask = (torch.from_numpy(a) for a in training_rows(data))
    torch.manual_seed(seed)
    for layer in head.mlp:
        if isinstance(layer, torch.nn.Linear):
            layer.reset_parameters()
    with torch.no_grad():
        head.mean.zero_()
        head.std.fill_(1.0)
        z = head.features(ev)[:, :-2]
        head.mean.copy_(z.mean(0))
        head.std.copy_(z.std(0))  # a constant feature's 0: GainHead.features
        x = head.features(ev, known[:, None])
    target = gains.clamp(*FIT_CLIP)
    opt = torch.optim.Adam(head.mlp.parameters(), lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        idx = torch.randint(len(x), (min(batch, len(x)),))
        diff = target[idx] - head.mlp(x[idx])
        if quantile is None:
            err = torch.nn.functional.smooth_l1_loss(diff, torch.zeros_like(diff), reduction="none")
        else:
            q = torch.as_tensor(quantile, dtype=diff.dtype)
            err = torch.maximum(q * diff, (q - 1) * diff)
        loss = (err * mask[idx]).sum() / mask[idx].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return loss.item()


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


def gain_frames(photoset: Path | str, seed: int = 0, per_photo: int = 2, calibration: int = 40,
                own_only: bool = False) -> list[dict]:
    """The fit's frames (deterministic in `seed`): `per_photo` 256x448 frames of random categories
    from every training photo but the calibration ones, and one 320x576 frame from every third
    (`own_only`: one 320x576 frame from every photo, nothing else: frames of several tiles, as
    users' frames are)."""
    from training.content import training_frames
    from training.photoset import calibration_split, load_sources

    photos = load_sources(photoset, "train")
    held = calibration_split(photoset, calibration)
    photos = {k: v for k, v in photos.items() if k not in held}
    rng = np.random.default_rng(seed)
    if own_only:
        return training_frames(photos, (320, 576), 1, rng, label="own")
    frames = training_frames(photos, (256, 448), per_photo, rng, label="256x448")
    frames += training_frames(dict(list(photos.items())[::3]), (320, 576), 1, rng, label="own")
    return frames


MARGINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
HARM_DB = 0.5  # a frame made worse than its input by more than this is harmed (issue 39's bar)


def out_of_fold(data: dict[str, np.ndarray], pooled_width: int, folds: int = 5, seed: int = 0,
                **fit) -> tuple[np.ndarray, ...]:
    """(blind, told) predicted gains of every row from heads fitted without its photo
    (`pooled_width`: the head's pooled features, the rest of the evidence being band energies)."""
    from toolkit.core.models.head import GainHead

    photos = np.unique(data["photo"])
    np.random.default_rng(seed).shuffle(photos)
    blind, told = np.zeros_like(data["gains"]), np.zeros_like(data["gains"])
    width = data["ev"].shape[1]
    for part in np.array_split(photos, folds):
        test = np.isin(data["photo"], part)
        head = GainHead(pooled_width, width - pooled_width)
        fit_gain_head(head, {k: v[~test] for k, v in data.items()}, **fit)
        rest = {k: v[test] for k, v in data.items()}
        blind[test], told[test] = predicted(head, rest, False), predicted(head, rest, True)
    return blind, told


HARM_WEIGHT = 3.0  # a dB lost on a frame made worse weighs as 3 dB gained on others (doing no harm first)


def choose_margin(pred: np.ndarray, data: dict[str, np.ndarray], told: bool) -> tuple[float, dict]:
    """Blind: the margin of MARGINS with the best score, mean(gain) + (HARM_WEIGHT - 1) x
    mean(loss) (losses: the frames made worse, clipped at -GAIN_CLIP dB): the gain on the frames
    it helps against HARM_WEIGHT times what it costs the frames it harms. Told: the fewest frames
    harmed, then the most gain. And the table."""
    table = {}
    for m in MARGINS:
        got = realised(pred, data, m, told)
        got = got[~np.isnan(got)]
        table[m] = {"harmed": int(np.sum(got < -HARM_DB)), "worse": int(np.sum(got < -0.1)),
                    "mean_gain": float(got.mean()), "worst": float(got.min()),
                    "score": float(got.mean() + (HARM_WEIGHT - 1) * np.minimum(got, 0).mean())}
    if told:  # a blur the user knows: no frame harmed first (issue 39's bar), then the most gain
        best = min(MARGINS, key=lambda m: (table[m]["harmed"], -table[m]["mean_gain"]))
    else:
        best = max(MARGINS, key=lambda m: table[m]["score"])
    return best, table


EVIDENCE_RULE = "whole-frame"  # how the cached evidence was taken (engines.tiled: a gain head's frames
# decide on their own evidence); a cache with another rule gets its evidence taken again, its gains kept


def _collected(model, a, frames: list[dict], cache: Path) -> dict[str, np.ndarray]:
    """The gains and evidence of `frames`, cached in `cache`: collected when absent, the evidence
    taken again when the cache's was taken by another rule (EVIDENCE_RULE)."""
    import io
    import tempfile

    from engines.onnxruntime import OrtRunner
    from engines.spec import RunnerSpec
    from toolkit.core.atomic import write_bytes_atomic
    from training.export import export_onnx

    data = None
    if cache.is_file():
        data = dict(np.load(cache))
        if len(data["photo"]) != len(BLURS) * len(frames):
            raise DtkError(f"{cache} holds other frames: remove it or choose another -o")
        if str(data.get("evidence_rule", "")) == EVIDENCE_RULE:
            return data
    onnx = a.checkpoint.with_suffix(".onnx")
    with tempfile.TemporaryDirectory(prefix="dtk-gain-") as scratch:
        evidence_onnx = export_onnx(model, Path(scratch) / "gain.onnx")
        with OrtRunner(evidence_onnx, threads=a.threads) as evidence_runner:
            if data is not None:
                data["ev"] = evidence_of(evidence_runner, frames)
            else:
                with RunnerSpec.choose("onnxruntime", onnx if onnx.is_file() else None,
                                       threads=a.threads).open() as runner:
                    data = collect(runner, frames, evidence_runner=evidence_runner)
    data["evidence_rule"] = np.array(EVIDENCE_RULE)
    buf = io.BytesIO()
    np.savez(buf, **data)
    write_bytes_atomic(cache, buf.getvalue())
    return data


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> int:
    from toolkit.core.modelfiles import check_checkpoint_output, with_checkpoint_files
    from toolkit.core.models import create_model
    from toolkit.core.models.checkpoint import load_model, save_checkpoint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="the model whose network the decision is fitted for")
    p.add_argument("--photoset", type=Path, required=True, help="the photo set (dtk data photos DIR)")
    p.add_argument("-o", "--out", type=Path, required=True, help="the new checkpoint (X -> X.safetensors)")
    p.add_argument("--per-photo", type=int, default=2)
    p.add_argument("--seeds", default="0", help="comma-separated: one set of frames per seed (more data); "
                   "SEEDown: a set of 320x576 frames only")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--quantile", default=",".join(map(str, QUANTILE)),
                   help="the quantile of each option's gain the decision reads (one, or one per option)")
    p.add_argument("--threads", type=int)
    a = p.parse_args(argv)
    try:
        quantile = tuple(float(v) for v in parse_list(a.quantile, "--quantile"))
    except ValueError:
        raise DtkError(f"--quantile {a.quantile!r}: numbers in (0, 1), one or {len(OPTIONS)}") from None
    if len(quantile) not in (1, len(OPTIONS)) or not all(0 < q < 1 for q in quantile):
        raise DtkError(f"--quantile {a.quantile!r}: numbers in (0, 1), one or {len(OPTIONS)}")
    fit = {"steps": a.steps, "quantile": quantile if len(quantile) > 1 else quantile[0]}
    seeds = parse_list(a.seeds, "--seeds")
    if not all(v.removesuffix("own").isdigit() for v in seeds):
        raise DtkError(f"--seeds {a.seeds!r}: comma-separated seeds, each a number, or a number and 'own'")
    check_checkpoint_output(a.out, "-o", inputs=with_checkpoint_files([a.checkpoint, a.photoset]))
    base = load_model(a.checkpoint)
    model = create_model(dataclasses.replace(base.config, gain_head=True))
    missing = model.load_state_dict(base.state_dict(), strict=False).missing_keys
    if any(not k.startswith("gain.") for k in missing):
        raise DtkError(f"{a.checkpoint} is not a fastwiener model a gain head can be fitted to")
    started = time.perf_counter()
    parts, n_frames = [], 0
    for seed in seeds:
        frames = gain_frames(a.photoset, int(seed.removesuffix("own")), a.per_photo,
                             own_only=seed.endswith("own"))
        n_frames += len(frames)
        parts.append(_collected(model, a, frames, a.out.with_name(f"{a.out.name}.gains{seed}.npz")))
    data = {k: np.concatenate([d[k] for d in parts]) for k in parts[0] if k != "evidence_rule"}
    blind, told = out_of_fold(data, model.head.evidence_width, **fit)
    margin, blind_table = choose_margin(blind, data, False)
    told_margin, told_table = choose_margin(told, data, True)
    fit_gain_head(model.gain, data, seed=int(seeds[0].removesuffix("own")), **fit)
    model.config = dataclasses.replace(model.config, gain_margin=margin, gain_margin_told=told_margin)
    meta = {"gain_fit": {"frames": n_frames, "rows": len(data["photo"]),
                         "photos": int(len(np.unique(data["photo"]))), "seeds": seeds, "steps": a.steps,
                         "quantile": quantile,
                         "margin": margin, "told_margin": told_margin,
                         "out_of_fold": {"blind": {str(k): v for k, v in blind_table.items()},
                                         "told": {str(k): v for k, v in told_table.items()}},
                         "seconds": round(time.perf_counter() - started, 1)},
            "kernels": ["k3", "k7", "k11"], "base": str(a.checkpoint)}
    save_checkpoint(a.out, model, meta)
    print(json.dumps(meta["gain_fit"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

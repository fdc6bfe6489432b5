"""Fit a model on the photo set for a fixed wall time, on the GPU when there is one.

    python -m training.fit data/photoset -o runs/fast --minutes 4 [--arch fastwiener|seed]

Batches come from `training.sampler.PhotoSampler` on the device; bf16 autocast on CUDA; Adam with
warm-up and cosine decay over the time limit; validation on held-out colour photos
(`training.photoset.VAL_PHOTOS`) every `--val-seconds`; best.* / last.* checkpoints
(safetensors + JSON), history.csv, curves.png and, at the end, `val.json`: the best checkpoint on
every validation window, per kernel and per source photo.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.errors import DtkError, exits_on_dtk_error
from toolkit.core.models import ModelConfig, count_parameters, create_model
from toolkit.core.models.checkpoint import load_model, save_checkpoint
from toolkit.core.models.fastwiener import class_index
from toolkit.core.safepaths import check_output_folder
from training.calibrate import calibrated_on
from training.photoset import calibration_split, load_sources, validation_set
from training.sampler import PhotoSampler, psnr_uint8, quantize, validation_tensors
from training.train import diverged, finite_parameters, image_loss, write_curves

ARCHS = {
    "fastwiener": {"arch": "fastwiener", "width": 24, "head_width": 32},
    "seed": {"arch": "seed", "width": 64, "tail_convs": 6},
}


@dataclass
class FitConfig:
    photos: str = "data/photoset"
    out: str = "runs/fit"
    arch: str = "fastwiener"
    width: int | None = None  # override the arch's width
    minutes: float = 4.0
    batch: int = 16
    crop: int | None = None  # square crops instead of full 256x448 frames (CPU runs)
    lr: float = 2e-3
    warmup: int = 100
    loss: str = "psnr"
    kernel_loss_weight: float = 0.3
    dead_leaves: float = 0.25
    val_seconds: float = 30.0
    val_windows: int = 48  # windows scored during training
    final_windows: int | None = None  # windows scored at the end (None: all)
    seed: int = 0
    max_steps: int | None = None
    device: str | None = None
    init: str | None = None  # start from these weights (tensors of another head size are left new)
    head_shares: int = 0  # the head's local detectors (fastwiener; toolkit.core.models.head)
    soften: float = 0.0  # share of training frames softened by nature (training.soften)
    train: str = "all"  # which part learns: all, head or decision (cross-entropy only), refiner
    label_smoothing: float = 0.0  # of the head's cross-entropy (head, decision)
    native_share: float | None = None  # share of training windows at the photo's own scale
    calibration: int = 0  # crisp and as many soft training photos held out for `training.calibrate`
    hold_out: str | None = None  # a calibrated model: the photos it was calibrated on are left out
    threads: int | None = None  # torch CPU threads


def score(metrics: dict[str, dict[str, float]]) -> float:
    """What 'best' means: mean k7/k11 PSNR, minus what sharp frames lose below 80 dB and k3 frames
    lose below their input (less 0.3 dB)."""
    s = float(np.mean([metrics[k]["output"] for k in ("k7", "k11") if k in metrics]))
    if "sharp" in metrics:
        s -= max(0.0, 80.0 - metrics["sharp"]["output"])
    if "k3" in metrics:
        s -= max(0.0, metrics["k3"]["input"] - 0.3 - metrics["k3"]["output"])
    return s


@torch.no_grad()
def validate(
    model,
    val: dict,
    names: list[str] | None = None,
    batch: int = 8,
    autocast: bool = False,
    per_window: bool = False,
) -> dict:
    """Mean PSNR per label (input, output); with `names`, also per source photo; `per_window`: each."""
    model.eval()
    out: dict = {}
    for label, (blurred, sharp) in val.items():
        scores = []
        for i in range(0, len(blurred), batch):
            x = blurred[i : i + batch].float() / 255.0
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
                y = model(x)
            scores.append(psnr_uint8(quantize(y), sharp[i : i + batch]))
        s = torch.cat(scores).cpu().numpy()
        inp = psnr_uint8(blurred, sharp).cpu().numpy()
        out[label] = {"input": float(inp.mean()), "output": float(s.mean()), "frames": len(s)}
        if per_window:
            out[label]["windows"] = s.tolist()
        if names:
            per: dict = {}
            for n, a, b in zip(names, inp, s, strict=True):
                per.setdefault(n, []).append((a, b))
            out[label]["per_photo"] = {
                n: {
                    "input": float(np.mean([v[0] for v in vs])),
                    "output": float(np.mean([v[1] for v in vs])),
                    "frames": len(vs),
                }
                for n, vs in per.items()
            }
    model.train()
    return out


def fit(config: FitConfig, *, log=print) -> dict:

    if config.arch not in ARCHS:
        raise DtkError(f"unknown arch {config.arch!r}: choose one of {', '.join(ARCHS)}")
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if config.train not in PARTS:
        raise DtkError(f"unknown --train {config.train!r}: choose one of {', '.join(PARTS)}")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    check_output_folder(out, "-o", inputs=(config.photos, config.init, config.hold_out))
    out.mkdir(parents=True, exist_ok=True)
    train_photos = load_sources(config.photos, "train")
    held = calibration_split(config.photos, config.calibration) if config.calibration else set()
    if config.hold_out:
        held |= calibrated_on(config.hold_out)
    train_photos = {n: im for n, im in train_photos.items() if n not in held}
    windows = validation_set(config.photos)
    pick = np.linspace(0, len(windows) - 1, min(config.val_windows, len(windows))).round().astype(int)
    val_small = validation_tensors([windows[i][1] for i in pick], device)
    sampler = PhotoSampler(
        train_photos, device, dead_leaves=config.dead_leaves, crop=config.crop, seed=config.seed,
        soften=config.soften, native_share=config.native_share,
    )
    sizes = {"width": config.width} if config.width else {}
    if config.head_shares:
        sizes["head_shares"] = config.head_shares
    model_cfg = ModelConfig(**dict(ARCHS[config.arch], **sizes))
    start = load_model(config.init) if config.init else None
    if start is not None and start.config.arch == config.arch:
        # the start's own architecture (its second decision MLP, its gate), resized as asked
        model_cfg = replace(start.config, **sizes)
    model = create_model(model_cfg)
    if start is not None:
        fresh = init_from(model, start)
        log(f"--init {config.init}: new (not in it or another shape): {', '.join(fresh) or 'none'}")
    model = model.to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    has_head = config.arch == "fastwiener"
    if config.train != "all" and not has_head:
        raise DtkError(f"--train {config.train} needs a model with a kernel head (fastwiener)")
    learning = learned_parameters(model, config.train)
    opt = torch.optim.Adam(learning, lr=config.lr)
    meta = {
        "kernels": ["k3", "k7", "k11"],
        "data": config.photos,
        "train_photos": sorted(train_photos),
        "val_photos": sorted({n for n, _ in windows}),
        "calibration_photos": sorted(held),
        "params": count_parameters(model),
        "fit_config": asdict(config),
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
    }
    write_bytes_atomic(out / "config.json", (json.dumps(meta, indent=2) + "\n").encode())
    log(
        f"{config.arch}: {meta['params']:,} params on {meta['device']}; train photos {len(train_photos)}, "
        f"val windows {len(windows)} ({len(pick)} during training)"
    )
    budget = config.minutes * 60.0
    t0 = time.monotonic()
    last_val = t0
    step, history, best = 0, [], -math.inf
    loss_sum, loss_n = torch.zeros((), device=device), 0
    best_metrics = None

    def elapsed() -> float:
        return time.monotonic() - t0

    while elapsed() < budget and (config.max_steps is None or step < config.max_steps):
        progress = min(1.0, elapsed() / budget)
        lr = config.lr * min(1.0, (step + 1) / config.warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y, labels = sampler.batch(config.batch)
        if cuda:
            x, y = (
                x.contiguous(memory_format=torch.channels_last),
                y.contiguous(memory_format=torch.channels_last),
            )
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = batch_loss(model, x, y, labels, config, has_head)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(learning, 1.0)
        opt.step()
        step += 1
        loss_sum += loss.detach()
        loss_n += 1
        done = elapsed() >= budget or (config.max_steps is not None and step >= config.max_steps)
        if time.monotonic() - last_val >= config.val_seconds or done:
            # checked here, not every step (that would sync the GPU each step): a non-finite loss
            # since the last validation stops the run before anything is saved (exit 3)
            if not bool(torch.isfinite(loss_sum)):
                mean = float(loss_sum) / max(loss_n, 1)
                raise diverged(step, f"the training loss ({mean})", out, config.lr)
            if not finite_parameters(model):
                raise diverged(step, "the weights", out, config.lr)
            metrics = validate(model, val_small, autocast=False)
            s = score(metrics)
            row = {
                "step": step,
                "minutes": round(elapsed() / 60, 3),
                "lr": lr,
                "train_loss": round(float(loss_sum) / max(loss_n, 1), 5),
                "val_score": round(s, 3),
            }
            for k, m in metrics.items():
                row[f"val_{k}_in"], row[f"val_{k}_out"] = round(m["input"], 3), round(m["output"], 3)
            history.append(row)
            loss_sum.zero_()
            loss_n = 0
            mark = ""
            if s > best:
                best, best_metrics, mark = s, metrics, " *best*"
                save_checkpoint(
                    out / "best", model, dict(meta, step=step, metrics=metrics, score=s, history=history)
                )
            save_checkpoint(out / "last", model, dict(meta, step=step, metrics=metrics, score=s))
            write_curves(history, out)
            log(
                f"step {step} {row['minutes']} min loss {row['train_loss']} "
                + " ".join(f"{k} {m['input']:.2f}->{m['output']:.2f}" for k, m in metrics.items())
                + mark
            )
            last_val = time.monotonic()

    best_model = load_model(out / "best.safetensors", device=str(device))
    if config.final_windows is not None and config.final_windows < len(windows):
        keep = np.linspace(0, len(windows) - 1, config.final_windows).round().astype(int)
        windows = [windows[i] for i in keep]
    full = validation_tensors([w for _, w in windows], device)
    final = validate(best_model, full, names=[n for n, _ in windows])
    result = {
        "arch": config.arch,
        "steps": step,
        "minutes": round(elapsed() / 60, 2),
        "steps_per_s": round(step / max(elapsed(), 1e-9), 2),
        "best_score_small": best,
        "best_metrics_small": best_metrics,
        "val": final,
        "val_windows": len(windows),
        "device": meta["device"],
        "params": meta["params"],
    }
    write_bytes_atomic(out / "val.json", (json.dumps(result, indent=2) + "\n").encode())
    log(
        f"done: {step} steps in {result['minutes']} min; full validation "
        + " ".join(f"{k} {m['input']:.2f}->{m['output']:.2f}" for k, m in final.items())
    )
    return result


PARTS = ("all", "head", "decision", "refiner")


def init_from(model: torch.nn.Module, start: torch.nn.Module) -> list[str]:
    """Copy `start`'s tensors into `model` where name and shape agree; the names left new.

    A 2-D weight that only grew inputs (the head's first MLP layer when local detectors are
    added) gets `start`'s columns first and zeros after: the grown model starts deciding exactly
    as `start` did."""
    if getattr(start.config, "arch", None) != model.config.arch:
        raise DtkError(f"--init is a {start.config.arch} model, not a {model.config.arch}")
    theirs = start.state_dict()
    mine = model.state_dict()
    same = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
    for k, v in theirs.items():
        m = mine.get(k)
        if m is not None and v.dim() == 2 and m.dim() == 2 and m.shape[0] == v.shape[0] > 0 \
                and m.shape[1] > v.shape[1]:
            grown = torch.zeros_like(m)
            grown[:, : v.shape[1]] = v
            same[k] = grown
    model.load_state_dict(same, strict=False)
    return sorted(k for k in mine if k not in same)


def learned_parameters(model: torch.nn.Module, part: str) -> list[torch.nn.Parameter]:
    """The parameters `part` trains (the rest are frozen)."""
    if part == "all":
        chosen = list(model.parameters())
    elif part == "decision":  # the head's local detectors and MLP; its conv features stay
        chosen = [p for n, p in model.head.named_parameters() if not n.startswith("features.")]
    else:
        chosen = list((model.head if part == "head" else model.refine).parameters())
    keep = {id(p) for p in chosen}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return chosen


def batch_loss(model, x, y, labels, config: FitConfig, has_head: bool) -> torch.Tensor:
    """The training loss of one batch: the image loss with the true classes mixing (teacher
    forcing) and/or the head's cross-entropy, as `config.train` says."""
    if not has_head:
        return image_loss(model(x).float(), y, config.loss)
    classes = class_index(labels).to(x.device)
    if config.train in ("head", "decision"):  # the bank and the head only: no refiner pass
        logits = model.head.decide(model.evidence(x))
        return torch.nn.functional.cross_entropy(logits.float(), classes,
                                                 label_smoothing=config.label_smoothing)
    pred, logits, _ = model.decided(x, classes=classes)
    loss = image_loss(pred.float(), y, config.loss)
    if config.train == "all":
        loss = loss + config.kernel_loss_weight * torch.nn.functional.cross_entropy(logits.float(), classes)
    return loss


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--arch", default="fastwiener", choices=list(ARCHS))
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--width", type=int)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--loss", default="psnr")
    p.add_argument("--dead-leaves", type=float, default=0.25)
    p.add_argument("--val-seconds", type=float, default=30.0)
    p.add_argument("--val-windows", type=int, default=48)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--final-windows", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device")
    p.add_argument("--init", help="start from this checkpoint's weights")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--head-shares", type=int, default=0, help="the head's local detectors")
    p.add_argument("--soften", type=float, default=0.0, help="share of frames softened by nature")
    p.add_argument("--train", default="all", choices=list(PARTS), help="which part learns")
    p.add_argument("--calibration", type=int, default=0,
                   help="crisp and as many soft training photos held out for training.calibrate")
    p.add_argument("--hold-out", metavar="MODEL",
                   help="also leave out the photos MODEL was calibrated on (training.calibrate)")
    p.add_argument("--threads", type=int)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--native-share", type=float,
                   help="share of windows at the photo's own scale (default: every level alike)")
    fit(FitConfig(**vars(p.parse_args(argv))))  # each option is named as its FitConfig field
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

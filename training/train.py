"""Train the seed U-Net on blurred-on-the-fly sharp frames: `dtk train` calls `train(TrainConfig)`.

Run folder: best.* and last.* checkpoints (safetensors + JSON, last.* also with optimizer state),
history.csv and curves.png (loss and validation PSNR per kernel), config.json.
DDP: under `torchrun` (WORLD_SIZE > 1) each rank samples its own seeded batches; rank 0 validates,
checkpoints and logs.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.errors import DtkError
from toolkit.core.figures import pyplot, save_figure
from toolkit.core.kernels import blur, parse_kernels
from toolkit.core.metrics import psnr_capped
from toolkit.core.modelfiles import read_sidecar
from toolkit.core.models import ModelConfig, count_parameters, create_model
from toolkit.core.models.checkpoint import load_model, load_optimizer, save_checkpoint
from toolkit.core.models.unet import SeedUNet
from toolkit.core.models.wiener import class_index, kernel_loss
from toolkit.core.progress import make_progress
from training.data import SHARP, BlurSampler, data_hash, load_frames, split_by_sequence
from training.sampler import quantize

LOSSES = ("mse", "psnr")
PSNR_CAP_DB = 60.0  # the PSNR loss adds 10^(-cap/10) to each image's MSE (0..1 scale): no gain above the cap
SCORE_CAP_DB = 60.0


@dataclass
class TrainConfig:
    """Everything `dtk train` needs. The defaults are the seed's (Adam, MSE, batch 10, 40 x 64)."""

    data: str = "data/photos"
    out: str = "runs/train"
    width: int = 64
    tail_convs: int = 6
    residual: bool = False
    wiener: bool = False  # blind gated Wiener bank + kernel head (arch "wiener")
    head_width: int = 32
    kernel_loss_weight: float = 0.3  # weight of the head's kernel cross-entropy (wiener models)
    crop: int | None = None  # square crop side; None = full 256x448 frames
    batch: int = 10
    epochs: int = 40
    steps: int = 64
    lr: float = 1e-3
    cosine: bool = False
    loss: str = "mse"
    psnr_cap_db: float = PSNR_CAP_DB
    sharp_prob: float = 0.0
    kernels: str = "k3,k7,k11"
    frames: list[int] | None = None
    val_fraction: float = 0.2
    val_sequences: list[str] | None = None
    val_max_frames: int = 12
    seed: int = 0
    resume: str | None = None
    time_limit: float | None = None  # minutes
    checkpoint_minutes: float = 5.0
    threads: int | None = None
    extra: dict = field(default_factory=dict)


PRESETS = {
    "seed": {"width": 64, "tail_convs": 6, "residual": False, "crop": None, "batch": 10, "epochs": 40,
             "steps": 64, "lr": 1e-3, "cosine": False, "loss": "mse", "sharp_prob": 0.0},
    "cpu": {"width": 16, "tail_convs": 6, "residual": True, "crop": 128, "batch": 16, "epochs": 60,
            "steps": 64, "lr": 1e-3, "cosine": True, "loss": "psnr", "sharp_prob": 0.1},
}


class TrainingDiverged(DtkError):
    """The training loss (or the weights) stopped being finite: the run stops, exit code 3, and
    keeps the checkpoints it wrote before (finite ones; non-finite weights are never saved)."""

    exit_code = 3


def diverged(step: int, what: str, out: Path, lr: float) -> TrainingDiverged:
    """The error a training run stops with when `what` (the loss, the weights) is not finite at
    `step`: names the last checkpoint kept in `out`, if any."""
    last = next((out / n for n in ("last.safetensors", "best.safetensors") if (out / n).is_file()), None)
    kept = (f"the last finite checkpoint is kept: {last} (step {_checkpoint_step(last)})" if last
            else "no checkpoint had been written")
    return TrainingDiverged(f"training stopped at step {step}: {what} is not finite (NaN/inf), the run "
                            f"diverged; {kept}; lower the learning rate (it was {lr:g}) and start again")


def _checkpoint_step(weights: Path) -> str:
    try:
        return str(read_sidecar(weights).get("step", "?"))
    except DtkError:
        return "?"


def finite_parameters(model: torch.nn.Module) -> bool:
    """True when every parameter of `model` is finite (no NaN, no inf)."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def apply_preset(config: TrainConfig, name: str | None) -> TrainConfig:
    if name is None:
        return config
    if name not in PRESETS:
        raise DtkError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return replace(config, **PRESETS[name])


def image_loss(pred: torch.Tensor, target: torch.Tensor, kind: str,
               cap_db: float = PSNR_CAP_DB) -> torch.Tensor:
    """'mse': plain MSE. 'psnr': mean of 10 log10(MSE_i + 10^(-cap/10)) over images: minus a capped PSNR.

    The PSNR loss weighs equal *relative* errors equally, so nearly-unchanged (k3, sharp) frames
    count as much as heavily blurred ones, and an exactly-unchanged frame cannot dominate (the cap).
    """
    if kind == "mse":
        return torch.mean((pred - target) ** 2)
    if kind == "psnr":
        per_image = torch.mean((pred - target) ** 2, dim=(1, 2, 3))
        return torch.mean(10.0 * torch.log10(per_image + 10.0 ** (-cap_db / 10.0)))
    raise DtkError(f"unknown loss {kind!r}: choose one of {', '.join(LOSSES)}")


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W float 0..1 -> N x H x W x 3 uint8 (clip and round, as a written PNG)."""

    return quantize(x).permute(0, 2, 3, 1).cpu().numpy()


def validation_pairs(frames, kernels, max_frames: int | None = None) -> list[tuple]:
    """(kernel or 'sharp', input, target) uint8 full frames for every held-out frame and kernel."""

    items = frames.all_frames()
    if max_frames and len(items) > max_frames:
        idx = np.linspace(0, len(items) - 1, max_frames).round().astype(int)
        items = [items[i] for i in idx]
    pairs = []
    for _, sharp in items:
        for k in kernels:
            pairs.append((k.name, blur(sharp, k), sharp))
        pairs.append((SHARP, sharp, sharp))
    return pairs


@torch.no_grad()
def evaluate_pairs(model, pairs, device="cpu") -> dict[str, dict[str, float]]:
    """Mean PSNR per label: {'k7': {'input': dB, 'output': dB, 'identical_in': n}, ...}."""
    model.eval()
    acc: dict[str, dict[str, list]] = {}
    for label, inp, target in pairs:
        x = torch.tensor(inp).permute(2, 0, 1)[None].float().div(255).to(device)
        out = to_uint8(model(x))[0]
        a = acc.setdefault(label, {"input": [], "output": []})
        a["input"].append(psnr_capped(inp, target))
        a["output"].append(psnr_capped(out, target))
    return {k: {"input": float(np.mean(v["input"])), "output": float(np.mean(v["output"])),
                "frames": len(v["output"])} for k, v in acc.items()}


def val_score(metrics: dict) -> float:
    """Mean over labels of the output PSNR capped at 60 dB: what 'best' means."""
    return float(np.mean([min(m["output"], SCORE_CAP_DB) for m in metrics.values()]))


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _lr_at(config: TrainConfig, step: int, total: int, elapsed: float) -> float:
    if not config.cosine:
        return config.lr
    progress = step / max(1, total)
    if config.time_limit:
        progress = max(progress, elapsed / (config.time_limit * 60.0))
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def write_curves(history: list[dict], out: Path) -> None:
    """history.csv and curves.png (training loss; validation PSNR per label)."""
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    write_bytes_atomic(out / "history.csv", text.getvalue().encode())
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in history]
    a1.plot(steps, [r["train_loss"] for r in history])
    a1.set_xlabel("step")
    a1.set_ylabel("training loss")
    for k in [k for k in keys if k.startswith("val_") and k.endswith("_out")]:
        a2.plot(steps, [r.get(k) for r in history], label=k[4:-4])
    a2.set_xlabel("step")
    a2.set_ylabel("validation PSNR (dB, output)")
    a2.legend()
    save_figure(fig, out / "curves.png", dpi=100)


def train(config: TrainConfig, *, log=print) -> dict:
    """Run training; returns {'best': path, 'best_metrics': ..., 'steps': n, 'minutes': m}."""

    if config.loss not in LOSSES:
        raise DtkError(f"unknown loss {config.loss!r}: choose one of {', '.join(LOSSES)}")
    if not 0.0 <= config.sharp_prob < 1.0:
        raise DtkError("--sharp-prob must be in [0, 1)")
    world, rank, local_rank = _dist_info()
    if world > 1:
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    main = rank == 0
    out = Path(config.out)  # made once data, model and resume state are checked: a refused run leaves none

    kernels = parse_kernels(config.kernels)
    frames = load_frames(config.data, config.frames)
    train_names, val_names = split_by_sequence(frames.names, config.val_fraction, config.seed,
                                               config.val_sequences)
    train_set, val_set = frames.subset(train_names), frames.subset(val_names)
    crop = (config.crop, config.crop) if config.crop else None
    sampler = BlurSampler(train_set, kernels, crop=crop, sharp_prob=config.sharp_prob,
                          seed=config.seed * 1000 + rank)
    val_pairs = validation_pairs(val_set, kernels, config.val_max_frames) if main else []

    model_cfg = ModelConfig(arch="wiener" if config.wiener else "seed", width=config.width,
                            tail_convs=config.tail_convs, residual=config.residual,
                            head_width=config.head_width)
    model = create_model(model_cfg).to(device)
    if config.residual and isinstance(model, SeedUNet):  # start from the identity: y = x + 0
        torch.nn.init.zeros_(model.out.weight)
        torch.nn.init.zeros_(model.out.bias)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, history, best_score, elapsed_before = 0, [], -math.inf, 0.0
    if config.resume:
        doc = read_sidecar(config.resume)

        model.load_state_dict(load_model(config.resume).state_dict())
        load_optimizer(opt, config.resume)
        step = int(doc.get("step", 0))
        elapsed_before = float(doc.get("elapsed_s", 0.0))
        best_score = float(doc.get("best_score", -math.inf))
        history = doc.get("history", [])
        if doc.get("sampler_state") and world == 1:
            sampler.set_state(doc["sampler_state"])
    net = model
    if world > 1:
        ids = [local_rank] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    total = config.epochs * config.steps
    meta_base = {
        "kernels": [k.name for k in kernels], "data": str(config.data), "data_sha256": data_hash(frames),
        "train_sequences": train_names, "val_sequences": val_names, "params": count_parameters(model),
        "train_config": asdict(config),
    }
    out.mkdir(parents=True, exist_ok=True)
    if main:
        write_bytes_atomic(out / "config.json", (json.dumps(meta_base, indent=2) + "\n").encode())
        log(f"model: width {config.width}, {meta_base['params']:,} params; train {len(train_set)} frames in "
            f"{len(train_names)} sequences, val {len(val_set)} frames in {len(val_names)} "
            f"({', '.join(val_names)})")

    def checkpoint(name: str, metrics: dict | None, with_opt: bool) -> None:
        if not finite_parameters(model):  # never a non-finite checkpoint over a finite one
            raise diverged(step, "the weights", out, config.lr)
        meta = dict(meta_base, step=step, elapsed_s=elapsed_before + time.monotonic() - t0,
                    best_score=best_score, metrics=metrics, history=history,
                    sampler_state=sampler.state())
        save_checkpoint(out / name, model, meta, optimizer=opt if with_opt else None)

    t0 = time.monotonic()
    last_ckpt = t0
    stop = False
    losses: list[float] = []
    best_metrics = None
    progress = make_progress(unit="steps", transient=False) if main else None
    if progress:
        progress.start()
        task = progress.add_task("training", total=total, completed=step, done_before=step)
    try:
        while step < total and not stop:
            net.train()
            x, y, labels = sampler.batch(config.batch)
            x, y = x.to(device), y.to(device)
            lr = _lr_at(config, step, total, elapsed_before + time.monotonic() - t0)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            if config.wiener:
                pred, logits = net(x, True)
                loss = image_loss(pred, y, config.loss, config.psnr_cap_db)
                loss = loss + config.kernel_loss_weight * kernel_loss(logits, class_index(labels).to(device))
            else:
                loss = image_loss(net(x), y, config.loss, config.psnr_cap_db)
            value = float(loss.detach())
            if not math.isfinite(value):  # before the step: the weights stay as they were
                raise diverged(step + 1, f"the training loss ({value})", out, config.lr)
            loss.backward()
            opt.step()
            step += 1
            losses.append(value)
            elapsed = elapsed_before + time.monotonic() - t0
            if config.time_limit and elapsed > config.time_limit * 60.0:
                stop = True
            if progress:
                desc = f"training loss {np.mean(losses[-20:]):.4g}"
                progress.update(task, completed=step, description=desc)
            if not main:
                continue
            if step % config.steps == 0 or step == total or stop:
                metrics = evaluate_pairs(model, val_pairs, device)
                score = val_score(metrics)
                row = {"epoch": math.ceil(step / config.steps), "step": step,
                       "minutes": round(elapsed / 60, 2),
                       "lr": lr, "train_loss": float(np.mean(losses)), "val_score": score}
                for k, m in metrics.items():
                    row[f"val_{k}_in"], row[f"val_{k}_out"] = round(m["input"], 3), round(m["output"], 3)
                history.append(row)
                losses = []
                if score > best_score:
                    best_score, best_metrics = score, metrics
                    checkpoint("best", metrics, with_opt=False)
                checkpoint("last", metrics, with_opt=True)
                last_ckpt = time.monotonic()
                write_curves(history, out)
                log("epoch {epoch} step {step} {minutes} min loss {train_loss:.4g} ".format(**row)
                    + " ".join(f"{k} {m['input']:.2f}->{m['output']:.2f}" for k, m in metrics.items())
                    + (" *best*" if best_metrics is metrics else ""))
            elif time.monotonic() - last_ckpt > config.checkpoint_minutes * 60:
                checkpoint("last", None, with_opt=True)
                last_ckpt = time.monotonic()
    except TrainingDiverged as exc:
        if main:
            best = out / "best.safetensors"
            stopped = {"best": str(best) if best.is_file() else None, "diverged": str(exc), "steps": step,
                       "best_score": best_score, "best_metrics": best_metrics}
            text = json.dumps(stopped, indent=2, default=str) + "\n"
            write_bytes_atomic(out / "result.json", text.encode())
            write_curves(history, out)
        raise
    finally:
        if progress:
            progress.stop()
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    minutes = (elapsed_before + time.monotonic() - t0) / 60
    best = out / "best.safetensors"
    best_written = best.is_file()  # never name a checkpoint that is not there
    result = {"best": str(best) if best_written else None, "best_score": best_score,
              "best_metrics": best_metrics, "steps": step, "minutes": round(minutes, 2),
              "stopped_by_time_limit": stop}
    if main:
        write_bytes_atomic(out / "result.json", (json.dumps(result, indent=2) + "\n").encode())
        log(f"done: {step} steps in {minutes:.1f} min; "
            + (f"best checkpoint {best}" if best_written else "no checkpoint written (no validation ran)"))
    return result

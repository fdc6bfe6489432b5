"""Checkpoints as safetensors (weights) + a small JSON sidecar (config and metadata). Never pickle.

`run/best.safetensors` holds the weights, `run/best.json` the ModelConfig under "config" plus
meta (kernels, data, step, metrics, dtk version) and "tensor_sha256": the SHA-256 of every
weight tensor's bytes, verified at load (a damaged tensor is named; sidecars written before
the field existed load unverified). Optimizer state for resume goes into a
third file, `run/best.optim.safetensors`, with Adam's per-parameter tensors flattened.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from toolkit.core import constants
from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.errors import DtkError
from toolkit.core.modelfiles import checkpoint_paths, read_sidecar
from toolkit.core.models import ModelConfig, create_model

FORMAT = "dtk-unet-checkpoint/1"


def _state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    model = getattr(model, "module", model)  # unwrap DDP
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(path: Path | str, model: nn.Module, meta: dict | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write weights (.safetensors), sidecar (.json) and, if given, optimizer state; returns the weights."""
    from safetensors.torch import save

    weights, sidecar, optim_path = checkpoint_paths(path)
    inner = getattr(model, "module", model)
    config: ModelConfig = inner.config
    doc = {"format": FORMAT, "arch": config.arch, "config": config.to_dict(),
           "dtk_version": constants.__version__}
    doc.update(meta or {})
    state = _state_dict(model)
    bad = non_finite_tensors(state)
    if bad:  # a diverged run: what is on disk (an earlier, finite checkpoint) stays as it was
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DtkError(f"refusing to save {weights}: tensor(s) {', '.join(bad[:5])}{more} hold NaN/inf "
                       "(training diverged; lower the learning rate)")
    doc["tensor_sha256"] = tensor_digests(state)
    write_bytes_atomic(weights, save(state, metadata={"format": FORMAT}))
    if optimizer is not None:
        write_bytes_atomic(optim_path, save(flatten_optimizer(optimizer)))
        doc["optimizer_file"] = optim_path.name
    write_bytes_atomic(sidecar, (json.dumps(doc, indent=2, default=_json_default) + "\n").encode())
    return weights


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold a NaN or an inf."""
    return sorted(name for name, t in state.items()
                  if t.is_floating_point() and not bool(torch.isfinite(t).all()))


def tensor_sha256(tensor: torch.Tensor) -> str:
    """SHA-256 (hex) of a tensor's bytes as stored (contiguous, native byte order, any dtype)."""
    import hashlib

    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return hashlib.sha256(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"").hexdigest()


def tensor_digests(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """{name: SHA-256} of every tensor of a state dict."""
    return {name: tensor_sha256(t) for name, t in sorted(state.items())}


def verify_tensors(state: dict[str, torch.Tensor], recorded: dict, weights: Path) -> None:
    """DtkError naming the tensors whose bytes differ from the SHA-256 the sidecar recorded."""
    if not isinstance(recorded, dict):
        raise DtkError(f"the sidecar of {weights} has a malformed 'tensor_sha256' (not a mapping)")
    bad = sorted(name for name, digest in recorded.items()
                 if name in state and tensor_sha256(state[name]) != digest)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DtkError(f"checkpoint {weights} is damaged: tensor(s) {shown} do not match the SHA-256 "
                       "recorded at save time; restore the file from its source or retrain")


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.exists():
        raise DtkError(f"checkpoint weights not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DtkError(f"corrupt checkpoint weights {path}: {exc}") from None


def load_model(path: Path | str, device: str = "cpu") -> nn.Module:
    """Rebuild the U-Net from a checkpoint (the .safetensors or .json path), in eval mode."""
    weights, _, _ = checkpoint_paths(path)
    doc = read_sidecar(path)
    try:
        config = ModelConfig.from_dict(doc["config"])
        model = create_model(config)
    except (TypeError, ValueError) as exc:
        raise DtkError(f"bad architecture config in {path}: {exc}") from None
    state = _load_tensors(weights)
    if "tensor_sha256" in doc:  # sidecars written before dtk recorded it load unverified
        verify_tensors(state, doc["tensor_sha256"], weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DtkError(f"checkpoint {weights} does not match its config {config}: "
                       f"{str(exc).splitlines()[0]}") from None
    return model.to(device).eval()


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Optimizer state as flat named tensors: 'state.<param>.<key>' and 'group.<i>.<hyper>'."""
    sd = optimizer.state_dict()
    flat: dict[str, torch.Tensor] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value, dtype=torch.float64)
            flat[f"state.{pid}.{key}"] = t.detach().cpu().contiguous()
    for gi, group in enumerate(sd["param_groups"]):
        for key, value in group.items():
            if key == "params":
                flat[f"group.{gi}.params"] = torch.tensor(value, dtype=torch.int64)
            elif isinstance(value, bool) or value is None:
                continue  # structural flags come from the optimizer's constructor
            elif isinstance(value, (int, float)):
                flat[f"group.{gi}.{key}"] = torch.tensor(float(value), dtype=torch.float64)
            elif isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value):
                flat[f"group.{gi}.{key}"] = torch.tensor([float(v) for v in value], dtype=torch.float64)
    return flat


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path | str) -> None:
    """Restore optimizer state saved by `save_checkpoint(..., optimizer=...)` (exact resume)."""
    _, _, optim_path = checkpoint_paths(path)
    flat = _load_tensors(optim_path)
    sd = optimizer.state_dict()
    state: dict[int, dict] = {}
    for name, t in flat.items():
        kind, idx, key = name.split(".", 2)
        if kind == "state":
            state.setdefault(int(idx), {})[key] = t
    groups = []
    for gi, group in enumerate(sd["param_groups"]):
        g = dict(group)
        for key, value in group.items():
            name = f"group.{gi}.{key}"
            if key == "params" or name not in flat:
                continue
            t = flat[name]
            if isinstance(value, tuple):
                g[key] = tuple(t.tolist())
            elif isinstance(value, int) and not isinstance(value, bool):
                g[key] = int(t.item())
            else:
                g[key] = float(t.item())
        groups.append(g)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise DtkError(f"optimizer state {optim_path} does not match the model: {exc}") from None

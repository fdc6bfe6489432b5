"""The architecture of a dtk model: a registered name plus its sizes, stored in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelConfig:
    """What `create_model` builds. The defaults are the seed report's U-Net (10,614,595 params)."""

    arch: str = "seed"  # a registered architecture: seed, wiener or fastwiener
    width: int = 64  # channels of the first stage (seed U-Net: w, 2w, 4w, 8w)
    tail_convs: int = 6  # 3x3 w->w convs after the last decoder conv (seed U-Net)
    residual: bool = False  # output = input + f(input) instead of f(input) (seed U-Net)
    in_channels: int = 3
    out_channels: int = 3
    head_width: int = 32  # channels of the kernel head (wiener, fastwiener)
    head_shares: int = 0  # local detectors whose share of positions the head pools (fastwiener; 0: none)
    gate_deblur: float = 0.0  # deblur only when P(k7)+P(k11) exceeds this (fastwiener; 0: a soft mix)
    gate_strong: float = 0.0  # ... and as k11 only when P(k11) exceeds this (with gate_deblur > 0)
    head_strong: bool = False  # a second head MLP whose P(k11) alone decides k11 (training.decision)
    gate_strong_native: float = 0.0  # its threshold for frames decided over several tiles (0: gate_strong)
    gate_agree: float = 0.0  # with a second MLP: deblur only when both MLPs' P(blurred) exceed this (0: off)
    gate_agree_native: float = 0.0  # the same for frames decided over several tiles (0: off there)
    gain_head: bool = False  # decide by expected gain (head.GainHead on pooled features + band energies)
    gain_margin: float = 0.0  # ... deblur blind only when the best option's expected gain exceeds this (dB)
    gain_margin_told: float = 0.0  # ... and told the blur (--known-blur), when it exceeds this (dB)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """From a sidecar's "config"; sidecars written before the registry said `wiener: true`
        for the gated Wiener U-Net (arch "seed")."""
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if d.get("wiener") and known.get("arch", "seed") == "seed":
            known["arch"] = "wiener"
        return cls(**known)

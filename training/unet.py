"""The seed report's deblurring U-Net (Table 1), as a config + nn.Module. Nothing else.

Table 1's rows sum to 10,614,595 parameters, but the report states 10,577,667: exactly one
3x3 64->64 conv (36,928) less. The rows' "Connected to" column is self-consistent and lists
six 64->64 convs after the last decoder conv (conv2d_15..conv2d_20), so `tail_convs=6` is the
default; `tail_convs=5` gives the stated total. The final conv has 387 params: 1x1, linear.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the seed U-Net. The defaults are the seed's (10,614,595 params)."""

    width: int = 64  # channels of the first stage; stages use w, 2w, 4w, 8w
    tail_convs: int = 6  # 3x3 w->w convs after the last decoder conv
    residual: bool = False  # output = input + f(input) instead of f(input)
    in_channels: int = 3
    out_channels: int = 3
    wiener: bool = False  # blind gated Wiener bank + kernel head in front (training.wiener.WienerUNet)
    head_width: int = 32  # channels of the kernel head (wiener models only)
    arch: str = "seed"  # "seed" (this U-Net, or the gated Wiener one with wiener=True) or "fastwiener"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def conv3x3(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]


def conv_stack(cin: int, cout: int, n: int) -> nn.Sequential:
    """n 3x3 conv + ReLU layers, the first cin->cout, the rest cout->cout."""
    layers: list[nn.Module] = []
    for i in range(n):
        layers += conv3x3(cin if i == 0 else cout, cout)
    return nn.Sequential(*layers)


class SeedUNet(nn.Module):
    """Encoder (3 max-pools) - bottleneck - decoder with skip concats - tail with the input re-fed.

    Input and output: N x 3 x H x W, H and W divisible by 8 (the seed uses 256 x 448).
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = c = config or UNetConfig()
        w = c.width
        self.enc1 = conv_stack(c.in_channels, w, 2)
        self.enc2 = conv_stack(w, 2 * w, 2)
        self.enc3 = conv_stack(2 * w, 4 * w, 2)
        self.bottleneck = conv_stack(4 * w, 8 * w, 3)
        self.pool = nn.MaxPool2d(2)
        self.up3 = nn.ConvTranspose2d(8 * w, 4 * w, 2, stride=2)
        self.dec3 = conv_stack(8 * w, 4 * w, 2)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = conv_stack(4 * w, 2 * w, 3)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = conv_stack(2 * w, w, 1 + c.tail_convs)
        self.head = conv_stack(w + c.in_channels, 2 * w, 2)
        self.out = nn.Conv2d(2 * w, c.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        b = self.bottleneck(self.pool(e3))
        d3 = self.dec3(torch.cat([self.up3(b), e3], dim=1))
        d2 = self.dec2(torch.cat([self.up2(d3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        y = self.out(self.head(torch.cat([d1, x], dim=1)))
        return x + y if self.config.residual else y


def build_model(config: UNetConfig | None = None) -> nn.Module:
    """The network a config describes: the seed U-Net, or the gated Wiener U-Net around one."""
    config = config or UNetConfig()
    if config.arch == "fastwiener":
        from training.fastwiener import FastWienerNet

        return FastWienerNet(config)
    if config.arch != "seed":
        raise ValueError(f"unknown architecture {config.arch!r}")
    if config.wiener:
        from training.wiener import WienerUNet

        return WienerUNet(config)
    return SeedUNet(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""The seed report's deblurring U-Net (Table 1), as an nn.Module (registered as "seed").

Table 1's rows sum to 10,614,595 parameters, but the report states 10,577,667: exactly one
3x3 64->64 conv (36,928) less. The rows' "Connected to" column is self-consistent and lists
six 64->64 convs after the last decoder conv (conv2d_15..conv2d_20), so `tail_convs=6` is the
default; `tail_convs=5` gives the stated total. The final conv has 387 params: 1x1, linear.
"""

from __future__ import annotations

import torch
from torch import nn

from toolkit.core.models.config import ModelConfig
from toolkit.core.models.registry import register


def conv3x3(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]


def conv_stack(cin: int, cout: int, n: int) -> nn.Sequential:
    """n 3x3 conv + ReLU layers, the first cin->cout, the rest cout->cout."""
    layers: list[nn.Module] = []
    for i in range(n):
        layers += conv3x3(cin if i == 0 else cout, cout)
    return nn.Sequential(*layers)


@register("seed")
class SeedUNet(nn.Module):
    """Encoder (3 max-pools) - bottleneck - decoder with skip concats - tail with the input re-fed.

    Input and output: N x 3 x H x W, H and W divisible by 8 (the seed uses 256 x 448).
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = c = config or ModelConfig()
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

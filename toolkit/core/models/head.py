"""The kernel head both gated models share: conv features, global mean, log, MLP -> class logits."""

from __future__ import annotations

import torch
from torch import nn


class KernelHead(nn.Module):
    """Which blur does this frame carry? `features` (strided convs) -> mean -> log -> MLP."""

    def __init__(self, features: nn.Module, width: int, classes: int):
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))
        return self.mlp(torch.log(pooled + 1e-4))  # log: ratios of energies, not the frame's contrast

"""The kernel head both gated models share: conv features, global mean, log, MLP -> class logits.

The head's evidence is the frame's pooled features (`pool`: the spatial mean of the feature
maps, N x width, all >= 0 after ReLU). `decide` turns evidence into class logits. Splitting the
two lets one decision cover a whole frame cut into tiles: pool each tile, average the tiles'
evidence (toolkit.core.evidence, torch-free, where the names and the rule live), and run every
tile with that frame evidence (`given_or_own`).
"""

from __future__ import annotations

import torch
from torch import nn


class KernelHead(nn.Module):
    """Which blur does this frame carry? `features` (strided convs) -> mean -> log -> MLP."""

    def __init__(self, features: nn.Module, width: int, classes: int):
        super().__init__()
        self.features = features
        self.width = width
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, classes))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """N x width evidence: the mean of each feature map over the image."""
        return self.features(x).mean(dim=(2, 3))

    def decide(self, pooled: torch.Tensor) -> torch.Tensor:
        """Class logits from evidence (log: ratios of energies, not the frame's contrast)."""
        return self.mlp(torch.log(pooled + 1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decide(self.pool(x))


def given_or_own(own: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
    """The evidence a batch item is decided on: `given` where it is >= 0, else its own.

    `given` is N x width or 1 x width (broadcast); an element-wise Where, so it exports to ONNX
    and TensorRT as one op.
    """
    if given is None:
        return own
    return torch.where(given < 0, own, given.to(own.dtype))

"""The parts of a model that stay fp32 in an fp16 model or under bf16 autocast: the known-kernel
bank (its gains of ~20 would cost ~1 LSB in bf16) and the decision (head, band energies, gain MLP:
a decision is a threshold, where fp16 rounding flips frames near it)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn


def fp32_region(x: torch.Tensor) -> AbstractContextManager:
    """A context where autocast is off (no autocast on the meta device: FLOP counting)."""
    return torch.autocast(x.device.type, enabled=False) if x.device.type != "meta" else nullcontext()


def in_fp32(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`module` (Sequentials of Conv2d, Linear and ReLU) applied to `x` in fp32, its weights cast on
    the fly where they are not fp32 (an fp16 model). A module already in fp32 is called as it is (its
    ONNX nodes keep its scope's names)."""
    if all(p.dtype == torch.float32 for p in module.parameters()):
        with fp32_region(x):  # no bf16 autocast either
            return module(x.float())
    if isinstance(module, nn.Sequential):
        for child in module:
            x = in_fp32(child, x)
        return x
    if isinstance(module, nn.Conv2d):
        bias = None if module.bias is None else module.bias.float()
        return F.conv2d(x, module.weight.float(), bias, module.stride, module.padding, module.dilation,
                        module.groups)
    if isinstance(module, nn.Linear):
        return F.linear(x, module.weight.float(), None if module.bias is None else module.bias.float())
    return module(x)

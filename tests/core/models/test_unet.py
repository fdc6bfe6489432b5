"""The seed U-Net: Table 1's parameter counts (both readings) and forward shapes."""

from __future__ import annotations

import torch

from toolkit.core.models import ModelConfig, count_parameters
from toolkit.core.models.unet import SeedUNet


def test_parameter_counts_follow_rows_and_stated_total():
    assert count_parameters(SeedUNet(ModelConfig(tail_convs=6))) == 10_614_595  # Table 1's rows
    assert count_parameters(SeedUNet(ModelConfig(tail_convs=5))) == 10_577_667  # the stated total
    assert count_parameters(SeedUNet(ModelConfig(width=16, residual=True))) == 665_299
    assert SeedUNet().out.weight.shape[-2:] == (1, 1)  # final conv is 1x1 (387 params)


def test_forward_shapes():
    model = SeedUNet(ModelConfig(width=4, tail_convs=1, residual=True)).eval()
    with torch.no_grad():
        for shape in ((1, 3, 32, 56), (3, 3, 64, 64)):
            assert model(torch.rand(shape)).shape == shape


def test_flops_per_frame_counted_with_hooks():
    from toolkit.core.flops import frame_flops

    # 2 x MACs of the convs for one 3 x 256 x 448 frame at width 16 (MODEL.md)
    assert frame_flops(SeedUNet(ModelConfig(width=16, residual=True))) == 15_204_876_288

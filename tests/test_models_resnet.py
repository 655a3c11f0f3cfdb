"""The small ResNet of notebook 11 (course_utils.models.small_resnet)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.models import Residual, small_resnet


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 8, 8)])
def test_small_resnet_output_shape(shape):
    model = small_resnet(in_channels=shape[0], num_classes=7, width=4)
    assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_small_resnet_width_64_is_page_s_resnet9():
    model = small_resnet(width=64)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 128, 128, 256, 512, 512, 512]
    assert sum(p.numel() for p in model.parameters()) == 6_573_130


def test_small_resnet_has_two_residual_blocks_and_batch_norm_after_every_conv():
    model = small_resnet(width=8)
    assert sum(isinstance(m, Residual) for m in model.modules()) == 2
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(c.bias is None for c in convs)  # BatchNorm makes a bias redundant
    assert [n.num_features for n in norms] == [c.out_channels for c in convs]


def test_residual_adds_its_input():
    block = nn.Linear(3, 3)
    x = torch.randn(4, 3)
    torch.testing.assert_close(Residual(block)(x), x + block(x))


def test_small_resnet_trains_in_channels_last_and_bf16():
    torch.manual_seed(0)
    model = small_resnet(width=4).to(memory_format=torch.channels_last)
    x = torch.randn(8, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(model(x), torch.randint(0, 10, (8,)))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"in_channels": 0}, {"num_classes": 0}])
def test_small_resnet_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="positive"):
        small_resnet(**kwargs)

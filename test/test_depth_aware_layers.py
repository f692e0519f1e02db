"""DepthAwareConv2d and DepthAwareBlock (DACNN §3.3): shapes, alpha, gradients, impl choice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from depth_kd_core.layers.depth_aware import (
    DACNN_DILATIONS,
    DepthAwareBlock,
    DepthAwareConv2d,
)


def test_conv_with_alpha_zero_is_nn_conv2d():
    layer = DepthAwareConv2d(3, 5, dilation=2, impl="reference")
    assert layer.alpha.item() == 1.0  # METHODS §0: alpha initialised to 1
    plain = nn.Conv2d(3, 5, 3, padding=2, dilation=2)
    plain.load_state_dict({"weight": layer.weight, "bias": layer.bias})
    with torch.no_grad():
        layer.alpha.zero_()
    x, g = torch.randn(2, 3, 9, 10), torch.randn(2, 1, 9, 10)
    torch.testing.assert_close(layer(x, g), plain(x))


def test_conv_rejects_guidance_at_another_resolution():
    layer = DepthAwareConv2d(3, 4)
    with pytest.raises(ValueError, match="resize it"):
        layer(torch.randn(1, 3, 8, 8), torch.randn(1, 1, 16, 16))


@pytest.mark.parametrize("kernel", ["gaussian", "l1"])
def test_block_shapes_dilations_and_gradients(kernel):
    block = DepthAwareBlock(6, 8, branch_channels=4, kernel=kernel, impl="chunked")
    assert [b.dilation for b in block.branches] == list(DACNN_DILATIONS) == [1, 6, 12, 18]
    assert block.fuse.in_channels == 16 and block.fuse.kernel_size == (1, 1)
    # W = 21 > 18 so every branch, dilation 18 included, has in-image off-centre taps.
    x = torch.randn(2, 6, 9, 21)
    g = torch.randn(2, 3, 9, 21, requires_grad=True)
    out = block(x, g)
    assert out.shape == (2, 8, 9, 21)
    out.square().mean().backward()
    alphas = [b.alpha for b in block.branches]
    assert len({id(a) for a in alphas}) == 4  # one learnable alpha per layer (the default)
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert g.grad.abs().sum() > 0


def test_block_can_share_one_alpha():
    block = DepthAwareBlock(4, 4, share_alpha=True, alpha_init=0.5)
    alphas = {id(b.alpha) for b in block.branches}
    assert len(alphas) == 1 and block.branches[0].alpha.item() == 0.5
    n_alpha = sum(1 for name, _ in block.named_parameters() if name.endswith("alpha"))
    assert n_alpha == 1


def test_block_impls_agree():
    torch.manual_seed(3)
    block = DepthAwareBlock(3, 5, dilations=(1, 6), impl="reference")
    x, g = torch.randn(2, 3, 7, 9), torch.randn(2, 2, 7, 9)
    ref = block(x, g)
    for branch in block.branches:
        branch.impl = "chunked"
    torch.testing.assert_close(block(x, g), ref)

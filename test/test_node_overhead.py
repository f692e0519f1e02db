"""The node's per-frame work done once and vectorised gives the same values as the reference.

The BGR colouriser equals visualize.colorize_depth's colours, the one-pass resize of an
all-valid prediction equals the normalised (invalid-aware) resize, and the one-copy message
builders carry exactly the array.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depth_kd_core.data.bags import codec as mc
from depth_kd_core.data.bags.messages import bgr8_msg, depth_msg, make_header
from depth_kd_core.depth_maps import MIN_WEIGHT, all_positive_finite, resize_valid
from depth_kd_core.visualize import colorize_depth as colorize_depth_rgb
from depth_kd_ros.conversions import ros2_message_types

from bag_helpers import TS


@pytest.mark.parametrize("colormap", ["turbo", "viridis", "bone"])
def test_bgr_colouriser_equals_the_reference_colours(colormap):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.2, 150.0, (37, 53)).astype(np.float32)
    depth[0, :5] = [np.nan, 0.0, -1.0, np.inf, 1e-30]
    expected = colorize_depth_rgb(depth, 1.0, 80.0, colormap)[..., ::-1]
    np.testing.assert_array_equal(colorize_depth_rgb(depth, 1.0, 80.0, colormap, channels="bgr"),
                                  expected)
    # invalid: black
    assert (colorize_depth_rgb(depth, 1.0, 80.0, colormap, channels="bgr")[0, :4] == 0).all()


@pytest.mark.parametrize("size", [(50, 70), (12, 17)])
def test_one_pass_resize_of_valid_values_equals_the_normalised_resize(size):
    value = torch.rand(1, 2, 24, 32, dtype=torch.float64) * 10 + 1
    valid = torch.ones_like(value, dtype=torch.bool)
    shrink = size[0] < 24
    kw = dict(size=size, mode="bilinear", align_corners=False, antialias=shrink)
    normalised = F.interpolate(value, **kw) / F.interpolate(valid.double(), **kw)
    # upsampling goes through OpenCV (float32 weights): equal to ~1e-5
    torch.testing.assert_close(resize_valid(value, valid, size), normalised, rtol=1e-5,
                               atol=0)
    torch.testing.assert_close(resize_valid(value.float(), valid, size), normalised.float(),
                               rtol=1e-5, atol=0)
    valid[0, 0, :, :16] = False  # one invalid half: that part of the output is NaN
    out = resize_valid(value, valid, size)
    den = F.interpolate(valid.double(), **kw)
    assert torch.equal(torch.isnan(out), den < MIN_WEIGHT)


def _message_types() -> list:
    """Return the rosbags message classes, and rclpy's when rclpy is installed."""
    try:
        return [TS.types, ros2_message_types()]
    except ImportError:
        return [TS.types]


def test_message_builders_carry_the_array_once_and_exactly():
    depth = np.array([[1.5, np.nan, 0.0], [-2.0, np.inf, 80.0]], np.float32)
    for types in _message_types():
        hdr = make_header(types, (0, 5), "cam")
        msg = depth_msg(types, hdr, depth)
        assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == \
            ("32FC1", 2, 3, 12, 0)
        out = mc.image_to_array(msg)
        np.testing.assert_array_equal(out, [[1.5, np.nan, np.nan], [np.nan, np.nan, 80.0]])
        bgr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
        msg = bgr8_msg(types, hdr, bgr[:, ::-1])  # a non-contiguous view
        np.testing.assert_array_equal(mc.image_to_array(msg), bgr[:, ::-1])


@pytest.mark.parametrize("bad", [np.nan, 0.0, -2.0, np.inf, -np.inf])
def test_one_invalid_pixel_leaves_the_fast_path_and_is_published_as_nan(bad):
    depth = np.full((6, 9), 7.5, np.float32)
    assert all_positive_finite(depth)
    depth[3, 4] = bad
    assert not all_positive_finite(depth)
    out = mc.image_to_array(depth_msg(TS.types, make_header(TS.types, (1, 2), "c"), depth))
    assert np.isnan(out[3, 4]) and np.isnan(out).sum() == 1
    assert (colorize_depth_rgb(depth, 1.0, 80.0, channels="bgr")[3, 4] == 0).all()

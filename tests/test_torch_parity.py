"""Parity with PyTorch: weight conversion (`kc.weights.to_torch`/`from_torch`) against
torch.nn.functional's convolutions, and up-sampling against `F.interpolate`. Its own module
so that without torch only these skip."""

import itertools

import numpy as np
import pytest

import keras_convx as kc
from helpers import assert_close, make_input, randomize_weights
from test_reshaping import INTERP

torch = pytest.importorskip("torch", reason="PyTorch is the reference here")


@pytest.mark.parametrize("name,make,functional", [
    ("conv2d-g2-reflect", lambda: kc.Conv2D(4, 3, padding=1, padding_mode="reflect", groups=2,
                                             strides=2, dilation_rate=2), None),
    ("conv3d", lambda: kc.Conv3D(4, (2, 3, 3), padding=(0, 1, 1)), None),
    ("convtr2d-g2", lambda: kc.Conv2DTranspose(4, 3, strides=2, padding=1, output_padding=1,
                                               groups=2), None),
    ("convtr1d-d2", lambda: kc.Conv1DTranspose(4, 3, strides=2, dilation_rate=2, padding=2),
     None),
    ("depthwise2d-m2", lambda: kc.DepthwiseConv2D(3, depth_multiplier=2, padding=1), None),
    ("separable1d", lambda: kc.SeparableConv1D(5, 3, depth_multiplier=2, padding=1), None),
], ids=lambda v: v if isinstance(v, str) else "")
def test_torch_converters_match_torch_functional(name, make, functional):
    F = torch.nn.functional
    layer = make()
    rank = layer.rank
    x = make_input(rank, 2, "channels_first", size=6)
    layer.data_format = "channels_first"
    layer.build(x.shape)
    randomize_weights(layer)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in kc.weights.to_torch(layer).items()}
    xt = torch.from_numpy(x).double()
    t = {k: v.double() for k, v in tensors.items()}
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    pads = [p[0] for p in layer.padding] if not isinstance(layer.padding, str) else 0
    if isinstance(layer, kc.BaseConvTranspose):
        tconv = {1: F.conv_transpose1d, 2: F.conv_transpose2d}[rank]
        expected = tconv(xt, t["weight"], t.get("bias"), stride=layer.strides, padding=pads,
                         output_padding=layer.output_padding or 0, groups=layer.groups,
                         dilation=layer.dilation_rate)
    elif isinstance(layer, kc.BaseSeparableConv):
        h = conv(xt, t["depthwise.weight"], None, padding=pads, groups=2)
        expected = conv(h, t["pointwise.weight"], t["pointwise.bias"])
    elif isinstance(layer, kc.BaseDepthwiseConv):
        expected = conv(xt, t["weight"], t["bias"], padding=pads, groups=2)
    else:
        mode = {"zeros": "constant", "reflect": "reflect"}[layer.padding_mode]
        xp = F.pad(xt, [p for pair in reversed([tuple(q) for q in layer.padding]) for p in pair],
                   mode=mode)
        expected = conv(xp, t["weight"], t["bias"], stride=layer.strides,
                        dilation=layer.dilation_rate, groups=layer.groups)
    assert_close(layer(x), expected.numpy())
    # and back: from_torch restores the same weights into a fresh layer
    fresh = make()
    fresh.data_format = "channels_first"
    fresh.build(x.shape)
    kc.weights.from_torch(fresh, tensors)
    for a, b in zip(fresh.get_weights(), layer.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rank,mode,align,scale", [
    (r, m, a, s) for (r, m), a, s in itertools.product(INTERP, (False, True), (2, 1.5))
    if not (m == "nearest" and a)
], ids=lambda v: str(v))
def test_upsampling_matches_torch_interpolate(rank, mode, align, scale):
    x = make_input(rank, 2, "channels_first", size=5)
    cls = {1: kc.UpSampling1D, 2: kc.UpSampling2D, 3: kc.UpSampling3D}[rank]
    y = cls(scale, interpolation=mode, align_corners=align, data_format="channels_first")(x)
    kwargs = {} if mode == "nearest" else {"align_corners": align}
    expected = torch.nn.functional.interpolate(torch.from_numpy(x).double(), scale_factor=scale,
                                               mode=mode, **kwargs)
    assert_close(y, expected.numpy())

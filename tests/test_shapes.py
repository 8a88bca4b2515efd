"""compute_output_shape equals the real output shape for random configurations, with
None batch and spatial dims (hypothesis), and the shape arithmetic itself."""

import numpy as np
from hypothesis import given, strategies as st

import keras_convx as kc
from keras_convx.utils import shapes as S
import pytest

FAMILIES = {
    "conv": {1: kc.Conv1D, 2: kc.Conv2D, 3: kc.Conv3D},
    "depthwise": {1: kc.DepthwiseConv1D, 2: kc.DepthwiseConv2D, 3: kc.DepthwiseConv3D},
    "separable": {1: kc.SeparableConv1D, 2: kc.SeparableConv2D, 3: kc.SeparableConv3D},
    "transpose": {1: kc.Conv1DTranspose, 2: kc.Conv2DTranspose, 3: kc.Conv3DTranspose},
}


@st.composite
def layer_configs(draw):
    family = draw(st.sampled_from(sorted(FAMILIES)))
    rank = draw(st.integers(1, 3 if family != "transpose" else 2))
    ints = lambda lo, hi: st.tuples(*[st.integers(lo, hi)] * rank)  # noqa: E731
    kernel = draw(ints(1, 4))
    strides = draw(ints(1, 3))
    dilation = draw(ints(1, 2))
    paddings = ["valid", "same"] + (["causal"] if family != "transpose" else [])
    padding = draw(st.one_of(st.sampled_from(paddings),
                             st.tuples(*[st.tuples(st.integers(0, 2), st.integers(0, 2))] * rank)))
    fmt = draw(st.sampled_from(["channels_last", "channels_first"]))
    kwargs = dict(kernel_size=kernel, strides=strides, dilation_rate=dilation, padding=padding,
                  data_format=fmt)
    if family == "transpose" and not isinstance(padding, str):
        padding = tuple((min(b, k - 1), min(a, k - 1)) for (b, a), k in zip(padding, kernel))
        kwargs["padding"] = padding
    if family == "conv":
        kwargs.update(filters=4, groups=draw(st.sampled_from([1, 2])))
        if draw(st.booleans()) and padding != "valid":
            kwargs["padding_mode"] = draw(st.sampled_from(["reflect", "replicate", "circular"]))
    elif family == "transpose":
        kwargs.update(filters=4, groups=draw(st.sampled_from([1, 2])))
    elif family == "separable":
        kwargs.update(filters=3, depth_multiplier=draw(st.integers(1, 2)))
    else:
        kwargs.update(depth_multiplier=draw(st.integers(1, 2)))
    spatial = draw(ints(6, 9))
    return family, rank, kwargs, spatial


@given(layer_configs())
def test_compute_output_shape_matches_call(config):
    family, rank, kwargs, spatial = config
    layer = FAMILIES[family][rank](**kwargs)
    fmt = kwargs["data_format"]
    shape = (2,) + spatial + (4,) if fmt == "channels_last" else (2, 4) + spatial
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    try:
        expected = layer.compute_output_shape(shape)
    except ValueError as err:
        # Too small an input is refused by name at build time, never a silent empty tensor.
        assert "is too small" in str(err)
        with pytest.raises(ValueError, match="is too small"):
            layer(x)
        return
    y = layer(x)
    assert expected == tuple(y.shape)
    # None batch and spatial dims stay None, the rest agrees.
    unknown = (None,) + (None,) * rank + (4,) if fmt == "channels_last" \
        else (None, 4) + (None,) * rank
    symbolic = layer.compute_output_shape(unknown)
    assert len(symbolic) == len(y.shape)
    for got, want in zip(symbolic, y.shape):
        assert got is None or got == want


@given(st.integers(1, 50), st.integers(1, 7), st.integers(1, 4), st.integers(1, 3))
def test_same_padding_keeps_ceil_length(n, k, s, d):
    out = S.conv_output_length(n, k, s, d, S.same_pads(n, k, s, d))
    assert out == -(-n // s)


@given(st.integers(1, 30), st.integers(1, 6), st.integers(1, 4), st.integers(1, 3))
def test_transpose_range_inverts_forward_conv(n, k, s, d):
    # Every size in the allowed range convolves (forward) back to n.
    for padding in ("valid", "same"):
        low, high = S.transpose_length_range(n, k, s, d, padding)
        for m in range(low, high + 1):
            pads = S.same_pads(m, k, s, d) if padding == "same" else (0, 0)
            assert S.conv_output_length(m, k, s, d, pads) == n

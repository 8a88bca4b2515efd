"""Depthwise, separable and transposed convolutions: parity with keras.layers, the
float64 oracle, tf.nn, torch.nn.functional, and their shape arithmetic."""

import itertools

import keras
import numpy as np
import pytest

import keras_convx as kc
from keras_convx.utils import args as A
from keras_convx.utils import shapes as S
import oracle
from helpers import (
    BACKEND, assert_close, make_input, rand, randomize_weights, spatial_shape, value_and_grads,
)

FORMATS = ("channels_last", "channels_first")
DEPTHWISE = {1: kc.DepthwiseConv1D, 2: kc.DepthwiseConv2D, 3: kc.DepthwiseConv3D}
SEPARABLE = {1: kc.SeparableConv1D, 2: kc.SeparableConv2D, 3: kc.SeparableConv3D}
TRANSPOSE = {1: kc.Conv1DTranspose, 2: kc.Conv2DTranspose, 3: kc.Conv3DTranspose}
KERAS = {
    ("depthwise", 1): keras.layers.DepthwiseConv1D, ("depthwise", 2): keras.layers.DepthwiseConv2D,
    ("separable", 1): keras.layers.SeparableConv1D, ("separable", 2): keras.layers.SeparableConv2D,
    ("transpose", 1): keras.layers.Conv1DTranspose, ("transpose", 2): keras.layers.Conv2DTranspose,
    ("transpose", 3): keras.layers.Conv3DTranspose,
}
OURS = {"depthwise": DEPTHWISE, "separable": SEPARABLE, "transpose": TRANSPOSE}


def _bias(bias, fmt, rank):
    return bias if fmt == "channels_last" else bias.reshape((-1,) + (1,) * rank)


def _keras_grid():
    for (family, rank), padding, strides, dilation, mult, fmt, out_pad in itertools.product(
        KERAS, ("valid", "same"), (1, 2), (1, 2), (1, 2), FORMATS, (None, 1),
    ):
        if strides > 1 and dilation > 1:
            continue  # keras.layers refuses it (the oracle grid covers it)
        if BACKEND == "tensorflow" and fmt == "channels_first":
            continue  # keras.layers can't run channels_first on TF CPU
        if family == "transpose":
            if mult > 1 or (out_pad and strides == 1):
                continue
            if BACKEND == "tensorflow" and dilation > 1:
                continue  # keras.layers: TF's CPU transposed conv has no dilation
            if BACKEND == "torch" and out_pad and padding == "same":
                continue  # keras's torch backend can't express it (its own docstring says so)
        elif out_pad:
            continue
        if rank == 3 and (dilation > 1 or out_pad):
            continue
        yield pytest.param(
            family, rank, padding, strides, dilation, mult, fmt, out_pad,
            id=f"{family}{rank}d-{padding}-s{strides}-d{dilation}-m{mult}-{fmt}-op{out_pad}",
        )


# a quarter on JAX: the layers are backend-agnostic keras.ops code
@pytest.mark.thin_on_jax(4)
@pytest.mark.parametrize("family,rank,padding,strides,dilation,mult,fmt,out_pad",
                         list(_keras_grid()))
def test_matches_keras_layer(family, rank, padding, strides, dilation, mult, fmt, out_pad):
    kwargs = dict(kernel_size=3, strides=strides, padding=padding, dilation_rate=dilation,
                  data_format=fmt)
    if family != "depthwise":
        kwargs["filters"] = 5
    if family != "transpose":
        kwargs["depth_multiplier"] = mult
    else:
        kwargs["output_padding"] = out_pad
    x = make_input(rank, 3, fmt, size=6)
    ours, ref = OURS[family][rank](**kwargs), KERAS[(family, rank)](**kwargs)
    ref.build(x.shape)
    ours.build(x.shape)
    ours.set_weights(randomize_weights(ref))
    expected = keras.ops.convert_to_numpy(ref(x))
    assert_close(ours(x), expected)
    assert ours.compute_output_shape(x.shape) == expected.shape
    assert [w.path.split("/")[-1] for w in ours.weights] == \
        [w.path.split("/")[-1] for w in ref.weights]
    assert set(ours.get_config()) == set(ref.get_config())


def _window_oracle_grid():
    paddings = ["valid", "same", "causal", ((2, 1), (0, 2), (1, 1))]
    for family, rank, padding, mode, (s, d), fmt in itertools.product(
        ("depthwise", "separable"), (1, 2, 3), paddings, ("zeros", "reflect", "circular"),
        ((1, 1), (2, 1), (2, 2)), FORMATS,
    ):
        if padding == "valid" and mode != "zeros":
            continue
        if rank == 3 and (fmt == "channels_first" or mode == "circular"):
            continue
        if isinstance(padding, tuple):
            padding = padding[:rank]
        pid = padding if isinstance(padding, str) else "explicit"
        yield pytest.param(family, rank, padding, mode, s, d, fmt,
                           id=f"{family}{rank}d-{pid}-{mode}-s{s}-d{d}-{fmt}")


@pytest.mark.thin_on_jax(4)
@pytest.mark.parametrize("family,rank,padding,mode,strides,dilation,fmt",
                         list(_window_oracle_grid()))
def test_depthwise_separable_match_oracle(family, rank, padding, mode, strides, dilation, fmt):
    x = make_input(rank, 3, fmt, size=7)
    common = dict(strides=strides, padding=padding, dilation_rate=dilation, data_format=fmt,
                  padding_mode=mode, depth_multiplier=2)
    layer = DEPTHWISE[rank](3, **common) if family == "depthwise" \
        else SEPARABLE[rank](4, 3, **common)
    layer.build(x.shape)
    weights = randomize_weights(layer)
    pads = S.resolve_pads(A.normalize_padding(padding, rank, "test"), spatial_shape(x.shape, fmt),
                          layer.kernel_size, layer.strides, layer.dilation_rate)
    expected = oracle.depthwise(x, weights[0], layer.strides, pads, layer.dilation_rate, fmt, mode)
    if family == "separable":
        expected = oracle.conv(expected, weights[1], (1,) * rank, [(0, 0)] * rank,
                               (1,) * rank, fmt)
    y = layer(x)
    assert_close(y, expected + _bias(weights[-1], fmt, rank))
    assert layer.compute_output_shape(x.shape) == tuple(y.shape)


def _transpose_oracle_grid():
    paddings = ["valid", "same", 1, ((2, 0), (0, 1), (1, 2))]
    for rank, padding, (s, d), groups, out_pad, fmt in itertools.product(
        (1, 2, 3), paddings, ((1, 1), (2, 1), (3, 1), (2, 2), (1, 2)), (1, 2), (None, 1),
        FORMATS,
    ):
        if out_pad and max(s, d) == 1:
            continue
        if rank == 3 and (fmt == "channels_first" or s == 3 or out_pad):
            continue
        if isinstance(padding, tuple):
            padding = padding[:rank]
        pid = padding if isinstance(padding, (str, int)) else "explicit"
        yield pytest.param(rank, padding, s, d, groups, out_pad, fmt,
                           id=f"convtr{rank}d-{pid}-s{s}-d{d}-g{groups}-op{out_pad}-{fmt}")


@pytest.mark.thin_on_jax(4)
@pytest.mark.parametrize("rank,padding,strides,dilation,groups,out_pad,fmt",
                         list(_transpose_oracle_grid()))
def test_transpose_matches_oracle(rank, padding, strides, dilation, groups, out_pad, fmt):
    x = make_input(rank, 4, fmt, size=5)
    layer = TRANSPOSE[rank](6, 3, strides=strides, padding=padding, dilation_rate=dilation,
                            groups=groups, output_padding=out_pad, data_format=fmt)
    layer.build(x.shape)
    kernel, bias = randomize_weights(layer)
    assert kernel.shape == (3,) * rank + (6 // groups, 4)
    norm = A.normalize_padding(padding, rank, "test", allow_causal=False)
    crops = [S.transpose_crop(k, s, d, norm if isinstance(norm, str) else norm[i], out_pad)
             for i, (k, s, d) in enumerate(zip(layer.kernel_size, layer.strides,
                                               layer.dilation_rate))]
    expected = oracle.conv_transpose(x, kernel, layer.strides, layer.dilation_rate, crops,
                                     groups, fmt)
    y = layer(x)
    assert_close(y, expected + _bias(bias, fmt, rank))
    assert layer.compute_output_shape(x.shape) == tuple(y.shape)


def test_depthwise3d_equals_grouped_conv3d():
    x = make_input(3, 3, "channels_last", size=5)
    dw = kc.DepthwiseConv3D(3, depth_multiplier=2, padding="same")
    dw.build(x.shape)
    kernel, bias = randomize_weights(dw)
    grouped = kc.Conv3D(6, 3, padding="same", groups=3)
    grouped.build(x.shape)
    grouped.set_weights([kernel.reshape(3, 3, 3, 1, 6), bias])
    assert_close(dw(x), keras.ops.convert_to_numpy(grouped(x)))


def test_worked_depthwise_example():
    x = np.zeros((1, 4, 4, 2), "float32")
    x[0, :, :, 0] = np.arange(1, 5)[None, :]
    x[0, :, :, 1] = 1
    kernel = np.zeros((3, 3, 2, 2), "float32")
    kernel[:, :, 0, 0], kernel[:, :, 1, 0], kernel[:, :, 0, 1], kernel[:, :, 1, 1] = 0, 1, 2, 3
    expected = [[[[0, 36, 9, 27], [0, 54, 9, 27]], [[0, 36, 9, 27], [0, 54, 9, 27]]]]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kc.ops.depthwise_conv(x, kernel)),
                                  np.array(expected, "float32"))
    layer = kc.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False)
    layer.build(x.shape)
    layer.set_weights([kernel])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), expected)


def test_transpose_output_shapes_and_output_size():
    assert kc.Conv2DTranspose(64, 3, strides=2, padding="same").compute_output_shape(
        (None, 600, 600, 3)) == (None, 1200, 1200, 64)
    assert kc.Conv2DTranspose(64, 3, strides=2, padding="valid").compute_output_shape(
        (None, 600, 600, 3)) == (None, 1201, 1201, 64)
    x = make_input(2, 2, "channels_last", size=5)[:, :, :5]
    for padding, sizes in (("same", range(9, 11)), ("valid", range(11, 13))):
        for size in sizes:
            layer = kc.Conv2DTranspose(3, 3, strides=2, padding=padding,
                                       output_size=(size, sizes[0]))
            y = layer(x)
            assert tuple(y.shape) == (2, size, sizes[0], 3) == layer.compute_output_shape(x.shape)
            # the output_size result is the gradient of the forward conv of that size
            w = keras.ops.convert_to_numpy(layer.kernel)
            crops = kc.ops.transpose_crops("t", (5, 5), (3, 3), (2, 2), (1, 1), padding,
                                           output_size=(size, sizes[0]))
            expected = oracle.conv_transpose(x, w, (2, 2), (1, 1), crops)
            assert_close(y, expected + keras.ops.convert_to_numpy(layer.bias))
    call_time = kc.Conv2DTranspose(3, 3, strides=2, padding="same")
    assert tuple(call_time(x, output_size=(9, 9)).shape) == (2, 9, 9, 3)
    with pytest.raises(ValueError, match=r"Conv2DTranspose: output_size \(12, 10\) is not "
                       r"reachable from input size \(5, 5\).*must be in \[9, 10\]"):
        kc.Conv2DTranspose(3, 3, strides=2, padding="same", output_size=(12, 10))(x)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.nn parity needs the TensorFlow backend")
def test_matches_tf_nn():
    import tensorflow as tf
    x = make_input(2, 3, "channels_last", size=8)
    dw, pw = rand((3, 3, 3, 2), 1), rand((1, 1, 6, 4), 2)
    for padding in ("SAME", "VALID"):
        expected = tf.nn.depthwise_conv2d(x, dw, [1, 2, 2, 1], padding)
        assert_close(kc.ops.depthwise_conv(x, dw, strides=2, padding=padding.lower()),
                     expected.numpy())
        expected = tf.nn.separable_conv2d(x, dw, pw, [1, 1, 1, 1], padding, dilations=(2, 2))
        assert_close(kc.ops.separable_conv(x, dw, pw, padding=padding.lower(), dilation_rate=2),
                     expected.numpy())
    w = rand((3, 3, 5, 3), 3)
    expected = tf.nn.conv2d_transpose(x, w, (2, 16, 17, 5), 2, "SAME")
    assert_close(kc.ops.conv_transpose(x, w, strides=2, padding="same", output_size=(16, 17)),
                 expected.numpy())
    x3, w3 = make_input(3, 3, "channels_last", size=4), rand((2, 3, 3, 4, 3), 4)
    expected = tf.nn.conv3d_transpose(x3, w3, (2, 9, 11, 13, 4), (2, 2, 2), "VALID")
    assert_close(kc.ops.conv_transpose(x3, w3, strides=2, output_size=(9, 11, 13)),
                 expected.numpy())


@pytest.mark.skipif(BACKEND == "torch", reason="gradient parity is run on TF and JAX")
@pytest.mark.parametrize("family,rank", [("depthwise", 2), ("separable", 1), ("transpose", 2)])
def test_gradients_match_keras(family, rank):
    kwargs = dict(kernel_size=3, strides=2, padding="same")
    if family != "depthwise":
        kwargs["filters"] = 4
    x = make_input(rank, 3, "channels_last", size=6)
    ours, ref = OURS[family][rank](**kwargs), KERAS[(family, rank)](**kwargs)
    ref.build(x.shape)
    ours.build(x.shape)
    weights = randomize_weights(ref)
    ours.set_weights(weights)
    grads = [value_and_grads(lambda x_, v: layer.stateless_call(v, [], x_)[0], x, weights)
             for layer in (ours, ref)]
    for a, b in zip(*grads):
        assert_close(a, b)

"""README's "Coming from TF1 / tf.nn" table, proven: every row runs the tf.nn /
tf.compat.v1 call and its keras_convx equivalent on the same data and kernel.

Each case spells out both sides as a user would write them (TensorFlow's arguments,
then the translated keras_convx ones), so a wrong translation in the table fails here.
TensorFlow's CPU kernels refuse NCHW/NCW/NCDHW (and dilated transposed convolutions);
XLA on CPU runs the very same tf.nn call, so those cases run it under `jit_compile=True`.
"""

import functools
import os

import keras
import numpy as np
import pytest

import keras_convx as kc
from helpers import BACKEND, RTOL_SCALE, rand

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="runs tf.nn side by side: TensorFlow backend"
)

if BACKEND == "tensorflow":
    import tensorflow as tf

# tf.nn's data_format strings -> keras_convx's.
DATA_FORMAT = {
    "NWC": "channels_last", "NHWC": "channels_last", "NDHWC": "channels_last",
    "NCW": "channels_first", "NCHW": "channels_first", "NCDHW": "channels_first",
}


def _tf_fn(name):
    """`"compat.v1.nn.conv2d"` -> tf.compat.v1.nn.conv2d (params stay TF-free at collection)."""
    return functools.reduce(getattr, name.split("."), tf)


def _run_tf(call, data_format, xla=False):
    """Runs a tf.nn call; channels_first ones (and `xla`) under XLA, which TF's CPU lacks."""
    if xla or DATA_FORMAT[data_format] == "channels_first":
        return tf.function(call, jit_compile=True)().numpy()
    return call().numpy()


def _input(shape_channels_last, data_format, seed=0):
    x = rand(shape_channels_last, seed)
    return np.moveaxis(x, -1, 1) if DATA_FORMAT[data_format] == "channels_first" else x


def _assert_matches(ours, ref):
    ours = keras.ops.convert_to_numpy(ours)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    scale = float(np.max(np.abs(ref)))
    assert scale > 0  # random data: an all-zero reference would prove nothing
    np.testing.assert_allclose(ours, ref, rtol=0, atol=RTOL_SCALE * scale)


# (tf function, data_format, tf.nn arguments, keras_convx arguments)
CONV2D_CASES = [
    pytest.param("nn.conv2d", "NHWC", dict(strides=1, padding="SAME"),
                 dict(padding="same"), id="conv2d-same-nhwc"),
    pytest.param("nn.conv2d", "NHWC", dict(strides=[1, 2, 2, 1], padding="VALID"),
                 dict(strides=2, padding="valid"), id="conv2d-valid-s2-nhwc"),
    pytest.param("nn.conv2d", "NHWC", dict(strides=[2, 1], padding="SAME"),
                 dict(strides=(2, 1), padding="same"), id="conv2d-same-s2x1-nhwc"),
    pytest.param("nn.conv2d", "NHWC",
                 dict(strides=1, padding=[[0, 0], [1, 2], [0, 1], [0, 0]]),
                 dict(padding=((1, 2), (0, 1))), id="conv2d-explicit-nhwc"),
    pytest.param("nn.conv2d", "NHWC", dict(strides=1, padding="SAME", dilations=[1, 2, 2, 1]),
                 dict(padding="same", dilation_rate=2), id="conv2d-same-d2-nhwc"),
    pytest.param("nn.conv2d", "NHWC", dict(strides=2, padding="SAME", dilations=2),
                 dict(strides=2, padding="same", dilation_rate=2), id="conv2d-same-s2-d2-nhwc"),
    pytest.param("nn.conv2d", "NCHW",
                 dict(strides=[1, 1, 2, 2], padding="SAME", data_format="NCHW"),
                 dict(strides=2, padding="same", data_format="channels_first"),
                 id="conv2d-same-s2-nchw"),
    pytest.param("nn.conv2d", "NCHW",
                 dict(strides=1, padding=[[0, 0], [0, 0], [1, 2], [0, 1]],
                      dilations=[1, 1, 2, 1], data_format="NCHW"),
                 dict(padding=((1, 2), (0, 1)), dilation_rate=(2, 1),
                      data_format="channels_first"), id="conv2d-explicit-d2x1-nchw"),
    pytest.param("compat.v1.nn.conv2d", "NHWC",
                 dict(strides=[1, 2, 2, 1], padding="SAME", use_cudnn_on_gpu=True),
                 dict(strides=2, padding="same"), id="v1-conv2d-same-s2-nhwc"),
]


@pytest.mark.parametrize("tf_name,fmt,tf_kwargs,kc_kwargs", CONV2D_CASES)
def test_conv2d(tf_name, fmt, tf_kwargs, kc_kwargs):
    x, w = _input((2, 7, 8, 3), fmt), rand((3, 3, 3, 4), 1)
    ref = _run_tf(lambda: _tf_fn(tf_name)(x, w, **tf_kwargs), fmt)
    _assert_matches(kc.ops.conv(x, w, **kc_kwargs), ref)


# depthwise filter (3, 3, in=3, multiplier): the same layout in both.
DEPTHWISE_CASES = [
    pytest.param("nn.depthwise_conv2d", "NHWC", 2, dict(strides=[1, 1, 1, 1], padding="SAME"),
                 dict(padding="same"), id="depthwise-same-m2-nhwc"),
    pytest.param("nn.depthwise_conv2d", "NHWC", 1, dict(strides=[1, 2, 2, 1], padding="VALID"),
                 dict(strides=2, padding="valid"), id="depthwise-valid-s2-m1-nhwc"),
    pytest.param("nn.depthwise_conv2d", "NHWC", 2,
                 dict(strides=[1, 1, 1, 1], padding="SAME", dilations=[2, 2]),
                 dict(padding="same", dilation_rate=2), id="depthwise-same-d2-m2-nhwc"),
    pytest.param("compat.v1.nn.depthwise_conv2d", "NHWC", 2,
                 dict(strides=[1, 1, 1, 1], padding="VALID", rate=[2, 3]),
                 dict(padding="valid", dilation_rate=(2, 3)), id="v1-depthwise-valid-rate2x3-m2"),
    pytest.param("nn.depthwise_conv2d", "NHWC", 2,
                 dict(strides=[1, 1, 1, 1], padding=[[0, 0], [2, 0], [1, 1], [0, 0]]),
                 dict(padding=((2, 0), (1, 1))), id="depthwise-explicit-m2-nhwc"),
    pytest.param("nn.depthwise_conv2d", "NCHW", 2,
                 dict(strides=[1, 1, 2, 2], padding="SAME", data_format="NCHW"),
                 dict(strides=2, padding="same", data_format="channels_first"),
                 id="depthwise-same-s2-m2-nchw"),
]


@pytest.mark.parametrize("tf_name,fmt,multiplier,tf_kwargs,kc_kwargs", DEPTHWISE_CASES)
def test_depthwise_conv2d(tf_name, fmt, multiplier, tf_kwargs, kc_kwargs):
    x, w = _input((2, 8, 9, 3), fmt), rand((3, 3, 3, multiplier), 1)
    ref = _run_tf(lambda: _tf_fn(tf_name)(x, w, **tf_kwargs), fmt)
    _assert_matches(kc.ops.depthwise_conv(x, w, **kc_kwargs), ref)


SEPARABLE_CASES = [
    pytest.param("nn.separable_conv2d", "NHWC", dict(strides=[1, 1, 1, 1], padding="SAME"),
                 dict(padding="same"), id="separable-same-nhwc"),
    pytest.param("nn.separable_conv2d", "NHWC", dict(strides=[1, 2, 2, 1], padding="VALID"),
                 dict(strides=2, padding="valid"), id="separable-valid-s2-nhwc"),
    pytest.param("nn.separable_conv2d", "NHWC",
                 dict(strides=[1, 1, 1, 1], padding="SAME", dilations=[2, 2]),
                 dict(padding="same", dilation_rate=2), id="separable-same-d2-nhwc"),
    pytest.param("compat.v1.nn.separable_conv2d", "NHWC",
                 dict(strides=[1, 1, 1, 1], padding="VALID", rate=[2, 2]),
                 dict(padding="valid", dilation_rate=2), id="v1-separable-valid-rate2"),
    pytest.param("nn.separable_conv2d", "NCHW",
                 dict(strides=[1, 1, 1, 1], padding="SAME", data_format="NCHW"),
                 dict(padding="same", data_format="channels_first"), id="separable-same-nchw"),
]


@pytest.mark.parametrize("tf_name,fmt,tf_kwargs,kc_kwargs", SEPARABLE_CASES)
def test_separable_conv2d(tf_name, fmt, tf_kwargs, kc_kwargs):
    x = _input((2, 8, 9, 3), fmt)
    depthwise, pointwise = rand((3, 3, 3, 2), 1), rand((1, 1, 6, 5), 2)
    ref = _run_tf(lambda: _tf_fn(tf_name)(x, depthwise, pointwise, **tf_kwargs), fmt)
    _assert_matches(kc.ops.separable_conv(x, depthwise, pointwise, **kc_kwargs), ref)


# Input 5x5x3, filter (3, 3, out=4, in=3): tf.nn's transposed layout is Keras's.
# output_shape says the full NHWC/NCHW shape: its spatial part is keras_convx's
# output_size (or the default size plus output_padding), its channels are `filters`.
TRANSPOSE_CASES = [
    pytest.param("nn.conv2d_transpose", "NHWC", False,
                 dict(output_shape=[2, 10, 10, 4], strides=2, padding="SAME"),
                 dict(strides=2, padding="same"), id="transpose-same-s2-out10-default"),
    pytest.param("nn.conv2d_transpose", "NHWC", False,
                 dict(output_shape=[2, 9, 9, 4], strides=2, padding="SAME"),
                 dict(strides=2, padding="same", output_size=(9, 9)),
                 id="transpose-same-s2-out9-output_size"),
    pytest.param("nn.conv2d_transpose", "NHWC", False,
                 dict(output_shape=[2, 11, 11, 4], strides=[1, 2, 2, 1], padding="VALID"),
                 dict(strides=2, padding="valid"), id="transpose-valid-s2-out11-default"),
    pytest.param("nn.conv2d_transpose", "NHWC", False,
                 dict(output_shape=[2, 12, 12, 4], strides=2, padding="VALID"),
                 dict(strides=2, padding="valid", output_padding=1),
                 id="transpose-valid-s2-out12-output_padding"),
    pytest.param("nn.conv2d_transpose", "NHWC", False,
                 dict(output_shape=[2, 12, 11, 4], strides=2, padding="VALID"),
                 dict(strides=2, padding="valid", output_size=(12, 11)),
                 id="transpose-valid-s2-out12x11-output_size"),
    pytest.param("nn.conv2d_transpose", "NHWC", False,
                 dict(output_shape=[2, 10, 9, 4], strides=2,
                      padding=[[0, 0], [1, 1], [2, 0], [0, 0]]),
                 dict(strides=2, padding=((1, 1), (2, 0)), output_padding=(1, 0)),
                 id="transpose-explicit-s2-out10x9-output_padding"),
    pytest.param("nn.conv2d_transpose", "NHWC", True,
                 dict(output_shape=[2, 9, 9, 4], strides=1, padding="VALID", dilations=2),
                 dict(padding="valid", dilation_rate=2), id="transpose-valid-d2-xla"),
    pytest.param("nn.conv2d_transpose", "NCHW", False,
                 dict(output_shape=[2, 4, 9, 10], strides=[1, 1, 2, 2], padding="SAME",
                      data_format="NCHW"),
                 dict(strides=2, padding="same", output_size=(9, 10),
                      data_format="channels_first"), id="transpose-same-s2-out9x10-nchw"),
    pytest.param("compat.v1.nn.conv2d_transpose", "NHWC", False,
                 dict(output_shape=[2, 10, 10, 4], strides=[1, 2, 2, 1], padding="SAME"),
                 dict(strides=2, padding="same"), id="v1-transpose-same-s2-out10"),
]


@pytest.mark.parametrize("tf_name,fmt,xla,tf_kwargs,kc_kwargs", TRANSPOSE_CASES)
def test_conv2d_transpose(tf_name, fmt, xla, tf_kwargs, kc_kwargs):
    x, w = _input((2, 5, 5, 3), fmt), rand((3, 3, 4, 3), 1)
    ref = _run_tf(lambda: _tf_fn(tf_name)(x, w, **tf_kwargs), fmt, xla)
    _assert_matches(kc.ops.conv_transpose(x, w, **kc_kwargs), ref)


@pytest.mark.parametrize("rate,padding", [(2, "SAME"), (3, "VALID")],
                         ids=["atrous-same-rate2", "atrous-valid-rate3"])
def test_atrous_conv2d(rate, padding):
    x, w = rand((2, 9, 10, 3)), rand((3, 3, 3, 4), 1)
    ref = tf.nn.atrous_conv2d(x, w, rate=rate, padding=padding).numpy()
    _assert_matches(kc.ops.conv(x, w, padding=padding.lower(), dilation_rate=rate), ref)


@pytest.mark.parametrize("rate,padding,out", [(2, "SAME", 6), (2, "VALID", 10)],
                         ids=["atrous-transpose-same-rate2", "atrous-transpose-valid-rate2"])
def test_atrous_conv2d_transpose(rate, padding, out):
    x, w = rand((2, 6, 6, 3)), rand((3, 3, 4, 3), 1)
    ref = tf.nn.atrous_conv2d_transpose(x, w, output_shape=[2, out, out, 4], rate=rate,
                                        padding=padding).numpy()
    _assert_matches(kc.ops.conv_transpose(x, w, padding=padding.lower(), dilation_rate=rate),
                    ref)


CONV1D_CASES = [
    pytest.param("nn.conv1d", "NWC", dict(stride=2, padding="SAME"),
                 dict(strides=2, padding="same"), id="conv1d-same-s2-nwc"),
    pytest.param("nn.conv1d", "NWC", dict(stride=1, padding="VALID", dilations=3),
                 dict(padding="valid", dilation_rate=3), id="conv1d-valid-d3-nwc"),
    pytest.param("nn.conv1d", "NCW", dict(stride=[1, 1, 2], padding="SAME", data_format="NCW"),
                 dict(strides=2, padding="same", data_format="channels_first"),
                 id="conv1d-same-s2-ncw"),
    pytest.param("compat.v1.nn.conv1d", "NWC", dict(stride=1, padding="SAME", dilations=2),
                 dict(padding="same", dilation_rate=2), id="v1-conv1d-same-d2-nwc"),
]


@pytest.mark.parametrize("tf_name,fmt,tf_kwargs,kc_kwargs", CONV1D_CASES)
def test_conv1d(tf_name, fmt, tf_kwargs, kc_kwargs):
    x, w = _input((2, 11, 3), fmt), rand((3, 3, 4), 1)
    ref = _run_tf(lambda: _tf_fn(tf_name)(x, w, **tf_kwargs), fmt)
    _assert_matches(kc.ops.conv(x, w, **kc_kwargs), ref)


# (data_format, XLA: TF's CPU Conv3D has no dilation, tf.nn args, keras_convx args)
CONV3D_CASES = [
    pytest.param("NDHWC", False, dict(strides=[1, 1, 1, 1, 1], padding="SAME"),
                 dict(padding="same"), id="conv3d-same-ndhwc"),
    pytest.param("NDHWC", False, dict(strides=[1, 2, 1, 2, 1], padding="VALID"),
                 dict(strides=(2, 1, 2), padding="valid"), id="conv3d-valid-s2x1x2-ndhwc"),
    pytest.param("NDHWC", True, dict(strides=[1, 1, 1, 1, 1], padding="SAME",
                                     dilations=[1, 2, 1, 2, 1]),
                 dict(padding="same", dilation_rate=(2, 1, 2)),
                 id="conv3d-same-d2x1x2-ndhwc-xla"),
    pytest.param("NCDHW", False,
                 dict(strides=[1, 1, 2, 2, 2], padding="SAME", data_format="NCDHW"),
                 dict(strides=2, padding="same", data_format="channels_first"),
                 id="conv3d-same-s2-ncdhw"),
]


@pytest.mark.parametrize("fmt,xla,tf_kwargs,kc_kwargs", CONV3D_CASES)
def test_conv3d(fmt, xla, tf_kwargs, kc_kwargs):
    x, w = _input((1, 6, 5, 7, 2), fmt), rand((3, 2, 3, 2, 3), 1)
    ref = _run_tf(lambda: tf.nn.conv3d(x, w, **tf_kwargs), fmt, xla)
    _assert_matches(kc.ops.conv(x, w, **kc_kwargs), ref)


# (tf function, input shape, filter shape (k..., out, in), tf.nn args, keras_convx args)
TRANSPOSE_1D_3D_CASES = [
    pytest.param("nn.conv1d_transpose", (2, 5, 3), (3, 4, 3),
                 dict(output_shape=[2, 12, 4], strides=2, padding="VALID"),
                 dict(strides=2, padding="valid", output_padding=1),
                 id="transpose1d-valid-s2-out12-output_padding"),
    pytest.param("nn.conv3d_transpose", (1, 3, 4, 3, 2), (3, 3, 3, 3, 2),
                 dict(output_shape=[1, 5, 8, 6, 3], strides=[1, 2, 2, 2, 1], padding="SAME"),
                 dict(strides=2, padding="same", output_size=(5, 8, 6)),
                 id="transpose3d-same-s2-output_size"),
]


@pytest.mark.parametrize("tf_name,x_shape,w_shape,tf_kwargs,kc_kwargs", TRANSPOSE_1D_3D_CASES)
def test_conv1d_conv3d_transpose(tf_name, x_shape, w_shape, tf_kwargs, kc_kwargs):
    x, w = rand(x_shape), rand(w_shape, 1)
    ref = _tf_fn(tf_name)(x, w, **tf_kwargs).numpy()
    _assert_matches(kc.ops.conv_transpose(x, w, **kc_kwargs), ref)


# tf.nn.convolution is rank-generic, as kc.ops.conv is; TF1's spells dilations `dilation_rate`.
# (It refuses strides > 1 with dilations > 1, even on different axes; keras_convx takes both.)
CONVOLUTION_CASES = [
    pytest.param("nn.convolution", (2, 11, 3), (3, 3, 4),
                 dict(strides=1, padding="SAME", dilations=2),
                 dict(padding="same", dilation_rate=2), id="convolution-1d-same-d2"),
    pytest.param("compat.v1.nn.convolution", (1, 6, 5, 7, 2), (2, 3, 3, 2, 3),
                 dict(padding="VALID", strides=[1, 2, 2]),
                 dict(strides=(1, 2, 2), padding="valid"), id="v1-convolution-3d-valid-s1x2x2"),
]


@pytest.mark.parametrize("tf_name,x_shape,w_shape,tf_kwargs,kc_kwargs", CONVOLUTION_CASES)
def test_convolution(tf_name, x_shape, w_shape, tf_kwargs, kc_kwargs):
    x, w = rand(x_shape), rand(w_shape, 1)
    ref = _tf_fn(tf_name)(x, w, **tf_kwargs).numpy()
    _assert_matches(kc.ops.conv(x, w, **kc_kwargs), ref)


# tf.compat.v1.layers is gone with Keras 3 (only the tf_keras package with
# TF_USE_LEGACY_KERAS=True brings it back): the row maps the layers' arguments
# instead, which keep their names and meaning.
V1_LAYER_NAMES = ["conv2d", "separable_conv2d", "conv2d_transpose",
                  "Conv2D", "SeparableConv2D", "Conv2DTranspose"]


@pytest.mark.skipif(os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true"),
                    reason="TF_USE_LEGACY_KERAS routes tf.compat.v1.layers to tf_keras")
@pytest.mark.parametrize("name", V1_LAYER_NAMES)
def test_v1_layers_unavailable(name):
    # If a TensorFlow release brings them back, the README row must change: this fails then.
    with pytest.raises(AttributeError, match="not available with Keras 3"):
        getattr(tf.compat.v1.layers, name)


def _v1_conv2d(x, kernel, bias, kw):
    out = tf.nn.convolution(x, kernel, strides=kw["strides"], padding=kw["padding"].upper(),
                            dilations=kw["dilation_rate"])
    return out, ["kernel", "bias"], [kernel, bias]


def _v1_separable_conv2d(x, kernel, bias, kw):
    pointwise = rand((1, 1, kernel.shape[2] * kernel.shape[3], kw["filters"]), 5)
    s, d = kw["strides"], kw["dilation_rate"]
    out = tf.nn.separable_conv2d(x, kernel, pointwise, strides=[1, s, s, 1],
                                 padding=kw["padding"].upper(), dilations=[d, d])
    return out, ["depthwise_kernel", "pointwise_kernel", "bias"], [kernel, pointwise, bias]


def _v1_conv2d_transpose(x, kernel, bias, kw):
    batch, s, k = x.shape[0], kw["strides"], kw["kernel_size"]
    # tf.compat.v1.layers.Conv2DTranspose's own output size: L*s (same), (L-1)*s + max(k, s).
    size = [length * s if kw["padding"].lower() == "same" else (length - 1) * s + max(k, s)
            for length in x.shape[1:3]]
    out = tf.nn.conv2d_transpose(x, kernel, [batch] + size + [kw["filters"]], strides=s,
                                 padding=kw["padding"].upper())
    return out, ["kernel", "bias"], [kernel, bias]


# What each TF1 layer computed: the tf.nn op, bias_add, activation (its variable names).
V1_LAYERS = {
    "conv2d": (kc.Conv2D, lambda kw: (3, 3, 3, kw["filters"]), _v1_conv2d),
    "separable_conv2d": (kc.SeparableConv2D, lambda kw: (3, 3, 3, kw["depth_multiplier"]),
                         _v1_separable_conv2d),
    "conv2d_transpose": (kc.Conv2DTranspose, lambda kw: (3, 3, kw["filters"], 3),
                         _v1_conv2d_transpose),
}

# tf.compat.v1.layers.<name>(inputs, **kwargs) -> kc.<Layer>(**kwargs)(inputs), kwargs as is.
V1_LAYER_CASES = [
    pytest.param("conv2d", dict(filters=4, kernel_size=3, strides=2, padding="same",
                                data_format="channels_last", dilation_rate=1,
                                activation="relu", use_bias=True, kernel_initializer=None),
                 id="v1-layers-conv2d-same-s2-relu"),
    pytest.param("conv2d", dict(filters=4, kernel_size=3, strides=1, padding="VALID",
                                data_format="channels_last", dilation_rate=2,
                                activation=None, use_bias=False,
                                kernel_initializer="truncated_normal"),
                 id="v1-layers-conv2d-valid-d2-nobias"),
    pytest.param("separable_conv2d", dict(filters=5, kernel_size=3, strides=1, padding="same",
                                          data_format="channels_last", dilation_rate=2,
                                          depth_multiplier=2, activation="tanh",
                                          use_bias=True),
                 id="v1-layers-separable_conv2d-same-d2-m2-tanh"),
    pytest.param("conv2d_transpose", dict(filters=4, kernel_size=3, strides=2, padding="valid",
                                          data_format="channels_last", activation="relu",
                                          use_bias=True, kernel_initializer="glorot_uniform"),
                 id="v1-layers-conv2d_transpose-valid-s2-relu"),
    pytest.param("conv2d_transpose", dict(filters=4, kernel_size=3, strides=2, padding="same",
                                          data_format="channels_last", use_bias=True),
                 id="v1-layers-conv2d_transpose-same-s2"),
]

# TF1 code passed TF1 objects; on the TensorFlow backend keras_convx takes them as they are.
V1_INITIALIZERS = {
    None: None,
    "truncated_normal": lambda: tf.compat.v1.truncated_normal_initializer(stddev=0.1),
    "glorot_uniform": lambda: tf.compat.v1.glorot_uniform_initializer(),
}
V1_ACTIVATIONS = {None: None, "relu": lambda: tf.nn.relu, "tanh": lambda: tf.nn.tanh}


@pytest.mark.parametrize("name,v1_kwargs", V1_LAYER_CASES)
def test_v1_layers_arguments(name, v1_kwargs):
    kw = dict(v1_kwargs)
    if kw.get("kernel_initializer") is not None:
        kw["kernel_initializer"] = V1_INITIALIZERS[kw["kernel_initializer"]]()
    if kw.get("activation") is not None:
        kw["activation"] = V1_ACTIVATIONS[kw["activation"]]()
    layer_class, kernel_shape, tf1_layer = V1_LAYERS[name]
    x = rand((2, 7, 8, 3))
    layer = layer_class(**kw)
    layer.build(x.shape)
    if v1_kwargs.get("kernel_initializer") == "truncated_normal":
        # The TF1 initializer object was used: truncated at 2 standard deviations.
        assert np.max(np.abs(keras.ops.convert_to_numpy(layer.weights[0]))) <= 0.2
    kernel, bias = rand(kernel_shape(kw), 3), rand((kw["filters"],), 4)
    ref, v1_variables, values = tf1_layer(x, kernel, bias, kw)
    if not kw.get("use_bias", True):
        v1_variables, values = v1_variables[:-1], values[:-1]
    else:
        ref = tf.nn.bias_add(ref, bias)
    if kw.get("activation") is not None:
        ref = kw["activation"](ref)
    # TF1 checkpoints name variables `<scope>/kernel` etc.: the same names, shapes, order.
    assert [w.path.split("/")[-1] for w in layer.weights] == v1_variables
    layer.set_weights(values)
    _assert_matches(layer(x), ref.numpy())

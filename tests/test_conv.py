"""Conv1D/2D/3D: parity with keras.layers, the float64 oracle, tf.nn, gradients, LoRA,
mixed precision, weight files, and every validation message."""

import itertools

import keras
import numpy as np
import pytest

import keras_convx as kc
from keras_convx.utils import shapes as S
import oracle
from helpers import (
    BACKEND, assert_close, make_input, rand, randomize_weights, spatial_shape,
    value_and_grads,
)

KERAS_CONV = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
CONVX_CONV = {1: kc.Conv1D, 2: kc.Conv2D, 3: kc.Conv3D}


def _keras_grid():
    for rank, padding, strides, dilation, fmt, groups, bias in itertools.product(
        (1, 2, 3), ("valid", "same", "causal"), (1, 2), (1, 2),
        ("channels_last", "channels_first"), (1, 2), (True, False),
    ):
        if strides > 1 and dilation > 1:
            continue  # keras.layers refuses it; covered by the oracle grid
        if padding == "causal" and rank != 1:
            continue
        if BACKEND == "tensorflow" and fmt == "channels_first":
            continue  # keras.layers can't run channels_first on TF CPU; the oracle grid covers it
        if rank == 3 and (groups > 1 or not bias or fmt == "channels_first" and strides > 1):
            continue  # keep the 3-D share small (XLA compiles on TF CPU)
        yield pytest.param(
            rank, padding, strides, dilation, fmt, groups, bias,
            id=f"conv{rank}d-{padding}-s{strides}-d{dilation}-{fmt}-g{groups}-bias{int(bias)}",
        )


# a deterministic quarter on JAX (eager JAX compiles each op per shape)
@pytest.mark.thin_on_jax(4)
@pytest.mark.parametrize("rank,padding,strides,dilation,fmt,groups,bias", list(_keras_grid()))
def test_matches_keras_layer(rank, padding, strides, dilation, fmt, groups, bias):
    kwargs = dict(filters=4, kernel_size=3, strides=strides, padding=padding,
                  dilation_rate=dilation, data_format=fmt, groups=groups, use_bias=bias)
    x = make_input(rank, 4, fmt)
    ours, ref = CONVX_CONV[rank](**kwargs), KERAS_CONV[rank](**kwargs)
    ref.build(x.shape)
    ours.build(x.shape)
    weights = randomize_weights(ref)
    ours.set_weights(weights)
    expected = ref(x)
    assert_close(ours(x), keras.ops.convert_to_numpy(expected))
    assert ours.compute_output_shape(x.shape) == tuple(expected.shape)
    assert [w.shape for w in ours.weights] == [w.shape for w in ref.weights]
    assert [w.path.split("/")[-1] for w in ours.weights] == \
        [w.path.split("/")[-1] for w in ref.weights]
    # The plain config is keras's config: it loads straight into keras.layers.
    assert set(ours.get_config()) == set(ref.get_config())


def _oracle_grid():
    paddings = ["valid", "same", "causal", 2, ((2, 0), (1, 3), (0, 1))]
    modes = ["zeros", "reflect", "symmetric", "replicate", "circular"]
    for rank, padding, mode, (strides, dilation), fmt in itertools.product(
        (1, 2, 3), paddings, modes, ((1, 1), (2, 1), (2, 2), (3, 2)),
        ("channels_last", "channels_first"),
    ):
        if padding == "valid" and mode != "zeros":
            continue
        if rank == 3 and (fmt == "channels_first" or mode in ("symmetric", "circular")
                          or strides == 3):
            continue
        if isinstance(padding, tuple):
            padding = padding[:rank]
        pid = padding if isinstance(padding, (str, int)) else "explicit"
        yield pytest.param(rank, padding, mode, strides, dilation, fmt,
                           id=f"conv{rank}d-{pid}-{mode}-s{strides}-d{dilation}-{fmt}")


@pytest.mark.thin_on_jax(4)
@pytest.mark.parametrize("rank,padding,mode,strides,dilation,fmt", list(_oracle_grid()))
def test_matches_numpy_oracle(rank, padding, mode, strides, dilation, fmt):
    groups = 2
    x = make_input(rank, 4, fmt, size=8)
    layer = CONVX_CONV[rank](6, 3, strides=strides, padding=padding, dilation_rate=dilation,
                             data_format=fmt, groups=groups, padding_mode=mode)
    y = layer(x)
    kernel, bias = randomize_weights(layer)
    y = layer(x)
    norm = kc.utils.args.normalize_padding(padding, rank, "test")
    pads = S.resolve_pads(norm, spatial_shape(x.shape, fmt), layer.kernel_size,
                          layer.strides, layer.dilation_rate)
    expected = oracle.conv(x, kernel, layer.strides, pads, layer.dilation_rate, fmt, mode)
    expected = expected + (bias if fmt == "channels_last" else bias.reshape((-1,) + (1,) * rank))
    assert_close(y, expected)
    assert layer.compute_output_shape(x.shape) == tuple(y.shape)


def test_causal_every_rank_sees_only_the_past():
    x = make_input(2, 3, "channels_last", size=6)
    layer = kc.Conv2D(2, (3, 3), padding="causal", dilation_rate=(2, 1))
    y0 = keras.ops.convert_to_numpy(layer(x))
    x2 = x.copy()
    x2[:, 4:] += 10.0  # change the future along the first spatial axis
    y1 = keras.ops.convert_to_numpy(layer(x2))
    np.testing.assert_array_equal(y0[:, :4], y1[:, :4])
    assert not np.allclose(y0[:, 4:], y1[:, 4:])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.nn parity needs the TensorFlow backend")
def test_matches_tf_nn():
    import tensorflow as tf
    x = make_input(2, 3, "channels_last", size=9)
    w = rand((3, 3, 3, 5), 3)
    expected = tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME")
    assert_close(kc.ops.conv(x, w, padding="same"), expected.numpy())
    expected = tf.nn.convolution(x, w, strides=2, padding="VALID")
    assert_close(kc.ops.conv(x, w, strides=2), expected.numpy())
    expected = tf.nn.convolution(x, w, dilations=2, padding="SAME")
    assert_close(kc.ops.conv(x, w, dilation_rate=2, padding="same"), expected.numpy())
    x3 = make_input(3, 2, "channels_last", size=5)
    w3 = rand((2, 3, 2, 2, 4), 4)
    expected = tf.nn.convolution(x3, w3, strides=[1, 2, 1], padding="SAME")
    assert_close(kc.ops.conv(x3, w3, strides=(1, 2, 1), padding="same"), expected.numpy())


@pytest.mark.skipif(BACKEND == "torch", reason="gradient parity is run on TF and JAX")
@pytest.mark.parametrize("rank,kwargs", [
    (1, dict(padding="causal", dilation_rate=2)),
    (2, dict(padding="same", strides=2, groups=2)),
    (2, dict(padding="valid", data_format="channels_first")),
    (3, dict(padding="same")),
], ids=["conv1d-causal-d2", "conv2d-same-s2-g2", "conv2d-valid-cf", "conv3d-same"])
def test_gradients_match_keras(rank, kwargs):
    fmt = kwargs.get("data_format", "channels_last")
    x = make_input(rank, 4, fmt, size=6)
    ref_kwargs, x_ref = dict(kwargs), x
    if BACKEND == "tensorflow" and fmt == "channels_first":
        # keras.layers can't run channels_first on TF CPU: reference on transposed data.
        ref_kwargs["data_format"] = "channels_last"
        x_ref = np.moveaxis(x, 1, -1)
    ours, ref = CONVX_CONV[rank](4, 3, **kwargs), KERAS_CONV[rank](4, 3, **ref_kwargs)
    ref.build(x_ref.shape)
    ours.build(x.shape)
    weights = randomize_weights(ref)
    ours.set_weights(weights)

    def run(layer, inputs):
        return value_and_grads(
            lambda x_, vals: layer.stateless_call(vals, [], x_)[0], inputs, weights)

    g_ours, g_ref = run(ours, x), run(ref, x_ref)
    if x_ref is not x:
        g_ref[0] = np.moveaxis(g_ref[0], -1, 1)
    for a, b in zip(g_ours, g_ref):
        assert_close(a, b)


def test_lora_matches_merged_kernel_and_round_trips():
    x = make_input(2, 4, "channels_last")
    layer = kc.Conv2D(6, 3, padding="same", lora_rank=2, lora_alpha=4)
    layer.build(x.shape)
    assert layer.lora_enabled and not layer._kernel.trainable
    assert len(layer.trainable_weights) == 3  # lora_a, lora_b, bias
    layer.lora_kernel_b.assign(rand((2, 6), 5))
    merged = keras.ops.convert_to_numpy(layer._kernel) + 2.0 * (
        keras.ops.convert_to_numpy(layer.lora_kernel_a) @ rand((2, 6), 5))
    bias = keras.ops.convert_to_numpy(layer.bias)
    expected = oracle.conv(x, merged, (1, 1), [(1, 1), (1, 1)], (1, 1)) + bias
    assert_close(layer(x), expected)
    config = layer.get_config()
    assert config["lora_rank"] == 2 and config["lora_alpha"] == 4
    with pytest.raises(ValueError, match="Conv2D: LoRA is already enabled"):
        layer.enable_lora(2)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_policy(policy):
    x = make_input(2, 4, "channels_last")
    layer = kc.Conv2D(6, 3, padding="same", padding_mode="reflect", dtype=policy)
    y = layer(x)
    assert layer.kernel.dtype == "float32" and layer.compute_dtype == policy.split("_")[1]
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    ref = kc.Conv2D(6, 3, padding="same", padding_mode="reflect")
    ref.build(x.shape)
    ref.set_weights(layer.get_weights())
    tol = 1e-2 if policy == "mixed_float16" else 3e-2  # half-precision mantissas
    assert_close(keras.ops.cast(y, "float32"), keras.ops.convert_to_numpy(ref(x)), tol)


def test_weights_h5_move_both_ways(tmp_path):
    def build(mod):
        inputs = keras.Input((12, 12, 3))
        h = mod.Conv2D(8, 3, padding="same", activation="relu")(inputs)
        h = mod.Conv2D(4, 3, strides=2, groups=2)(h)
        return keras.Model(inputs, mod.Conv1D(2, 2)(keras.layers.Reshape((25, 4))(h)))

    x = make_input(2, 3, "channels_last", size=12)[:, :, :12]
    ref, ours = build(keras.layers), build(kc)
    randomize_weights(ref)
    ref.save_weights(tmp_path / "a.weights.h5")
    ours.load_weights(tmp_path / "a.weights.h5")
    assert_close(ours(x), keras.ops.convert_to_numpy(ref(x)))
    randomize_weights(ours, seed=7)
    ours.save_weights(tmp_path / "b.weights.h5")
    ref.load_weights(tmp_path / "b.weights.h5")
    assert_close(ref(x), keras.ops.convert_to_numpy(ours(x)))


@pytest.mark.parametrize("kwargs,shape,message", [
    (dict(filters=4, kernel_size=0), None, r"Conv2D: kernel_size must be positive ints, got \(0, 0\)"),
    (dict(filters=4, kernel_size=(3, -1)), None, r"Conv2D: kernel_size must be positive ints, got \(3, -1\)"),
    (dict(filters=4, kernel_size=3, strides=(0, 1)), None, r"Conv2D: strides must be positive ints, got \(0, 1\)"),
    (dict(filters=0, kernel_size=3), None, r"Conv2D: filters must be a positive int, got 0"),
    (dict(filters=5, kernel_size=3, groups=2), None, r"Conv2D: filters must be divisible by groups=2, got filters=5"),
    (dict(filters=4, kernel_size=3, groups=2), (1, 8, 8, 3), r"Conv2D: input channels must be divisible by groups=2, got input channels=3"),
    (dict(filters=4, kernel_size=3), (1, 8, 3), r"Conv2D: expected an input of rank 4 \(batch, spatial..., channels\), got shape \(1, 8, 3\)"),
    (dict(filters=4, kernel_size=3), (1, 8, 8, None), r"Conv2D: the channel dimension of the input must be known"),
    (dict(filters=4, kernel_size=3, padding="full"), None, r"Conv2D: padding must be one of \('valid', 'same', 'causal'\).*got 'full'"),
    (dict(filters=4, kernel_size=3, padding_mode="mirror"), None, r"Conv2D: padding_mode must be one of \('zeros', 'reflect', 'symmetric', 'replicate', 'circular'\), got 'mirror'"),
    (dict(filters=4, kernel_size=3, padding=((1, -2), (0, 0))), None, r"Conv2D: padding must not be negative, got \(\(1, -2\), \(0, 0\)\)"),
    (dict(filters=4, kernel_size=3, padding=(1, 2, 3)), None, r"Conv2D: padding must be .*2 \(before, after\) pairs, got \(1, 2, 3\)"),
    (dict(filters=4, kernel_size=3, data_format="NHWC"), None, r"Conv2D: data_format must be one of \('channels_last', 'channels_first'\), got 'NHWC'"),
    (dict(filters=4, kernel_size=5), (1, 3, 8, 2), r"Conv2D: input spatial shape \(3, 8\) is too small for kernel_size=\(5, 5\)"),
    (dict(filters=4, kernel_size=3, padding=4, padding_mode="reflect"), (1, 4, 8, 2), r"Conv2D: 'reflect' padding \(4, 4\) must be smaller than the input length 4"),
    (dict(filters=4, kernel_size="3"), None, r"Conv2D: kernel_size must be an int or a tuple of 2 positive ints, got '3'"),
    (dict(filters=4, kernel_size=3, strides=None), None, r"Conv2D: strides must be an int or a tuple of 2 positive ints, got None"),
], ids=lambda v: None)
def test_validation_messages(kwargs, shape, message):
    with pytest.raises((ValueError, TypeError), match=message):
        layer = kc.Conv2D(**kwargs)
        layer.build(shape)


def test_channels_first_bias_when_last_length_equals_channels():
    # keras.ops.add(x, bias) on TF mistakes channels_first for channels_last here.
    x = make_input(1, 4, "channels_first", size=8)
    layer = kc.Conv1D(6, 3, data_format="channels_first")
    layer.build(x.shape)
    kernel, bias = randomize_weights(layer)
    expected = oracle.conv(x, kernel, (1,), [(0, 0)], (1,), "channels_first") + bias[:, None]
    assert_close(layer(x), expected)


class _Composite(keras.layers.Layer):
    """A user's composite layer: Keras infers its output spec by calling it on symbolic
    inputs (on JAX, a shape-polymorphic batch that is not an int)."""

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, x):
        return keras.ops.relu(self.inner(x))


@pytest.mark.parametrize("make,shape,expected", [
    (lambda: kc.Conv1D(3, 3, padding="same"), (9, 2), (9, 3)),
    (lambda: kc.Conv2D(3, 3, strides=2), (9, 9, 2), (4, 4, 3)),
    (lambda: kc.Conv3D(3, 2), (4, 4, 4, 1), (3, 3, 3, 3)),
    (lambda: kc.DepthwiseConv2D(3, padding="same"), (8, 8, 2), (8, 8, 2)),
    (lambda: kc.SeparableConv2D(3, 3), (8, 8, 2), (6, 6, 3)),
    (lambda: kc.Conv2DTranspose(3, 3, strides=2), (4, 4, 2), (9, 9, 3)),
])
def test_conv_layers_inside_a_composite_layer_of_a_functional_model(make, shape, expected):
    """Every backend builds the Functional model (on JAX the symbolic batch used to reach
    an int() and fail) with the right shape, and runs it."""
    x = keras.Input(shape)
    model = keras.Model(x, _Composite(make())(x))
    assert tuple(model.output.shape) == (None,) + expected
    out = model(np.random.default_rng(0).standard_normal((2,) + shape).astype("float32"))
    assert tuple(out.shape) == (2,) + expected

"""`kc.convert`: whole models onto keras_convx layers and back, outputs identical."""

import keras
import numpy as np
import pytest

import keras_convx as kc
from helpers import BACKEND, rand
from test_applications import build

# models of families whose conv-family and reshaping layers differ (depthwise, separable,
# pads, SE gates, pre-activation); JAX the first (CI time: eager JAX compiles each op)
FAMILIES = ["MobileNetV2", "Xception", "EfficientNetB0", "ResNet50V2", "MobileNetV3Small",
            "VGG16"]


def _ours(layer):
    return type(layer).__module__.startswith("keras_convx.")


@pytest.mark.parametrize("name", FAMILIES[:1] if BACKEND == "jax" else FAMILIES)
def test_applications_onto_keras_convx_and_back(name):
    model = build(name)
    x = rand((2,) + tuple(model.inputs[0].shape[1:]), 1) * 60 + 120
    converted = kc.convert(model)
    shadowed = [layer for layer in model.layers if type(layer).__name__ in
                kc.convert.__globals__["SHADOWED"]]
    assert shadowed and all(_ours(converted.get_layer(layer.name)) for layer in shadowed)
    back = kc.convert(converted, to="keras")
    assert not any(_ours(layer) for layer in back.layers)
    want = keras.ops.convert_to_numpy(model(x, training=False))
    for other in (converted, back):
        assert [layer.name for layer in other.layers] == [layer.name for layer in model.layers]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(other(x, training=False)), want)


def test_arguments_constraints_and_regularizers_carry_over():
    model = keras.Sequential([
        keras.Input((9, 9, 4)),
        keras.layers.ZeroPadding2D(((1, 0), (0, 2)), name="pad"),
        keras.layers.Conv2D(6, 3, strides=2, dilation_rate=1, groups=2, name="conv",
                            kernel_constraint=keras.constraints.MaxNorm(2.0),
                            kernel_regularizer=keras.regularizers.L2(1e-3)),
        keras.layers.Conv2DTranspose(3, 3, strides=2, output_padding=1, name="up"),
        keras.layers.UpSampling2D(2, interpolation="bilinear", name="resize"),
    ])
    converted = kc.convert(model)
    assert isinstance(converted, keras.Sequential)
    conv = converted.get_layer("conv")
    assert isinstance(conv, kc.Conv2D) and conv.groups == 2 and conv.strides == (2, 2)
    assert isinstance(conv.kernel_constraint, keras.constraints.MaxNorm)
    assert isinstance(conv.kernel_regularizer, keras.regularizers.L2)
    x = rand((2, 9, 9, 4), 2)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(converted(x)),
                                  keras.ops.convert_to_numpy(model(x)))


def test_back_to_keras_lists_every_layer_keras_cannot_express():
    x = keras.Input((8, 8, 8, 2))
    h = kc.Conv3D(4, 3, padding="same", padding_mode="reflect", name="reflect")(x)
    h = kc.DepthwiseConv3D(3, name="depthwise3d")(h)
    h = kc.Conv3D(4, 1, name="plain")(h)  # this one is fine
    model = keras.Model(x, h)
    with pytest.raises(ValueError) as info:
        kc.convert(model, to="keras")
    message = str(info.value)
    assert "reflect (Conv3D)" in message and "padding_mode" in message
    assert "depthwise3d (DepthwiseConv3D): no keras.layers equivalent" in message
    assert "plain" not in message


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"convert: to must be 'keras_convx' or 'keras', got "
                                         r"'torch'"):
        kc.convert(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), to="torch")


@pytest.mark.skipif(BACKEND == "jax", reason="CI time: eager JAX compiles MobileNetV2's ops "
                    "twice over; the YAML path is backend-agnostic (TF and torch run it)")
def test_keras_applications_to_yaml_and_back():
    """keras.applications -> YAML -> kc.build_model -> the same outputs with the weights
    moved over by layer name (the YAML names every layer as Keras did)."""
    model = build("MobileNetV2")
    text = kc.to_yaml(model)
    rebuilt = kc.build_model(text)
    assert rebuilt.count_params() == model.count_params()
    for layer in rebuilt.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    x = rand((2,) + tuple(model.inputs[0].shape[1:]), 3) * 60 + 120
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rebuilt(x, training=False)),
                                  keras.ops.convert_to_numpy(model(x, training=False)))

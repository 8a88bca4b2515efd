"""Each lowering added for keras.applications, one layer or operation at a time, over its
arguments, in both layouts it can meet (straight from the input, i.e. Keras order, and
after a conv, i.e. channels-first inside the graph), verified in onnxruntime tensor by
tensor at 1e-5 of each tensor's scale."""

import keras
import numpy as np
import pytest
from keras import ops
from keras.src.applications.convnext import LayerScale
from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

import keras_convx as kc
from helpers import BACKEND, rand

L = keras.layers
TOL = 1e-5


def _layer(make):
    return lambda x: make()(x)


def _pair(make):
    return lambda x: make()([x, kc.Conv2D(x.shape[-1], 1, name="branch")(x)])


CASES = {
    "rescaling": _layer(lambda: L.Rescaling(1 / 255.0, offset=-0.5)),
    "rescaling-per-channel": _layer(lambda: L.Rescaling([0.5, 2.0, -1.0, 3.0], offset=0.25)),
    "normalization": _layer(lambda: L.Normalization(mean=[0.1, -0.2, 0.3, 0.0],
                                                    variance=[1.0, 4.0, 0.25, 2.0])),
    "normalization-invert": _layer(lambda: L.Normalization(mean=[0.1, -0.2, 0.3, 0.0],
                                                           variance=[1.0, 4.0, 0.25, 2.0],
                                                           invert=True)),
    # slopes per channel shared over H and W (MTCNN), and one per element
    "prelu-shared-hw": _layer(lambda: L.PReLU(shared_axes=[1, 2])),
    "prelu-per-element": _layer(lambda: L.PReLU()),
    "layernorm-channels": _layer(lambda: L.LayerNormalization(epsilon=1e-6)),
    "layernorm-spatial": _layer(lambda: L.LayerNormalization(axis=[1, 2], epsilon=1e-3)),
    "layernorm-all-no-center": _layer(lambda: L.LayerNormalization(axis=[1, 2, 3],
                                                                   center=False)),
    "layernorm-no-scale": _layer(lambda: L.LayerNormalization(axis=-1, scale=False)),
    "groupnorm": _layer(lambda: L.GroupNormalization(groups=2, epsilon=1e-4)),
    "unitnorm-channels": _layer(lambda: L.UnitNormalization()),
    "unitnorm-spatial": _layer(lambda: L.UnitNormalization(axis=[1, 2])),
    "permute": lambda x: kc.Conv2D(3, 1)(L.Permute((2, 1, 3))(x)),
    "identity": _layer(lambda: L.Identity()),
    "resizing-bilinear": _layer(lambda: L.Resizing(9, 5)),
    "resizing-nearest": _layer(lambda: L.Resizing(12, 3, interpolation="nearest")),
    "center-crop": _layer(lambda: L.CenterCrop(3, 4)),
    "layer-scale": _layer(lambda: LayerScale(0.5, 4)),
    "custom-scale": _pair(lambda: CustomScaleLayer(0.17)),
    "op-add-constant": lambda x: x + 3.0,
    "op-constant-minus": lambda x: 3.0 - x,
    "op-multiply": lambda x: x * (1.0 / 6.0),
    "op-divide-by-array": lambda x: x / np.asarray([1.0, 2.0, 4.0, 8.0], np.float32),
    "op-array-divided": lambda x: ops.divide(np.asarray([1.0, 2.0, 4.0, 8.0], np.float32),
                                             ops.abs(x) + 1),
    "op-maximum-minimum": lambda x: ops.minimum(ops.maximum(x, -0.5), 0.7),
    "op-mean-keepdims": lambda x: x - ops.mean(x, axis=[1, 2], keepdims=True),
    "op-sum-channels": lambda x: ops.sum(x, axis=-1),
    "op-max-spatial": lambda x: ops.max(x, axis=1),
    "op-reshape": lambda x: ops.reshape(x, (-1, x.shape[1] * x.shape[2], x.shape[3])),
    "op-transpose": lambda x: ops.transpose(x, (0, 3, 1, 2)),
    "op-concatenate": lambda x: ops.concatenate([x, ops.square(x)], axis=-1),
    "op-clip": lambda x: ops.clip(x, -0.3, 0.6),
    "op-activations": lambda x: ops.sigmoid(x) + ops.relu(x) + ops.relu6(x) + ops.silu(x)
    + ops.hard_sigmoid(x) + ops.hard_silu(x) + ops.elu(x, alpha=0.7)
    + ops.leaky_relu(x, 0.3) + ops.tanh(x),
    "op-gelu-tanh": lambda x: ops.gelu(x, approximate=True),
    "op-gelu-exact": lambda x: ops.gelu(x, approximate=False),
    "op-softmax-spatial": lambda x: ops.softmax(x, axis=1),
    "op-unary": lambda x: ops.sqrt(ops.abs(x)) + ops.exp(-ops.square(x)) + ops.negative(x),
    "repeat-vector": lambda x: L.RepeatVector(3)(L.GlobalAveragePooling2D()(x)),
    "activation-hard-swish": _layer(lambda: L.Activation("hard_swish")),
    "activation-gelu": _layer(lambda: L.Activation("gelu")),
}


# both layouts on TF and torch; every other case on JAX
@pytest.mark.thin_on_jax(2)
@pytest.mark.parametrize("after_conv", [False, True], ids=["keras-order", "channels-first"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_lowering_verifies(name, after_conv, tmp_path):
    if BACKEND == "torch" and name == "layernorm-spatial":
        pytest.skip("Keras's LayerNormalization fails on torch for non-trailing axes "
                    "(torch's layer_norm normalizes trailing dims only)")
    x = keras.Input((6, 8, 4), name="x")
    h = kc.Conv2D(4, 3, padding="same", name="conv")(x) if after_conv else x
    model = keras.Model(x, CASES[name](h))
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), i) * 0.5 + (1.0 if "gamma" in w.path else 0.0))
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native",
                            verify=kc.VerifyOptions(tolerance=TOL))
    assert report.passed, report.verify.summary()
    # no layout moves beyond one per input and output (Permute really moves data)
    assert report.transpose_count <= (3 if name == "permute" else 2)


def test_an_operation_node_is_mapped_and_compared(tmp_path):
    x = keras.Input((6, 8, 4), name="x")
    h = kc.Conv2D(4, 3, padding="same", name="conv")(x)
    model = keras.Model(x, kc.Conv2D(2, 1, name="out")(h * 0.5 + 1.0))
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    kinds = {c.key.split(":")[0].rstrip("0123456789_") for c in report.verify.tensors
             if c.role == "internal"}
    assert {"conv", "multiply", "add", "out"} <= kinds


@pytest.mark.skipif(BACKEND != "jax", reason="Keras's channels_first convs need a GPU on TF; "
                    "its LayerNormalization(axis=1) fails on torch (trailing dims only)")
def test_layer_norm_channels_first_model(tmp_path):
    x = keras.Input((4, 6, 8), name="x")
    h = kc.Conv2D(4, 3, padding="same", data_format="channels_first")(x)
    model = keras.Model(x, L.LayerNormalization(axis=1)(h))
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), i))
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native",
                            verify=kc.VerifyOptions(tolerance=TOL))
    assert report.passed and report.transpose_count == 0
    assert np.isfinite(report.verify.checks[0].rel)

"""Subclassed Keras models (`keras.Model` with its own `call`) exported natively: traced
through `call` like composite layers, their inner tensors named and verified; where the
input shape comes from; where tracing stops (and what is said about tf2onnx then)."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_convx as kc
from helpers import BACKEND, rand

L = keras.layers
SHAPE = (8, 8, 3)


class ConvBNReLU(L.Layer):
    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.conv = kc.layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv")
        self.bn = L.BatchNormalization(name="bn")
        self.relu = L.ReLU(name="relu")

    def call(self, x, training=None):
        return self.relu(self.bn(self.conv(x), training=training))


class ResidualNet(keras.Model):
    """As projects ship them: layers made in `__init__`, a Python loop over a list of
    blocks, a residual add, `training` passed down."""

    def __init__(self, filters=4, blocks=2, **kwargs):
        super().__init__(**kwargs)
        self.stem = L.Conv2D(filters, 1, name="stem")
        self.blocks = [ConvBNReLU(filters, name=f"block_{i}") for i in range(blocks)]
        self.add = L.Add(name="residual")
        self.head = kc.layers.Conv2D(2, 3, strides=2, padding="same", name="head")

    def call(self, inputs, training=None):
        x = self.stem(inputs)
        y = x
        for block in self.blocks:
            y = block(y, training=training)
        return self.head(self.add([x, y]))


class TwoInputs(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.a = kc.layers.Conv2D(4, 3, padding="same", name="a")
        self.b = L.Conv2D(4, 1, name="b")

    def call(self, inputs):
        left, right = inputs
        return ops.relu(self.a(left) + self.b(right))


class BranchOnValue(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = L.Conv2D(2, 1, name="conv")

    def call(self, x):
        if ops.mean(x) > 0:
            return self.conv(x)
        return -self.conv(x)


def _trained(model, seed=0):
    """Weights drawn, BatchNormalization statistics as after training."""
    for i, w in enumerate(model.weights):
        shape = tuple(w.shape)
        if "moving_variance" in w.path:
            w.assign(np.abs(rand(shape, seed + i)) + 0.5)
        elif "moving_mean" in w.path or "beta" in w.path:
            w.assign(rand(shape, seed + i) * 0.3)
        elif "gamma" in w.path:
            w.assign(rand(shape, seed + i) * 0.25 + 1.0)
        else:
            w.assign(rand(shape, seed + i) * 0.5)
    return model


def _called(model, shapes=(SHAPE,)):
    arrays = [rand((1,) + s, 7 + i) for i, s in enumerate(shapes)]
    model(arrays if len(arrays) > 1 else arrays[0])
    return _trained(model)


def test_residual_subclassed_model_exports_natively_with_its_inner_tensors_verified(tmp_path):
    model = _called(ResidualNet(name="resnet"))
    report = kc.export_onnx(model, tmp_path / "m.onnx")  # method="auto"
    assert report.method == "native", report.reason
    assert report.passed, report.verify.summary()
    labels = {c.tensor for c in report.verify.tensors if c.status == "pass"}
    # inner tensors named by their path in `call`, each compared, not only the output
    assert {"resnet/stem", "resnet/block_0/relu", "resnet/block_1/relu", "resnet/residual",
            "resnet/head"} <= labels
    assert report.bn_folded == 2
    assert (tmp_path / "m.onnx").exists()
    # re-verified later from the file, the subclassed model as it is
    again = kc.verify_onnx(model, tmp_path / "m.onnx")
    assert again.passed and {c.tensor for c in again.tensors} == {c.tensor for c in
                                                                   report.verify.tensors}
    model.head.kernel.assign(model.head.kernel * 1.01)
    assert not kc.verify_onnx(model, tmp_path / "m.onnx").passed


def test_input_shape_comes_from_build_or_from_the_argument(tmp_path):
    built = ResidualNet(name="built")
    built.build((None,) + SHAPE)
    assert kc.export_onnx(built, tmp_path / "b.onnx").passed
    fresh = ResidualNet(name="fresh")
    report = kc.export_onnx(fresh, tmp_path / "f.onnx", input_shape=SHAPE)
    assert report.passed and report.method == "native"
    assert not fresh._inbound_nodes  # exporting leaves the model as it was


def test_unknown_input_shape_says_to_call_the_model_or_pass_it(tmp_path):
    with pytest.raises(ValueError, match=r"ResidualNet.*no known input shape.*call it once.*"
                                         r"input_shape="):
        kc.export_onnx(ResidualNet(), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_subclassed_model_taking_a_list_of_two_inputs(tmp_path):
    model = _called(TwoInputs(name="pair"), (SHAPE, (8, 8, 2)))
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    assert report.passed, report.verify.summary()
    assert {"pair/a", "pair/b"} <= {c.tensor for c in report.verify.tensors}


def test_untraceable_call_is_named_with_its_line_and_tf2onnx_not_advised(tmp_path):
    model = _called(BranchOnValue(name="branchy"))
    with pytest.raises(kc.exporter.UnsupportedModel) as info:
        kc.export_onnx(model, tmp_path / "m.onnx", input_shape=SHAPE)  # method="auto"
    message = str(info.value)
    assert "branchy" in message and "test_subclassed.py" in message
    assert "if ops.mean(x) > 0" in message and "control flow on tensor values" in message
    assert "use method='tf2onnx'" not in message
    if BACKEND == "tensorflow":  # tf.function can't run it either: no fallback to offer
        assert "neither can tf2onnx" in message
    else:
        assert "needs the TensorFlow backend" in message
    assert not list(tmp_path.iterdir())


class BackendSpecific(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = L.Conv2D(2, 1, name="conv")

    def call(self, x):
        import tensorflow as tf

        return tf.nn.relu6(self.conv(x))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf2onnx runs on TensorFlow only")
def test_tf_code_in_call_falls_back_to_tf2onnx_and_verifies(tmp_path):
    model = _called(BackendSpecific(name="tf_code"))
    with pytest.raises(kc.exporter.UnsupportedModel, match=r"tf_code.*tf\.nn\.relu6"):
        kc.export_onnx(model, tmp_path / "n.onnx", method="native")
    report = kc.export_onnx(model, tmp_path / "m.onnx")  # auto: the fallback it takes works
    assert report.method == "tf2onnx" and report.passed, report.verify.summary()


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf2onnx runs on TensorFlow only")
def test_tf2onnx_on_a_subclassed_model(tmp_path):
    model = _called(ResidualNet(name="resnet"))
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="tf2onnx")
    assert report.method == "tf2onnx" and report.passed, report.verify.summary()

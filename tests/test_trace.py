"""Composite layers exported by tracing their `call`: the graph they become, the names
inside them, what tracing leaves unchanged, and where it stops (and says why)."""

import keras
import numpy as np
import onnx
from onnx import numpy_helper
import pytest
from keras import ops

import keras_convx as kc
from helpers import BACKEND, rand
from keras_convx.exporter import tensor_map, trace

L = keras.layers


class GatedBlock(L.Layer):
    """A user's block: sublayers, a variable read in `call`, ops.split, Dropout."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.expand = L.Conv2D(2 * filters, 3, padding="same", name="expand_conv")
        self.bn = L.BatchNormalization(name="bn")
        self.drop = L.Dropout(0.5)

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(self.filters,), initializer="ones", name="gamma")

    def call(self, x, training=None):
        value, gate = ops.split(self.bn(self.expand(x), training=training), 2, axis=-1)
        return x + self.drop(value * ops.sigmoid(gate), training=training) * self.gamma


class ScaleFirst(L.Layer):
    """`variable * tensor` with the variable on the left (keras-hub's affine blocks)."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="random_normal")
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="random_normal")

    def call(self, x):
        return self.scale * x + self.bias


def _model(block, shape=(8, 8, 4), head=True):
    x = keras.Input(shape, name="x")
    y = block(x)
    if head:
        y = L.Conv2D(3, 1, name="head")(y)
    model = keras.Model(x, y)
    for i, w in enumerate(model.weights):
        if "moving_variance" in w.path or "gamma" in w.path:
            w.assign(rand(tuple(w.shape), i) * 0.25 + 1.0)
        else:
            w.assign(rand(tuple(w.shape), i) * 0.5)
    return model


@pytest.fixture(scope="module")
def gated():
    return _model(GatedBlock(4, name="block_1_0"))


def test_composite_block_exports_with_its_inner_tensors_named(gated, tmp_path):
    report = kc.export_onnx(gated, tmp_path / "m.onnx", method="native",
                            verify=kc.VerifyOptions(tolerance=1e-5))
    assert report.passed, report.verify.summary()
    # keras.ops nodes are named by Keras's global counter: split, split_3, ...
    labels = {c.tensor.rstrip("0123456789").rstrip("_") for c in report.verify.tensors}
    assert {"block_1_0/expand_conv", "block_1_0/bn", "block_1_0/split", "block_1_0/sigmoid",
            "head"} <= labels
    inner = [c for c in report.verify.tensors if c.tensor.startswith("block_1_0/")
             and c.status == "pass"]
    assert len(inner) >= 6  # BN folded into the conv: its output is compared as the BN's
    ops_used = {n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node}
    assert "Split" in ops_used and "Dropout" not in ops_used


def test_tracing_leaves_the_model_as_it_was(gated):
    block = gated.get_layer("block_1_0")
    before = [(len(s._inbound_nodes), len(s._outbound_nodes))
              for s in block._flatten_layers(include_self=True)]
    x = rand((2, 8, 8, 4))
    expected = keras.ops.convert_to_numpy(gated(x))
    tensor_map._CACHE.clear()
    tensor_map.flat_graph(gated)
    after = [(len(s._inbound_nodes), len(s._outbound_nodes))
             for s in block._flatten_layers(include_self=True)]
    assert before == after
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(gated(x)), expected)


def test_a_wrong_weight_inside_a_block_is_found_at_its_sublayer(gated, tmp_path):
    kc.export_onnx(gated, tmp_path / "m.onnx", method="native")
    proto = onnx.load(tmp_path / "m.onnx")
    weight = next(t for t in proto.graph.initializer if t.name.startswith("block_1_0/expand"))
    array = onnx.numpy_helper.to_array(weight).copy()
    array[0] *= 1.05  # one output channel of the traced conv, 5% off
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    onnx.save(proto, tmp_path / "bad.onnx")
    report = kc.verify_onnx(gated, tmp_path / "bad.onnx")
    assert not report.passed
    assert report.diagnosis[0].tensor.startswith("block_1_0/")


def test_a_registered_lowering_wins_over_tracing(tmp_path):
    class Twice(L.Layer):
        def call(self, x):
            return x * 2.0

    model = _model(Twice(name="twice"))
    traced = kc.export_onnx(model, tmp_path / "a.onnx", method="native")
    assert any(c.tensor.startswith("twice/") for c in traced.verify.tensors)

    @kc.exporter.lowering(Twice)
    def lower_twice(b, layer, ctx):
        return b.node("Add", [ctx.x.name, ctx.x.name])

    try:
        report = kc.export_onnx(model, tmp_path / "b.onnx", method="native")
    finally:
        del kc.exporter.LOWERINGS[Twice]
    assert report.passed
    assert not any(c.tensor.startswith("twice/") for c in report.verify.tensors)
    assert "Add" in {n.op_type for n in onnx.load(tmp_path / "b.onnx").graph.node}


def test_variable_on_the_left_of_a_tensor_is_a_constant_operand(tmp_path):
    report = kc.export_onnx(_model(ScaleFirst(name="affine")), tmp_path / "m.onnx",
                            method="native", verify=kc.VerifyOptions(tolerance=1e-5))
    assert report.passed, report.verify.summary()


def test_activation_of_a_lambda_is_traced(tmp_path):
    model = _model(L.Activation(lambda t: ops.gelu(t, approximate=False) * 0.5, name="act"))
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native",
                            verify=kc.VerifyOptions(tolerance=1e-5))
    assert report.passed
    assert any(c.tensor.startswith("act/gelu") for c in report.verify.tensors)


def test_nested_model_built_for_any_size_is_traced_at_the_callers_size(tmp_path):
    inner_in = keras.Input((None, None, 4))
    pooled = L.AveragePooling2D(2, strides=2, padding="same")(inner_in)
    inner = keras.Model(inner_in, L.Conv2D(4, 3, padding="same")(pooled), name="any_size")
    model = _model(inner, shape=(9, 9, 4))
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native",
                            verify=kc.VerifyOptions(tolerance=1e-5))
    assert report.passed
    assert any(c.tensor.startswith("any_size/") for c in report.verify.tensors)


class BranchOnValue(L.Layer):
    def call(self, x):
        if ops.max(x) > 0:
            return x
        return -x

    def compute_output_shape(self, input_shape):  # Keras can't infer it either
        return input_shape


class NoisyAtInference(L.Layer):
    def call(self, x):
        return x + keras.random.normal(ops.shape(x)[1:])

    def compute_output_shape(self, input_shape):  # JAX can't trace unseeded random ops
        return input_shape


class BatchAsNumber(L.Layer):
    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="ones")

    def call(self, x):
        batch, steps, channels = ops.shape(x)
        tokens = ops.tile(self.token, (batch, 1, 1))  # a constant when batch is a number
        x = ops.concatenate([tokens, x], axis=1)
        heads = ops.reshape(x, (batch * 2, steps + 1, channels // 2))  # as attention does
        heads = heads * ops.softmax(heads, axis=1)
        return ops.reshape(heads, (batch, steps + 1, channels))


class BatchRange(L.Layer):
    def call(self, x):
        batch = ops.shape(x)[0]
        return x + ops.reshape(ops.arange(batch, dtype="float32"), (batch, 1, 1))


def test_every_untraceable_layer_is_named_at_once_with_its_line_and_reason(tmp_path):
    x = keras.Input((8, 8, 4), name="x")
    y = BranchOnValue(name="branchy")(x)
    y = NoisyAtInference(name="noisy")(y)
    model = keras.Model(x, L.Conv2D(2, 1)(y))
    with pytest.raises(kc.exporter.UnsupportedModel) as info:
        kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    problems = {name: why for name, _, why in info.value.problems}
    assert set(problems) == {"branchy", "noisy"}
    assert "test_trace.py" in problems["branchy"] and "if ops.max(x) > 0" in problems["branchy"]
    assert "control flow on tensor values" in problems["branchy"]
    assert "random op runs at inference" in problems["noisy"]
    assert "keras.random.normal" in problems["noisy"]
    assert not (tmp_path / "m.onnx").exists()


def test_a_call_that_needs_the_batch_as_a_number_exports_with_a_dynamic_batch(tmp_path):
    import onnxruntime as ort

    x = keras.Input((5, 4), name="x")
    model = keras.Model(x, L.Dense(3, name="head")(BatchAsNumber(name="tokens")(x)))
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), i))
    # traced with the batch symbol: its tile and reshapes follow the graph's batch
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native",
                            verify=kc.VerifyOptions(tolerance=1e-5))
    assert report.passed
    assert {c.batch for c in report.verify.checks} == {1, 2}
    assert any(c.tensor.startswith("tokens/") and c.status == "pass"
               for c in report.verify.tensors)
    graph = onnx.load(tmp_path / "m.onnx").graph
    ints = [numpy_helper.to_array(t) for t in graph.initializer
            if t.data_type == onnx.TensorProto.INT64]
    assert not any(np.any((a != 0) & (a % trace.BATCH_SYMBOL == 0)) for a in ints)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3, 4):  # sizes verification did not use
        data = rand((batch, 5, 4), 10 + batch)
        expected = keras.ops.convert_to_numpy(model(data))
        got = session.run(None, {"x": data})[0]
        assert got.shape == (batch, 6, 3)
        assert np.max(np.abs(got - expected)) <= 1e-5 * np.max(np.abs(expected))
    # a static batch still traces with the number itself
    report = kc.export_onnx(model, tmp_path / "s.onnx", method="native", dynamic_axes=(),
                            batch_size=2, verify=kc.VerifyOptions(tolerance=1e-5))
    assert report.passed


def test_a_constant_built_from_the_batch_size_is_refused_under_a_dynamic_batch(tmp_path):
    # arange(batch) is no repetition along the batch: it can't follow the graph's batch
    x = keras.Input((5, 4), name="x")
    model = keras.Model(x, L.Dense(3)(BatchRange(name="ranged")(x)))
    with pytest.raises(kc.exporter.UnsupportedModel, match=r"ranged.*dynamic_axes=\(\)"):
        kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    assert not (tmp_path / "m.onnx").exists()
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native", dynamic_axes=(),
                            batch_size=3, verify=kc.VerifyOptions(tolerance=1e-5))
    assert report.passed


def test_unsupported_layers_lists_what_a_trace_reaches_without_a_lowering():
    class Cumulative(L.Layer):
        def call(self, x):
            return ops.cumsum(x, axis=1) + 1.0

    model = _model(Cumulative(name="cum"), head=False)
    problems = kc.exporter.unsupported_layers(model)
    # keras.ops nodes are named by Keras's global counter: cumsum, cumsum_1, ...
    assert [(n.rstrip("0123456789").rstrip("_"), k) for n, k, _ in problems] == [
        ("cum/cumsum", "operation keras.src.ops.numpy.Cumsum")]


@pytest.mark.skipif(BACKEND == "tensorflow", reason="JAX and torch: TensorFlow stays out")
def test_tracing_and_export_never_import_tensorflow(tmp_path):
    import subprocess
    import sys

    code = f"""
import sys
import keras
from keras import ops
import keras_convx as kc

class Block(keras.layers.Layer):
    def build(self, shape):
        self.scale = self.add_weight(shape=(shape[-1],), initializer="random_normal")

    def call(self, x):
        a, b = ops.split(x, 2, -1)
        return ops.concatenate([a * ops.sigmoid(b), b * self.scale[:2]], axis=-1)

x = keras.Input((8, 8, 4))
model = keras.Model(x, keras.layers.Conv2D(3, 1)(Block()(x)))
report = kc.export_onnx(model, {str(tmp_path / 'm.onnx')!r}, method="native")
assert report.passed
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
assert not loaded, loaded[:5]
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def _backend_relu():
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.nn.relu
    if BACKEND == "torch":
        import torch

        return torch.relu
    import jax

    return jax.nn.relu


def backend_relu(x):
    """A helper of the model's own module written for one backend."""
    return _backend_relu()(x)


class BackendCall(L.Layer):
    def call(self, x):
        return backend_relu(x) * 2.0

    def compute_output_shape(self, input_shape):
        return input_shape


def test_backend_code_is_refused_by_name_and_a_substitute_goes_through_it(tmp_path):
    model = _model(BackendCall(name="backend_call"))
    with pytest.raises(kc.exporter.UnsupportedModel, match=r"backend_call .*test_trace.py:\d+ "
                       r"in call \(`return backend_relu\(x\) \* 2.0`\): backend-specific"):
        kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    kc.exporter.substitute(__name__, "backend_relu", ops.relu)
    try:
        tensor_map._CACHE.clear()
        report = kc.export_onnx(model, tmp_path / "m.onnx", method="native",
                                verify=kc.VerifyOptions(tolerance=1e-5))
    finally:
        del kc.exporter.trace.SUBSTITUTES[__name__, "backend_relu"]
        tensor_map._CACHE.clear()
    assert report.passed and backend_relu is not ops.relu  # restored after tracing
    assert any(c.tensor.startswith("backend_call/relu") for c in report.verify.tensors)

"""The layer contract (as Keras's `run_layer_test`): what every keras_convx layer owes its
users, checked in one helper driven by the table in layer_cases.py."""

import collections
import json

import keras
import numpy as np
import onnx

import keras_convx as kc
from helpers import assert_close, rand

# half-precision mantissas: 11 bits (float16) and 8 bits (bfloat16), relative to the output scale
LOW_PRECISION = {"mixed_float16": ("float16", 1e-2), "mixed_bfloat16": ("bfloat16", 4e-2)}
EXPORT_TOL = 1e-5  # float32 export: max abs error <= 1e-5 x max|keras output|
LAYOUT_OPS = ("Transpose", "Reshape")  # layout moves, not the layer's computation


def run_layer_contract(case, tmp_path, policies=tuple(LOW_PRECISION)):
    """Checks `case` (a layer_cases.LayerCase) end to end:

    config round trip (plain JSON, same class and config back, registered under
    keras_convx), weight names and shapes, output shape = `compute_output_shape` with known
    and unknown spatial dims, each mixed-precision policy, `.keras` save/load with identical
    outputs, and a verified native ONNX export made of the expected ops.
    """
    layer = case.make()
    x = rand((2,) + case.shape, 7)
    y = keras.ops.convert_to_numpy(layer(x))

    _check_config(layer)
    assert [(w.path.split("/")[-1], tuple(w.shape)) for w in layer.weights] == \
        [(n, tuple(s)) for n, s in case.weights]
    if layer.weights:  # non-trivial weights from here on
        layer.set_weights([rand(w.shape, i + 1) for i, w in enumerate(layer.get_weights())])
        y = keras.ops.convert_to_numpy(layer(x))
    assert layer.compute_output_shape(x.shape) == y.shape
    _check_unknown_spatial_dims(case, layer, x)
    for policy in policies:
        _check_low_precision(layer, x, y, policy)
    model = _model(case, layer)
    _check_keras_file(model, x, y, tmp_path)
    _check_export(model, case, tmp_path)


def _check_config(layer):
    config = layer.get_config()
    json.dumps(config)  # plain JSON types only
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert keras.saving.get_registered_name(type(layer)) == f"keras_convx>{type(layer).__name__}"
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


def _check_unknown_spatial_dims(case, layer, x):
    channels_last = layer.data_format == "channels_last"
    shape = case.shape
    unknown = (None,) * (len(shape) - 1) + shape[-1:] if channels_last \
        else shape[:1] + (None,) * (len(shape) - 1)
    clone = type(layer).from_config(layer.get_config())
    inputs = keras.Input(unknown)
    symbolic = clone(inputs)
    assert tuple(symbolic.shape) == clone.compute_output_shape((None,) + unknown)
    out = keras.Model(inputs, symbolic).predict_on_batch(x)
    assert tuple(out.shape) == clone.compute_output_shape(x.shape)


def _check_low_precision(layer, x, y, policy):
    low, tol = LOW_PRECISION[policy]
    twin = type(layer).from_config(dict(layer.get_config(), dtype=policy))
    out = twin(x)
    assert keras.backend.standardize_dtype(out.dtype) == low
    assert all(v.dtype == "float32" for v in twin.weights)
    if layer.weights:
        twin.set_weights(layer.get_weights())
        out = twin(x)
    assert_close(keras.ops.cast(out, "float32"), y, tol)


def _model(case, layer):
    inputs = keras.Input(case.shape, name="x")
    return keras.Model(inputs, layer(inputs))


def _check_keras_file(model, x, y, tmp_path):
    path = tmp_path / "layer.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), y)


def _check_export(model, case, tmp_path):
    path = tmp_path / "layer.onnx"
    report = kc.export_onnx(model, path, verify=kc.VerifyOptions(tolerance=EXPORT_TOL))
    assert report.passed, report.verify.diagnosis
    ops = collections.Counter(node.op_type for node in onnx.load(path).graph.node
                              if node.op_type not in LAYOUT_OPS)
    assert ops == collections.Counter(case.onnx_ops)

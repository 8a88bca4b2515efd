"""Parity checks for your own test suite: export parity and the Keras layer contract.

`assert_export_parity(model, inputs)` exports a model to ONNX and verifies it with the
exporter's rule (every tensor, NaN/Inf and constant outputs never pass); on failure it
raises `AssertionError` naming the first diverging layer, its error and the tolerance that
would have passed. `assert_layer_contract(LayerClass, init_kwargs, input_shape)` checks a
layer the way Keras's own (private) `run_layer_test` does, plus `.keras` save/load and
export parity. The pytest plugin (`keras_convx.pytest_plugin`, loaded by pytest through
the `pytest11` entry point) runs a test once per Keras backend, each in its own process:
`@pytest.mark.keras_backends("tensorflow", "jax", "torch")`.
"""

import os
import tempfile

import numpy as np

__all__ = ["assert_export_parity", "assert_layer_contract"]


def _failure(report, where):
    """The AssertionError message for a failed verification report."""
    needed = report.required_tolerance
    need = ("no tolerance passes it (NaN/Inf or a constant output)" if needed is None
            else f"required tolerance {needed:.3g}")
    return f"export parity ({where}): {report.summary()}; {need}"


def assert_export_parity(model, inputs=None, *, tolerance=None, providers=None,
                         levels=("all",), batch_sizes=(1, 2), **export_kwargs):
    """Asserts that `model` exports to ONNX and matches Keras in onnxruntime, tensor by tensor.

    The model is exported natively (`keras_convx.export_onnx`, into a temporary folder that
    is removed afterwards) and verified at each onnxruntime optimisation level in `levels`,
    on random inputs at the model's scale and on `inputs` when given.

    Args:
        model: a Functional or Sequential Keras model.
        inputs: optional array (or list of arrays, one per model input, Keras layout) to
            check besides the random inputs.
        tolerance: max abs error as a fraction of each tensor's scale (default: the
            exporter's, `keras_convx.verification.rules.DEFAULT_TOLERANCES`).
        providers: onnxruntime providers, e.g. `["cpu"]` (default: every available one).
        levels: onnxruntime optimisation levels the outputs are checked at.
        batch_sizes: batch sizes of the random inputs.
        **export_kwargs: passed to `export_onnx` (`method`, `opset`, `dynamic_axes`...).

    Returns:
        The `Report` of the last level (`verify_onnx`'s), for further checks.

    Raises:
        AssertionError: the model does not export, or a tensor differs; the message names
            the first diverging layer, its error and the tolerance that would have passed.

    Example:

    >>> from keras_convx.testing import assert_export_parity
    >>> assert_export_parity(model, images)
    """
    import keras

    from keras_convx.exporter import ExportError, export_onnx, verify_onnx
    from keras_convx.exporter.export import UnsupportedModel

    samples = None
    if inputs is not None:
        samples = [list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]]
    where = keras.backend.backend()
    with tempfile.TemporaryDirectory(prefix="keras_convx-parity-") as folder:
        path = os.path.join(folder, f"{model.name}.onnx")
        export_kwargs.setdefault("method", "native")
        try:
            export_onnx(model, path, verify=False, **export_kwargs)
        except (UnsupportedModel, ExportError, ValueError) as err:
            raise AssertionError(f"export parity ({where}): the model does not export: "
                                 f"{err}") from None
        report = None
        for level in levels:
            report = verify_onnx(model, path, samples=samples, providers=providers,
                                 tolerance=tolerance, batch_sizes=batch_sizes,
                                 optimization_level=level)
            if not report.passed:
                raise AssertionError(_failure(report, f"{where}, ORT level {level}"))
    return report


def assert_layer_contract(layer_cls, init_kwargs, input_shape, *, expected_output_shape=None,
                          seed=0, save=True, mixed_precision=True, training=True, export=True,
                          tolerance=1e-5):
    """Asserts that a layer keeps the Keras layer contract (a public `run_layer_test`).

    Checks, in this order:
    - `get_config` holds every argument of `init_kwargs` with its value, and
      `from_config(get_config())` gives the same config;
    - the layer builds on `input_shape` and its output shape equals `compute_output_shape`
      (and `expected_output_shape` when given);
    - a layer from the config with the same weights gives the same outputs;
    - inside a model, `.keras` save and load (registered serializable) gives the same outputs;
    - with `dtype="mixed_float16"` it computes in float16, close to float32;
    - one training step gives finite loss and changes its trainable weights;
    - export parity (`assert_export_parity`) of a model made of the layer.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_shape: the input shape with its batch size, e.g. `(2, 16, 16, 3)`.
        expected_output_shape: optional output shape (with batch) to check against.
        seed: seed of the random inputs and weights.
        save, mixed_precision, training, export: turn a check off where it can't apply
            (an export that has no lowering, a layer with no float16 kernel).
        tolerance: max abs error, as a fraction of the output's scale, for comparisons of
            two float32 runs of the same layer.

    Raises:
        AssertionError: naming the check, the layer and what differs.
    """
    import keras

    name = layer_cls.__name__
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(input_shape)).astype("float32")

    layer, again = _check_config(layer_cls, init_kwargs)
    y = _numpy(layer(x))
    _check_output_shape(layer, input_shape, y, expected_output_shape)
    if not layer.weights and not _informative(y):
        raise AssertionError(f"{name}: the output is constant on random inputs: nothing to "
                             f"compare")
    again(x)
    again.set_weights(layer.get_weights())
    _close(_numpy(again(x)), y, tolerance, f"{name} from its config, with the same weights")

    inputs = keras.Input(tuple(input_shape[1:]), batch_size=None)
    model = keras.Model(inputs, layer(inputs), name=f"{name.lower()}_contract")
    if save:
        _check_save_and_load(model, x, tolerance, name)
    if mixed_precision:
        _check_mixed_precision(layer_cls, init_kwargs, layer, x, y)
    if training and layer.trainable_weights:
        _check_training_step(layer_cls, init_kwargs, inputs, x, y.shape, rng)
    if export:
        assert_export_parity(model, x)


def _check_config(layer_cls, init_kwargs):
    """(layer, layer from its config): `get_config` holds every argument as given, and
    `from_config(get_config())` gives the same config."""
    name = layer_cls.__name__
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        if key not in config:
            raise AssertionError(f"{name}.get_config() loses the argument {key!r} (passed "
                                 f"{value!r}); it holds {sorted(config)}")
        if not _same_value(config[key], value):
            raise AssertionError(f"{name}.get_config()[{key!r}] is {config[key]!r}, the layer "
                                 f"was made with {value!r}")
    again = layer_cls.from_config(config)
    if again.get_config() != config:
        raise AssertionError(f"{name}.from_config(get_config()) changes the config: "
                             f"{_config_diff(config, again.get_config())}")
    return layer, again


def _check_output_shape(layer, input_shape, y, expected_output_shape):
    """The real output shape `y.shape` is the predicted one (and the expected one)."""
    import keras

    name = type(layer).__name__
    try:
        predicted, how = tuple(layer.compute_output_shape(tuple(input_shape))), \
            "compute_output_shape"
    except NotImplementedError:
        # Keras does not require the method: Functional models trace the layer's call
        # symbolically instead, and so does this check
        spec = layer.compute_output_spec(keras.KerasTensor(tuple(input_shape), "float32"))
        predicted, how = tuple(spec.shape), "compute_output_spec"
    if predicted != y.shape:
        raise AssertionError(f"{name}.{how}({tuple(input_shape)}) is "
                             f"{predicted}, the real output shape is {y.shape}")
    if expected_output_shape is not None and tuple(expected_output_shape) != y.shape:
        raise AssertionError(f"{name}: output shape {y.shape}, expected "
                             f"{tuple(expected_output_shape)}")


def _check_save_and_load(model, x, tolerance, name):
    """A `.keras` file of `model` loads (the class registered) and gives the same outputs."""
    import keras

    with tempfile.TemporaryDirectory(prefix="keras_convx-contract-") as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        try:
            loaded = keras.saving.load_model(path)
        except Exception as err:
            raise AssertionError(f"{name}: the .keras file does not load ({err}); register "
                                 f"the class with @keras.saving.register_keras_serializable"
                                 ) from None
        _close(_numpy(loaded(x)), _numpy(model(x)), tolerance, f"{name} after .keras save "
               f"and load")


def _check_mixed_precision(layer_cls, init_kwargs, layer, x, y):
    """With `dtype="mixed_float16"` and the same weights, the layer computes in float16,
    close to its float32 output `y`."""
    import keras

    name = layer_cls.__name__
    half = layer_cls(**dict(init_kwargs, dtype="mixed_float16"))
    out = half(x)
    if keras.backend.standardize_dtype(out.dtype) != "float16":
        raise AssertionError(f"{name}(dtype='mixed_float16') outputs "
                             f"{keras.backend.standardize_dtype(out.dtype)}, not float16")
    half.set_weights(layer.get_weights())
    _close(_numpy(half(x)).astype("float32"), y, 2e-2, f"{name} in mixed_float16")


def _check_training_step(layer_cls, init_kwargs, inputs, x, output_shape, rng):
    """One SGD step on a fresh layer gives a finite loss and changes its trainable weights."""
    import keras

    name = layer_cls.__name__
    trained = keras.Model(inputs, layer_cls(**init_kwargs)(inputs))
    trained.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    before = [np.array(_numpy(w)) for w in trained.trainable_weights]
    loss = trained.train_on_batch(x, rng.standard_normal(output_shape).astype("float32"))
    loss = float(np.ravel(_numpy(loss))[0]) if not isinstance(loss, float) else loss
    if not np.isfinite(loss):
        raise AssertionError(f"{name}: one training step gives a non-finite loss {loss}")
    if all(np.array_equal(b, _numpy(w)) for b, w in zip(before, trained.trainable_weights)):
        raise AssertionError(f"{name}: one training step changes none of its trainable "
                             f"weights")


def _numpy(value):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value))


def _informative(array):
    array = np.asarray(array, np.float64)
    return array.size > 0 and float(np.ptp(array)) > 1e-6 * max(float(np.max(np.abs(array))), 1e-30)


def _close(actual, expected, tolerance, what):
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape}, expected {expected.shape}")
    if not (np.all(np.isfinite(actual)) and np.all(np.isfinite(expected))):
        raise AssertionError(f"{what}: NaN/Inf in the outputs")
    scale = float(np.max(np.abs(expected))) or 1.0
    error = float(np.max(np.abs(actual.astype(np.float64) - expected))) / scale
    if error > tolerance:
        raise AssertionError(f"{what}: outputs differ by {error:.3g} of their scale "
                             f"(tolerance {tolerance:g})")


def _same_value(stored, given):
    """Whether a config entry holds the argument given (serialized objects included)."""
    import keras

    if isinstance(given, (list, tuple)) and isinstance(stored, (list, tuple)):
        return len(given) == len(stored) and all(_same_value(s, g) for s, g in
                                                 zip(stored, given))
    if stored == given:
        return True
    if isinstance(stored, (list, tuple)) and isinstance(given, (int, float)):
        return all(s == given for s in stored)  # kernel_size=3 kept as (3, 3)
    if not isinstance(given, (str, int, float, bool, type(None))):
        return stored == keras.saving.serialize_keras_object(given)
    if isinstance(stored, dict):  # an object given by name: "relu", "he_normal"
        return stored.get("config", {}).get("name") == given or \
            stored.get("class_name", "").lower() == str(given).replace("_", "").lower()
    return False


def _config_diff(a, b):
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))

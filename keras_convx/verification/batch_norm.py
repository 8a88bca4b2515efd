"""BatchNorm statistics as after training, for models whose statistics are still at their
initial values: model preparation before an export or a verification (random-init
statistics shrink a deep net's activations until its outputs prove nothing)."""

import keras
import numpy as np

from keras_convx.verification.inputs import model_inputs


def calibrate_batch_norm(model, seed=0, batch=None):
    """Sets every BatchNormalization's moving statistics to those of random inputs drawn
    at the model's expected scale, as training would, and returns the model.

    Random-init statistics (mean 0, variance 1) shrink a deep net's activations layer
    after layer (MobileNet's random-init logits are ~1e-12): outputs like that prove
    little. Calibrated statistics keep every tensor at a realistic scale.

    Args:
        model: the Keras model (changed in place).
        seed: seed of the random inputs.
        batch: calibration batch size; default enough samples that every channel of the
            smallest feature map (1x1 at 32x32 inputs) sees >= 256 values, within 4..32.
            Statistics from a handful of values would be noise, and noise compounds.
    """
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return model
    if batch is None:
        spatial = [d for d in model.inputs[0].shape[1:-1] if d] or [32]
        positions = max(1, int(np.prod([max(1, d // 32) for d in spatial])))
        batch = int(np.clip(-(-256 // positions), 4, 32))
    # dropout off: inference has none, and statistics must match what inference sees
    dropouts = [layer for layer in model._flatten_layers()
                if isinstance(getattr(layer, "rate", None), float) and "dropout" in
                type(layer).__name__.lower()]
    saved = [layer.momentum for layer in layers], [layer.rate for layer in dropouts]
    for layer in layers:
        layer.momentum = 0.0  # the moving statistics become this batch's statistics
    for layer in dropouts:
        layer.rate = 0.0
    try:
        arrays = model_inputs(model, {}, batch, np.random.default_rng(seed))
        _training_pass(model, arrays if len(arrays) > 1 else arrays[0])
    finally:
        for layer, momentum in zip(layers, saved[0]):
            layer.momentum = momentum
        for layer, rate in zip(dropouts, saved[1]):
            layer.rate = rate
    return model


def _training_pass(model, x):
    """One forward pass in training mode, keeping the updated BatchNorm statistics."""
    if keras.backend.backend() != "jax":
        model(x, training=True)
        return
    import jax

    # compiled as one XLA program: eager JAX compiles every operation for every new shape
    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]
    step = jax.jit(lambda t, f, x: model.stateless_call(t, f, x, training=True)[1])
    for variable, value in zip(model.non_trainable_variables, step(trainable, fixed, x)):
        variable.assign(value)

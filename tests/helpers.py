"""Shared test utilities: data, tolerances, weight setting, backend gradients."""

import numpy as np
import keras

# float32 results must match float64 references to this fraction of the output scale.
RTOL_SCALE = 1e-5
BACKEND = keras.backend.backend()


def rand(shape, seed=0):
    """Non-trivial data: neither all zeros nor all ones, mixed signs."""
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def assert_close(actual, expected, scale_tol=RTOL_SCALE):
    actual = np.asarray(keras.ops.convert_to_numpy(actual), np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.max(np.abs(expected))), 1e-6)
    err = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    assert err <= scale_tol * scale, f"max abs error {err:.3g} > {scale_tol} x {scale:.3g}"


def randomize_weights(layer, seed=1):
    layer.set_weights([rand(w.shape, seed + i) for i, w in enumerate(layer.get_weights())])
    return layer.get_weights()


def spatial_shape(shape, data_format):
    return shape[1:-1] if data_format == "channels_last" else shape[2:]


def make_input(rank, channels, data_format, size=7, batch=2, seed=0):
    spatial = tuple(size + i for i in range(rank))
    shape = (batch,) + spatial + (channels,) if data_format == "channels_last" \
        else (batch, channels) + spatial
    return rand(shape, seed)


def value_and_grads(fn, x, variables):
    """Gradients of sum(fn(x)**2) / 2 w.r.t. x and `variables` on the current backend.

    The loss is layout-independent, so channels_first and channels_last runs compare.
    """

    def loss(x_, vals):
        y = fn(x_, vals)
        return keras.ops.sum(y * y) / 2

    if BACKEND == "tensorflow":
        import tensorflow as tf
        xt = tf.convert_to_tensor(x)
        vals = [tf.convert_to_tensor(v) for v in variables]
        with tf.GradientTape() as tape:
            tape.watch([xt] + vals)
            out = loss(xt, vals)
        grads = tape.gradient(out, [xt] + vals)
        return [g.numpy() for g in grads]
    if BACKEND == "jax":
        import jax
        grads = jax.grad(lambda a, b: loss(a, b), argnums=(0, 1))(x, list(variables))
        return [np.asarray(grads[0])] + [np.asarray(g) for g in grads[1]]
    import torch
    xt = torch.tensor(x, requires_grad=True)
    vals = [torch.tensor(np.asarray(v), requires_grad=True) for v in variables]
    loss(xt, vals).backward()
    return [xt.grad.numpy()] + [v.grad.numpy() for v in vals]


def scalar_grad(fn, w):
    """Gradient of the scalar fn(w) on the current backend, as NumPy."""
    if BACKEND == "tensorflow":
        import tensorflow as tf
        wt = tf.convert_to_tensor(w)
        with tf.GradientTape() as tape:
            tape.watch(wt)
            out = fn(wt)
        return tape.gradient(out, wt).numpy()
    if BACKEND == "jax":
        import jax
        return np.asarray(jax.grad(fn)(w))
    import torch
    wt = torch.tensor(w, requires_grad=True)
    fn(wt).backward()
    return wt.grad.numpy()


def realistic_batch_norm(model, seed=0):
    """BatchNorm statistics as after training: gamma/beta drawn, then the moving statistics
    calibrated on random inputs at the model's scale (so they fit the weights, as training
    leaves them), then randomised a little (means shifted, variances rescaled), so that
    every tensor is informative and no two channels share a scale."""
    from keras_convx.exporter.verify import calibrate_batch_norm

    rng = np.random.default_rng(seed)
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        n = layer.moving_mean.shape[0]
        if layer.scale:
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
        if layer.center:
            layer.beta.assign(rng.normal(0, 0.2, n).astype("float32"))
    calibrate_batch_norm(model, seed)
    for layer in layers:
        var = np.asarray(keras.ops.convert_to_numpy(layer.moving_variance), np.float64)
        mean = np.asarray(keras.ops.convert_to_numpy(layer.moving_mean), np.float64)
        n = var.shape[0]
        layer.moving_mean.assign((mean + rng.normal(0, 0.05, n) * np.sqrt(var)).astype("float32"))
        layer.moving_variance.assign((var * rng.uniform(0.9, 1.1, n)).astype("float32"))
    return model

"""Inputs for verification: drawn at the scale the model expects, and laid out for the
graph (the exporter's `keras_convx.io` metadata says how)."""

import keras
import numpy as np

from keras_convx.verification.signature import Signature


def metadata(onnx_model):
    """The file's `Signature` (its `keras_convx.io` metadata; empty when it has none)."""
    return Signature.read(onnx_model)


def input_distribution(model, index):
    """How to draw input `index` at the scale the model expects: (kind, a, b).

    Pixels in 0..255 when the input feeds a `Rescaling` that divides by ~255 or ~127.5;
    the `Normalization` statistics when it feeds one; else N(0, 1).
    """
    kt = model.inputs[index]
    consumers = [n.operation for n in getattr(kt._keras_history.operation, "_outbound_nodes", [])]
    for op in consumers:
        if isinstance(op, keras.layers.Rescaling):
            scale = np.abs(np.asarray(op.scale, np.float64))
            if np.all(scale > 0) and np.all(scale <= 1 / 100):
                return ("uniform", 0.0, 255.0)
        if isinstance(op, keras.layers.Normalization) and not getattr(op, "invert", False):
            mean = getattr(op, "mean", None)
            if mean is not None:
                mean = np.asarray(keras.ops.convert_to_numpy(mean), np.float64)
                var = np.asarray(keras.ops.convert_to_numpy(op.variance), np.float64)
                return ("normal", mean, np.sqrt(np.maximum(var, 0)))
    return ("normal", 0.0, 1.0)


def model_inputs(model, io, batch, rng, fill=None):
    """Random inputs in Keras layout for each model input, at its expected scale; `fill`:
    the sizes the unknown dims after the batch take, in order (`sizes.axis_sizes`); `io`:
    a `Signature` (or its dict form, or None)."""
    io = Signature.of(io)
    arrays = []
    for i, kt in enumerate(model.inputs):
        shape = list(kt.shape)
        fixed = (io.input_shapes or [None] * len(model.inputs))[i]
        if fixed:
            shape = list(fixed)
        shape[0] = batch
        if fill is not None and any(d is None for d in shape[1:]):
            sizes = iter(fill)
            shape = shape[:1] + [next(sizes, None) if d is None else d for d in shape[1:]]
        if any(d is None for d in shape):
            raise ValueError(
                f"verify: input {kt.name!r} has unknown dims {tuple(kt.shape)}; pass samples "
                f"or export with an input shape"
            )
        kind, a, b = input_distribution(model, i)
        if (io.input_dtypes or [None] * (i + 1))[i] == "uint8":
            x = rng.integers(0, 256, shape)  # the pixels a uint8 graph takes
        elif kind == "uniform":
            x = rng.uniform(a, b, shape)
        else:
            x = a + b * rng.standard_normal(shape)
        arrays.append(np.asarray(x, np.float32))
    return arrays


def to_graph(arrays, perms, dtypes=None):
    """Keras-layout arrays as the graph takes them: transposed by `perms`, cast to the
    graph's input `dtypes` (`Signature.input_dtypes`; e.g. uint8 pixels)."""
    out = [np.ascontiguousarray(np.transpose(a, p)) if p else a for a, p in zip(arrays, perms)]
    if dtypes:
        out = [a.astype(d) if d and d != "float32" else a for a, d in zip(out, dtypes)]
    return out


def integer_pixels(arrays, dtypes, where="verify"):
    """Inputs the graph takes as uint8, checked to hold integers in 0..255 (refused
    otherwise: a cast would change them silently)."""
    for i, (a, d) in enumerate(zip(arrays, dtypes or [])):
        if d == "uint8":
            a = np.asarray(a)
            if a.size and (a.min() < 0 or a.max() > 255 or not np.array_equal(a, np.round(a))):
                raise ValueError(f"{where}: input {i} is uint8 in the graph, so its samples must "
                                 f"be integers in 0..255; got values in [{a.min():g}, "
                                 f"{a.max():g}]{'' if np.array_equal(a, np.round(a)) else ', not integers'}")
    return arrays


def from_graph(arrays, perms):
    return [np.transpose(a, np.argsort(p)) if p else a for a, p in zip(arrays, perms)]


def nudge(array, rng):
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.floating):
        return a
    towards = np.where(rng.random(a.shape) < 0.5, -np.inf, np.inf).astype(a.dtype)
    return np.nextafter(a, towards)

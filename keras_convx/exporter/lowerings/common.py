"""Helpers shared by lowerings: spatial padding, activations, layout requests."""

import numpy as np

from keras_convx import interop
from keras_convx.exporter.graph import Unsupported, Value, channels_first_perm

INT_MAX = np.iinfo(np.int64).max
INT_MIN = np.iinfo(np.int64).min
# keras_convx modes with an ONNX Pad mode at every opset the exporter writes (wrap: 19+)
ONNX_PAD_MODES = {mode: onnx for mode, onnx in interop.PAD_MODE_TO_ONNX.items()
                  if onnx != "wrap"}


def spatial_in(b, value, data_format):
    """The input in N, C, spatial... order; returns (Value, perm)."""
    perm = channels_first_perm(value.ndim, data_format)
    return b.to_perm(value, perm), perm


def spatial_lengths(shape, data_format):
    return tuple(shape[1:-1]) if data_format == "channels_last" else tuple(shape[2:])


def const_in_layout(array, perm):
    """A float32 constant that broadcasts against a Keras tensor, laid out like its ONNX
    value (`interop.constant_in_layout`)."""
    return interop.constant_in_layout(np.asarray(array, np.float32), perm)


def reduce(b, op, name, axes, keepdims=1):
    """A Reduce* node over `axes` (an input from opset 18, an attribute before)."""
    if b.opset >= 18 or op == "ReduceSum":
        return b.node(op, [name, b.ints(axes, "axes")], keepdims=keepdims)
    return b.node(op, [name], axes=list(axes), keepdims=keepdims)


def abs_max_round(b, name, axis, epsilon, bound=127.0):
    """Keras's abs-max int8 rounding of `name` along `axis`, as the same float32 operations
    in the same order (so the graph rounds exactly as the backends do): scale =
    bound / (max|x| + epsilon), q = clip(round(x * scale), -bound, bound). Returns
    (q, scale); q holds integers as float32."""
    amax = reduce(b, "ReduceMax", b.node("Abs", [name]), [axis], keepdims=1)
    scale = b.node("Div", [b.const(np.float32(bound), "int8_range"),
                           b.node("Add", [amax, b.const(np.float32(epsilon), "epsilon")])],
                   suffix="input_scale")
    q = b.node("Clip", [b.node("Round", [b.node("Mul", [name, scale])]),
                        b.const(np.float32(-bound), "int8_min"),
                        b.const(np.float32(bound), "int8_max")])
    return q, scale


def slice_axis(b, name, axis, start, end, step=1):
    return b.node("Slice", [name, b.ints([start], "starts"), b.ints([end], "ends"),
                            b.ints([axis], "axes"), b.ints([step], "steps")])


def pad_spatial(b, name, pads, mode, constant_value=0.0):
    """Pads the spatial axes (2..) of an N, C, spatial... value with a keras_convx mode."""
    return pad_axes(b, name, [(0, 0), (0, 0)] + [tuple(p) for p in pads], mode, constant_value)


def pad_axes(b, name, widths, mode, constant_value=0.0, dtype=np.float32):
    """Pads ONNX value `name`, `widths[i]` = (before, after) on its axis i, with a
    keras_convx mode (zeros, constant, reflect, replicate, symmetric, circular)."""
    if not any(p0 or p1 for p0, p1 in widths):
        return name
    if mode in ONNX_PAD_MODES:
        width = [p[0] for p in widths] + [p[1] for p in widths]
        inputs = [name, b.ints(width, "pads")]
        if ONNX_PAD_MODES[mode] == "constant":
            value = 0.0 if mode == "zeros" else constant_value
            inputs.append(b.const(np.asarray(value, dtype), "value"))
        return b.node("Pad", inputs, mode=ONNX_PAD_MODES[mode])
    # symmetric and circular have no Pad mode (before opset 19): Slice + Concat per axis.
    for axis, (before, after) in enumerate(widths):
        pieces = []
        if before:
            pieces.append(slice_axis(b, name, axis, before - 1, INT_MIN, -1) if mode == "symmetric"
                          else slice_axis(b, name, axis, -before, INT_MAX))
        pieces.append(name)
        if after:
            pieces.append(slice_axis(b, name, axis, -1, -after - 1, -1) if mode == "symmetric"
                          else slice_axis(b, name, axis, 0, after))
        if len(pieces) > 1:
            name = b.node("Concat", pieces, axis=axis)
    return name


def _softmax(b, value, name):
    return b.node("Softmax", [name], axis=value.perm.index(value.ndim - 1))


def _gelu(b, value, name):
    half = b.node("Mul", [name, b.const(np.float32(0.5), "half")])
    erf = b.node("Erf", [b.node("Mul", [name, b.const(np.float32(1 / np.sqrt(2)), "rsqrt2")])])
    return b.node("Mul", [half, b.node("Add", [erf, b.const(np.float32(1.0), "one")])])


ACTIVATIONS = {
    "linear": lambda b, v, n: n,
    "relu": lambda b, v, n: b.node("Relu", [n]),
    "sigmoid": lambda b, v, n: b.node("Sigmoid", [n]),
    "tanh": lambda b, v, n: b.node("Tanh", [n]),
    "softmax": _softmax,
    "elu": lambda b, v, n: b.node("Elu", [n], alpha=1.0),
    "selu": lambda b, v, n: b.node("Selu", [n]),
    "softplus": lambda b, v, n: b.node("Softplus", [n]),
    "softsign": lambda b, v, n: b.node("Softsign", [n]),
    "exponential": lambda b, v, n: b.node("Exp", [n]),
    "relu6": lambda b, v, n: b.node("Clip", [n, b.const(np.float32(0), "min"),
                                             b.const(np.float32(6), "max")]),
    "silu": lambda b, v, n: b.node("Mul", [n, b.node("Sigmoid", [n])]),
    "swish": lambda b, v, n: b.node("Mul", [n, b.node("Sigmoid", [n])]),
    "hard_sigmoid": lambda b, v, n: b.node("HardSigmoid", [n], alpha=1 / 6, beta=0.5),
    "hard_silu": lambda b, v, n: b.node("HardSwish", [n]),
    "hard_swish": lambda b, v, n: b.node("HardSwish", [n]),
    "leaky_relu": lambda b, v, n: b.node("LeakyRelu", [n], alpha=0.2),
    "gelu": _gelu,
    "mish": lambda b, v, n: b.node("Mul", [n, b.node("Tanh", [b.node("Softplus", [n])])]),
}


# Activations that flatten differences (a random-init softmax is ~1/classes everywhere):
# verification compares the tensor before them too.
SQUASHING = ("softmax", "sigmoid", "hard_sigmoid")


def activation(b, fn, value):
    """Applies a Keras activation function to `value`; returns a Value (same perm)."""
    if fn is None:
        return value
    name = getattr(fn, "__name__", type(fn).__name__)
    if name not in ACTIVATIONS:
        raise Unsupported(f"activation {name!r} has no ONNX lowering")
    if name in SQUASHING:
        b.preactivation = (value, name)
    return Value(ACTIVATIONS[name](b, value, value.name), value.shape, value.perm)

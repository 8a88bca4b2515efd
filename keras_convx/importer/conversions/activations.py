"""Activations -> keras.layers.ReLU / LeakyReLU / Activation / Softmax (and the importer's
Clip for bounds ReLU can't express); other elementwise functions (Abs, Neg, Sqrt, Erf,
Reciprocal, Log) -> the importer's UnaryOperation."""

import keras
import numpy as np

from keras_convx import interop
from keras_convx.importer.errors import Unsupported
from keras_convx.layers.tensor_ops import Clip, ConstantOperation, UnaryOperation
from keras_convx.importer.registry import FUSED_DOMAIN, conversion

L = keras.layers


@conversion("Relu")
def convert_relu(ctx):
    return ctx.layer(L.ReLU)


@conversion("LeakyRelu")
def convert_leaky_relu(ctx):
    return ctx.layer(L.LeakyReLU, negative_slope=float(ctx.attr("alpha", 0.01)))


def _bound(ctx, index, attr):
    if ctx.attr(attr) is not None:  # opset < 11
        return float(ctx.attr(attr))
    value = ctx.const(index, attr, optional=True) if index < len(ctx.inputs) else None
    if value is None or np.size(value) == 0:
        return None
    if np.size(value) != 1:
        raise Unsupported(f"{attr} must be a scalar, got shape {list(np.shape(value))}")
    return float(np.asarray(value).reshape(-1)[0])


@conversion("Clip")
def convert_clip(ctx):
    low, high = _bound(ctx, 1, "min"), _bound(ctx, 2, "max")
    if low == 0.0:  # ReLU6 and friends
        return ctx.layer(L.ReLU, max_value=high)
    return ctx.layer(Clip, min_value=low, max_value=high)


def _activation(name):
    def convert(ctx):
        return ctx.layer(L.Activation, name)
    convert.__name__ = f"convert_{name}"
    return convert


for _op, _name in (("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("HardSwish", "hard_silu"),
                   ("Softplus", "softplus"), ("Softsign", "softsign"), ("Exp", "exponential")):
    conversion(_op)(_activation(_name))


def _unary(operation):
    def convert(ctx):
        return ctx.layer(UnaryOperation, operation)
    convert.__name__ = f"convert_{operation}"
    return convert


for _name, _op in interop.elementwise.UNARY.items():
    conversion(_op)(_unary(_name))


@conversion("Elu")
def convert_elu(ctx):
    return ctx.layer(L.ELU, alpha=float(ctx.attr("alpha", 1.0)))


@conversion("HardSigmoid")
def convert_hard_sigmoid(ctx):
    """alpha=1/6, beta=0.5 (PyTorch's Hardsigmoid) is Keras's hard_sigmoid; other slopes
    (ONNX's default 0.2, TensorFlow 1's) are max(0, min(1, alpha * x + beta)) in three
    layers."""
    alpha, beta = float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5))
    if abs(alpha - 1 / 6) <= 1e-6 and abs(beta - 0.5) <= 1e-6:
        return ctx.layer(L.Activation, "hard_sigmoid")
    scaled = ctx.layer(ConstantOperation, "multiply", suffix="alpha")
    ctx.last_layer.constant.assign(np.float32(alpha))
    shifted = ctx.layer(ConstantOperation, "add", inputs=scaled, suffix="beta")
    ctx.last_layer.constant.assign(np.float32(beta))
    return ctx.layer(Clip, min_value=0.0, max_value=1.0, inputs=shifted)


@conversion("Mish", since=18)
def convert_mish(ctx):
    return ctx.layer(L.Activation, "mish")


@conversion("Mish", domain=FUSED_DOMAIN)
def convert_fused_mish(ctx):
    """x * tanh(softplus(x)), as PyTorch exports F.mish before opset 18."""
    return ctx.layer(L.Activation, "mish")


@conversion("HardSwish", domain=FUSED_DOMAIN)
def convert_fused_hard_swish(ctx):
    """x * relu6(x + 3) / 6 or x * HardSigmoid(x) (alpha 1/6), written out by exporters."""
    return ctx.layer(L.Activation, "hard_silu")


def _softmax(ctx, since13):
    x = ctx.x
    axis = int(ctx.attr("axis", -1 if since13 else 1)) % x.ndim
    if not since13 and axis != x.ndim - 1:
        raise Unsupported(f"axis={axis} before opset 13 flattens the trailing axes: only the "
                          f"last axis is supported")
    if axis == 0:
        raise Unsupported("softmax over the batch axis is not supported")
    return ctx.layer(L.Softmax, axis=x.keras_axis(axis))


@conversion("Softmax", since=1)
def convert_softmax_v1(ctx):
    return _softmax(ctx, False)


@conversion("Softmax", since=13)
def convert_softmax(ctx):
    return _softmax(ctx, True)


@conversion("Gelu", since=20)
def convert_gelu(ctx):
    if ctx.attr("approximate", "none") != "none":
        raise Unsupported(f"approximate={ctx.attr('approximate')!r}: only 'none' (Keras's "
                          f"Activation('gelu') is the exact, erf-based GELU)")
    return ctx.layer(L.Activation, "gelu")


@conversion("Gelu", domain=FUSED_DOMAIN)
def convert_fused_gelu(ctx):
    """x * 0.5 * (1 + erf(x / sqrt(2))), as PyTorch exports nn.GELU before opset 20."""
    return ctx.layer(L.Activation, "gelu")


@conversion("PRelu", since=1)
def convert_prelu(ctx):
    """Learned slopes -> keras.layers.PReLU, shared over the axes the slope broadcasts on."""
    x = ctx.x
    slope = np.asarray(ctx.const(1, "slope"), np.float32)
    if slope.ndim > x.ndim or slope.ndim == x.ndim and slope.shape[0] != 1:
        raise Unsupported(f"slope of shape {list(slope.shape)} varies along the batch axis")
    full = slope.reshape((1,) * (x.ndim - slope.ndim) + slope.shape)
    dynamic = [i for i, n in enumerate(x.shape) if i and n is None and full.shape[i] != 1]
    if dynamic:
        raise Unsupported(f"slope of shape {list(slope.shape)} varies along the dynamic "
                          f"axes {dynamic} of the input {list(x.shape)}")
    try:  # (a dynamic axis: the slope is shared along it)
        np.broadcast_shapes(full.shape, (1,) + tuple(n or 1 for n in x.shape[1:]))
    except ValueError:
        raise Unsupported(f"slope of shape {list(slope.shape)} does not broadcast to the "
                          f"input {list(x.shape)}") from None
    moved = np.transpose(full, x.perm)[0]
    shared = [i + 1 for i, n in enumerate(moved.shape) if n == 1]
    out = ctx.layer(L.PReLU, shared_axes=shared or None)
    ctx.last_layer.set_weights([np.broadcast_to(moved, ctx.last_layer.alpha.shape)])
    return out


@conversion("Saturate", domain=FUSED_DOMAIN)
def convert_saturate(ctx):
    """An activation QuantizeLinear -> DequantizeLinear pair of a QDQ graph, imported as
    float: the clip to the range it can represent (a ReLU when it starts at 0)."""
    low, high = ctx.node.extra["range"]
    if low == 0.0:
        return ctx.layer(L.ReLU, max_value=high)
    return ctx.layer(Clip, min_value=low, max_value=high)

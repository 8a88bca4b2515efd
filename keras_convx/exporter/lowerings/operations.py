"""Lowerings of the operation nodes Keras records in a Functional model for `keras.ops` calls
and Python arithmetic on symbolic tensors (`x + 3`, `x * (1/6)`, `ops.mean(x, axis=...)`).

One registry with the layers, keyed by operation class; constant operands come as Python
numbers or arrays in `ctx.args` and are laid out like the tensor they meet.
"""

import keras
import numpy as np
from keras.src.ops import math as M
from keras.src.ops import nn as N
from keras.src.ops import numpy as K

from keras_convx.exporter.graph import Unsupported, Value, compose, inverse
from keras_convx.exporter.lowerings.common import ACTIVATIONS, const_in_layout, reduce
from keras_convx.exporter.lowerings.core import in_order
from keras_convx.exporter.registry import lowering

BINARY = {K.Add: "Add", K.Subtract: "Sub", K.Multiply: "Mul", K.Divide: "Div",
          K.TrueDivide: "Div", K.Maximum: "Max", K.Minimum: "Min", K.Power: "Pow"}
UNARY = {K.Negative: "Neg", K.Absolute: "Abs", K.Sqrt: "Sqrt", K.Exp: "Exp", K.Log: "Log",
         K.Tanh: "Tanh", K.Reciprocal: "Reciprocal", N.Sigmoid: "Sigmoid", N.Relu: "Relu",
         M.Erf: "Erf", K.Sin: "Sin", K.Cos: "Cos", K.Floor: "Floor", K.Ceil: "Ceil",
         K.Sign: "Sign", K.LogicalNot: "Not"}
COMPARISONS = {K.Greater: "Greater", K.Less: "Less", K.Equal: "Equal",
               K.GreaterEqual: "GreaterOrEqual", K.LessEqual: "LessOrEqual",
               K.LogicalAnd: "And", K.LogicalOr: "Or"}
ACTIVATION_OPS = {N.Relu6: "relu6", N.Silu: "silu", N.HardSigmoid: "hard_sigmoid",
                  N.HardSilu: "hard_silu", N.Softplus: "softplus", N.Softsign: "softsign",
                  N.Selu: "selu"}
REDUCTIONS = {K.Mean: "ReduceMean", K.Sum: "ReduceSum", K.Max: "ReduceMax", K.Min: "ReduceMin"}


def _operand(b, arg, like, dtype=np.float32):
    if isinstance(arg, Value):
        return arg.name
    array = np.asarray(keras.ops.convert_to_numpy(arg) if hasattr(arg, "shape") and
                       not isinstance(arg, np.ndarray) else arg)
    if array.dtype.kind not in "fiub":
        raise Unsupported(f"constant operand {arg!r}")
    return b.const(const_in_layout(array.astype(dtype), like.perm), "const")


def _operand_dtype(ctx):
    """The NumPy dtype constants take in a binary op: that of its tensor operand."""
    tensors = [t for t in ctx.node.input_tensors] if ctx.node is not None else []
    dtype = str(tensors[0].dtype) if tensors else "float32"
    return np.float32 if "float" in dtype else np.dtype(dtype)


def _binary(op):
    def lower(b, layer, ctx):
        values = [a for a in ctx.args[:2] if isinstance(a, Value)]
        if len({v.ndim for v in values}) > 1:  # NumPy broadcasting of different ranks
            values = [b.to_perm(v, tuple(range(v.ndim))) for v in values]
        else:
            values = list(ctx.inputs[:len(values)])
        it = iter(values)
        operands = [next(it) if isinstance(a, Value) else a for a in ctx.args[:2]]
        like = max(values, key=lambda v: v.ndim)
        dtype = _operand_dtype(ctx)
        y = b.node(op, [_operand(b, a, like, dtype) for a in operands])
        return Value(y, ctx.output_shape, like.perm if like.ndim == len(ctx.output_shape)
                     else tuple(range(len(ctx.output_shape))))
    lower.__name__ = f"lower_op_{op.lower()}"
    return lower


for _cls, _op in {**BINARY, **COMPARISONS}.items():
    lowering(_cls)(_binary(_op))


def _unary(op):
    def lower(b, layer, ctx):
        return b.node(op, [ctx.x.name])
    lower.__name__ = f"lower_op_{op.lower()}"
    return lower


for _cls, _op in UNARY.items():
    lowering(_cls)(_unary(_op))


def _activation(name):
    def lower(b, layer, ctx):
        return ACTIVATIONS[name](b, ctx.x, ctx.x.name)
    lower.__name__ = f"lower_op_{name}"
    return lower


for _cls, _name in ACTIVATION_OPS.items():
    lowering(_cls)(_activation(_name))


@lowering(N.Elu)
def lower_elu_op(b, layer, ctx):
    return b.node("Elu", [ctx.x.name], alpha=float(layer.alpha))


@lowering(N.LeakyRelu)
def lower_leaky_relu_op(b, layer, ctx):
    return b.node("LeakyRelu", [ctx.x.name], alpha=float(layer.negative_slope))


@lowering(M.Rsqrt)
def lower_rsqrt(b, layer, ctx):
    return b.node("Reciprocal", [b.node("Sqrt", [ctx.x.name])])


@lowering(K.Square)
def lower_square(b, layer, ctx):
    return b.node("Mul", [ctx.x.name, ctx.x.name])


@lowering(N.Gelu)
def lower_gelu(b, layer, ctx):
    x = ctx.x.name
    if not layer.approximate:
        return ACTIVATIONS["gelu"](b, ctx.x, x)
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as keras.ops.gelu(approximate=True)
    cube = b.node("Mul", [b.node("Mul", [x, x]), x])
    inner = b.node("Add", [x, b.node("Mul", [cube, b.const(np.float32(0.044715), "c")])])
    t = b.node("Tanh", [b.node("Mul", [inner, b.const(np.float32(np.sqrt(2 / np.pi)), "k")])])
    half = b.node("Mul", [x, b.const(np.float32(0.5), "half")])
    return b.node("Mul", [half, b.node("Add", [t, b.const(np.float32(1.0), "one")])])


@lowering(N.Softmax)
def lower_softmax_op(b, layer, ctx):
    x = ctx.x
    if layer.axis is None or isinstance(layer.axis, (list, tuple)):
        raise Unsupported("softmax over several axes")
    return b.node("Softmax", [x.name], axis=x.perm.index(int(layer.axis) % x.ndim))


@lowering(K.Clip)
def lower_clip(b, layer, ctx):
    low = b.const(np.float32(layer.x_min), "min") if layer.x_min is not None else ""
    high = b.const(np.float32(layer.x_max), "max") if layer.x_max is not None else ""
    return b.node("Clip", [ctx.x.name, low, high])


def reduction(b, ctx, op, axis, keepdims):
    """ONNX `op` (ReduceMean, ...) of ctx.x over Keras axes `axis` (None: all)."""
    x = ctx.x
    axes = range(x.ndim) if axis is None else (axis if isinstance(axis, (list, tuple))
                                                else [axis])
    axes = sorted(int(a) % x.ndim for a in axes)
    y = reduce(b, op, x.name, sorted(x.perm.index(a) for a in axes), int(bool(keepdims)))
    if keepdims:
        return Value(y, ctx.output_shape, x.perm)
    rest = [a for a in range(x.ndim) if a not in axes]
    return Value(y, ctx.output_shape, tuple(rest.index(p) for p in x.perm if p in rest))


def _reduction(op):
    def lower(b, layer, ctx):
        if getattr(layer, "initial", None) is not None:
            raise Unsupported(f"{type(layer).__name__} with initial=")
        return reduction(b, ctx, op, layer.axis, layer.keepdims)
    lower.__name__ = f"lower_op_{op.lower()}"
    return lower


for _cls, _op in REDUCTIONS.items():
    lowering(_cls)(_reduction(_op))


def _moments(b, ctx, axis, keepdims):
    """(mean, variance) of ctx.x over Keras `axis`, both with kept dims, as Keras
    computes them (the mean of squared deviations)."""
    x = ctx.x
    axes = range(x.ndim) if axis is None else (axis if isinstance(axis, (list, tuple))
                                                else [axis])
    onnx_axes = sorted(x.perm.index(int(a) % x.ndim) for a in axes)
    mean = reduce(b, "ReduceMean", x.name, onnx_axes)
    centered = b.node("Sub", [x.name, mean])
    var = reduce(b, "ReduceMean", b.node("Mul", [centered, centered]), onnx_axes,
                 int(bool(keepdims)))
    return var, sorted(int(a) % x.ndim for a in axes)


def _moment(sqrt):
    def lower(b, layer, ctx):
        var, axes = _moments(b, ctx, layer.axis, layer.keepdims)
        y = b.node("Sqrt", [var]) if sqrt else var
        x = ctx.x
        if layer.keepdims:
            return Value(y, ctx.output_shape, x.perm)
        rest = [a for a in range(x.ndim) if a not in axes]
        return Value(y, ctx.output_shape, tuple(rest.index(p) for p in x.perm if p in rest))
    lower.__name__ = "lower_op_std" if sqrt else "lower_op_var"
    return lower


lowering(K.Var)(_moment(False))
lowering(K.Std)(_moment(True))


def reshape_target(in_shape, out_shape):
    """ONNX Reshape's shape for Keras's static `out_shape` (None: unknown): 0 copies the
    batch where it stays in front, -1 takes the one other unknown dim."""
    shape = [-1 if d is None else int(d) for d in out_shape]
    unknown = [i for i, d in enumerate(out_shape) if d is None]
    if len(unknown) > 1 and unknown[0] == 0 and in_shape[0] is None:
        shape[0] = 0  # the batch, in front of both
        unknown = unknown[1:]
    if len(unknown) > 1:
        raise Unsupported(f"reshape to {tuple(out_shape)}: more than one unknown dimension "
                          f"besides the batch")
    return shape


@lowering(K.Reshape)
def lower_reshape_op(b, layer, ctx):
    x = in_order(b, ctx.x, tuple(range(ctx.x.ndim)))
    shape = reshape_target(x.shape, ctx.output_shape)
    return Value(b.node("Reshape", [x.name, b.ints(shape, "shape")]), ctx.output_shape)


@lowering(K.Transpose)
def lower_transpose_op(b, layer, ctx):
    x = ctx.x
    axes = tuple(range(x.ndim))[::-1] if layer.axes is None else \
        tuple(int(a) % x.ndim for a in layer.axes)
    return Value(x.name, ctx.output_shape, compose(inverse(axes), x.perm))  # no data moves


@lowering(K.Concatenate)
def lower_concatenate_op(b, layer, ctx):
    parts = ctx.args[0] if ctx.args else ctx.kwargs["xs"]
    values = [p for p in parts if isinstance(p, Value)]
    like = max(values, key=lambda v: v.ndim)
    moved = iter(ctx.inputs)
    names = [next(moved).name if isinstance(p, Value) else
             b.const(const_in_layout(np.asarray(keras.ops.convert_to_numpy(p), np.float32),
                                     like.perm), "const")  # a tensor computed in the trace
             for p in parts]
    return b.node("Concat", names, axis=like.perm.index(int(layer.axis) % like.ndim))

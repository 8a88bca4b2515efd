"""Gemm and MatMul -> keras.layers.Dense; Identity and Dropout (inference) -> the same
tensor, no layer."""

import keras
import numpy as np

from keras_convx.importer.conversions.common import float32
from keras_convx.importer.context import Value
from keras_convx.importer.errors import Unsupported
from keras_convx.importer.registry import ANY, FUSED_DOMAIN, ONNX_ORDER, conversion

L = keras.layers


def _dense(ctx, kernel, bias, onnx_order=True):
    """Dense on the last ONNX axis; rows permuted once when the input was flattened in
    Keras order (see reshaping.flatten)."""
    x = ctx.x
    if x.perm[-1] != x.ndim - 1 or onnx_order and x.perm != tuple(range(x.ndim)):
        raise Unsupported("MatMul's input must be in ONNX order")  # the layout contract
    if kernel.shape[0] != x.shape[-1]:
        raise Unsupported(f"weight of shape {list(kernel.shape)} does not match the input's "
                          f"last axis {x.shape[-1]}")
    if x.flat is not None:
        kernel = kernel[x.flat]
    units = kernel.shape[1]
    if bias is not None:
        try:
            if bias.ndim > 1 and all(d == 1 for d in bias.shape[:-1]):
                bias = bias.reshape(bias.shape[-1:])  # (1, units) as Gemm's C often is
            bias = np.broadcast_to(bias, (units,))
        except ValueError:
            raise Unsupported(f"bias of shape {list(bias.shape)} does not broadcast to "
                              f"({units},)") from None
    out = ctx.layer(L.Dense, units, use_bias=bias is not None)
    bias = [] if bias is None else [np.ascontiguousarray(bias)]
    ctx.last_layer.set_weights([kernel] + bias)
    return out


@conversion("Gemm", since=1, layout=ONNX_ORDER)
def convert_gemm(ctx):
    if ctx.x.ndim != 2 or ctx.flag("transA"):
        raise Unsupported("A must be a 2-D computed tensor without transA")
    b = float32(ctx.const(1, "B"), "B")
    if b.ndim != 2:
        raise Unsupported(f"B must be 2-D, got shape {list(b.shape)}")
    kernel = (b.T if ctx.flag("transB") else b) * np.float32(ctx.attr("alpha", 1.0))
    c = ctx.const(2, "C", optional=True) if len(ctx.inputs) > 2 else None
    bias = None if c is None else float32(c, "C") * np.float32(ctx.attr("beta", 1.0))
    return _dense(ctx, np.ascontiguousarray(kernel, np.float32), bias)


@conversion("MatMul", since=1, layout=ANY)
def convert_matmul(ctx):
    """Two computed tensors: an einsum in their own layouts; a constant B: Dense on the
    last ONNX axis (the input moved to ONNX order, or read through a flatten's order)."""
    from keras_convx.importer.conversions.tensors import matmul_of_tensors

    if all(isinstance(v, Value) for v in ctx.inputs):
        return matmul_of_tensors(ctx)
    if not isinstance(ctx.inputs[0], Value):
        raise Unsupported("a constant A times a computed B is not supported")
    if ctx.x.flat is None:
        ctx.x = ctx.inputs[0] = ctx.move(ctx.x, tuple(range(ctx.x.ndim)), "to_onnx_order")
    b = ctx.const(1, "B")
    b = float32(b, "B")
    if b.ndim != 2:
        raise Unsupported(f"B must be a 2-D constant, got shape {list(b.shape)}")
    return _dense(ctx, b, None)


@conversion("Dense", domain=FUSED_DOMAIN, layout=ONNX_ORDER)
def convert_fused_dense(ctx):
    """MatMul + Add of a constant bias (fused by passes.fuse_matmul_add)."""
    return _dense(ctx, float32(ctx.const(1, "B"), "B"), float32(ctx.const(2, "bias"), "bias"))


@conversion("FoldedDense", domain=FUSED_DOMAIN, layout=ANY)
def convert_folded_dense(ctx):
    """A Gemm/MatMul on a tensor folded into rows and unfolded again (fused by
    passes.fuse_folded_dense): Dense over the last axis, the batch kept where it is (a
    time-major sequence's batch is ONNX axis 1)."""
    x, b = ctx.x, ctx.x.perm[0]
    if b == x.ndim - 1:
        raise Unsupported("the batch is the last axis, the one the Dense reads")
    ctx.x = ctx.inputs[0] = ctx.move(x, (b,) + tuple(a for a in range(x.ndim) if a != b),
                                     "to_last_axis")
    bias = float32(ctx.const(2, "bias"), "bias") if len(ctx.inputs) > 2 else None
    return _dense(ctx, float32(ctx.const(1, "kernel"), "kernel"), bias, onnx_order=False)


@conversion("Identity", since=1)
def convert_identity(ctx):
    return ctx.x


@conversion("Dropout", since=1)
def convert_dropout(ctx):
    if len(ctx.inputs) > 2 and ctx.inputs[2] is not None and bool(
            np.asarray(ctx.const(2, "training_mode")).reshape(-1)[0]):
        raise Unsupported("training_mode=True is not supported")
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1] and ctx.consumers(ctx.node.outputs[1]):
        raise Unsupported("the mask output is not supported")
    return ctx.x

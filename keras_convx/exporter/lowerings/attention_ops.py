"""Lowerings of the `keras.ops` nodes attention is written with: matmul, einsum and
`dot_product_attention` (the path `keras.layers.MultiHeadAttention` takes when it can).

They compute in Keras's own axis order (their meaning depends on it); a constant operand
(a kernel read in `call`, `ops.einsum(eq, x, self.kernel)`) becomes an initializer.
"""

import numpy as np
from keras.src.ops import nn as N
from keras.src.ops import numpy as K

from keras_convx.exporter.graph import Unsupported, Value, float_array
from keras_convx.exporter.registry import lowering


def keras_order(b, arg, suffix="const"):
    """ONNX name of an operand in Keras's axis order (a constant becomes an initializer)."""
    if isinstance(arg, Value):
        return b.to_perm(arg, tuple(range(arg.ndim))).name
    return b.const(float_array(arg), suffix)


@lowering(K.Matmul)
def lower_matmul(b, layer, ctx):
    a, c = ctx.args[:2]
    return Value(b.node("MatMul", [keras_order(b, a), keras_order(b, c)]), ctx.output_shape)


@lowering(K.Einsum)
def lower_einsum(b, layer, ctx):
    operands = [keras_order(b, a) for a in ctx.args]
    equation = layer.subscripts.replace(" ", "")
    if "..." in equation:
        raise Unsupported(f"einsum {layer.subscripts!r} with an ellipsis")
    return Value(b.node("Einsum", operands, equation=equation), ctx.output_shape)


def _named(ctx, name, index):
    if name in ctx.kwargs:
        return ctx.kwargs[name]
    return ctx.args[index] if len(ctx.args) > index else None


@lowering(N.DotProductAttention)
def lower_dot_product_attention(b, layer, ctx):
    """softmax(q k^T * scale + bias, masked) v on (batch, length, heads, head_dim)."""
    q, k, v = (_named(ctx, n, i) for i, n in enumerate(("query", "key", "value")))
    bias, mask, scale = (_named(ctx, n, i) for i, n in ((3, "bias"), (4, "mask"), (5, "scale")))
    if getattr(layer, "attn_logits_soft_cap", None) is not None:
        raise Unsupported("dot_product_attention with attn_logits_soft_cap")
    if not all(isinstance(t, Value) and t.ndim == 4 for t in (q, k, v)):
        raise Unsupported("dot_product_attention needs 4-D query, key and value tensors")
    head_dim = q.shape[-1]
    if scale is None:
        scale = 1.0 / np.sqrt(head_dim)
    elif isinstance(scale, Value):
        raise Unsupported("dot_product_attention with a tensor scale")
    # (B, T, N, H) -> (B, N, T, H): q k^T over H
    qn, kn, vn = (b.to_perm(t, (0, 2, 1, 3)) for t in (q, k, v))
    logits = b.node("MatMul", [qn.name, b.node("Transpose", [kn.name], perm=[0, 1, 3, 2])])
    logits = b.node("Mul", [logits, b.const(np.float32(scale), "scale")])
    if bias is not None:
        logits = b.node("Add", [logits, keras_order(b, bias, "bias")])
    length_q, length_k = q.shape[1], k.shape[1]
    masks = []
    if isinstance(mask, Value):
        masks.append(b.node("Cast", [keras_order(b, mask)], to=9))  # BOOL
    elif mask is not None:
        masks.append(b.const(np.asarray(float_array(mask), bool), "mask"))
    if layer.is_causal:
        if length_q is None or length_k is None:
            raise Unsupported("causal dot_product_attention with unknown lengths")
        masks.append(b.const(np.tril(np.ones((length_q, length_k), bool)), "causal"))
    for m in masks:
        # masked positions get the most negative float, as Keras's backends do
        logits = b.node("Where", [m, logits, b.const(np.float32(np.finfo(np.float32).min),
                                                     "masked")])
    weights = b.node("Softmax", [logits], axis=3)
    out = b.node("MatMul", [weights, vn.name])
    return Value(out, ctx.output_shape, (0, 2, 1, 3))

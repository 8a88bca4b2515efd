"""Lowerings of Keras's merging layers: elementwise ops in any layout, Concatenate."""

import keras
import numpy as np

from keras_convx.exporter.registry import lowering

L = keras.layers


def _chain(op):
    def lower(b, layer, ctx):
        y = ctx.inputs[0].name
        for v in ctx.inputs[1:]:
            y = b.node(op, [y, v.name])
        return y
    lower.__name__ = f"lower_{op.lower()}"
    return lower


for _cls, _op in ((L.Add, "Add"), (L.Subtract, "Sub"), (L.Multiply, "Mul"),
                  (L.Maximum, "Max"), (L.Minimum, "Min")):
    lowering(_cls)(_chain(_op))


@lowering(L.Average)
def lower_average(b, layer, ctx):
    total = b.node("Sum", [v.name for v in ctx.inputs])
    return b.node("Mul", [total, b.const(np.float32(1.0 / len(ctx.inputs)), "inv_n")])


@lowering(L.Concatenate)
def lower_concatenate(b, layer, ctx):
    axis = ctx.perm.index(layer.axis % ctx.x.ndim)
    return b.node("Concat", [v.name for v in ctx.inputs], axis=axis)

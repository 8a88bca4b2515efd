"""Lowerings of the layer classes keras.applications defines for itself."""

from keras.src.applications.convnext import LayerScale
from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

from keras_convx.exporter.graph import float_array
from keras_convx.exporter.lowerings.common import const_in_layout
from keras_convx.exporter.registry import lowering

import numpy as np


@lowering(LayerScale)
def lower_layer_scale(b, layer, ctx):
    gamma = const_in_layout(float_array(layer.gamma), ctx.perm)  # x * gamma (last axis)
    return b.node("Mul", [ctx.x.name, b.const(gamma, "gamma")])


@lowering(CustomScaleLayer)
def lower_custom_scale(b, layer, ctx):
    x, residual = ctx.inputs  # inputs[0] + inputs[1] * scale
    scaled = b.node("Mul", [residual.name, b.const(np.float32(layer.scale), "scale")])
    return b.node("Add", [x.name, scaled])

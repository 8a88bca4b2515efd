"""Tensor operations as layers, for what Keras has no layer for: an elementwise operation
with a stored constant, a tensor-by-tensor division, a strided slice, a clip, an
elementwise function, a reduction over axes, a tile, a broadcast, a product of two tensors
(MatMul, Einsum), a select (Where) and a constant repeated over the batch. ONNX import
builds models from them; they export again (keras_convx/exporter/lowerings/tensor_ops.py).
Native Keras layers (no Lambda): they save, load in `safe_mode` and serialize to YAML.

This module holds the elementwise ones and names them all (`CONFIG_TYPES`); `shape_ops`
has the slice, tile, broadcast and batch constant, `reductions` the reduction and
products."""

import keras
from keras import ops as kops

from keras_convx.layers.reductions import Einsum, MatMul, Reduce
from keras_convx.layers.shape_ops import BatchConstant, BroadcastTo, Slice, Tile
from keras_convx.utils.shapes import broadcast_shapes

register = keras.saving.register_keras_serializable(package="keras_convx")


_OPERATIONS = {
    "add": lambda x, c: x + c,
    "subtract": lambda x, c: x - c,
    "multiply": lambda x, c: x * c,
    "divide": lambda x, c: x / c,
    "reverse_subtract": lambda x, c: c - x,
    "reverse_divide": lambda x, c: c / x,
    "maximum": kops.maximum,
    "minimum": kops.minimum,
    "power": kops.power,
    "equal": kops.equal,
    "greater": kops.greater,
    "greater_equal": kops.greater_equal,
    "less": kops.less,
    "less_equal": kops.less_equal,
}
_COMPARISONS = ("equal", "greater", "greater_equal", "less", "less_equal")


@register
class ConstantOperation(keras.layers.Layer):
    """`x <operation> constant` with a stored (non-trainable by default) constant.

    Args:
        operation: one of `"add"`, `"subtract"`, `"multiply"`, `"divide"`,
            `"reverse_subtract"` (constant - x), `"reverse_divide"` (constant / x),
            `"maximum"`, `"minimum"`, `"power"`, or a comparison giving a boolean
            tensor: `"equal"`, `"greater"`, `"greater_equal"`, `"less"`, `"less_equal"`
            (x compared to the constant).
        shape: the constant's shape; it broadcasts against the input including the
            batch axis (NumPy rules).
        trainable_constant: whether `fit` updates the constant.

    Example:
    >>> layer = ConstantOperation("multiply", shape=(1, 1, 1, 8))
    """

    def __init__(self, operation, shape=(), trainable_constant=False, **kwargs):
        super().__init__(**kwargs)
        if operation not in _OPERATIONS:
            raise ValueError(f"ConstantOperation: operation must be one of {tuple(_OPERATIONS)}, "
                             f"got {operation!r}")
        self.operation = operation
        self.shape = tuple(int(n) for n in shape)
        self.trainable_constant = bool(trainable_constant)
        self.constant = self.add_weight(shape=self.shape, initializer="zeros", name="constant",
                                        trainable=self.trainable_constant)

    def call(self, inputs):
        return _OPERATIONS[self.operation](inputs, kops.cast(self.constant, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return broadcast_shapes(input_shape, self.shape)

    def compute_output_spec(self, inputs):
        dtype = "bool" if self.operation in _COMPARISONS else inputs.dtype
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"operation": self.operation, "shape": list(self.shape),
                       "trainable_constant": self.trainable_constant})
        return config


@register
class Divide(keras.layers.Layer):
    """`inputs[0] / inputs[1]` with broadcasting (Keras has Add, Subtract, Multiply only)."""

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"Divide: expects a list of 2 tensors, got {inputs!r}")
        return inputs[0] / inputs[1]

    def compute_output_shape(self, input_shape):
        return broadcast_shapes(input_shape[0], input_shape[1])



@register
class Clip(keras.layers.Layer):
    """`clip(x, min_value, max_value)`; either bound may be None."""

    def __init__(self, min_value=None, max_value=None, **kwargs):
        super().__init__(**kwargs)
        self.min_value = None if min_value is None else float(min_value)
        self.max_value = None if max_value is None else float(max_value)

    def call(self, inputs):
        if self.min_value is not None:
            inputs = kops.maximum(inputs, self.min_value)
        if self.max_value is not None:
            inputs = kops.minimum(inputs, self.max_value)
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"min_value": self.min_value, "max_value": self.max_value})
        return config


_UNARY = {"abs": kops.abs, "negative": kops.negative, "sqrt": kops.sqrt, "erf": kops.erf,
          "reciprocal": kops.reciprocal, "log": kops.log, "floor": kops.floor,
          "ceil": kops.ceil, "round": kops.round, "sign": kops.sign}


@register
class UnaryOperation(keras.layers.Layer):
    """An elementwise function Keras has no layer for.

    Args:
        operation: one of `"abs"`, `"negative"`, `"sqrt"`, `"erf"`, `"reciprocal"`, `"log"`,
            `"floor"`, `"ceil"`, `"round"` (half to even), `"sign"`.
    """

    def __init__(self, operation, **kwargs):
        super().__init__(**kwargs)
        if operation not in _UNARY:
            raise ValueError(f"UnaryOperation: operation must be one of {tuple(_UNARY)}, "
                             f"got {operation!r}")
        self.operation = operation

    def call(self, inputs):
        return _UNARY[self.operation](inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["operation"] = self.operation
        return config



@register
class Where(keras.layers.Layer):
    """`where(condition, x, y)` (ONNX Where): each of the three is a computed input or a
    stored constant.

    Args:
        constants: for each of condition, x and y, the shape of its stored constant, or
            None where it is a computed input (passed in that order as a list).
    """

    def __init__(self, constants=(None, None, None), **kwargs):
        super().__init__(**kwargs)
        if len(constants) != 3 or all(c is not None for c in constants):
            raise ValueError(f"Where: constants needs 3 entries (a shape or None), at least "
                             f"one None, got {constants!r}")
        self.constants = [None if c is None else tuple(int(n) for n in c) for c in constants]
        self.stored = [None if c is None else self.add_weight(
            shape=c, initializer="zeros", name=f"constant_{i}", trainable=False)
            for i, c in enumerate(self.constants)]

    def _operands(self, inputs):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        return [inputs.pop(0) if c is None else c for c in self.stored]

    def call(self, inputs):
        cond, x, y = self._operands(inputs)
        return kops.where(kops.cast(cond, "bool"), kops.cast(x, self.compute_dtype),
                          kops.cast(y, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        shapes = list(input_shape) if isinstance(input_shape, list) and isinstance(
            input_shape[0], (list, tuple)) else [input_shape]
        full = [shapes.pop(0) if c is None else c for c in self.constants]
        return broadcast_shapes(broadcast_shapes(full[0], full[1]), full[2])

    def get_config(self):
        config = super().get_config()
        config["constants"] = [None if c is None else list(c) for c in self.constants]
        return config


# The layers model configs may name as `type:` besides the convolution family (declared
# here, read by `model_config.builder.layer_types`: no registration at import time).
CONFIG_TYPES = (ConstantOperation, Divide, Slice, Clip, UnaryOperation, Reduce, Tile,
                BroadcastTo, MatMul, Einsum, Where, BatchConstant)

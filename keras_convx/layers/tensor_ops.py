"""Tensor operations as layers, for what Keras has no layer for: an elementwise operation
with a stored constant, a tensor-by-tensor division, a strided slice, a clip, an
elementwise function, a reduction over axes, a tile, a broadcast, a product of two tensors
(MatMul, Einsum), a select (Where) and a constant repeated over the batch. ONNX import
builds models from them; they export again (keras_convx/exporter/lowerings/tensor_ops.py).
Native Keras layers (no Lambda): they save, load in `safe_mode` and serialize to YAML."""

import keras
from keras import ops as kops

register = keras.saving.register_keras_serializable(package="keras_convx")


def _broadcast(a, b):
    """NumPy broadcasting of two shapes that may hold None (unknown)."""
    a, b = tuple(a), tuple(b)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x == 1:
            out.append(y)
        elif y == 1 or y is None or x == y:
            out.append(x)
        elif x is None:
            out.append(y)
        else:
            raise ValueError(f"shapes {a} and {b} don't broadcast")
    return tuple(out)

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
        return _broadcast(input_shape, self.shape)

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
        return _broadcast(input_shape[0], input_shape[1])


@register
class Slice(keras.layers.Layer):
    """Strided slice of the non-batch axes: `x[:, begin[0]:end[0]:step[0], ...]`.

    Args:
        begin, end, step: one int (or None for `end`) per non-batch axis, Python slice
            semantics (steps must be non-zero).
    """

    def __init__(self, begin, end, step=None, **kwargs):
        super().__init__(**kwargs)
        self.begin = [int(b) for b in begin]
        self.end = [None if e is None else int(e) for e in end]
        self.step = [1] * len(self.begin) if step is None else [int(s) for s in step]
        if not len(self.begin) == len(self.end) == len(self.step) or 0 in self.step:
            raise ValueError(f"Slice: begin, end and step need one entry per axis and non-zero "
                             f"steps, got begin={self.begin}, end={self.end}, step={self.step}")

    def _slices(self):
        return (slice(None),) + tuple(slice(b, e, s) for b, e, s in
                                      zip(self.begin, self.end, self.step))

    def call(self, inputs):
        # positive steps slice; negative ones gather (torch has no negative-step slicing)
        if all(s > 0 for s in self.step):
            return inputs[self._slices()]
        positive = tuple(sl if (sl.step or 1) > 0 else slice(None) for sl in self._slices())
        x = inputs[positive]
        for axis, sl in enumerate(self._slices()):
            if axis and sl.step < 0:
                index = list(range(*sl.indices(int(inputs.shape[axis]))))
                x = kops.take(x, kops.convert_to_tensor(index, "int32"), axis=axis)
        return x

    def compute_output_shape(self, input_shape):
        out = [input_shape[0]]
        for n, sl in zip(input_shape[1:], self._slices()[1:]):
            out.append(None if n is None else len(range(*sl.indices(n))))
        return tuple(out)

    def get_config(self):
        config = super().get_config()
        config.update({"begin": self.begin, "end": self.end, "step": self.step})
        return config


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


_REDUCE = {"mean": kops.mean, "sum": kops.sum, "max": kops.max, "min": kops.min}


@register
class Reduce(keras.layers.Layer):
    """Mean, sum, max or min over some non-batch axes (`keras.ops.mean(x, axis)` as a layer).

    Args:
        operation: one of `"mean"`, `"sum"`, `"max"`, `"min"`.
        axis: the axes to reduce (ints, never 0: the batch axis).
        keepdims: keep the reduced axes with length 1.
    """

    def __init__(self, operation, axis, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if operation not in _REDUCE:
            raise ValueError(f"Reduce: operation must be one of {tuple(_REDUCE)}, got "
                             f"{operation!r}")
        axis = [int(a) for a in (axis if isinstance(axis, (list, tuple)) else [axis])]
        if not axis or 0 in axis or any(a < 0 for a in axis):
            raise ValueError(f"Reduce: axis must be positive ints (the batch axis 0 excluded), "
                             f"got {axis}")
        self.operation, self.axis, self.keepdims = operation, sorted(set(axis)), bool(keepdims)

    def call(self, inputs):
        return _REDUCE[self.operation](inputs, axis=tuple(self.axis), keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return tuple(1 if i in self.axis else n for i, n in enumerate(input_shape))
        return tuple(n for i, n in enumerate(input_shape) if i not in self.axis)

    def get_config(self):
        config = super().get_config()
        config.update({"operation": self.operation, "axis": self.axis,
                       "keepdims": self.keepdims})
        return config


@register
class Tile(keras.layers.Layer):
    """Repeats the non-batch axes: `multiples[i]` copies along axis `i + 1` (`keras.ops.tile`).

    Args:
        multiples: one positive int per non-batch axis.
    """

    def __init__(self, multiples, **kwargs):
        super().__init__(**kwargs)
        self.multiples = [int(m) for m in multiples]
        if not self.multiples or any(m < 1 for m in self.multiples):
            raise ValueError(f"Tile: multiples must be positive ints, one per non-batch axis, "
                             f"got {multiples!r}")

    def call(self, inputs):
        return kops.tile(inputs, [1] + self.multiples)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(None if n is None else n * m for n, m in
                                         zip(input_shape[1:], self.multiples))

    def get_config(self):
        config = super().get_config()
        config["multiples"] = self.multiples
        return config


@register
class BroadcastTo(keras.layers.Layer):
    """Broadcasts the non-batch axes to `shape` (NumPy rules; ONNX Expand, `expand_as`).

    Args:
        shape: the target shape after the batch axis; the input's rank may be lower
            after the batch axis only by leading axes of size 1 it gains.
    """

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.shape = tuple(int(n) for n in shape)
        if any(n < 1 for n in self.shape):
            raise ValueError(f"BroadcastTo: shape must hold positive ints, got {shape!r}")

    def call(self, inputs):
        return kops.broadcast_to(inputs, (kops.shape(inputs)[0],) + self.shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + _broadcast(tuple(input_shape[1:]), self.shape)

    def get_config(self):
        config = super().get_config()
        config["shape"] = list(self.shape)
        return config


@register
class MatMul(keras.layers.Layer):
    """`inputs[0] @ inputs[1]` of two computed tensors, batched over the leading axes
    (ONNX MatMul; attention's scores and weighted sums)."""

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"MatMul: expects a list of 2 tensors, got {inputs!r}")
        return kops.matmul(inputs[0], inputs[1])

    def compute_output_shape(self, input_shape):
        a, b = tuple(input_shape[0]), tuple(input_shape[1])
        return _broadcast(a[:-2], b[:-2]) + (a[-2], b[-1])


@register
class Einsum(keras.layers.Layer):
    """`keras.ops.einsum(equation, *inputs)` of computed tensors; the batch letter stays
    first in every operand and the result.

    Args:
        equation: an explicit einsum equation (`"bhid,bhjd->bhij"`).
    """

    def __init__(self, equation, **kwargs):
        super().__init__(**kwargs)
        self.equation = str(equation).replace(" ", "")
        lhs, arrow, out = self.equation.partition("->")
        operands = lhs.split(",")
        if not arrow or "." in self.equation or not out or any(
                not op or op[0] != out[0] for op in operands):
            raise ValueError(f"Einsum: equation must be explicit ('->'), without '...', with "
                             f"the batch letter first everywhere, got {equation!r}")

    def call(self, inputs):
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        return kops.einsum(self.equation, *inputs)

    def compute_output_shape(self, input_shape):
        shapes = input_shape if isinstance(input_shape, list) and isinstance(
            input_shape[0], (list, tuple)) else [input_shape]
        lhs, _, out = self.equation.partition("->")
        sizes = {}
        for letters, shape in zip(lhs.split(","), shapes):
            for letter, n in zip(letters, shape):
                if n is not None and n != 1 or letter not in sizes:
                    sizes[letter] = n if sizes.get(letter) in (None, 1) else sizes[letter]
        return tuple(sizes.get(letter) for letter in out)

    def get_config(self):
        config = super().get_config()
        config["equation"] = self.equation
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
        return _broadcast(_broadcast(full[0], full[1]), full[2])

    def get_config(self):
        config = super().get_config()
        config["constants"] = [None if c is None else list(c) for c in self.constants]
        return config


@register
class BatchConstant(keras.layers.Layer):
    """A stored constant repeated for each sample of the input's batch (a class token
    concatenated to every sample's sequence). The input gives the batch size only.

    Args:
        shape: the constant's shape after the batch axis.
        trainable_constant: whether `fit` updates it.
    """

    def __init__(self, shape, trainable_constant=False, **kwargs):
        super().__init__(**kwargs)
        self.shape = tuple(int(n) for n in shape)
        self.trainable_constant = bool(trainable_constant)
        self.constant = self.add_weight(shape=self.shape, initializer="zeros", name="constant",
                                        trainable=self.trainable_constant)

    def call(self, inputs):
        value = kops.cast(self.constant, self.compute_dtype)[None]
        return kops.broadcast_to(value, (kops.shape(inputs)[0],) + self.shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.shape

    def get_config(self):
        config = super().get_config()
        config.update({"shape": list(self.shape), "trainable_constant": self.trainable_constant})
        return config


# The layers model configs may name as `type:` besides the convolution family (declared
# here, read by `model_config.builder.layer_types`: no registration at import time).
CONFIG_TYPES = (ConstantOperation, Divide, Slice, Clip, UnaryOperation, Reduce, Tile,
                BroadcastTo, MatMul, Einsum, Where, BatchConstant)

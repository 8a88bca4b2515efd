"""Tensor operations as layers that sum or reduce over axes: `Reduce` (mean, sum, max,
min) and the products of two computed tensors, `MatMul` and `Einsum`. See `tensor_ops` for
the family."""

import keras
from keras import ops as kops

from keras_convx.utils.shapes import broadcast_shapes

register = keras.saving.register_keras_serializable(package="keras_convx")


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
class MatMul(keras.layers.Layer):
    """`inputs[0] @ inputs[1]` of two computed tensors, batched over the leading axes
    (ONNX MatMul; attention's scores and weighted sums)."""

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"MatMul: expects a list of 2 tensors, got {inputs!r}")
        return kops.matmul(inputs[0], inputs[1])

    def compute_output_shape(self, input_shape):
        a, b = tuple(input_shape[0]), tuple(input_shape[1])
        return broadcast_shapes(a[:-2], b[:-2]) + (a[-2], b[-1])


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

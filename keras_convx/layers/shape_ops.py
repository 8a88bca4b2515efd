"""Tensor operations as layers that select, repeat or broadcast values: a strided slice
(`Slice`), a tile (`Tile`), a broadcast (`BroadcastTo`) and a stored constant repeated
over the batch (`BatchConstant`). See `tensor_ops` for the family."""

import keras
from keras import ops as kops

from keras_convx.utils.shapes import broadcast_shapes

register = keras.saving.register_keras_serializable(package="keras_convx")


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
        return (input_shape[0],) + broadcast_shapes(tuple(input_shape[1:]), self.shape)

    def get_config(self):
        config = super().get_config()
        config["shape"] = list(self.shape)
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

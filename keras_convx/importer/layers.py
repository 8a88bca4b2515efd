"""The importer's layers, kept under this name for code that imports them from here: they
live in `keras_convx.layers.tensor_ops`."""

from keras_convx.layers.tensor_ops import (  # noqa: F401
    BatchConstant, BroadcastTo, Clip, ConstantOperation, Divide, Einsum, MatMul, Reduce, Slice,
    Tile, UnaryOperation, Where,
)

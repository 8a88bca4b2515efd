"""Conversions both directions need, in one place: kernel layouts (Keras <-> ONNX/PyTorch),
axis permutations, transposed-conv crops, Resize coordinate modes, pad modes and
elementwise op names.

Used by `keras_convx.weights`, the exporter and the importer. Pure NumPy/integer code: no
Keras, no onnx.
"""

from keras_convx.interop import elementwise
from keras_convx.interop.padding import PAD_MODE_FROM_ONNX, PAD_MODE_TO_ONNX
from keras_convx.interop.kernels import (depthwise_from_onnx, depthwise_to_onnx, kernel_from_onnx,
                                         kernel_to_onnx)
from keras_convx.interop.layouts import (channels_first_perm, channels_last_perm, compose,
                                         constant_in_layout, inverse, only_unit_axes_move,
                                         unit_axes_relabel)
from keras_convx.interop.resize import resize_attributes, upsampling_from_resize
from keras_convx.interop.transpose import conv_transpose_padding, crops_to_onnx

__all__ = [
    "PAD_MODE_FROM_ONNX", "PAD_MODE_TO_ONNX", "elementwise", "channels_first_perm", "channels_last_perm", "compose", "constant_in_layout",
    "conv_transpose_padding", "crops_to_onnx", "depthwise_from_onnx", "depthwise_to_onnx",
    "inverse", "kernel_from_onnx", "only_unit_axes_move", "kernel_to_onnx", "resize_attributes",
    "unit_axes_relabel", "upsampling_from_resize",
]

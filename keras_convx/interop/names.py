"""ONNX node names as Keras layer names, one rule for both directions: the importer names
each layer after its node, and INT8's `keep_float` finds a node by either name."""

import re


def keras_layer_name(onnx_name):
    """`/layer1/conv/Conv` -> `layer1_conv_Conv`: Keras names can't hold "/" (PyTorch
    node names are paths), nor "." on torch (module parameter names)."""
    return re.sub(r"[^A-Za-z0-9_\-]+", "_", onnx_name).strip("_")

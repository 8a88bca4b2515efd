"""`import_onnx`: an ONNX model -> a Functional Keras model of keras_convx and Keras layers."""

import keras

from keras_convx.importer import conversions  # noqa: F401  (registers the conversions)
from keras_convx.importer import frontend, passes
from keras_convx.importer.driver import Walk


def import_onnx(path_or_model, *, data_format="channels_last", name=None):
    """Imports an ONNX model as a backend-agnostic Keras model with its weights.

    Each ONNX node (or fused group: Pad+Conv, MatMul+Add, the Erf-based GELU) becomes one
    layer named after the node: keras_convx convolutions (explicit asymmetric padding,
    padding modes, groups, dilations with strides, transposed convs with output padding),
    up-sampling and padding, and standard Keras layers. No Lambda layers: the model saves
    as `.keras`, loads in `safe_mode` and serializes with `kc.to_yaml`.

    With `data_format="channels_last"` (the default), NCHW tensors become NHWC: inputs and
    outputs of rank >= 3 are channels-last, and no Permute is inserted except where an op
    depends on ONNX's memory order (a Reshape, or a Flatten not followed by Gemm/MatMul,
    whose weights are permuted once instead).

    Args:
        path_or_model: a path to an `.onnx` file (external data must sit in its folder),
            a `onnx.ModelProto` or serialized bytes.
        data_format: `"channels_last"` or `"channels_first"` (the ONNX layout as is).
        name: the Keras model's name (default: the ONNX graph's name).

    Returns:
        A `keras.Model`.

    Raises:
        OnnxImportError: a malformed or hostile file (naming the node, initializer or
            input), or `UnsupportedOps` listing every node without an exact conversion.

    Example:
    >>> model = kc.import_onnx("resnet.onnx")
    >>> model.save("resnet.keras")
    """
    return build(path_or_model, data_format, name)[0]


def build(path_or_model, data_format="channels_last", name=None):
    """`import_onnx`'s work: (model, the graph walk, the checked graph)."""
    graph = frontend.read(path_or_model)
    passes.run(graph)
    walk = Walk(graph, data_format)
    inputs, outputs = walk.run()
    model_name = name or _graph_name(path_or_model)
    model = keras.Model(inputs if len(inputs) > 1 else inputs[0],
                        outputs if len(outputs) > 1 else outputs[0],
                        name=walk.unique_name(model_name))
    return model, walk, graph


def _graph_name(source):
    import os

    if isinstance(source, (str, os.PathLike)):
        return os.path.splitext(os.path.basename(os.fspath(source)))[0]
    graph = getattr(source, "graph", None)
    return getattr(graph, "name", None) or "imported"

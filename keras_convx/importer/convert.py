"""The import's conversion stage: a checked ONNX graph -> a Functional Keras model (the
graph walk and the graph are kept for verification, which reads the layouts it chose)."""

import keras

from keras_convx.importer import conversions  # noqa: F401  (registers the conversions)
from keras_convx.importer import frontend, passes, sequence_passes
from keras_convx.importer.driver import Walk


def build(path_or_model, data_format="channels_last", name=None, layouts="keras"):
    """`import_onnx`'s work: (model, the graph walk, the checked graph)."""
    graph = frontend.read(path_or_model)
    passes.run(graph)
    sequence_passes.run(graph)
    walk = Walk(graph, data_format, layouts)
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

"""The model as export takes it: a Functional or Sequential model with the asked input
shapes, or a subclassed model wrapped in a Functional model of one node, itself."""

import keras

from keras_convx.exporter import tensor_map, trace
from keras_convx.exporter.graph import Unsupported
from keras_convx.exporter.lower import UnsupportedModel


def intake(model, input_shapes):
    """The model as the rest of export takes it: a Functional or Sequential model with
    `input_shapes` applied; a subclassed model wrapped in a Functional model of one node,
    itself (`tensor_map.functional`), so the native path traces its `call` and tf2onnx and
    verification call it as they call any model."""
    if not tensor_map.subclassed(model):
        return with_input_shapes(model, input_shapes)
    try:
        return tensor_map.functional(model, input_shapes)
    except Unsupported as err:  # its `call` can't be traced (on TensorFlow: nor run by
        # tf.function, which the message says): tf2onnx is no way out either
        note = None if keras.backend.backend() == "tensorflow" else (
            f"tf2onnx, the other method, needs the TensorFlow backend (this is "
            f"{keras.backend.backend()!r})")
        raise UnsupportedModel([(model.name, trace.describe(model), str(err))],
                               note=note) from None


def with_input_shapes(model, input_shapes):
    """A clone of `model` whose inputs have `input_shapes` (without batch), same weights."""
    if input_shapes is None:
        return model
    if isinstance(input_shapes[0], int) or input_shapes[0] is None:
        input_shapes = [input_shapes]
    if len(input_shapes) != len(model.inputs):
        raise ValueError(
            f"export: input_shape needs {len(model.inputs)} shape(s), got {input_shapes}")
    new_inputs = [keras.Input(tuple(s), name=kt.name) for s, kt in zip(input_shapes, model.inputs)]
    clone = keras.models.clone_model(
        model, input_tensors=new_inputs if len(new_inputs) > 1 else new_inputs[0])
    clone.set_weights(model.get_weights())
    return clone

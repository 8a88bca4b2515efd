"""A subclassed Keras model (its own `call`) as a Functional model of one node, itself, so
export traces its `call` like any composite layer's (`trace`), and tf2onnx and verification
call it as they call any model."""

import inspect

import keras

from keras_convx.exporter.graph import Unsupported
from keras_convx.exporter.trace_call import _session, _traced


def as_functional(model, input_shapes=None):
    """A subclassed model (a `keras.Model` with its own `call`) as a Functional model of
    one node, the model itself, called on `keras.Input`s: flattening traces that node
    through `call` as it traces composite layers, and calling the Functional model calls
    the model, so verification compares with the model's own outputs.

    The output specs come from a KerasTensor trace of `call` (no backend graph). Where
    `call` can't be traced, on TensorFlow they come from a `tf.function` of the model
    (the graph tf2onnx converts; the flat graph then names the line where tracing
    stopped); elsewhere `Unsupported` says why. The model is left as it was: the
    node is not kept among its inbound nodes.

    Args:
        model: the subclassed model.
        input_shapes: its input shape(s) without the batch, else the shapes it was built
            or first called with.

    Raises:
        ValueError: no input shape known, or inputs this can't express (a dict; several
            positional tensors without `input_shapes`).
        Unsupported: `call` can't be traced (not on TensorFlow).
    """
    from keras.src.ops.node import Node

    shapes, structure = _subclassed_inputs(model, input_shapes)
    names = _input_names(model, len(shapes), structure)
    inputs = [keras.Input(tuple(s), name=n) for s, n in zip(shapes, names)]
    args = (inputs,) if structure == "list" else tuple(inputs)
    with _session():
        try:
            outputs, fn = _traced(model, args, {})
            if fn is None:
                raise Unsupported(f"its traced call returned something else than tensors: "
                                  f"{type(outputs).__name__}")
        except Unsupported as err:
            if keras.backend.backend() != "tensorflow":
                raise
            outputs = _tf_function_specs(model, args, err)
    specs = keras.tree.map_structure(lambda t: keras.KerasTensor(t.shape, t.dtype), outputs)
    node = Node(operation=model, call_args=args, call_kwargs={}, outputs=specs)
    try:
        wrapper = keras.Model(inputs if len(inputs) > 1 else inputs[0], specs, name=model.name)
    finally:
        model._inbound_nodes.remove(node)  # the Functional graph keeps it
    return wrapper


def _subclassed_inputs(model, input_shapes):
    """(shapes without batch, "list" or "args") of a subclassed model's inputs."""
    params = [p for p in _tensor_parameters(model)
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    positional = sum(p.default is p.empty for p in params)
    label = f"export: subclassed model {model.name!r} ({type(model).__name__})"
    if input_shapes is None:
        recorded = getattr(model, "_build_shapes_dict", None) or {}
        if not recorded:
            called = bool(model.weights)  # its sublayers were built by a call
            raise ValueError(
                f"{label} has no known input shape: "
                + ("Keras recorded none when it was called (it could not run its call on "
                   "symbolic tensors to build it): pass input_shape=(32, 32, 3)" if called
                   else "call it once on data (or model.build((None, 32, 32, 3))), or pass "
                   "input_shape=(32, 32, 3)")
                + " to export_onnx (the shape without the batch)")
        if positional > 1:
            raise ValueError(
                f"{label}: its call takes {positional} tensors, Keras recorded the shape "
                f"of the first only: pass input_shape=[shape, shape, ...] (without the batch)")
        shape = next(iter(recorded.values()))
        if isinstance(shape, dict):
            raise ValueError(f"{label}: dict inputs are not supported for subclassed "
                             f"models: call it on keras.Input(name=...)s in a Functional "
                             f"model and export that")
        if shape and isinstance(shape[0], (list, tuple)):
            return [tuple(s)[1:] for s in shape], "list"
        return [tuple(shape)[1:]], "args"
    if isinstance(input_shapes, dict):
        raise ValueError(f"{label}: input_shape can't be a dict (dict inputs are not "
                         f"supported for subclassed models)")
    if not input_shapes or isinstance(input_shapes[0], int) or input_shapes[0] is None:
        return [tuple(input_shapes)], "args"
    shapes = [tuple(s) for s in input_shapes]
    if positional > 1:
        if len(shapes) != positional:
            raise ValueError(f"{label}: its call takes {positional} tensors, got "
                             f"input_shape={input_shapes}")
        return shapes, "args"
    return shapes, "list"


def _input_names(model, count, structure):
    """Graph input names: the parameter names of `call` (`inputs_0`, `inputs_1` for the
    items of a list)."""
    params = [p.name for p in _tensor_parameters(model)]
    if structure == "args" and len(params) >= count:
        names = params[:count]
    else:
        first = params[0] if params else "input"
        names = [first] if count == 1 else [f"{first}_{i}" for i in range(count)]
    # a Functional model's layers need distinct names: its input layers and the model
    return [f"{n}_input" if n == model.name else n for n in names]


def _tensor_parameters(model):
    """The parameters of a model's bound `call` (no `self`, whatever its name) that are
    not `training` or `mask`."""
    return [p for k, p in inspect.signature(model.call).parameters.items()
            if k not in ("training", "mask")]


def _tf_function_specs(model, args, untraced):
    """The output specs of the model's `tf.function` (AutoGraph turns Python control flow
    on tensors into graph ops), as tf2onnx will convert it; `untraced`: why the
    KerasTensor trace stopped, said again if this fails too."""
    import tensorflow as tf

    specs = keras.tree.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), args)
    try:
        concrete = tf.function(lambda *xs: model(*xs, training=False)).get_concrete_function(
            *specs)
    except Exception as err:  # noqa: BLE001 (the user's code may raise anything)
        cause = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise Unsupported(f"{untraced}; TensorFlow's tf.function can't run it either, so "
                          f"neither can tf2onnx ({type(err).__name__}: {cause})") from None
    return keras.tree.map_structure(lambda t: keras.KerasTensor(tuple(t.shape), t.dtype.name),
                                    concrete.structured_outputs)

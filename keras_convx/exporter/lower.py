"""Lowering a Keras model to an ONNX graph: natively (one lowering per layer class, composite
layers traced through their `call`) or through tf2onnx on the TensorFlow backend."""

import dataclasses

import keras

from keras_convx.exporter import passes, registry, tensor_map, trace
from keras_convx.exporter.graph import GraphBuilder, Unsupported, Value, channels_first_perm
from keras_convx.exporter.tensor_map import functional as _functional
from keras_convx.verification.report import ExportError
from keras_convx.verification.signature import Signature


class UnsupportedModel(ValueError):
    """The native path can't lower some layers or operations; `problems` lists
    (name, kind and class path, reason), all of them at once."""

    def __init__(self, problems, note=None):
        self.problems = problems
        lines = "; ".join(f"{name} ({cls}): {why}" for name, cls, why in problems)
        super().__init__(
            f"native export can't lower {len(problems)} layer(s)/operation(s): {lines}. "
            + (f"{note}. " if note else "") +
            f"Teach it with @keras_convx.exporter.lowering(YourClass) (see README, "
            f"'Exporting your own layers')")


@dataclasses.dataclass
class LoweringContext:
    """What a lowering gets besides the builder and the layer.

    `args`/`kwargs`: the call's arguments with Keras tensors replaced by `Value`s (and
    constants as given); `inputs`: those Values in the layout the lowering asked for
    (`x` is the first); `perm`: that layout; `output_shape(s)`: Keras's output shapes;
    `node`: the Keras node (its KerasTensors carry the dtypes).
    """

    args: tuple
    kwargs: dict
    output_shape: tuple
    output_shapes: list
    node: object = None
    inputs: list = None
    x: Value = None
    perm: tuple = ()


def _lower(b, flat, inputs, problems):
    tensors = {id(kt): v for kt, v in zip(flat.inputs, inputs)}
    for fnode in flat.nodes:
        if fnode.operation is None:  # into or out of an inlined graph
            for to, source in fnode.aliases:
                if id(source) in tensors:
                    tensors[id(to)] = tensors[id(source)]
            continue
        layer, node = fnode.operation, fnode.node
        if any(id(kt) not in tensors for kt in node.input_tensors):
            continue  # downstream of a layer that could not be lowered
        args, kwargs = node.arguments.fill_in(tensors)
        entry = registry.find(layer)
        if entry is None:
            continue  # already among flat.problems
        try:
            b.scope = fnode.label
            b.preactivation = None
            ctx = LoweringContext(args, kwargs, tuple(node.outputs[0].shape),
                                  [tuple(o.shape) for o in node.outputs], node)
            results = registry.apply(b, entry, layer, ctx)
        except Unsupported as err:
            problems.append((fnode.label, trace.describe(layer), str(err)))
            continue
        for key, kt, value in zip(fnode.keys, node.outputs, results):
            tensors[id(kt)] = value
            if "float" in str(kt.dtype):  # masks and indices are checked through their uses
                b.bind(key, fnode.label, value)
        if b.preactivation is not None:
            value, name = b.preactivation
            b.bind(fnode.keys[0], fnode.label, value, "preactivation", name)
    return [tensors.get(id(kt)) for kt in flat.outputs]


def _spatial_io_perm(shape, nchw_io):
    """Graph-side perm of an input/output: NC* for spatial tensors when nchw_io."""
    if nchw_io and len(shape) >= 3:
        return channels_first_perm(len(shape), "channels_last")
    return tuple(range(len(shape)))


def _dims_dynamic(shape, dynamic_axes):
    return [i == 0 and "batch" in dynamic_axes or 0 < i < len(shape) - 1 and
            "spatial" in dynamic_axes for i in range(len(shape))]


def lower_native(model, opset=17, dynamic_axes=("batch",), nchw_io=False, batch_size=1,
                 fold_batch_norm=True):
    """The native lowering: returns (onnx ModelProto, GraphBuilder, `Signature`)."""
    fmodel = _functional(model)
    flat = tensor_map.flat_graph(fmodel, None if "batch" in dynamic_axes else batch_size)
    if flat.problems:
        raise UnsupportedModel(flat.problems)
    b = GraphBuilder(opset)
    inputs, in_perms = [], []
    for kt in fmodel.inputs:
        shape = tuple(kt.shape)
        perm = _spatial_io_perm(shape, nchw_io)
        name = kt.name
        graph_shape = [shape[p] for p in perm]
        if "batch" not in dynamic_axes:
            graph_shape[0] = batch_size
        b.add_input(name, graph_shape, _dims_dynamic(graph_shape, dynamic_axes))
        inputs.append(Value(name, shape, perm))
        in_perms.append(list(perm))
    problems = []
    outputs = _lower(b, flat, inputs, problems)
    if problems:
        raise UnsupportedModel(problems)
    out_perms = []
    names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(outputs))])
    for name, value in zip(names, outputs):
        perm = _spatial_io_perm(value.shape, nchw_io)
        value = b.to_perm(value, perm)
        graph_shape = [value.shape[p] for p in perm]
        if "batch" not in dynamic_axes:
            graph_shape[0] = batch_size
        b.scope = "graph"
        b.add_output(name, value.name, graph_shape, _dims_dynamic(graph_shape, dynamic_axes))
        out_perms.append(list(perm))
    if flat.batch_symbol is not None:
        try:
            passes.dynamic_batch(b, flat.batch_symbol)
        except Unsupported as err:
            raise UnsupportedModel([(model.name, "dynamic batch", str(err))]) from None
    b.bn_folded = passes.fold_batch_norm(b) if fold_batch_norm else 0
    b.pads_fused = passes.fuse_pad_into_conv(b)
    proto = b.model(model.name)  # the tensor map travels as b.correspondence(), in memory
    io = Signature(input_perms=[p if p != list(range(len(p))) else None for p in in_perms],
                   output_perms=[p if p != list(range(len(p))) else None for p in out_perms],
                   static_batch=None if "batch" in dynamic_axes else batch_size)
    return proto, b, io


def lower_tf2onnx(model, opset=17, dynamic_axes=("batch",), nchw_io=False, batch_size=1):
    """tf2onnx on the model's traced function (TensorFlow backend only)."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"export: method='tf2onnx' needs the TensorFlow backend, this is "
            f"{keras.backend.backend()!r}"
        )
    import tensorflow as tf
    import tf2onnx

    specs, names = [], []
    for kt in model.inputs:
        shape = list(kt.shape)
        shape[0] = None if "batch" in dynamic_axes else batch_size
        if "spatial" in dynamic_axes and len(shape) >= 3:  # as the native path does
            shape[1:-1] = [None] * (len(shape) - 2)
        names.append(kt.name)
        specs.append(tf.TensorSpec(shape, tf.float32, name=kt.name))

    @tf.function
    def fn(*xs):
        out = model(list(xs) if len(xs) > 1 else xs[0], training=False)
        return out if isinstance(out, (list, tuple)) else [out]

    spatial = [n for n, s in zip(names, specs) if len(s.shape) >= 3]
    proto, _ = tf2onnx.convert.from_function(
        fn, input_signature=specs, opset=opset, inputs_as_nchw=spatial if nchw_io else None,
        outputs_as_nchw=None)
    out_names = list(getattr(model, "output_names", None) or [])
    for value, new in zip(list(proto.graph.output), out_names):
        _rename(proto, value.name, new)
    in_perms = [list(_spatial_io_perm(tuple(kt.shape), nchw_io)) if nchw_io and
                len(kt.shape) >= 3 else None for kt in model.inputs]
    io = Signature(input_perms=in_perms, output_perms=[None] * len(model.outputs),
                   static_batch=None if "batch" in dynamic_axes else batch_size)
    return proto, None, io


def _rename(proto, old, new):
    for node in proto.graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    for value in proto.graph.output:
        if value.name == old:
            value.name = new


def _tf2onnx(model, opset, dynamic_axes, nchw_io, batch_size):
    """tf2onnx with its failures as `ExportError`s naming the method and the cause."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"export: method='tf2onnx' needs the TensorFlow backend, this is "
                         f"{keras.backend.backend()!r}")
    try:
        return lower_tf2onnx(model, opset, dynamic_axes, nchw_io, batch_size)
    except Exception as err:
        cause = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ExportError(f"export (tf2onnx): conversion failed: {type(err).__name__}: "
                          f"{cause}") from None


def convert(model, method, opset, dynamic_axes, nchw_io, batch_size, fold_batch_norm):
    """The ONNX graph by the chosen method: (proto, native builder or None, io, method,
    why that method)."""
    reason = ""
    if method == "auto":
        from keras_convx.exporter.lowering_coverage import unsupported_layers

        missing = unsupported_layers(model)
        chosen = "native" if not missing else "tf2onnx"
        reason = ("every layer has a native lowering" if not missing else
                  "no native lowering for " + ", ".join(f"{n} ({c})" for n, c, _ in missing))
        if missing and keras.backend.backend() != "tensorflow":
            raise UnsupportedModel(missing, note=(
                f"method='auto' would fall back to tf2onnx, which needs the TensorFlow "
                f"backend (this is {keras.backend.backend()!r})"))
    else:
        chosen, reason = method, "requested"
    if chosen == "native":
        try:
            proto, builder, io = lower_native(model, opset, dynamic_axes, nchw_io, batch_size,
                                              fold_batch_norm)
            return proto, builder, io, chosen, reason
        except UnsupportedModel as err:
            if method == "native":
                raise
            chosen, reason = "tf2onnx", str(err)
    proto, _, io = _tf2onnx(model, opset, dynamic_axes, nchw_io, batch_size)
    return proto, None, io, chosen, reason

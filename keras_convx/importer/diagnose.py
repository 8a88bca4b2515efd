"""`diagnose_import`: every tensor the imported model holds against onnxruntime's, in
graph order, so that the first node that disagrees is the first failing row."""

import keras
import numpy as np
import onnx

from keras_convx.importer.convert import build
from keras_convx.importer.float_graph import float_graph
from keras_convx.importer.runners import RuntimeFailure, draw_inputs, first_line, node_of, session
from keras_convx.verification import rules as stats
from keras_convx.verification import sizes as S
from keras_convx.verification.judge import scale_floors


def diagnose_import(onnx_model, data_format="channels_last", seed=0, tolerance=None,
                    model=None, _built=None, _size=(None, 8)):
    """Every tensor the imported model holds, against onnxruntime's: a list of
    `(node name, op type, ONNX tensor name, stats.TensorError)` in graph order, so the
    first node that disagrees is the first row failing `tolerance`.

    Args:
        onnx_model: a ModelProto with its data (or a path: external data is checked).
        model: the imported Keras model to read the tensors from (its layers are found by
            the names `import_onnx` gives them); default a fresh import of `onnx_model`.
    """
    if not isinstance(onnx_model, onnx.ModelProto):
        build(onnx_model, data_format)  # the checks (external data) before onnx loads it
        onnx_model = onnx.load(onnx_model)
    built, walk, graph = _built or build(onnx_model, data_format)
    onnx_model = float_graph(onnx_model)
    model = built if model is None else model
    ops = {out: node.op_type for node in graph.nodes for out in node.outputs}
    rows, tensors = [], []
    for row in walk.correspondence(graph):  # the same typed rows as an export's map
        tensor = _tensor_of(model, row.key)
        if tensor is not None:
            rows.append(row)
            tensors.append(tensor)
    if not rows:
        return []
    probe = onnx.ModelProto()
    probe.CopyFrom(onnx_model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=r.onnx) for r in rows
                              if r.onnx not in known)
    ort = session(probe)
    if _size[0] is None and _built is None:
        if S.symbolic_axes(onnx_model):
            derived, step = S.derive_sizes(onnx_model)
            _size = (derived[0], step)
    feeds, keras_inputs, _ = draw_inputs(ort, data_format, seed, model, walk.input_perms,
                                         *_size)
    shapes = ", ".join(f"{n} {list(v.shape)}" for n, v in feeds.items())
    names = [o.name for o in ort.get_outputs()]
    try:
        expected = dict(zip(names, ort.run(None, feeds)))
    except Exception as err:
        raise RuntimeFailure(f"onnxruntime (CPUExecutionProvider, every tensor exposed) "
                             f"raised on input {shapes}{node_of(err)}: "
                             f"{first_line(err)}") from err
    inner = keras.Model(model.inputs if len(model.inputs) > 1 else model.inputs[0], tensors)
    try:
        actual = inner(keras_inputs if len(keras_inputs) > 1 else keras_inputs[0],
                       training=False)
    except Exception as err:
        raise RuntimeFailure(f"the Keras model ({keras.backend.backend()} backend) raised "
                             f"on input {shapes}: {first_line(err)}") from err
    actual = actual if isinstance(actual, (list, tuple)) else [actual]
    out, floors = [], scale_floors(onnx_model)
    for row, a in zip(rows, actual):
        a = np.transpose(np.asarray(keras.ops.convert_to_numpy(a)), row.perm)
        out.append((row.label, ops[row.onnx], row.onnx, stats.tensor_error(
            a, expected[row.onnx], matching_inf_ok=True,
            scale_floor=floors.get(row.onnx, 0.0))))
    return out


def _tensor_of(model, key):
    """The tensor of `model` a row's key names (`layer:node_index:tensor_index`, the
    same in a fresh import of the same graph); None when the model has no such layer."""
    name, node_index, tensor_index = key.rsplit(":", 2)
    node_index, tensor_index = int(node_index), int(tensor_index)
    try:
        layer = model.get_layer(name)
    except ValueError:
        return None
    if layer is None or len(layer._inbound_nodes) <= node_index:
        return None
    outputs = layer._inbound_nodes[node_index].output_tensors
    return outputs[tensor_index] if tensor_index < len(outputs) else None

"""Shape inference at import: onnx's, strict, before and after constant folding (a folded
size makes the next shape static), every inferred shape checked against the limits, and
a clash explained by its first real cause."""

import numpy as np
import onnx
from onnx import helper, numpy_helper

from keras_convx.importer import registry
from keras_convx.importer.errors import UnsupportedOps
from keras_convx.importer.limits import MAX_DIM, MAX_ELEMENTS, elements, fail


def shape_of(value_info):
    t = value_info.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None
                 for d in t.tensor_type.shape.dim)


def infer(model, nodes, opset):
    """{tensor name: shape} of the checked model (None where unknown), by onnx's strict
    shape inference; a failure is explained (`explain_failure`)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                     data_prop=True)
    except Exception as err:
        explain_failure(model, nodes, opset, err)
    shapes = {vi.name: shape_of(vi) for vi in list(inferred.graph.value_info)
              + list(inferred.graph.output) + list(inferred.graph.input)}
    check_shapes(shapes, nodes)
    return shapes


# Ops the front end folds away when their inputs are known (no conversion needed)
_FOLDED_ONLY = ("Shape", "Size", "ConstantOfShape", "Range", "Constant")


def explain_failure(model, nodes, opset, err, what="shape inference"):
    """Names the first real cause of a shape-inference clash: ops without a conversion
    (an LSTM) come first, then a graph output declared with a shape the graph does not
    compute (shape inference reports either at some node downstream)."""
    clash = str(err).splitlines()[0][:300]
    missing = [(n.name, n.op_type, f"no conversion for {n.domain or 'ai.onnx'} {n.op_type} at "
                f"opset {opset.get(n.domain if n.domain != 'ai.onnx' else '', 1)}")
               for n in nodes if n.op_type not in _FOLDED_ONLY and registry.find(
                   n.domain, n.op_type, opset.get(n.domain if n.domain != "ai.onnx" else "", 1))
               is None]
    if missing:
        raise UnsupportedOps(missing + [("(shape inference)", "-", f"then fails: {clash}")])
    loose = onnx.ModelProto()
    loose.CopyFrom(model)
    for out in loose.graph.output:
        out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(loose, check_type=True, strict_mode=True,
                                                     data_prop=True)
    except Exception:
        fail(f"{what}: {clash}")
    computed = {o.name: shape_of(o) for o in inferred.graph.output}
    for out in model.graph.output:
        declared, got = shape_of(out), computed.get(out.name)
        if declared is not None and got is not None and len(declared) != len(got):
            fail(f"graph output {out.name!r} is declared with shape "
                 f"{[d if d is not None else '?' for d in declared]} (rank {len(declared)}), "
                 f"but the graph computes rank {len(got)}: the file's declared output shape "
                 f"is wrong (fix it in the file's graph.output)")
    fail(f"{what}: {clash}")


# (op, input index) -> what a batch-size entry of a folded shape reads as in re-inference
_BATCH_STAND_IN = {("Reshape", 1): 0, ("Expand", 1): 1}


def reinfer(graph, model):
    """Shape inference again with folded values as initializers: shapes that depended on
    a computed pads/shape/scales input become static."""
    used = {i for n in graph.nodes for i in n.inputs if i in graph.constants}
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    del folded.graph.node[:]
    # A value computed from the dynamic batch (0 stands for it) is no number shape
    # inference may read as it is: a Reshape's target keeps 0 first (copy the batch), an
    # Expand's shape gets 1 there (broadcast keeps the batch), anything else reads it as
    # an input of unknown value.
    marked = {name for name in used if graph.batch_dependent(name)}
    extra = {}
    for node in graph.nodes:
        proto = onnx.NodeProto()
        proto.CopyFrom(node.extra["proto"])
        for i, name in enumerate(proto.input):
            stand_in = _BATCH_STAND_IN.get((node.op_type, i))
            if name in marked and stand_in is not None and graph.batch_first_only(name):
                value = np.array(graph.constants[name]).reshape(-1)
                value[0] = stand_in
                proto.input[i] = f"{name}__{node.op_type}"
                extra[proto.input[i]] = value
        folded.graph.node.append(proto)
    del folded.graph.initializer[:]
    del folded.graph.value_info[:]
    folded.graph.initializer.extend(numpy_helper.from_array(graph.constants[name], name)
                                    for name in sorted(used - marked))
    folded.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in extra.items())
    kept = [vi for vi in folded.graph.input if vi.name not in graph.constants or vi.name in used]
    del folded.graph.input[:]
    folded.graph.input.extend(kept)
    folded.graph.input.extend(
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(
            graph.constants[name].dtype), graph.constants[name].shape)
        for name in sorted(marked) if name not in {vi.name for vi in kept})
    try:
        inferred = onnx.shape_inference.infer_shapes(folded, check_type=True, strict_mode=True,
                                                     data_prop=True)
    except Exception as err:
        explain_failure(folded, graph.nodes, graph.opset, err,
                        "shape inference after constant folding")
    shapes = dict(graph.shapes)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        shape = shape_of(vi)
        if shape is not None:
            shapes[vi.name] = shape
    check_shapes(shapes, graph.nodes)
    return shapes


def check_shapes(shapes, nodes):
    """Refuses inferred shapes beyond MAX_DIM per axis or MAX_ELEMENTS in all, naming the
    node producing them."""
    produced_by = {o: n for n in nodes for o in n.outputs}
    for name, shape in shapes.items():
        if shape is not None and (any(d is not None and d > MAX_DIM for d in shape)
                                  or elements([d or 1 for d in shape]) > MAX_ELEMENTS):
            node = produced_by.get(name)
            fail(f"{node.label() if node else repr(name)}: inferred shape {list(shape)} of "
                 f"{name!r} exceeds the accepted size ({MAX_DIM} per axis, {MAX_ELEMENTS} "
                 f"elements)")

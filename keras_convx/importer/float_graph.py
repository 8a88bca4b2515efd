"""The float graph a quantized file imports as, for onnxruntime to run in verification:
weights dequantized as the import folds them, each activation QuantizeLinear ->
DequantizeLinear pair replaced by the Clip to its range."""

import numpy as np
import onnx
from onnx import numpy_helper

from keras_convx.importer.dynamic_quant import dequantize_dynamic
from keras_convx.importer.folding import dequantize
from keras_convx.importer.graph import Node
from keras_convx.importer.passes import qdq_pairs, saturation_range


def float_graph(onnx_model):
    """The float graph a QDQ file imports as (a dynamically quantized one first becomes
    its float graph, `dequantize_dynamic`): `onnx_model` with its weights dequantized
    into float initializers (as the import folds them; onnxruntime would otherwise fuse a
    weight's DequantizeLinear into an integer kernel at ENABLE_ALL) and each activation
    QuantizeLinear -> DequantizeLinear pair replaced by the Clip to its range; the model
    itself when it has no QDQ nodes."""
    onnx_model = dequantize_dynamic(onnx_model)[0]
    proto = onnx_model.graph
    if not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.node):
        return onnx_model
    initializers = {t.name: t for t in proto.initializer}
    nodes = [Node(n.name, n.op_type, n.domain, list(n.input), list(n.output),
                  {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute})
             for n in proto.node]
    stripped = onnx.ModelProto()
    stripped.CopyFrom(onnx_model)
    drop, clips, folded = set(), {}, []
    values = {name: numpy_helper.to_array(t) for name, t in initializers.items()}
    for node in nodes:
        if node.op_type == "DequantizeLinear" and all(i in initializers for i in node.inputs
                                                      if i):
            feeds = {i: values[i] for i in node.inputs if i}
            folded.append(numpy_helper.from_array(dequantize(node, feeds)[0], node.outputs[0]))
            drop.add(id(node))
    for q, dq in qdq_pairs(nodes, set(initializers), [o.name for o in proto.output]):
        bounds = saturation_range(q, values)
        if bounds is not None:  # the import's clip, as ONNX (opset >= 11: bounds as inputs)
            low, high = (numpy_helper.from_array(np.float32(b), f"{dq.outputs[0]}_{side}")
                         for b, side in zip(bounds, ("low", "high")))
            folded += [low, high]
            opset = next((o.version for o in onnx_model.opset_import
                          if o.domain in ("", "ai.onnx")), 11)
            clips[id(dq)] = onnx.helper.make_node(
                "Clip", [q.inputs[0], low.name, high.name], dq.outputs, name=dq.name) \
                if opset >= 11 else onnx.helper.make_node(
                    "Clip", [q.inputs[0]], dq.outputs, name=dq.name, min=bounds[0],
                    max=bounds[1])
            drop.add(id(q))
    kept = []
    for node, proto_node in zip(nodes, stripped.graph.node):
        if id(node) in clips:
            kept.append(clips[id(node)])
        elif id(node) not in drop:
            kept.append(proto_node)
    del stripped.graph.node[:]
    stripped.graph.node.extend(kept)
    stripped.graph.initializer.extend(folded)
    used = {i for n in kept for i in n.input}
    unused = [t for t in stripped.graph.initializer if t.name not in used]
    for tensor in unused:
        stripped.graph.initializer.remove(tensor)
    return stripped

"""Clean-up passes over a finished ONNX graph, kept apart from the lowerings."""

import numpy as np
from onnx import numpy_helper


def fold_batch_norm(model):
    """Folds inference BatchNormalization into a preceding Conv whose only consumer it is.

    Returns the number of folded nodes.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    consumers = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    folded = 0
    for bn in list(graph.node):
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        conv = producers.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or conv.output[0] in outputs \
                or len(consumers.get(conv.output[0], [])) != 1:
            continue
        if not all(name in inits for name in list(bn.input[1:5]) + list(conv.input[1:])):
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64)
                                  for n in bn.input[1:5])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale = gamma / np.sqrt(var + eps)
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        bias = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
                if len(conv.input) > 2 and conv.input[2] else np.zeros(w.shape[0]))
        w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        bias = (bias - mean) * scale + beta
        inits[conv.input[1]].CopyFrom(numpy_helper.from_array(w.astype(np.float32), conv.input[1]))
        bias_name = conv.input[1] + "_folded_bias"
        graph.initializer.append(numpy_helper.from_array(bias.astype(np.float32), bias_name))
        if len(conv.input) > 2:
            conv.input[2] = bias_name
        else:
            conv.input.append(bias_name)
        conv.output[0] = bn.output[0]
        graph.node.remove(bn)
        folded += 1
    if folded:
        remove_unused_initializers(model)
    return folded


def remove_unused_initializers(model):
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)

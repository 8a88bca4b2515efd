"""Layout inference for the graph walk: which graph inputs arrive channels-last (every
reader moves them NHWC -> NCHW first, as Keras and TensorFlow exporters write), and the
layout each graph output leaves in, looking through elementwise ops. A move counts as a
layout change, not a transpose of the model's own, only next to an op of N, C, spatial...
data."""

import numpy as np

from keras_convx import interop
from keras_convx.importer import registry
from keras_convx.importer.context import standard_perm

# Ops that keep any layout (constants are moved to the tensor's): layout inference looks
# through them from an input to its NHWC -> NCHW move, and from an output back to its move.
ELEMENTWISE = ("Mul", "Add", "Sub", "Div", "Relu", "Sigmoid", "Tanh", "Clip", "Identity",
               "Neg", "Abs", "Max", "Min", "Cast", "LeakyRelu", "HardSigmoid", "Sqrt", "Exp")
FUSED_ELEMENTWISE = ("Saturate", "Gelu", "Mish", "HardSwish")
# Ops reading or writing N, C, spatial... data: a move to or from NCHW counts as a layout
# change (not a transpose of the model's own) only next to one of them.
CHANNELS_FIRST_OPS = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool",
                      "GlobalMaxPool", "BatchNormalization", "InstanceNormalization", "Resize",
                      "Pad", "LpPool", "GroupNormalization", "GroupNorm")
MAX_LAYOUT_DEPTH = 16
# Sequence ops: their tensors are (batch, seq, features) or time-major, never feature maps
SEQUENCE_OPS = ("LSTM", "GRU")
# what lies between a sequence op and a graph input or output in exported graphs
SEQUENCE_GLUE = ("Transpose", "Squeeze", "Unsqueeze", "Reshape", "Slice", "Concat")


def near_sequence_op(graph, name, readers, depth=0):
    """Whether `name` is read (`readers`) or written by an LSTM/GRU, looking through the
    Transposes and Squeezes exporters put around them and elementwise ops."""
    if depth > MAX_LAYOUT_DEPTH:
        return False
    nodes = graph.consumers(name) if readers else [n for n in graph.nodes if name in n.outputs]
    for node in nodes:
        if node.op_type in SEQUENCE_OPS:
            return True
        if node.op_type in SEQUENCE_GLUE + ELEMENTWISE:
            nxt = node.outputs[:1] if readers else node.inputs[:1]
            if any(near_sequence_op(graph, n, readers, depth + 1) for n in nxt):
                return True
    return False


def time_major_input(graph, name, depth=0):
    """Whether graph input `name` is the time-major X (seq, batch, features) of an LSTM/GRU
    (layout 0) or its initial state (directions, batch, hidden), read directly or through
    elementwise ops: its batch is ONNX axis 1."""
    if depth > MAX_LAYOUT_DEPTH:
        return False
    for node in graph.consumers(name):
        if node.op_type in SEQUENCE_OPS and name in (node.inputs[:1] + node.inputs[5:7]):
            return not int(node.attrs.get("layout", 0))
        # elementwise ops, and the Slice picking each layer's states of a multi-layer RNN
        if (node.op_type in ELEMENTWISE or node.op_type == "Slice" and node.inputs[0] == name) \
                and time_major_input(graph, node.outputs[0], depth + 1):
            return True
    return False


def moves_channels(graph, node, source, perm):
    """Whether `node` lays `source` out by `perm` (a Transpose, or a Reshape that only
    moves an axis of size 1, as exporters write it for one channel)."""
    if node.inputs[:1] != [source]:
        return False
    if node.op_type == "Transpose":
        return tuple(int(p) for p in node.attrs.get("perm", ())) == perm
    shape, out = graph.shapes.get(source), graph.shapes.get(node.outputs[0])
    return (node.op_type == "Reshape" and shape is not None and out is not None
            and len(shape) == len(perm) and tuple(out[1:]) ==
            tuple(shape[p] for p in perm)[1:] and interop.unit_axes_relabel(
                (None,) + tuple(shape[1:]), (None,) + tuple(out[1:])) is not None)


def near_channels_first(graph, name, readers, depth=0):
    """Whether `name` is read (`readers`) or written by an op of N, C, spatial... data,
    looking through elementwise ops."""
    if depth > MAX_LAYOUT_DEPTH:
        return False
    if readers:
        nodes = graph.consumers(name)
    else:
        nodes = [n for n in graph.nodes if name in n.outputs]
    for node in nodes:
        if node.op_type in CHANNELS_FIRST_OPS:
            return True
        if node.op_type in ELEMENTWISE + FUSED_ELEMENTWISE + ("Softmax", "LogSoftmax"):
            nxt = node.outputs[:1] if readers else [
                i for i in node.inputs if i and i not in graph.constants]
            if any(near_channels_first(graph, n, readers, depth + 1) for n in nxt):
                return True
    return False


def leads_to(graph, name, perm, depth=0):
    """Whether every reader of `name` lays it out by `perm`, directly or after
    elementwise ops with constant operands (a Rescaling or Normalization first)."""
    users = graph.consumers(name)
    if not users or name in graph.outputs or depth > MAX_LAYOUT_DEPTH:
        return False
    for user in users:
        if moves_channels(graph, user, name, perm):
            if not near_channels_first(graph, user.outputs[0], readers=True):
                return False  # a transpose of the model's own, not a layout move
            continue
        elementwise = (user.op_type in ELEMENTWISE and user.domain in registry.ONNX_DOMAINS
                       or user.op_type in FUSED_ELEMENTWISE
                       and user.domain == registry.FUSED_DOMAIN)
        if not (elementwise and all(i == name or i in graph.constants for i in user.inputs)
                and len(user.outputs) == 1
                and len(graph.shapes.get(user.outputs[0]) or ()) == len(perm)
                and leads_to(graph, user.outputs[0], perm, depth + 1)):
            return False
    return True


def arrives_channels_last(graph, data_format, name, shape):
    """An input that every reader moves NHWC -> NCHW first (Keras, TensorFlow, tf2onnx
    and keras_convx's exporter write that): kept NHWC in Keras."""
    ndim = len(shape)
    return (data_format == "channels_last" and ndim >= 3
            and leads_to(graph, name, interop.channels_first_perm(ndim)))


def output_perm(graph, data_format, name, value):
    """Channels last for an ONNX NCHW output; ONNX's order as is for one the graph
    itself moved NCHW -> NHWC last (Keras's layout in the file)."""
    producers = {o: n for n in graph.nodes for o in n.outputs}
    producer, perm = producers.get(name), interop.channels_last_perm(value.ndim)
    for _ in range(MAX_LAYOUT_DEPTH):  # back through elementwise ops (a Softmax last)
        if (producer is None or producer.op_type not in ELEMENTWISE + FUSED_ELEMENTWISE
                + ("Softmax", "Concat")
                or producer.op_type != "Concat" and
                len([i for i in producer.inputs if i in producers]) != 1):
            break
        producer = producers.get(next((i for i in producer.inputs if i in producers), ""))
    if near_sequence_op(graph, name, readers=False):
        return tuple(range(value.ndim))  # a sequence, not a feature map
    exported = graph.exported_output_perms
    if exported is not None and data_format == "channels_last":
        # a file keras_convx exported: back to the Keras model's own layout
        moved = exported[graph.outputs.index(name)]
        if moved is None or len(moved) == value.ndim:
            return tuple(range(value.ndim)) if moved is None else tuple(
                int(i) for i in np.argsort(moved))
    if value.ndim == 3 and (producer is None or producer.op_type not in CHANNELS_FIRST_OPS):
        # a (batch, rows, fields) table a detector or a sequence head computes, not a
        # 1-D feature map: the user's decoder reads the file's layout
        return tuple(range(value.ndim))
    if (data_format == "channels_last" and value.ndim >= 3 and producer is not None
            and producer.inputs and moves_channels(graph, producer, producer.inputs[0], perm)
            and near_channels_first(graph, producer.inputs[0], readers=False)):
        return tuple(range(value.ndim))
    return standard_perm(value.ndim, data_format)

"""What a conversion works with: `Value` (an ONNX tensor held by a Keras tensor, with its
axis order) and `Context` (the node, its attributes and inputs, and the helpers that make
layers named after it). The graph walk (`driver.Walk`) makes one per node."""

import dataclasses

import keras
import numpy as np

from keras_convx import interop
from keras_convx.importer.errors import Unsupported


@dataclasses.dataclass
class Value:
    """An ONNX tensor held by a Keras tensor: Keras axis `i` is ONNX axis `perm[i]`.

    `flat` is set on 2-D values made by flattening a permuted tensor for a following
    Gemm/MatMul: Keras column `j` holds ONNX column `flat[j]` (the weights are permuted
    once instead of the activations on every call).
    """

    tensor: object
    perm: tuple
    flat: object = None

    @property
    def ndim(self):
        return len(self.perm)

    @property
    def shape(self):
        """The ONNX-order shape (batch None)."""
        out = [None] * self.ndim
        for i, p in enumerate(self.perm):
            out[p] = self.tensor.shape[i]
        return tuple(out)

    def keras_axis(self, onnx_axis):
        return self.perm.index(onnx_axis % self.ndim)


def standard_perm(ndim, data_format):
    """Where an ONNX tensor of `ndim` dims lives in Keras: channels last (rank >= 3) or as is."""
    return interop.channels_last_perm(ndim) if data_format == "channels_last" else tuple(
        range(ndim))


def same_memory_order(value):
    """True when the Keras tensor's elements are in ONNX's memory order (axes of size 1 may
    sit anywhere), so a flatten or reshape needs no transpose."""
    shape = value.shape
    order = [p for p in value.perm if shape[p] != 1 or p == 0]
    return order == sorted(order)


class Context:
    """What a conversion sees: the node, its attributes and inputs, and layer helpers."""

    def __init__(self, walk, node, entry):
        self.walk = walk
        self.node = node
        self.attrs = node.attrs
        self.data_format = walk.data_format
        self.entry = entry
        self.inputs = []  # Value, np.ndarray (constant) or None (omitted optional input)
        self.x = None

    @property
    def perm(self):
        return self.x.perm

    def attr(self, name, default=None):
        return self.attrs.get(name, default)

    def flag(self, name, default=0):
        """A 0/1 attribute; anything else is refused (runtimes disagree on it)."""
        value = self.attrs.get(name, default)
        if value not in (0, 1):
            raise Unsupported(f"attribute {name}={value!r} must be 0 or 1")
        return bool(value)

    def const(self, index, what, optional=False, batch_ok=False):
        """Input `index` as a NumPy constant; `what` names it in errors. A value computed
        from a dynamic batch size (0 stands for it) is refused, except with `batch_ok`
        a 1-D value whose first entry is exactly the batch size and whose others are
        static (a target shape keeping the batch)."""
        value = self.inputs[index] if index < len(self.inputs) else None
        name = self.node.inputs[index] if index < len(self.node.inputs) else ""
        graph = self.walk.graph
        if name and graph.batch_dependent(name) and not (
                batch_ok and np.ndim(value) == 1 and graph.batch_first_only(name)):
            marks = np.asarray(graph.batch_marks[name]).reshape(-1).tolist()
            raise Unsupported(f"input {index} ({what}) is computed from the dynamic batch "
                              f"size (entries {[i for i, m in enumerate(marks) if m]} of "
                              f"{np.asarray(value).reshape(-1).tolist()}, 0 standing for "
                              f"the batch): export with a static batch")
        if value is None:
            if optional:
                return None
            raise Unsupported(f"input {index} ({what}) is missing")
        if isinstance(value, Value):
            raise Unsupported(f"input {index} ({what}) must be a constant (an initializer or "
                              f"a folded subgraph), got a computed tensor")
        return value

    def keeps_batch(self, index):
        """Whether constant input `index`'s first entry is the dynamic batch size."""
        name = self.node.inputs[index] if index < len(self.node.inputs) else ""
        marks = self.walk.graph.batch_marks.get(name)
        return marks is not None and np.asarray(marks).reshape(-1)[:1].tolist() == [1]

    def tensor_inputs(self):
        return [v for v in self.inputs if isinstance(v, Value)]

    def standard_perm(self, ndim):
        return standard_perm(ndim, self.data_format)

    def consumers(self, name=None):
        return self.walk.graph.consumers(name or self.node.outputs[0])

    def is_graph_output(self, name=None):
        return (name or self.node.outputs[0]) in self.walk.graph.outputs

    def output_shape(self, index=0):
        """The inferred ONNX shape of output `index` (None where unknown)."""
        return self.walk.graph.shapes.get(self.node.outputs[index])

    def layer(self, cls, *args, inputs=None, suffix=None, call_kwargs=None, **kwargs):
        """Creates `cls(*args, **kwargs)` named after the node and calls it on `inputs`
        (default: the first tensor input's Keras tensor), with `call_kwargs`."""
        name = self.walk.unique_name(self.node.name + (f"_{suffix}" if suffix else ""))
        layer = cls(*args, name=name, **kwargs)
        if inputs is None:
            inputs = self.x.tensor
        # The weights come from the file: build with zeros (JAX compiles every random
        # initializer per shape, seconds each), then give the configured ones back.
        initializers = {k: v for k, v in vars(layer).items() if k.endswith("_initializer")
                        and isinstance(v, keras.initializers.Initializer)}
        for key in initializers:
            setattr(layer, key, keras.initializers.Zeros())
        try:
            out = layer(inputs, **(call_kwargs or {}))
        finally:
            for key, value in initializers.items():
                setattr(layer, key, value)
        self.walk.layers.append((self.node, layer))
        self.last_layer = layer
        return out

    def move(self, value, perm, suffix="permute"):
        return self.walk.move(value, tuple(perm), self.node.name + "_" + suffix)

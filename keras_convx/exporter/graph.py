"""An ONNX graph under construction, with Keras-layout bookkeeping.

Every Keras tensor maps to an ONNX value plus a permutation `perm` such that
`onnx_value == transpose(keras_value, perm)`. Spatial lowerings ask for the
channels-first permutation and leave their results in it, so a channels_last
model carries one Transpose at each input and output and none inside.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper

from keras_convx import interop
from keras_convx.verification.correspondence import Row
from keras_convx.interop import compose, inverse  # noqa: F401  (re-exported)

# the dim name of a dynamic batch, shared by every graph input and output
BATCH_DIM = "batch"


class Value:
    """An ONNX value standing for a Keras tensor of `shape` (Keras layout)."""

    def __init__(self, name, shape, perm=None):
        self.name = name
        self.shape = tuple(shape)
        self.perm = tuple(perm) if perm is not None else tuple(range(len(self.shape)))

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"Value({self.name!r}, shape={self.shape}, perm={self.perm})"


def channels_first_perm(ndim, data_format):
    """The perm that puts a Keras tensor of `data_format` into N, C, spatial... order."""
    if data_format == "channels_first":
        return tuple(range(ndim))
    return interop.channels_first_perm(ndim)


class Unsupported(Exception):
    """A layer (or one of its argument combinations) has no ONNX lowering."""


class TensorEntry:
    """Where a Keras tensor lives in the ONNX graph, kept true through every rewrite.

    `key` names the Keras tensor as `operation:node_index:tensor_index` (a `keras.ops`
    node in a Functional model has no layer, so layer names are not enough); `label`
    is the operation's name for reports. `status` is `"live"` while an ONNX tensor
    holds the value, `"fused"` once a rewrite removed it (`into` says where it went).
    `kind` is `"output"`, or `"preactivation"` for the input of a squashing activation
    (softmax, sigmoid) that a layer fused into its output.
    """

    def __init__(self, key, label, value, kind="output", activation=None):
        self.key, self.label, self.kind, self.activation = key, label, kind, activation
        self.name, self.perm, self.shape = value.name, tuple(value.perm), tuple(value.shape)
        self.status, self.into = "live", None

    def to_row(self):
        return Row(key=self.key, label=self.label, onnx=self.name, perm=self.perm,
                   status=self.status, into=self.into, kind=self.kind,
                   activation=self.activation)


class GraphBuilder:
    """Collects nodes and initializers; names nodes after the Keras layer being lowered."""

    def __init__(self, opset):
        self.opset = opset
        self.nodes, self.inputs, self.outputs = [], [], []
        self.initializers = {}  # name -> numpy array, turned into TensorProtos once, at the end
        self.scope = "graph"
        self.tensors = []  # TensorEntry per lowered Keras tensor, in execution order
        self.preactivation = None  # (Value, activation name) a lowering fused, for the map
        self.bn_folded = self.pads_fused = 0
        self._names = set()
        self._transposes = {}

    def unique(self, base):
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def node(self, op_type, inputs, n_outputs=1, suffix=None, **attrs):
        """Adds a node named `<layer>/<op>`; returns its output name(s)."""
        base = f"{self.scope}/{suffix or op_type}"
        name = self.unique(base)
        outputs = [self.unique(f"{name}:{i}") for i in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=name, **attrs))
        return outputs[0] if n_outputs == 1 else outputs

    def const(self, array, suffix="const", dtype=None):
        array = np.asarray(array, dtype=dtype)
        name = self.unique(f"{self.scope}/{suffix}")
        self.initializers[name] = array
        return name

    def ints(self, values, suffix="shape"):
        return self.const(np.asarray(list(values), np.int64), suffix)

    def to_perm(self, value, perm):
        """`value` re-laid out so that onnx == transpose(keras, perm); one Transpose, cached."""
        perm = tuple(perm)
        if value.perm == perm:
            return value
        key = (value.name, value.perm, perm)  # a view (Permute) shares the name
        if key not in self._transposes:
            rel = compose(inverse(value.perm), perm)
            target = [value.shape[p] for p in perm]
            if interop.only_unit_axes_move(value.shape, value.perm, perm) and \
                    sum(d is None for d in target[1:]) <= 1 and perm[0] == value.perm[0] == 0:
                # Only size-1 axes move (e.g. a 1-channel image): the memory order is the
                # same, so a Reshape (no copy) does it (batch copied, one unknown inferred).
                dims = [0] + [-1 if d is None else d for d in target[1:]]
                out = self.node("Reshape", [value.name, self.ints(dims, "shape")],
                                suffix="Reshape")
            else:
                out = self.node("Transpose", [value.name], perm=list(rel), suffix="Transpose")
            self._transposes[key] = Value(out, value.shape, perm)
        return self._transposes[key]

    def onnx_shape(self, value):
        """Static ONNX-side shape (None for unknown dims)."""
        return tuple(value.shape[p] for p in value.perm)

    @staticmethod
    def _dims(name, shape, dynamic):
        """ONNX dims: one name for the batch on every input and output (so ONNX knows they
        are equal), `<tensor>_d<i>` for other dynamic axes."""
        return [(BATCH_DIM if i == 0 else f"{name}_d{i}") if dynamic[i] or shape[i] is None
                else int(shape[i]) for i in range(len(shape))]

    def add_input(self, name, shape, dynamic):
        dims = self._dims(name, shape, dynamic)
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        self._names.add(name)

    def add_output(self, name, source, shape, dynamic):
        """Declares `source` as graph output `name` (renaming it; an Identity only if it must)."""
        graph_inputs = {i.name for i in self.inputs}
        taken = {o.name for o in self.outputs}
        if name in graph_inputs or name in taken:  # Model(x, x): a name is defined only once
            name = self.unique(f"{name}_output")
        if source in graph_inputs or source in taken or source in self.initializers:
            self.nodes.append(helper.make_node("Identity", [source], [name],
                                               name=self.unique(f"{self.scope}/output")))
        else:
            self.rename(source, name)
        self._names.add(name)
        dims = self._dims(name, shape, dynamic)
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))

    def bind(self, key, label, value, kind="output", activation=None):
        """Records that ONNX value `value` holds the Keras tensor `key`."""
        self.tensors.append(TensorEntry(key, label, value, kind, activation))

    def rename(self, old, new):
        """Renames ONNX tensor `old` to `new` in every node and in the tensor map."""
        for node in self.nodes:
            node.input[:] = [new if i == old else i for i in node.input]
            node.output[:] = [new if o == old else o for o in node.output]
        for entry in self.tensors:
            if entry.name == old:
                entry.name = new

    def fuse_away(self, name, into):
        """ONNX tensor `name` no longer exists: its Keras tensors were fused `into` a node."""
        for entry in self.tensors:
            if entry.name == name and entry.status == "live":
                entry.status, entry.into = "fused", into.rsplit("/", 1)[0]

    def replace_output(self, node, new_name, into):
        """`node` now writes `new_name` instead of its first output, which disappears
        (its Keras tensors were fused `into` the node that wrote `new_name`)."""
        self.fuse_away(node.output[0], into.name)
        node.output[0] = new_name

    def remove(self, node, into):
        """Drops `node`; the Keras tensors its output held are fused `into` another node."""
        self.fuse_away(node.output[0], into.name)
        self.nodes.remove(node)

    def correspondence(self):
        """The tensor map as typed rows (`keras_convx.verification.correspondence`)."""
        return [entry.to_row() for entry in self.tensors]

    def model(self, graph_name, producer="keras_convx"):
        # Built in place: helper.make_graph/make_model copy every weight twice more
        # (a third of RetinaNet's export time for its 15 MB of weights).
        used = {i for n in self.nodes for i in n.input}
        model = onnx.ModelProto(ir_version=min(onnx.IR_VERSION, 10), producer_name=producer)
        model.opset_import.add(domain="", version=self.opset)
        graph = model.graph
        graph.name = graph_name
        graph.node.extend(self.nodes)
        graph.input.extend(self.inputs)
        graph.output.extend(self.outputs)
        for name, array in self.initializers.items():
            if name in used:
                array = np.asarray(array)
                tensor = graph.initializer.add()
                tensor.name = name
                tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
                tensor.dims.extend(array.shape)
                # tobytes writes C order from any view: one copy of a transposed weight
                tensor.raw_data = array.astype(array.dtype.newbyteorder("<"),
                                               copy=False).tobytes(order="C")
        return model


def float_array(value):
    import keras

    if isinstance(value, keras.Variable) and keras.backend.backend() == "tensorflow":
        # one ReadVariableOp: the public read adds an Identity and more dispatch
        # (125 us instead of 420 us a weight; RetinaNet reads 106 of them)
        read = getattr(getattr(value, "value", None), "_read_variable_op", None)
        if read is not None:
            return np.asarray(read().numpy(), np.float32)
    return np.asarray(keras.ops.convert_to_numpy(value), np.float32)


__all__ = ["GraphBuilder", "TensorEntry", "Value", "Unsupported", "channels_first_perm", "float_array", "onnx"]

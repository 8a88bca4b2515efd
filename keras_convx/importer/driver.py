"""The graph walk: ONNX nodes in order, each through its registered conversion, into a
Functional Keras model. Owns the map from each ONNX tensor to the Keras tensor holding it
and that tensor's axis order, and moves layouts only where a conversion needs it."""

import dataclasses

import keras
import numpy as np

from keras_convx import interop
from keras_convx.interop.names import keras_layer_name
from keras_convx.importer import registry
from keras_convx.importer.errors import OnnxImportError, Unsupported, UnsupportedOps

DATA_FORMATS = ("channels_last", "channels_first")
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

    def layer(self, cls, *args, inputs=None, suffix=None, **kwargs):
        """Creates `cls(*args, **kwargs)` named after the node and calls it on `inputs`
        (default: the first tensor input's Keras tensor)."""
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
            out = layer(inputs)
        finally:
            for key, value in initializers.items():
                setattr(layer, key, value)
        self.walk.layers.append((self.node, layer))
        self.last_layer = layer
        return out

    def move(self, value, perm, suffix="permute"):
        return self.walk.move(value, tuple(perm), self.node.name + "_" + suffix)


LAYOUTS = ("keras", "onnx")


class Walk:
    def __init__(self, graph, data_format, layouts="keras"):
        if data_format not in DATA_FORMATS:
            raise ValueError(f"import_onnx: data_format must be one of {DATA_FORMATS}, got "
                             f"{data_format!r}")
        if layouts not in LAYOUTS:
            raise ValueError(f"import_onnx: layouts must be one of {LAYOUTS}, got {layouts!r}")
        self.graph = graph
        self.data_format = data_format
        # "onnx": every graph input and output keeps the file's layout (a drop-in for the
        # onnxruntime session); the tensors inside are still channels-last
        self.layouts_mode = layouts
        self.names = set()
        self.layers = []
        self.permutes = 0

    def unique_name(self, name):
        base = keras_layer_name(name) or "node"
        candidate, i = base, 1
        while candidate in self.names:
            candidate, i = f"{base}_{i}", i + 1
        self.names.add(candidate)
        return candidate

    def move(self, value, perm, name):
        """The value with its Keras axes in ONNX order `perm` (a Permute layer if needed)."""
        if value.perm == perm:
            return value
        if value.flat is not None:
            raise Unsupported("a flattened tensor in Keras order can only feed Gemm/MatMul")
        if value.perm[0] != 0 or perm[0] != 0:
            raise Unsupported(f"moving the batch axis (axis order {perm}) is not supported")
        shape = value.shape
        if interop.only_unit_axes_move(shape, value.perm, perm):
            # only size-1 axes move: a reshape, no data movement
            layer = keras.layers.Reshape(tuple(shape[p] for p in perm[1:]),
                                         name=self.unique_name(name))
        else:
            dims = tuple(value.perm.index(p) for p in perm[1:])
            layer = keras.layers.Permute(dims, name=self.unique_name(name))
            self.permutes += 1
        self.layers.append((None, layer))
        return Value(layer(value.tensor), perm)

    def _prepare(self, ctx, entry):
        values = []
        for name in ctx.node.inputs:
            if not name:
                values.append(None)
            elif name in self.graph.constants:
                values.append(self.graph.constants[name])
            else:
                values.append(self.values[name])
        tensors = [v for v in values if isinstance(v, Value)]
        first = tensors[0] if tensors else None
        if entry.layout == registry.SPATIAL and first is not None:
            want = self.standard_perm(first.ndim)
            values = [self.move(v, want, ctx.node.name + "_to_" + self.data_format)
                      if v is first else v for v in values]
        elif entry.layout == registry.ONNX_ORDER and first is not None:
            values = [self.move(v, tuple(range(v.ndim)), ctx.node.name + "_to_onnx_order")
                      if isinstance(v, Value) and v.flat is None else v for v in values]
        elif first is not None and entry.layout == registry.SAME:
            values = [self.move(v, first.perm, ctx.node.name + "_align")
                      if isinstance(v, Value) and v is not first and v.ndim == first.ndim
                      else v for v in values]
        ctx.inputs = values
        ctx.x = next((v for v in values if isinstance(v, Value)), None)

    def standard_perm(self, ndim):
        return standard_perm(ndim, self.data_format)

    def run(self):
        graph = self.graph
        self.values = {}
        model_inputs = []
        # each input's and output's Keras axis order (ONNX axes), for verification's feeds
        self.input_perms, self.output_perms = [], []
        for name, shape in graph.inputs:
            perm = self.standard_perm(len(shape))
            if self.layouts_mode == "onnx" or self._arrives_channels_last(name, shape):
                perm = tuple(range(len(shape)))  # keep the file's signature
            keras_shape = tuple(shape[p] for p in perm)[1:]
            tensor = keras.Input(shape=keras_shape, name=self.unique_name(name))
            model_inputs.append(tensor)
            self.input_perms.append(perm)
            self.values[name] = Value(tensor, perm)
        failures, poisoned, self.stand_ins = [], set(), 0
        for node in graph.nodes:
            if any(i in poisoned for i in node.inputs):
                poisoned.update(node.outputs)
                continue
            reason = self._convert(node)
            if reason is not None:
                failures.append((node.name, node.op_type, reason))
                self._stand_in(node, poisoned)
        if failures:
            raise UnsupportedOps(failures, not_tried=len(
                [n for n in graph.nodes if any(o in poisoned for o in n.outputs)]))
        outputs = []
        for name in graph.outputs:
            if name in graph.constants:
                raise OnnxImportError(f"import_onnx: graph output {name!r} is a constant (it "
                                      f"does not depend on any input)")
            value = self.values[name]
            try:
                value = self.move(value, self._output_perm(name, value), name + "_output")
                self.output_perms.append(value.perm)
            except Unsupported as err:
                raise OnnxImportError(f"import_onnx: graph output {name!r}: {err}") from None
            outputs.append(value.tensor)
        return model_inputs, outputs

    def layouts(self):
        """What moved, per graph input and output: a list of dicts with the ONNX name,
        `role`, the ONNX shape, the Keras shape (batch None), `perm` (Keras axis i is ONNX
        axis perm[i]) and `moved` (False: the Keras tensor is in the file's layout)."""
        rows = []
        for role, names, perms in (("input", [n for n, _ in self.graph.inputs],
                                    self.input_perms),
                                   ("output", self.graph.outputs, self.output_perms)):
            for name, perm in zip(names, perms):
                onnx_shape = list(self.graph.shapes.get(name) or
                                  dict(self.graph.inputs).get(name) or [])
                keras_shape = [onnx_shape[p] for p in perm] if len(onnx_shape) == len(perm) \
                    else []
                rows.append({"name": name, "role": role, "onnx_shape": onnx_shape,
                             "keras_shape": [None] + keras_shape[1:] if keras_shape else [],
                             "perm": list(perm), "moved": list(perm) != sorted(perm)})
        return rows

    def _stand_in(self, node, poisoned):
        """After a refused node, a placeholder of each output's inferred shape lets the
        walk go on, so every unsupported node is listed at once; outputs of unknown
        shape poison what reads them."""
        for out in node.outputs:
            shape = self.graph.shapes.get(out)
            if not out:
                continue
            if shape is None or len(shape) < 1 or None in shape[1:]:
                poisoned.add(out)
                continue
            perm = self.standard_perm(len(shape))
            tensor = keras.Input(shape=tuple(shape[p] for p in perm)[1:],
                                 name=self.unique_name(f"stand_in_{out}"))
            self.values[out] = Value(tensor, perm)
            self.stand_ins += 1

    def _convert(self, node):
        """Converts one node into `self.values`; returns the reason it can't, or None."""
        graph = self.graph
        opset = graph.opset.get(node.domain if node.domain != "ai.onnx" else "", 1)
        entry = registry.find(node.domain, node.op_type, opset)
        if entry is None:
            domain = node.domain or "ai.onnx"
            if node.domain not in registry.ONNX_DOMAINS + (registry.FUSED_DOMAIN,):
                return f"unknown domain {domain!r} (accepted: ai.onnx)"
            return f"no conversion for {domain} {node.op_type} at opset {opset}"
        ctx = Context(self, node, entry)
        try:
            for key, value in node.attrs.items():
                values = value if isinstance(value, list) else [value]
                if any(isinstance(v, float) and not np.isfinite(v) for v in values):
                    raise Unsupported(f"attribute {key}={value!r} is not finite")
            self._prepare(ctx, entry)
            if ctx.x is None:
                if any(graph.batch_dependent(i) for i in node.inputs):
                    raise Unsupported("computes with the dynamic batch size on constants "
                                      "alone (export with a static batch)")
                raise Unsupported("needs at least one computed (non-constant) input")
            result = entry.fn(ctx)
        except Unsupported as err:
            return str(err)
        except OnnxImportError:
            raise
        except (ValueError, TypeError) as err:  # a Keras layer refused the arguments
            return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        results = result if isinstance(result, list) else [result]
        for out, r in zip(node.outputs, results):
            if out and not isinstance(r, Value):
                perm = ctx.x.perm if len(ctx.x.perm) == len(r.shape) else tuple(
                    range(len(r.shape)))
                r = Value(r, perm)
            if out:
                self.values[out] = r
        unused = [out for out in node.outputs[len(results):]
                  if out and (graph.consumers(out) or out in graph.outputs)]
        if unused:
            return f"output {unused[0]!r} is used but not supported"
        return None

    def _moves_channels(self, node, source, perm):
        """Whether `node` lays `source` out by `perm` (a Transpose, or a Reshape that only
        moves an axis of size 1, as exporters write it for one channel)."""
        if node.inputs[:1] != [source]:
            return False
        if node.op_type == "Transpose":
            return tuple(int(p) for p in node.attrs.get("perm", ())) == perm
        shape, out = self.graph.shapes.get(source), self.graph.shapes.get(node.outputs[0])
        return (node.op_type == "Reshape" and shape is not None and out is not None
                and len(shape) == len(perm) and tuple(out[1:]) ==
                tuple(shape[p] for p in perm)[1:] and interop.unit_axes_relabel(
                    (None,) + tuple(shape[1:]), (None,) + tuple(out[1:])) is not None)

    def _near_channels_first(self, name, readers, depth=0):
        """Whether `name` is read (`readers`) or written by an op of N, C, spatial... data,
        looking through elementwise ops."""
        if depth > MAX_LAYOUT_DEPTH:
            return False
        if readers:
            nodes = self.graph.consumers(name)
        else:
            nodes = [n for n in self.graph.nodes if name in n.outputs]
        for node in nodes:
            if node.op_type in CHANNELS_FIRST_OPS:
                return True
            if node.op_type in ELEMENTWISE + FUSED_ELEMENTWISE + ("Softmax", "LogSoftmax"):
                nxt = node.outputs[:1] if readers else [
                    i for i in node.inputs if i and i not in self.graph.constants]
                if any(self._near_channels_first(n, readers, depth + 1) for n in nxt):
                    return True
        return False

    def _leads_to(self, name, perm, depth=0):
        """Whether every reader of `name` lays it out by `perm`, directly or after
        elementwise ops with constant operands (a Rescaling or Normalization first)."""
        users = self.graph.consumers(name)
        if not users or name in self.graph.outputs or depth > MAX_LAYOUT_DEPTH:
            return False
        for user in users:
            if self._moves_channels(user, name, perm):
                if not self._near_channels_first(user.outputs[0], readers=True):
                    return False  # a transpose of the model's own, not a layout move
                continue
            elementwise = (user.op_type in ELEMENTWISE and user.domain in registry.ONNX_DOMAINS
                           or user.op_type in FUSED_ELEMENTWISE
                           and user.domain == registry.FUSED_DOMAIN)
            if not (elementwise and all(i == name or i in self.graph.constants for i in user.inputs)
                    and len(user.outputs) == 1
                    and len(self.graph.shapes.get(user.outputs[0]) or ()) == len(perm)
                    and self._leads_to(user.outputs[0], perm, depth + 1)):
                return False
        return True

    def _arrives_channels_last(self, name, shape):
        """An input that every reader moves NHWC -> NCHW first (Keras, TensorFlow, tf2onnx
        and keras_convx's exporter write that): kept NHWC in Keras."""
        ndim = len(shape)
        return (self.data_format == "channels_last" and ndim >= 3
                and self._leads_to(name, interop.channels_first_perm(ndim)))

    def _output_perm(self, name, value):
        """Channels last for an ONNX NCHW output; ONNX's order as is for one the graph
        itself moved NCHW -> NHWC last (Keras's layout in the file)."""
        if self.layouts_mode == "onnx":
            return tuple(range(value.ndim))
        producers = {o: n for n in self.graph.nodes for o in n.outputs}
        producer, perm = producers.get(name), interop.channels_last_perm(value.ndim)
        for _ in range(MAX_LAYOUT_DEPTH):  # back through elementwise ops (a Softmax last)
            if (producer is None or producer.op_type not in ELEMENTWISE + FUSED_ELEMENTWISE
                    + ("Softmax", "Concat")
                    or producer.op_type != "Concat" and
                    len([i for i in producer.inputs if i in producers]) != 1):
                break
            producer = producers.get(next((i for i in producer.inputs if i in producers), ""))
        exported = self.graph.exported_output_perms
        if exported is not None and self.data_format == "channels_last":
            # a file keras_convx exported: back to the Keras model's own layout
            moved = exported[self.graph.outputs.index(name)]
            if moved is None or len(moved) == value.ndim:
                return tuple(range(value.ndim)) if moved is None else tuple(
                    int(i) for i in np.argsort(moved))
        if value.ndim == 3 and (producer is None or producer.op_type not in CHANNELS_FIRST_OPS):
            # a (batch, rows, fields) table a detector or a sequence head computes, not a
            # 1-D feature map: the user's decoder reads the file's layout
            return tuple(range(value.ndim))
        if (self.data_format == "channels_last" and value.ndim >= 3 and producer is not None
                and producer.inputs and self._moves_channels(producer, producer.inputs[0], perm)
                and self._near_channels_first(producer.inputs[0], readers=False)):
            return tuple(range(value.ndim))
        return self.standard_perm(value.ndim)


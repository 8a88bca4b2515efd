"""The graph walk: ONNX nodes in order, each through its registered conversion, into a
Functional Keras model. Owns the map from each ONNX tensor to the Keras tensor holding it
and that tensor's axis order, and moves layouts only where a conversion needs it.

What a conversion sees (`Value`, `Context`) lives in `context`; which layouts the graph's
inputs and outputs take, in `layout_inference`.
"""

import keras
import numpy as np

from keras_convx import interop
from keras_convx.interop.names import keras_layer_name
from keras_convx.importer import layout_inference, registry
from keras_convx.importer.context import Context, Value, standard_perm
from keras_convx.importer.errors import OnnxImportError, Unsupported, UnsupportedOps
from keras_convx.verification.correspondence import Row
# names defined here before `context` and `layout_inference` split off (`from driver import`)
from keras_convx.importer.context import same_memory_order  # noqa: F401
from keras_convx.importer.layout_inference import (  # noqa: F401
    CHANNELS_FIRST_OPS, ELEMENTWISE, FUSED_ELEMENTWISE, MAX_LAYOUT_DEPTH)

DATA_FORMATS = ("channels_last", "channels_first")
LAYOUTS = ("keras", "onnx")


class Walk:
    """One import's graph walk: `run` converts every node and returns the model's inputs
    and outputs; `values` maps each ONNX tensor to its `Value`."""

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
        if value.perm[0] != perm[0]:  # (Keras axis 0, the batch, must stay where it is)
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
            if self.layouts_mode == "onnx" or self._arrives_channels_last(name, shape) or \
                    layout_inference.near_sequence_op(self.graph, name, readers=True):
                perm = tuple(range(len(shape)))  # keep the file's signature
            if len(shape) == 3 and layout_inference.time_major_input(self.graph, name):
                if self.layouts_mode == "onnx":
                    raise OnnxImportError(
                        f"import_onnx: graph input {name!r} is a time-major sequence (batch "
                        f"on axis 1, read by an LSTM/GRU): a Keras model's inputs are "
                        f"batch-first, so layouts='onnx' can't keep it; use layouts='keras' "
                        f"(the input becomes (batch, seq, features))")
                perm = (1, 0, 2)  # the batch is ONNX axis 1: Keras (batch, seq, features)
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
                perm = self._output_perm(name, value)
                if value.perm[0] != 0:  # time-major: Keras's outputs are batch-first
                    b = value.perm[0]
                    if self.layouts_mode == "onnx":
                        raise Unsupported(f"its batch is axis {b} (a time-major sequence): "
                                          f"a Keras model's outputs are batch-first, so "
                                          f"layouts='onnx' can't keep it; use "
                                          f"layouts='keras'")
                    perm = (b,) + tuple(a for a in range(value.ndim) if a != b)
                value = self.move(value, perm, name + "_output")
                self.output_perms.append(value.perm)
            except Unsupported as err:
                raise OnnxImportError(f"import_onnx: graph output {name!r}: {err}") from None
            outputs.append(value.tensor)
        return model_inputs, outputs

    def correspondence(self, graph):
        """The tensor map, as the exporter's builder gives it: one `Row` per ONNX tensor
        a Keras tensor holds (not the columns of a permuted flatten), in graph order."""
        rows, seen = [], set()
        for node in graph.nodes:
            for out in node.outputs:
                value = self.values.get(out)
                history = getattr(getattr(value, "tensor", None), "_keras_history", None)
                if history is None or value.flat is not None or out in seen:
                    continue
                seen.add(out)
                key = f"{history.operation.name}:{history.node_index}:{history.tensor_index}"
                # a Value maps Keras axis i to ONNX axis perm[i]; a Row, ONNX axis j to
                # Keras axis perm[j]
                rows.append(Row(key=key, label=node.name, onnx=out,
                                perm=tuple(int(i) for i in np.argsort(value.perm))))
        return rows

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
            _check_batch_first(ctx, entry)
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

    def _arrives_channels_last(self, name, shape):
        return layout_inference.arrives_channels_last(self.graph, self.data_format, name, shape)

    def _output_perm(self, name, value):
        if self.layouts_mode == "onnx":
            return tuple(range(value.ndim))
        return layout_inference.output_perm(self.graph, self.data_format, name, value)


# conversions that take a tensor whose batch a Transpose moved off ONNX axis 0 (they read
# `Value.perm`); any other op would index the batch as if it were axis 0
BATCH_MOVED_OK = ("Transpose", "Squeeze", "Reshape", "Slice", "LSTM", "GRU", "FoldedDense")


def _check_batch_first(ctx, entry):
    for value in ctx.tensor_inputs():
        if value.perm[0] != 0 and entry.op_type not in BATCH_MOVED_OK:
            raise Unsupported(f"its input has the batch on ONNX axis {value.perm[0]} (moved "
                              f"by a Transpose): only {', '.join(BATCH_MOVED_OK)} take such "
                              f"tensors here")

"""Checks an imported model against onnxruntime on the same random inputs, with the
export path's rule (`keras_convx.verification.rules`: error relative to each tensor's scale)."""

import dataclasses

import numpy as np

from keras_convx.verification import rules as stats
from keras_convx.verification.inputs import input_distribution
from keras_convx.verification.ort_runner import INSPECT_LEVEL, available_providers
from keras_convx.importer.driver import standard_perm
from keras_convx.importer.errors import OnnxImportError


@dataclasses.dataclass
class ImportVerifyReport:
    """The imported Keras model against onnxruntime on the same inputs, by the export's rule.

    `outputs`: {ONNX output name: `stats.TensorError`}. `tensors`: [(node name, op type,
    ONNX tensor name, `stats.TensorError`)] for every tensor the Keras model holds, in graph
    order. `passed` is True when no output or tensor fails (NaN/Inf on either side fails)
    and every output is informative: a constant output proves nothing, and never passes.
    """

    outputs: dict
    tolerance: float
    batch: int
    tensors: list = dataclasses.field(default_factory=list)
    # a QDQ file: the quantization parameters it held (the import and the comparison are
    # of its float graph: weights dequantized, activation pairs removed)
    quantization: list = dataclasses.field(default_factory=list)

    @property
    def informative(self):
        return any(e.informative for e in self.outputs.values()) or \
            any(row[3].informative for row in self.tensors)

    @property
    def failed(self):
        """The failing tensors, in graph order (the first is where it broke)."""
        return [row for row in self.tensors if row[3].failed(self.tolerance)]

    @property
    def passed(self):
        """The export's rule: nothing fails, and every output is informative."""
        return (all(e.informative for e in self.outputs.values()) and not self.failed
                and not any(e.failed(self.tolerance) for e in self.outputs.values()))

    @property
    def worst(self):
        return max((e.rel for e in self.outputs.values() if e.informative), default=0.0)

    def reason(self):
        """Why the report does not pass, in one line ("passed" when it does)."""
        if self.passed:
            return "passed"
        if self.failed:
            node, op, _, e = self.failed[0]
            what = f"NaN/Inf ({e.nonfinite})" if e.nonfinite else f"rel {e.rel:.2e}"
            return (f"the imported model differs from onnxruntime beyond {self.tolerance:g} "
                    f"of the tensor scale; first difference at node {node!r} ({op}), {what}")
        bad = [n for n, e in self.outputs.items() if e.failed(self.tolerance)]
        if bad:
            return f"output {bad[0]} differs from onnxruntime beyond {self.tolerance:g}"
        return "an output is constant or zero: nothing proves it"

    def to_json(self):
        import json

        return json.dumps({
            "passed": self.passed, "reason": self.reason(), "tolerance": self.tolerance,
            "batch": self.batch, "rule": stats.TOLERANCE_RULE,
            "quantization": self.quantization,
            "outputs": {n: dataclasses.asdict(e) for n, e in self.outputs.items()},
            "tensors": [{"node": n, "op": op, "tensor": t, **dataclasses.asdict(e)}
                        for n, op, t, e in self.tensors]}, indent=2, default=str)

    def summary(self):
        lines = []
        for name, e in self.outputs.items():
            status = "FAIL" if e.failed(self.tolerance) else (
                "ok" if e.informative else "uninformative")
            lines.append(f"{name}: {status} (rel {e.rel:.2e}, shape {list(e.shape)})")
        if self.quantization:
            lines.append(f"a QDQ graph: compared as float ({len(self.quantization)} "
                         f"quantize/dequantize parameter sets kept in the report)")
        compared = [r for r in self.tensors if r[3].informative]
        lines.append(f"{len(self.tensors)} tensors compared ({len(compared)} informative), "
                     f"{len(self.failed)} failing")
        if self.failed:
            node, op, name, e = self.failed[0]
            what = (f"NaN/Inf ({e.nonfinite})" if e.nonfinite else
                    f"rel {e.rel:.2e}, tolerance {self.tolerance:g}")
            lines.append(f"first difference at node {node!r} ({op}): {what}")
        elif not all(e.informative for e in self.outputs.values()):
            lines.append("an output is constant or zero: nothing proves it (an uninformative "
                         "tensor never passes)")
        return "\n".join(lines)


def float_graph(onnx_model):
    """The float graph a QDQ file imports as: `onnx_model` with its weights dequantized
    into float initializers (as the import folds them; onnxruntime would otherwise fuse a
    weight's DequantizeLinear into an integer kernel at ENABLE_ALL) and each activation
    QuantizeLinear -> DequantizeLinear pair replaced by the Clip to its range; the model
    itself when it has no QDQ nodes."""
    import onnx
    from onnx import numpy_helper

    from keras_convx.importer.frontend import Node, _dequantize
    from keras_convx.importer.passes import qdq_pairs, saturation_range

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
            folded.append(numpy_helper.from_array(_dequantize(node, feeds)[0], node.outputs[0]))
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


def _session(onnx_model, provider="CPUExecutionProvider", level=INSPECT_LEVEL):
    from keras_convx.verification.ort_runner import session

    return session(onnx_model.SerializeToString(), provider, level)


# Sizes dynamic height/width (any symbolic axis after the batch) are verified at: the
# i-th symbolic axis of an input gets size + 8 * i (16x24 and 32x40 for H and W), so
# the axes differ and both sizes are multiples of 8 (a U-Net's pools and up-samplings).
DYNAMIC_SIZES = (16, 32)


def _inputs(session, data_format, seed, model=None, perms=None, size=DYNAMIC_SIZES[0]):
    """Inputs at the model's scale (as the export draws them: 0..255 before a Rescaling,
    a Normalization's statistics, else N(0, 1)): (ONNX feeds, the same arrays in the Keras
    layout, batch). Symbolic axes after the batch get `size` (+ 8 per further axis)."""
    rng = np.random.default_rng(seed)
    feeds, keras_inputs = {}, []
    batch = 2
    for spec in session.get_inputs():
        shape = [d if isinstance(d, int) else None for d in spec.shape]
        batch = shape[0] if shape and shape[0] is not None else batch
    for i, spec in enumerate(session.get_inputs()):
        shape = [d if isinstance(d, int) else batch for d in spec.shape[:1]]
        extra = 0
        for d in spec.shape[1:]:
            shape.append(d if isinstance(d, int) else size + 8 * extra)
            extra += not isinstance(d, int)
        perm = perms[i] if perms else standard_perm(len(shape), data_format)
        kind, a, b = ("normal", 0.0, 1.0) if model is None else input_distribution(model, i)
        keras_shape = [shape[p] for p in perm]
        x = rng.uniform(a, b, keras_shape) if kind == "uniform" else \
            a + b * rng.standard_normal(keras_shape)
        x = np.asarray(x, np.float32)
        keras_inputs.append(x)
        feeds[spec.name] = np.ascontiguousarray(np.transpose(x, np.argsort(perm)))
    return feeds, keras_inputs, batch


def verify_import(model, onnx_model, data_format="channels_last", seed=0, tolerance=None,
                  providers=None, optimization_level="all", sizes=DYNAMIC_SIZES):
    """Runs `model` (Keras, as `import_onnx` built it) and `onnx_model` (a ModelProto,
    external data loaded) on the same inputs, drawn at the model's scale, and compares
    the outputs (at `optimization_level`, on every provider) and every tensor the Keras
    model holds (unoptimised, on CPU); returns an `ImportVerifyReport`.

    A graph with symbolic axes after the batch (dynamic height/width) is compared at each
    of `sizes`: the i-th symbolic axis of an input gets `size + 8 * i`."""
    import keras

    from keras_convx.importer.api import build

    tolerance = stats.CPU_TOLERANCE if tolerance is None else tolerance
    providers = available_providers(providers)
    outputs, batch = {}, 2
    built = build(onnx_model, data_format)  # the layouts the import chose, and its tensors
    onnx_model = float_graph(onnx_model)
    walk = built[1]
    dynamic = any(not isinstance(d, int) for spec in _session(onnx_model).get_inputs()
                  for d in spec.shape[1:])
    for size in sizes if dynamic else sizes[:1]:
        for provider in providers:
            session = _session(onnx_model, provider, optimization_level)
            feeds, keras_inputs, batch = _inputs(session, data_format, seed, model,
                                                 walk.input_perms, size)
            expected = session.run(None, feeds)
            actual = keras.tree.flatten(model(keras_inputs if len(keras_inputs) > 1
                                              else keras_inputs[0], training=False))
            if len(actual) != len(expected):
                raise OnnxImportError(f"verify: the Keras model has {len(actual)} outputs, "
                                      f"the ONNX model {len(expected)}")
            for spec, a, e, perm in zip(session.get_outputs(), actual, expected,
                                        walk.output_perms):
                a = np.asarray(keras.ops.convert_to_numpy(a))
                a = np.transpose(a, np.argsort(perm))  # back to ONNX order
                name = spec.name if len(providers) == 1 else f"{spec.name} [{provider}]"
                if dynamic:
                    name += " @ " + "x".join(str(n) for n in e.shape[2:] or e.shape[1:])
                outputs[name] = stats.tensor_error(a, e)
    tensors = diagnose_import(onnx_model, data_format, seed, model=model, _built=built)
    return ImportVerifyReport(outputs, tolerance, batch, tensors, built[2].quantization)


def diagnose_import(onnx_model, data_format="channels_last", seed=0, tolerance=None,
                    model=None, _built=None):
    """Every tensor the imported model holds, against onnxruntime's: a list of
    `(node name, op type, ONNX tensor name, stats.TensorError)` in graph order, so the
    first node that disagrees is the first row failing `tolerance`.

    Args:
        onnx_model: a ModelProto with its data (or a path: external data is checked).
        model: the imported Keras model to read the tensors from (its layers are found by
            the names `import_onnx` gives them); default a fresh import of `onnx_model`.
    """
    import keras
    import onnx

    from keras_convx.importer.api import build

    if not isinstance(onnx_model, onnx.ModelProto):
        build(onnx_model, data_format)  # the checks (external data) before onnx loads it
        onnx_model = onnx.load(onnx_model)
    built, walk, graph = _built or build(onnx_model, data_format)
    onnx_model = float_graph(onnx_model)
    rows, tensors = [], []
    for node in graph.nodes:
        for out in node.outputs:
            value = walk.values.get(out)
            if value is not None and value.flat is None and out not in [t[2] for t in rows]:
                tensor = value.tensor if model is None else _same_tensor(model, value.tensor)
                if tensor is not None:
                    rows.append((node.name, node.op_type, out, value.perm))
                    tensors.append(tensor)
    if not rows:
        return []
    model = built if model is None else model
    probe = onnx.ModelProto()
    probe.CopyFrom(onnx_model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=r[2]) for r in rows if r[2] not in known)
    session = _session(probe)
    feeds, keras_inputs, _ = _inputs(session, data_format, seed, model, walk.input_perms)
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(None, feeds)))
    inner = keras.Model(model.inputs, tensors)
    actual = inner(keras_inputs if len(keras_inputs) > 1 else keras_inputs[0], training=False)
    actual = actual if isinstance(actual, (list, tuple)) else [actual]
    out = []
    for (node, op, name, perm), a in zip(rows, actual):
        a = np.transpose(np.asarray(keras.ops.convert_to_numpy(a)), np.argsort(perm))
        out.append((node, op, name, stats.tensor_error(a, expected[name],
                                                       matching_inf_ok=True)))
    return out


def _same_tensor(model, tensor):
    """The tensor of `model` that `tensor` (of a fresh import of the same graph) is: the
    same layer by name, the same output; None when the model has no such layer."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    try:
        layer = model.get_layer(history.operation.name)
    except ValueError:
        return None
    if layer is None or len(layer._inbound_nodes) <= history.node_index:
        return None
    outputs = layer._inbound_nodes[history.node_index].output_tensors
    return outputs[history.tensor_index] if history.tensor_index < len(outputs) else None

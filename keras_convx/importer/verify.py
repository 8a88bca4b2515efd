"""Checks an imported model against onnxruntime on the same random inputs, with the
export path's rule (`keras_convx.verification.rules`: error relative to each tensor's scale)."""

import dataclasses

import numpy as np

from keras_convx.verification import rules as stats
from keras_convx.verification.inputs import input_distribution
from keras_convx.verification.ort_runner import INSPECT_LEVEL, available_providers
from keras_convx.importer.convert import build
from keras_convx.importer.driver import standard_perm
from keras_convx.importer.errors import OnnxImportError


@dataclasses.dataclass
class ImportVerifyReport:
    """The imported Keras model against onnxruntime on the same inputs, by the export's rule:
    the `verify` section of an import's `Report`.

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
    # what a runtime raised instead of answering (the runtime, the input shape, the node
    # where known): a verification that could not run never passes
    error: str = ""
    # the sizes of the dynamic axes after the batch the model was compared at
    sizes: list = dataclasses.field(default_factory=list)
    # per graph input/output: what moved to channels-last (`model.import_layouts`)
    layouts: list = dataclasses.field(default_factory=list)
    # wall time of the verification
    seconds: float = 0.0

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
        return (not self.error and bool(self.outputs)
                and all(e.informative for e in self.outputs.values()) and not self.failed
                and not any(e.failed(self.tolerance) for e in self.outputs.values()))

    @property
    def worst(self):
        return max((e.rel for e in self.outputs.values() if e.informative), default=0.0)

    def reason(self):
        """Why the report does not pass, in one line ("passed" when it does)."""
        if self.passed:
            return "passed"
        if self.error:
            return self.error
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
            "batch": self.batch, "rule": stats.TOLERANCE_RULE, "error": self.error,
            "sizes": self.sizes, "layouts": self.layouts,
            "quantization": self.quantization,
            "outputs": {n: dataclasses.asdict(e) for n, e in self.outputs.items()},
            "tensors": [{"node": n, "op": op, "tensor": t, **dataclasses.asdict(e)}
                        for n, op, t, e in self.tensors]}, indent=2, default=str)

    def summary(self):
        lines = [f"verification could not run: {self.error}"] if self.error else []
        if self.sizes:
            lines.append("dynamic axes compared at " + ", ".join(
                "x".join(str(d) for d in s) for s in self.sizes))
        for name, e in self.outputs.items():
            status = "FAIL" if e.failed(self.tolerance) else (
                "ok" if e.informative else "uninformative")
            lines.append(f"{name}: {status} (rel {e.rel:.2e}, shape {list(e.shape)})")
        if self.quantization:
            lines.append(f"a quantized graph (QDQ or dynamic): compared as float "
                         f"({len(self.quantization)} quantization parameter sets kept in the "
                         f"report)")
        moved = [f"{row['role']} {row['name']} {row['onnx_shape']} -> {row['keras_shape']}"
                 for row in self.layouts if row["moved"]]
        if moved:
            lines.append("moved to channels-last: " + "; ".join(moved)
                         + " (layouts='onnx' keeps the file's)")
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
    """The float graph a QDQ file imports as (a dynamically quantized one first becomes
    its float graph, `dequantize_dynamic`): `onnx_model` with its weights dequantized
    into float initializers (as the import folds them; onnxruntime would otherwise fuse a
    weight's DequantizeLinear into an integer kernel at ENABLE_ALL) and each activation
    QuantizeLinear -> DequantizeLinear pair replaced by the Clip to its range; the model
    itself when it has no QDQ nodes."""
    import onnx
    from onnx import numpy_helper

    from keras_convx.importer.folding import dequantize as _dequantize
    from keras_convx.importer.graph import Node
    from keras_convx.importer.passes import qdq_pairs, saturation_range

    from keras_convx.importer.dynamic_quant import dequantize_dynamic

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


class RuntimeFailure(Exception):
    """A runtime raised instead of answering; the message names it, the input shapes and
    the node where the runtime said which."""


def _node_of(err):
    import re

    found = re.search(r"(?:node\. Name:|node name:?)\s*'?([^'\s]+)'?", str(err), re.I)
    return f" at node {found.group(1)!r}" if found else ""


def _first_line(err):
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}"


def _inputs(session, data_format, seed, model=None, perms=None, size=None, step=8):
    """Inputs at the model's scale (as the export draws them: 0..255 before a Rescaling,
    a Normalization's statistics, else N(0, 1)): (ONNX feeds, the same arrays in the Keras
    layout, batch). Symbolic axes after the batch get `size` (see `sizes.axis_sizes`)."""
    from keras_convx.verification.sizes import axis_sizes

    rng = np.random.default_rng(seed)
    feeds, keras_inputs = {}, []
    batch = 2
    for spec in session.get_inputs():
        d = spec.shape[0] if spec.shape else None
        batch = d if isinstance(d, int) and d > 0 else batch
    for i, spec in enumerate(session.get_inputs()):
        dynamic = [d for d in spec.shape[1:] if not isinstance(d, int) or d < 1]
        fill = iter(axis_sizes(size, step, len(dynamic)) if dynamic else [])
        shape = [batch] + [d if isinstance(d, int) and d > 0 else next(fill)
                           for d in spec.shape[1:]]
        perm = perms[i] if perms else standard_perm(len(shape), data_format)
        kind, a, b = ("normal", 0.0, 1.0) if model is None else input_distribution(model, i)
        keras_shape = [shape[p] for p in perm]
        x = rng.uniform(a, b, keras_shape) if kind == "uniform" else \
            a + b * rng.standard_normal(keras_shape)
        x = np.asarray(x, np.float32)
        keras_inputs.append(x)
        feeds[spec.name] = np.ascontiguousarray(np.transpose(x, np.argsort(perm)))
    return feeds, keras_inputs, batch


def _compare_at(model, onnx_model, walk, data_format, seed, providers, level, size, step):
    """{output label: TensorError} of every provider at one size, and the batch;
    `RuntimeFailure` when onnxruntime can't run the graph there, any other exception
    from Keras as a `RuntimeFailure` marked `keras`."""
    import keras

    from keras_convx.verification.judge import scale_floors

    outputs, batch, floors = {}, 2, scale_floors(onnx_model)
    for provider in providers:
        session = _session(onnx_model, provider, level)
        feeds, keras_inputs, batch = _inputs(session, data_format, seed, model,
                                             walk.input_perms, size, step)
        shapes = ", ".join(f"{n} {list(v.shape)}" for n, v in feeds.items())
        try:
            expected = session.run(None, feeds)
        except Exception as err:
            raise RuntimeFailure(f"onnxruntime ({provider}) raised on input {shapes}"
                                 f"{_node_of(err)}: {_first_line(err)}") from err
        try:
            actual = keras.tree.flatten(model(keras_inputs if len(keras_inputs) > 1
                                              else keras_inputs[0], training=False))
        except Exception as err:
            failure = RuntimeFailure(f"the Keras model ({keras.backend.backend()} backend) "
                                     f"raised on input {shapes}: {_first_line(err)}")
            failure.keras = True
            raise failure from err
        if len(actual) != len(expected):
            raise OnnxImportError(f"verify: the Keras model has {len(actual)} outputs, "
                                  f"the ONNX model {len(expected)}")
        for spec, a, e, perm in zip(session.get_outputs(), actual, expected,
                                    walk.output_perms):
            a = np.asarray(keras.ops.convert_to_numpy(a))
            a = np.transpose(a, np.argsort(perm))  # back to ONNX order
            name = spec.name if len(providers) == 1 else f"{spec.name} [{provider}]"
            if size is not None:
                name += " @ " + "x".join(str(n) for n in e.shape[2:] or e.shape[1:])
            outputs[name] = stats.tensor_error(a, e, scale_floor=floors.get(spec.name, 0.0))
    return outputs, batch


def verify_import(model, onnx_model, data_format="channels_last", seed=0, tolerance=None,
                  providers=None, optimization_level="all", sizes=None, layouts="keras",
                  _built=None):
    """Runs `model` (Keras, as `import_onnx` built it) and `onnx_model` (a ModelProto,
    external data loaded) on the same inputs, drawn at the model's scale, and compares
    the outputs (at `optimization_level`, on every provider) and every tensor the Keras
    model holds (unoptimised, on CPU).

    Returns a `Report` (direction `"import"`, the type `export_onnx` returns) whose
    `verify` section is an `ImportVerifyReport` (`report.outputs`, `report.tensors`,
    `report.why()` read it).

    A graph with symbolic axes after the batch (dynamic height/width) is compared at two
    sizes it accepts, derived from the graph (`keras_convx.verification.sizes`: multiples
    of its total stride that every unpadded window fits in), or at each of `sizes` (an int
    for every dynamic axis, or a tuple of one per axis). A runtime that raises makes a
    failed report naming it, the input shape and the node, never an exception."""
    from keras_convx.verification.report import Report

    section = _compare_import(model, onnx_model, data_format, seed, tolerance, providers,
                              optimization_level, sizes, layouts, _built)
    opset = next((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")),
                 None)
    return Report(path="", direction="import", opset=opset, verify=section)


def _compare_import(model, onnx_model, data_format, seed, tolerance, providers,
                    optimization_level, sizes, layouts, _built):
    """`verify_import`'s comparison: an `ImportVerifyReport`."""
    from keras_convx.verification import sizes as S

    tolerance = stats.CPU_TOLERANCE if tolerance is None else tolerance
    providers = available_providers(providers)
    user_sizes = S.check_sizes(sizes)
    built = _built or build(onnx_model, data_format, layouts=layouts)  # the import's layouts
    quantization = built[2].quantization
    onnx_model = float_graph(onnx_model)
    walk = built[1]
    derived, step = S.derive_sizes(onnx_model)
    if not S.symbolic_axes(onnx_model):
        candidates, wanted = [None], 1
    elif user_sizes:
        candidates, wanted = user_sizes, len(user_sizes)
    else:
        candidates, wanted = derived, 2
    outputs, batch, ran, refused = {}, 2, [], []
    for size in candidates:
        if len(ran) == wanted:
            break
        try:
            found, batch = _compare_at(model, onnx_model, walk, data_format, seed, providers,
                                       optimization_level, size, step)
        except RuntimeFailure as failure:
            if getattr(failure, "keras", False) or user_sizes or size is None:
                return ImportVerifyReport(outputs, tolerance, batch, [], quantization,
                                          error=str(failure), sizes=ran)
            refused.append(str(failure))
            continue
        outputs.update(found)
        ran.append(size)
    if not ran:
        tried = ", ".join(str(c) for c in candidates)
        stride = int(round(S.stride_and_extent(onnx_model)[0]))
        return ImportVerifyReport(
            {}, tolerance, batch, [], quantization, sizes=[],
            error=(f"the graph runs at none of the sizes derived from it ({tried}; total "
                   f"stride {stride}): {refused[0]}; pass the sizes it accepts, "
                   f"sizes=[(H, W), ...] (CLI: --sizes HxW,HxW)"))
    report_sizes = [S.axis_sizes(s, step, _dynamic_count(onnx_model)) for s in ran
                    if s is not None]
    try:
        tensors = diagnose_import(onnx_model, data_format, seed, model=model, _built=built,
                                  _size=(ran[0], step))
    except RuntimeFailure as failure:
        return ImportVerifyReport(outputs, tolerance, batch, [], quantization,
                                  error=str(failure), sizes=report_sizes)
    return ImportVerifyReport(outputs, tolerance, batch, tensors, quantization,
                              sizes=report_sizes)


def _dynamic_count(onnx_model):
    """The number of symbolic axes after the batch of the first input that has any."""
    initializers = {t.name for t in onnx_model.graph.initializer}
    for vi in onnx_model.graph.input:
        if vi.name not in initializers:
            dims = list(vi.type.tensor_type.shape.dim)[1:]
            count = sum(not d.HasField("dim_value") or d.dim_value < 1 for d in dims)
            if count:
                return count
    return 0


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
    import keras
    import onnx


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
    if _size[0] is None and _built is None:
        from keras_convx.verification import sizes as S

        if S.symbolic_axes(onnx_model):
            derived, step = S.derive_sizes(onnx_model)
            _size = (derived[0], step)
    feeds, keras_inputs, _ = _inputs(session, data_format, seed, model, walk.input_perms,
                                     *_size)
    shapes = ", ".join(f"{n} {list(v.shape)}" for n, v in feeds.items())
    names = [o.name for o in session.get_outputs()]
    try:
        expected = dict(zip(names, session.run(None, feeds)))
    except Exception as err:
        raise RuntimeFailure(f"onnxruntime (CPUExecutionProvider, every tensor exposed) "
                             f"raised on input {shapes}{_node_of(err)}: "
                             f"{_first_line(err)}") from err
    inner = keras.Model(model.inputs if len(model.inputs) > 1 else model.inputs[0], tensors)
    try:
        actual = inner(keras_inputs if len(keras_inputs) > 1 else keras_inputs[0],
                       training=False)
    except Exception as err:
        raise RuntimeFailure(f"the Keras model ({keras.backend.backend()} backend) raised "
                             f"on input {shapes}: {_first_line(err)}") from err
    actual = actual if isinstance(actual, (list, tuple)) else [actual]
    from keras_convx.verification.judge import scale_floors

    out, floors = [], scale_floors(onnx_model)
    for (node, op, name, perm), a in zip(rows, actual):
        a = np.transpose(np.asarray(keras.ops.convert_to_numpy(a)), np.argsort(perm))
        out.append((node, op, name, stats.tensor_error(a, expected[name], matching_inf_ok=True,
                                                       scale_floor=floors.get(name, 0.0))))
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

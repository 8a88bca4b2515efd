"""`export_onnx`: native Keras-graph lowering or tf2onnx, then check, verify, write atomically."""

import dataclasses
import json
import os
import shutil
import time

import keras
import numpy as np
import onnx

from keras_convx.exporter import metadata as metadata_lib
from keras_convx.exporter import float16, passes, registry, tensor_map, trace
from keras_convx.exporter.graph import GraphBuilder, Unsupported, Value, channels_first_perm
from keras_convx.exporter.tensor_map import functional as _functional
from keras_convx.utils.files import staging_dir, umask_mode
from keras_convx.exporter.verify import ExportError, VerificationError, Verifier, VerifyReport  # noqa: F401
from keras_convx.verification.report import Report

ExportReport = Report  # the old name: export's report is the one `Report` type
from keras_convx.exporter import lowerings  # noqa: F401,E402  (registers the lowerings)

METHODS = ("auto", "native", "tf2onnx")
# protobuf refuses messages over 2 GiB: past this many weight bytes, they go to a data file
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**27
DYNAMIC = ("batch", "spatial")


class UnsupportedModel(ValueError):
    """The native path can't lower some layers or operations; `problems` lists
    (name, kind and class path, reason), all of them at once."""

    def __init__(self, problems, note=None):
        self.problems = problems
        lines = "; ".join(f"{name} ({cls}): {why}" for name, cls, why in problems)
        super().__init__(
            f"native export can't lower {len(problems)} layer(s)/operation(s): {lines}. "
            + (f"{note}. " if note else "") +
            f"Teach it with @keras_convx.exporter.lowering(YourClass) (see README, "
            f"'Exporting your own layers')")


@dataclasses.dataclass
class LoweringContext:
    """What a lowering gets besides the builder and the layer.

    `args`/`kwargs`: the call's arguments with Keras tensors replaced by `Value`s (and
    constants as given); `inputs`: those Values in the layout the lowering asked for
    (`x` is the first); `perm`: that layout; `output_shape(s)`: Keras's output shapes;
    `node`: the Keras node (its KerasTensors carry the dtypes).
    """

    args: tuple
    kwargs: dict
    output_shape: tuple
    output_shapes: list
    node: object = None
    inputs: list = None
    x: Value = None
    perm: tuple = ()


def unsupported_layers(model):
    """(name, kind and class path, reason) of each layer or `keras.ops` node the native
    exporter can't lower, all at once: no lowering and no traceable `call`, or a lowering
    that is missing inside a traced `call` (its path names the composite layer)."""
    return list(tensor_map.flat_graph(model).problems)


@dataclasses.dataclass
class CoverageRow:
    """One class the native exporter meets in a model: `kind` (`layer`/`operation` and
    its class path), `how` (`"lowering"`: lowered by class; `"traced"`: its `call` was
    traced into the rows below it; `"missing"`: neither) and how many times."""

    kind: str
    how: str
    count: int
    reason: str = ""


def coverage(model, batch_size=None):
    """What native export meets in `model`: every layer and `keras.ops` class its trace
    reaches (composite layers and their insides, nested models), and whether each is
    lowered by class, traced through its `call`, or missing (with the reason).

    Args:
        model: a Functional or Sequential model.
        batch_size: the static batch of the export (None: dynamic).

    Returns:
        A list of `CoverageRow`, sorted by `how` then class path.
    """
    flat = tensor_map.flat_graph(model, batch_size)
    counts, reasons = {}, {}
    for _, kind, why in flat.problems:
        reasons.setdefault(kind, why)
    for fnode in flat.nodes:
        if fnode.operation is not None:
            kind = trace.describe(fnode.operation)
            how = "missing" if kind in reasons else "lowering"
            counts[kind, how] = counts.get((kind, how), 0) + 1
    for _, op in flat.traced:
        kind = trace.describe(op)
        counts[kind, "traced"] = counts.get((kind, "traced"), 0) + 1
    order = {"missing": 0, "traced": 1, "lowering": 2}
    return sorted((CoverageRow(kind, how, n, reasons.get(kind, "") if how == "missing" else "")
                   for (kind, how), n in counts.items()),
                  key=lambda r: (order[r.how], r.kind))


def _lower(b, flat, inputs, problems):
    tensors = {id(kt): v for kt, v in zip(flat.inputs, inputs)}
    for fnode in flat.nodes:
        if fnode.operation is None:  # into or out of an inlined graph
            for to, source in fnode.aliases:
                if id(source) in tensors:
                    tensors[id(to)] = tensors[id(source)]
            continue
        layer, node = fnode.operation, fnode.node
        if any(id(kt) not in tensors for kt in node.input_tensors):
            continue  # downstream of a layer that could not be lowered
        args, kwargs = node.arguments.fill_in(tensors)
        entry = registry.find(layer)
        if entry is None:
            continue  # already among flat.problems
        try:
            b.scope = fnode.label
            b.preactivation = None
            ctx = LoweringContext(args, kwargs, tuple(node.outputs[0].shape),
                                  [tuple(o.shape) for o in node.outputs], node)
            results = registry.apply(b, entry, layer, ctx)
        except Unsupported as err:
            problems.append((fnode.label, trace.describe(layer), str(err)))
            continue
        for key, kt, value in zip(fnode.keys, node.outputs, results):
            tensors[id(kt)] = value
            if "float" in str(kt.dtype):  # masks and indices are checked through their uses
                b.bind(key, fnode.label, value)
        if b.preactivation is not None:
            value, name = b.preactivation
            b.bind(fnode.keys[0], fnode.label, value, "preactivation", name)
    return [tensors.get(id(kt)) for kt in flat.outputs]


def _spatial_io_perm(shape, nchw_io):
    """Graph-side perm of an input/output: NC* for spatial tensors when nchw_io."""
    if nchw_io and len(shape) >= 3:
        return channels_first_perm(len(shape), "channels_last")
    return tuple(range(len(shape)))


def _dims_dynamic(shape, dynamic_axes):
    return [i == 0 and "batch" in dynamic_axes or 0 < i < len(shape) - 1 and
            "spatial" in dynamic_axes for i in range(len(shape))]


def lower_native(model, opset=17, dynamic_axes=("batch",), nchw_io=False, batch_size=1,
                 fold_batch_norm=True):
    """The native lowering: returns (onnx ModelProto, GraphBuilder, io metadata)."""
    fmodel = _functional(model)
    flat = tensor_map.flat_graph(fmodel, None if "batch" in dynamic_axes else batch_size)
    if flat.problems:
        raise UnsupportedModel(flat.problems)
    b = GraphBuilder(opset)
    inputs, in_perms = [], []
    for kt in fmodel.inputs:
        shape = tuple(kt.shape)
        perm = _spatial_io_perm(shape, nchw_io)
        name = kt.name
        graph_shape = [shape[p] for p in perm]
        if "batch" not in dynamic_axes:
            graph_shape[0] = batch_size
        b.add_input(name, graph_shape, _dims_dynamic(graph_shape, dynamic_axes))
        inputs.append(Value(name, shape, perm))
        in_perms.append(list(perm))
    problems = []
    outputs = _lower(b, flat, inputs, problems)
    if problems:
        raise UnsupportedModel(problems)
    out_perms = []
    names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(outputs))])
    for name, value in zip(names, outputs):
        perm = _spatial_io_perm(value.shape, nchw_io)
        value = b.to_perm(value, perm)
        graph_shape = [value.shape[p] for p in perm]
        if "batch" not in dynamic_axes:
            graph_shape[0] = batch_size
        b.scope = "graph"
        b.add_output(name, value.name, graph_shape, _dims_dynamic(graph_shape, dynamic_axes))
        out_perms.append(list(perm))
    if flat.batch_symbol is not None:
        try:
            passes.dynamic_batch(b, flat.batch_symbol)
        except Unsupported as err:
            raise UnsupportedModel([(model.name, "dynamic batch", str(err))]) from None
    b.bn_folded = passes.fold_batch_norm(b) if fold_batch_norm else 0
    b.pads_fused = passes.fuse_pad_into_conv(b)
    proto = b.model(model.name)
    prop = proto.metadata_props.add()
    prop.key, prop.value = tensor_map.METADATA_KEY, json.dumps(b.tensor_map())
    io = {"input_perms": [p if p != list(range(len(p))) else None for p in in_perms],
          "output_perms": [p if p != list(range(len(p))) else None for p in out_perms],
          "static_batch": None if "batch" in dynamic_axes else batch_size}
    return proto, b, io


def lower_tf2onnx(model, opset=17, dynamic_axes=("batch",), nchw_io=False, batch_size=1):
    """tf2onnx on the model's traced function (TensorFlow backend only)."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"export: method='tf2onnx' needs the TensorFlow backend, this is "
            f"{keras.backend.backend()!r}"
        )
    import tensorflow as tf
    import tf2onnx

    specs, names = [], []
    for kt in model.inputs:
        shape = list(kt.shape)
        shape[0] = None if "batch" in dynamic_axes else batch_size
        if "spatial" in dynamic_axes and len(shape) >= 3:  # as the native path does
            shape[1:-1] = [None] * (len(shape) - 2)
        names.append(kt.name)
        specs.append(tf.TensorSpec(shape, tf.float32, name=kt.name))

    @tf.function
    def fn(*xs):
        out = model(list(xs) if len(xs) > 1 else xs[0], training=False)
        return out if isinstance(out, (list, tuple)) else [out]

    spatial = [n for n, s in zip(names, specs) if len(s.shape) >= 3]
    proto, _ = tf2onnx.convert.from_function(
        fn, input_signature=specs, opset=opset, inputs_as_nchw=spatial if nchw_io else None,
        outputs_as_nchw=None)
    out_names = list(getattr(model, "output_names", None) or [])
    for value, new in zip(list(proto.graph.output), out_names):
        _rename(proto, value.name, new)
    in_perms = [list(_spatial_io_perm(tuple(kt.shape), nchw_io)) if nchw_io and
                len(kt.shape) >= 3 else None for kt in model.inputs]
    io = {"input_perms": in_perms, "output_perms": [None] * len(model.outputs),
          "static_batch": None if "batch" in dynamic_axes else batch_size}
    return proto, None, io


def _rename(proto, old, new):
    for node in proto.graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        node.output[:] = [new if o == old else o for o in node.output]
    for value in proto.graph.output:
        if value.name == old:
            value.name = new


def _intake(model, input_shapes):
    """The model as the rest of export takes it: a Functional or Sequential model with
    `input_shapes` applied; a subclassed model wrapped in a Functional model of one node,
    itself (`tensor_map.functional`), so the native path traces its `call` and tf2onnx and
    verification call it as they call any model."""
    if not tensor_map.subclassed(model):
        return _with_input_shapes(model, input_shapes)
    try:
        return tensor_map.functional(model, input_shapes)
    except Unsupported as err:  # its `call` can't be traced (on TensorFlow: nor run by
        # tf.function, which the message says): tf2onnx is no way out either
        note = None if keras.backend.backend() == "tensorflow" else (
            f"tf2onnx, the other method, needs the TensorFlow backend (this is "
            f"{keras.backend.backend()!r})")
        raise UnsupportedModel([(model.name, trace.describe(model), str(err))],
                               note=note) from None


def _with_input_shapes(model, input_shapes):
    """A clone of `model` whose inputs have `input_shapes` (without batch), same weights."""
    if input_shapes is None:
        return model
    if isinstance(input_shapes[0], int) or input_shapes[0] is None:
        input_shapes = [input_shapes]
    if len(input_shapes) != len(model.inputs):
        raise ValueError(
            f"export: input_shape needs {len(model.inputs)} shape(s), got {input_shapes}")
    new_inputs = [keras.Input(tuple(s), name=kt.name) for s, kt in zip(input_shapes, model.inputs)]
    clone = keras.models.clone_model(
        model, input_tensors=new_inputs if len(new_inputs) > 1 else new_inputs[0])
    clone.set_weights(model.get_weights())
    return clone


def _count(proto, op):
    return sum(1 for n in proto.graph.node if n.op_type == op)


def _finalize(proto, io):
    prop = proto.metadata_props.add()
    prop.key, prop.value = "keras_convx.io", json.dumps(io)
    return proto


def export_onnx(model, path, *, opset=17, method="auto", dynamic_axes=("batch",), verify=True,
                providers=None, tolerance=None, samples=None, nchw_io=False,
                input_shape=None, batch_size=1, diagnose=True, fold_batch_norm=True,
                fp16=False, optimization_level="all", external_data="auto", metadata=None,
                precision=None, calibration=None, calibration_method="minmax",
                keep_float=None, input_dtype="float32", target="cpu", sizes=None,
                fp16_headroom=None):
    """Exports a Keras model to ONNX and proves it with onnxruntime before writing it.

    Args:
        model: a Functional, Sequential or subclassed Keras model (a subclassed model
            is traced through its `call` on inputs of the shape it was built or called
            with, or `input_shape`).
        path: the `.onnx` file to write; it appears only after checks and
            verification passed (a failure leaves `<stem>.failed.onnx` and
            `<stem>.failed.json` instead).
        opset: ONNX opset (17 to 21).
        method: `"native"` (direct lowering, any backend), `"tf2onnx"` (TensorFlow
            backend) or `"auto"` (native when every layer has a lowering).
        dynamic_axes: which dims are symbolic: `("batch",)`, `("batch", "spatial")`
            or `()` (fully static, batch `batch_size`).
        verify: run onnxruntime and compare with Keras (a failure raises
            `VerificationError`).
        providers, tolerance, samples, optimization_level: see `verify_onnx`.
        sizes: the sizes of dynamic height/width (and other unknown dims after the batch)
            random verification inputs take: ints or tuples (one per axis), e.g.
            `[(32, 64)]`; default two derived from the graph (multiples of its total
            stride). Samples need none.
        nchw_io: give channels_last models NCHW graph inputs and outputs.
        input_shape: shape(s) without batch, to fix unknown spatial dims.
        diagnose: compare every Keras tensor the graph keeps (layer and `keras.ops`
            outputs, pre-activations), not only the graph outputs; the report's
            `diagnosis` names the first that diverges. On by default; `False` checks
            the outputs only (faster, and blind to errors the outputs hide).
        fold_batch_norm: fold inference BatchNormalization into the preceding Conv.
        external_data: `"auto"` (weights in `<name>.onnx.data` beside the file when they
            pass protobuf's 2 GiB limit), `True` (always) or `False` (never).
        metadata: a dict of your own keys (class names, normalization...) stored in the
            file's metadata; non-string values as JSON. The file always carries
            `keras_convx.export` (version, opset, precision, input layouts and dtypes, the
            preprocessing layers in the graph) and, once verified,
            `keras_convx.verification` (`keras-convx inspect FILE` prints them).
        precision: `"float32"` (default), `"float16"` (weights and compute in float16,
            inputs and outputs float32, verified at float16 tolerance) or `"int8"` (static,
            calibrated QDQ by onnxruntime.quantization: weights symmetric int8 per output
            channel, activations uint8; the float graph is verified first, then the INT8
            graph by the quantized rule, `keras_convx.verification.quantized`).
            Mixed-precision Keras models export to float32 unless asked.
        fp16: `fp16=True` is `precision="float16"`. A node whose values leave
            float16's range on the verification inputs (|x| > 65504, or all below its
            smallest normal number, which GPUs flush to zero) stays float32, named in the
            report (`float16_kept`) and the file's metadata: onnxruntime's CPU provider
            computes float16 convolutions in float32 and would hide the overflow.
        fp16_headroom: float16 only: a node also stays float32 when its observed max
            |value| comes within this factor of 65504 (default 16: above 4094), since
            data the check did not draw can go further; the report gives each kept
            node's max and margin. 1 keeps only what overflows on the drawn data.
        calibration: INT8 calibration data (float16: data for the range check, besides
            random inputs at the model's scale and `samples`): arrays, a list of batches, a generator, a
            `keras.utils.PyDataset` or a `tf.data.Dataset` (`(x, y)` batches are fine).
            A fifth of the samples (at most 64) is held out to verify on. `"random"`
            calibrates on random inputs at the model's scale, and the report says so.
        calibration_method: `"minmax"`, `"entropy"` or `"percentile"`.
        target: the execution provider the file is for: `"cpu"` (default), `"cuda"`,
            `"tensorrt"`, `"xnnpack"` or `"coreml"`. The report's `lint` lists what that
            target is known to reject or run slowly, each with its reference
            (`keras_convx.exporter.targets.RULES`); where an alternative lowering exists
            it is applied (CUDA, TensorRT: ConvTranspose pads made symmetric plus a Slice).
        input_dtype: `"float32"` (default) or `"uint8"`: the graph takes uint8 pixels
            (in the input's layout) and casts them to float32 first, so the model's own
            Rescaling/Normalization layers run in the graph; verified on integer inputs
            (samples must be integers in 0..255).
        keep_float: Keras layer names whose nodes stay float32 in an INT8 graph, or
            `"auto"`: the worst layers are kept in float until the quantized rule passes
            (at most 8).

    Returns:
        An `ExportReport`.

    Raises:
        UnsupportedModel: `method="native"` and some layers have no lowering.
        VerificationError: the graph disagrees with Keras (the `.failed` files are kept).
        ExportError: a step could not be carried out (the message names the method, the
            step and the cause).
    """
    if method not in METHODS:
        raise ValueError(f"export: method must be one of {METHODS}, got {method!r}")
    dynamic_axes = tuple(dynamic_axes or ())
    bad = [a for a in dynamic_axes if a not in DYNAMIC]
    if bad:
        raise ValueError(f"export: dynamic_axes must be drawn from {DYNAMIC}, got {dynamic_axes}")
    if sizes is not None:
        from keras_convx.verification.sizes import check_sizes

        check_sizes(sizes)
    user_metadata = metadata_lib.user_entries(metadata)
    precision = _precision(precision, fp16)
    if fp16_headroom is not None:
        if precision != "float16":
            raise ValueError(f"export: fp16_headroom applies to precision='float16', not "
                             f"{precision!r}")
        float16.check_headroom(fp16_headroom)
    from keras_convx.exporter import targets

    if target not in targets.TARGETS:
        raise ValueError(f"export: target must be one of {targets.TARGETS}, got {target!r}")
    if input_dtype not in ("float32", "uint8"):
        raise ValueError(f"export: input_dtype must be 'float32' or 'uint8', got {input_dtype!r}")
    if precision == "int8" and calibration is None:
        from keras_convx.exporter.calibration_data import samples

        samples(None, model)  # raises: says what calibration data can be
    if not 17 <= int(opset) <= 21:
        raise ValueError(f"export: opset must be in 17..21, got {opset}")
    if external_data not in ("auto", True, False):
        raise ValueError(f"export: external_data must be 'auto', True or False, got "
                         f"{external_data!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"export: output folder {folder!r} does not exist")
    if method == "tf2onnx" and keras.backend.backend() != "tensorflow":
        raise ValueError(f"export: method='tf2onnx' needs the TensorFlow backend, this is "
                         f"{keras.backend.backend()!r}")
    model = _intake(model, input_shape)
    start = time.perf_counter()
    reason = ""
    if method == "auto":
        missing = unsupported_layers(model)
        chosen = "native" if not missing else "tf2onnx"
        reason = ("every layer has a native lowering" if not missing else
                  "no native lowering for " + ", ".join(f"{n} ({c})" for n, c, _ in missing))
        if missing and keras.backend.backend() != "tensorflow":
            raise UnsupportedModel(missing, note=(
                f"method='auto' would fall back to tf2onnx, which needs the TensorFlow "
                f"backend (this is {keras.backend.backend()!r})"))
    else:
        chosen, reason = method, "requested"
    builder = None
    if chosen == "native":
        try:
            proto, builder, io = lower_native(model, opset, dynamic_axes, nchw_io, batch_size,
                                              fold_batch_norm)
        except UnsupportedModel as err:
            if method == "native":
                raise
            chosen, reason = "tf2onnx", str(err)
            proto, _, io = _tf2onnx(model, opset, dynamic_axes, nchw_io, batch_size)
    else:
        proto, _, io = _tf2onnx(model, opset, dynamic_axes, nchw_io, batch_size)
    io["input_shapes"] = [list(kt.shape) for kt in model.inputs]
    lint = targets.adapt(proto, target)
    lint += targets.lint(proto, target)
    kept16 = []
    if precision == "float16":
        proto, kept16 = _to_float16(model, proto, io, samples, calibration,
                                    float16.HEADROOM if fp16_headroom is None
                                    else fp16_headroom)
    if input_dtype == "uint8":
        _uint8_inputs(proto, io)
    proto = _finalize(proto, io)
    made = json.loads(metadata_lib.export_entry(
        model, io, opset, "float16" if precision == "float16" else "float32"))
    if precision == "float16":
        made["float16_kept_float32"] = kept16
    made["target"] = target
    made["lint"] = [{k: f[k] for k in ("rule", "where", "reference", "fixed")} for f in lint]
    for key, value in user_metadata + [(metadata_lib.EXPORT_KEY, json.dumps(made))]:
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    report = Report(path=path, method=chosen, reason=reason, opset=int(opset), model=model,
                          node_count=len(proto.graph.node),
                          transpose_count=_count(proto, "Transpose"),
                          bn_folded=builder.bn_folded if builder is not None else 0,
                          fused=builder.pads_fused if builder is not None else 0,
                          precision=precision, float16_kept=kept16, target=target, lint=lint)
    external = external_data is True or (
        external_data == "auto" and sum(len(t.raw_data) for t in proto.graph.initializer)
        > EXTERNAL_DATA_THRESHOLD)
    # everything is staged in a hidden folder beside `path` and moved in only once proven
    # (named after this process: the next run removes it if this one is killed)
    stage = staging_dir(folder)
    tmp = os.path.join(stage, os.path.basename(path))
    data_name = os.path.basename(path) + ".data"
    try:
        if external:
            # protobuf can't hold 2 GB: the weights go to `<name>.onnx.data` beside the file
            onnx.save_model(proto, tmp, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024)
            data = proto.SerializeToString()  # the graph alone; the weights stay on disk
            check = tmp
        else:
            data = proto.SerializeToString()  # serialized once
            _write_file(tmp, data)
            check = data
        try:
            _check(check, proto)
        except Exception as err:
            raise ExportError(f"export ({chosen}): the ONNX checker rejects the graph: "
                              f"{str(err).strip().splitlines()[0]}") from None
        report.export_seconds = time.perf_counter() - start
        report.file_size = sum(os.path.getsize(os.path.join(stage, f)) for f in os.listdir(stage))
        report.external_data = data_name if external else None
        if verify:
            try:
                from keras_convx.verification.sizes import export_fills

                verifier = Verifier(model, io, tensor_map.read(proto), samples,
                                    fills=export_fills(model, proto, sizes))
                report.verify = verifier.verify(proto, tmp, providers, tolerance,
                                                optimization_level, inspect=diagnose,
                                                serialized=data,
                                                base_dir=stage if external else None)
            except ExportError as err:
                kept = _keep_failed(path, stage, report, external)
                raise ExportError(f"export ({chosen}): verification could not run: {err}; kept "
                                  f"{kept}", report) from None
            report.verify.path = path
            if diagnose and chosen == "tf2onnx":  # said, not silently skipped
                report.verify.warnings.append(
                    "tf2onnx's graph carries no map from Keras tensors to its own: only the "
                    "graph outputs were compared (method='native' compares every layer)")
            for row in kept16:
                report.verify.warnings.append(
                    f"float16: {row['layer']} ({row['node']}) kept in float32: its output "
                    f"{row['reason']}")
            if not report.verify.passed:
                kept = _keep_failed(path, stage, report, external)
                raise VerificationError(
                    f"export ({chosen}): verification failed, {report.verify.summary()}; kept "
                    f"{kept} and {os.path.splitext(path)[0]}.failed.json", report)
        if precision == "int8":
            _to_int8(model, proto, stage, tmp, io, report, calibration, calibration_method,
                     keep_float, verify, providers, optimization_level, path, external)
        elif verify:  # appended as bytes: the weights are not serialized again
            metadata_lib.append(tmp, [(metadata_lib.VERIFICATION_KEY,
                                       metadata_lib.verification_entry(report.verify))])
        for name in ([data_name] if external else []) + [os.path.basename(path)]:
            umask_mode(os.path.join(stage, name))
            os.replace(os.path.join(stage, name), os.path.join(folder, name))  # data first
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


PRECISIONS = ("float32", "float16", "int8")


def _uint8_inputs(proto, io):
    """Float graph inputs become uint8, each cast to float32 by the graph's first node."""
    initializers = {t.name for t in proto.graph.initializer}
    renamed, casts = {}, []
    for value in proto.graph.input:
        tensor = value.type.tensor_type
        if value.name in initializers or tensor.elem_type != onnx.TensorProto.FLOAT:
            continue
        renamed[value.name] = value.name + "/float32"
        casts.append(onnx.helper.make_node("Cast", [value.name], [renamed[value.name]],
                                           name=f"{value.name}/uint8_to_float32",
                                           to=onnx.TensorProto.FLOAT))
        tensor.elem_type = onnx.TensorProto.UINT8
    for node in proto.graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
    for output in proto.graph.output:  # an input passed straight through
        if output.name in renamed:
            raise ValueError(f"export: input_dtype='uint8', but input {output.name!r} is also "
                             f"a graph output")
    nodes = casts + list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    for prop in proto.metadata_props:  # the tensor map names the float32 value now
        if prop.key == tensor_map.METADATA_KEY:
            entries = json.loads(prop.value)
            for e in entries:
                e["onnx"] = renamed.get(e.get("onnx"), e.get("onnx"))
            prop.value = json.dumps(entries)
    io["input_dtypes"] = ["uint8" if v.type.tensor_type.elem_type == onnx.TensorProto.UINT8
                          else "float32" for v in proto.graph.input
                          if v.name not in initializers]


def _to_float16(model, proto, io, samples, calibration, headroom=float16.HEADROOM):
    """The float16 graph, with the nodes whose values leave float16's range on the
    verification inputs (random at the model's scale, `samples`, float16 `calibration`
    data) kept float32; returns (graph, [what was kept and why])."""
    from keras_convx.exporter.calibration_data import samples as calibration_samples
    from keras_convx.verification.inputs import model_inputs, to_graph

    runs = []
    try:
        runs.append(model_inputs(model, io, io.get("static_batch") or 2,
                                 np.random.default_rng(0)))
    except ValueError:
        pass  # unknown spatial dims: the user's data only
    for sample in samples or []:
        runs.append([np.asarray(a, np.float32) for a in
                     (sample if isinstance(sample, (list, tuple)) else [sample])])
    if calibration is not None:
        arrays = calibration_samples(calibration, model)
        size = io.get("static_batch") or 16
        runs += [[a[i:i + size] for a in arrays] for i in range(0, arrays[0].shape[0], size)
                 if not io.get("static_batch") or arrays[0].shape[0] - i >= size]
    initializers = {t.name for t in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in initializers]
    perms = io.get("input_perms") or [None] * len(names)
    for i, node in enumerate(proto.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    found = float16.out_of_range(proto, proto.SerializeToString(),
                                 [dict(zip(names, to_graph(r, perms, io.get("input_dtypes"))))
                                  for r in runs], headroom)
    kept = [{"layer": node.split("/")[0], "node": node, "tensor": tensor, "max_abs": top,
             "margin": float16.FLOAT16_MAX / top if top else None, "reason": why}
            for node, tensor, top, why in found]
    block = [k["node"] for k in kept]
    block += [n for n in float16.consumers(proto, [k["tensor"] for k in kept]) if n not in block]
    return float16.convert(proto, block), kept


def _precision(precision, fp16):
    if precision is None:
        return "float16" if fp16 else "float32"
    if precision == "bfloat16":
        raise ValueError("export: precision='bfloat16' is refused: onnxruntime's CPU provider "
                         "has no bfloat16 kernels for convolutions, so the graph could not be "
                         "verified here (and converting it to float16 silently, as tf2onnx "
                         "does, changes its range); use 'float16' or 'int8'")
    if precision not in PRECISIONS:
        raise ValueError(f"export: precision must be one of {PRECISIONS}, got {precision!r}")
    if fp16 and precision != "float16":
        raise ValueError(f"export: fp16=True contradicts precision={precision!r}")
    return precision


def _to_int8(model, proto, stage, tmp, io, report, calibration, method, keep_float, verify,
             providers, level, path, external):
    """Replaces the staged float graph with its verified INT8 (QDQ) graph."""
    from keras_convx.exporter import int8

    if external:
        raise ExportError("export: precision='int8' is not supported with external data "
                          "(a model past 2 GiB)")
    start = time.perf_counter()
    try:
        qdq, quant = int8.export_int8(model, proto, stage, io, tensor_map.read(proto),
                                      calibration, method, keep_float, verify, providers,
                                      level, tensor_map)
        report.int8_seconds = time.perf_counter() - start
    except ExportError:
        raise
    except ValueError:
        raise
    except Exception as err:
        raise ExportError(f"export: INT8 quantization failed: {type(err).__name__}: "
                          f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                          ) from None
    report.quantization = quant
    del qdq.metadata_props[:]
    for prop in proto.metadata_props:
        if prop.key != metadata_lib.EXPORT_KEY:
            qdq.metadata_props.add(key=prop.key, value=prop.value)
    entry = json.loads(metadata_lib.export_entry(model, io, report.opset, "int8"))
    entry["target"] = report.target
    entry["lint"] = [{k: f[k] for k in ("rule", "where", "reference", "fixed")}
                     for f in report.lint]
    entry["quantization"] = {"method": method, "format": "QDQ", "weights": "int8 symmetric "
                             "per output channel", "activations": "uint8 asymmetric",
                             "kept_float": quant.kept_float if quant else (
                                 [] if keep_float == "auto" else list(keep_float or []))}
    qdq.metadata_props.add(key=metadata_lib.EXPORT_KEY, value=json.dumps(entry))
    if quant is not None:
        qdq.metadata_props.add(key=metadata_lib.VERIFICATION_KEY,
                               value=metadata_lib.int8_verification_entry(quant, report.verify))
    _write_file(tmp, qdq.SerializeToString())
    report.node_count = len(qdq.graph.node)
    report.file_size = os.path.getsize(tmp)
    if quant is not None and not quant.passed:
        kept = _keep_failed(path, stage, report, False)
        raise VerificationError(f"export (int8): verification failed, {quant.summary()}; kept "
                                f"{kept} and {os.path.splitext(path)[0]}.failed.json", report)


def _keep_failed(path, stage, report, external):
    """Keeps the unproven graph for inspection, with its report; returns what was kept.

    `<stem>.failed.onnx`; a graph with external data keeps its folder, `<stem>.failed/`,
    since the model file finds its data file by a relative name.
    """
    stem = os.path.splitext(path)[0]
    if external:
        kept = stem + ".failed"
        shutil.rmtree(kept, ignore_errors=True)
        os.replace(stage, kept)
    else:
        kept = stem + ".failed.onnx"
        tmp = os.path.join(stage, os.path.basename(path))
        umask_mode(tmp)
        os.replace(tmp, kept)
    with open(stem + ".failed.json", "w") as f:
        f.write(report.to_json())
    umask_mode(stem + ".failed.json")
    return kept


def _tf2onnx(model, opset, dynamic_axes, nchw_io, batch_size):
    """tf2onnx with its failures as `ExportError`s naming the method and the cause."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"export: method='tf2onnx' needs the TensorFlow backend, this is "
                         f"{keras.backend.backend()!r}")
    try:
        return lower_tf2onnx(model, opset, dynamic_axes, nchw_io, batch_size)
    except Exception as err:
        cause = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ExportError(f"export (tf2onnx): conversion failed: {type(err).__name__}: "
                          f"{cause}") from None


def _check(check, proto):
    """The ONNX checker, with strict shape inference, at a fraction of its cost on big files.

    Shape inference needs the weights' types and shapes only, plus the values of small
    constants (Reshape targets, pads, Resize scales): the checker runs on a copy in which each
    large weight is a graph input of the same type and shape, instead of parsing every weight
    byte again (RetinaNet's 31 MB: 46 ms -> 5 ms). What it would check of a large weight
    itself, that it holds as many bytes as its type and shape need, is checked here.
    """
    if not isinstance(check, bytes):
        onnx.checker.check_model(check, full_check=True)  # external data: checked from disk
        return
    light = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version"):
        if proto.HasField(field):
            setattr(light, field, getattr(proto, field))
    light.opset_import.extend(proto.opset_import)
    graph = light.graph
    graph.name = proto.graph.name
    graph.node.extend(proto.graph.node)
    graph.output.extend(proto.graph.output)
    graph.input.extend(proto.graph.input)
    graph.value_info.extend(proto.graph.value_info)
    light.functions.extend(proto.functions)
    declared = {i.name for i in proto.graph.input}
    for tensor in proto.graph.initializer:
        if len(tensor.raw_data) <= _SMALL_CONSTANT_BYTES:
            graph.initializer.append(tensor)
            continue
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        if len(tensor.raw_data) != itemsize * int(np.prod(tensor.dims, dtype=np.int64)):
            raise ValueError(f"initializer {tensor.name} holds {len(tensor.raw_data)} bytes, "
                             f"its type and shape {list(tensor.dims)} need "
                             f"{itemsize * int(np.prod(tensor.dims, dtype=np.int64))}")
        if tensor.name not in declared:  # (graphs of IR < 4 list weights as inputs)
            graph.input.append(onnx.helper.make_tensor_value_info(
                tensor.name, tensor.data_type, list(tensor.dims)))
    onnx.checker.check_model(light.SerializeToString(), full_check=True)


_SMALL_CONSTANT_BYTES = 4096


def _write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


__all__ = ["coverage", "CoverageRow", "export_onnx", "ExportError", "ExportReport", "UnsupportedModel", "VerificationError"]

"""The onnxruntime side of verification: sessions at each optimisation level, the
inspection copy that exposes every mapped tensor, and prefix graphs that locate where an
optimisation changes the results."""

import os

from keras_convx.verification import rules
from keras_convx.verification.report import ExportError

LEVELS = ("disable", "basic", "extended", "all")
# The inspection copy runs unoptimised: ORT_ENABLE_BASIC is documented as
# semantics-preserving, but onnxruntime 1.31's PadFusion (a basic-level pass) moves a zero
# Pad into MaxPool's pads, where padding means -inf (measured on ResNet50V2: 15% of
# pool1_pool's scale). The graph's own semantics are what the export is judged on.
INSPECT_LEVEL = "disable"


def available_providers(requested=None):
    """onnxruntime providers to verify with: CPU always, CUDA when present (or as asked)."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    names = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
    if requested:
        wanted = [names.get(p.lower(), p) for p in requested]
        missing = [p for p in wanted if p not in have]
        if missing:
            raise ValueError(f"verify: providers {missing} are not available here (have {have})")
        return wanted
    return [p for p in ("CPUExecutionProvider", "CUDAExecutionProvider") if p in have]


def has_float16(onnx_model):
    return any(t.data_type == 10 for t in onnx_model.graph.initializer)  # TensorProto.FLOAT16


def session(data, provider, level, base_dir=None):
    """An onnxruntime session on serialized `data`. A graph with external data is read
    from a file in `base_dir`, where its data file lies (ONNX resolves it relative to the
    model file), written just for the session and removed once onnxruntime has read it."""
    if base_dir is not None and isinstance(data, bytes):
        import tempfile

        fd, path = tempfile.mkstemp(dir=base_dir, prefix=".keras_convx-session-",
                                    suffix=".onnx")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            return session(path, provider, level)
        finally:
            os.remove(path)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, options, providers=[provider])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ExportError(f"verify: onnxruntime ({provider}, level {level}) rejected the graph: "
                          f"{first_line(err)}") from None


def first_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def inspection_graph(onnx_model, names, serialized=None):
    """A serialized copy of the graph with `names` added as outputs.

    With `serialized` (the model's own bytes) the outputs are appended as bytes: a second
    `graph` field in a protobuf message is merged into the first, its repeated `output`
    appended (protobuf's encoding rules), so the weights are not serialized again
    (ResNet50: 0.17 s saved).
    """
    import onnx

    existing = {o.name for o in onnx_model.graph.output}
    elem = onnx.TensorProto.FLOAT16 if has_float16(onnx_model) else onnx.TensorProto.FLOAT
    # a float16 graph may keep some tensors float32 (out of float16's range)
    known = {vi.name: vi.type.tensor_type.elem_type for vi in onnx_model.graph.value_info} \
        if elem == onnx.TensorProto.FLOAT16 else {}
    added = []
    for name in names:
        if name not in existing:
            existing.add(name)
            added.append(onnx.helper.make_tensor_value_info(name, known.get(name) or elem,
                                                            None))
    if serialized is not None:
        extra = onnx.ModelProto()
        extra.graph.output.extend(added)
        return serialized + extra.SerializeToString()
    onnx_model.graph.output.extend(added)
    try:
        return onnx_model.SerializeToString()
    finally:
        for _ in added:
            onnx_model.graph.output.pop()


def prefix_graph(onnx_model, output_name):
    """The serialized subgraph that computes `output_name` only (its nodes and weights)."""
    import onnx

    producers = {o: n for n in onnx_model.graph.node for o in n.output}
    keep, stack, seen = [], [output_name], set()
    while stack:
        name = stack.pop()
        node = producers.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        keep.append(node)
        stack.extend(i for i in node.input if i)
    order = {id(n): i for i, n in enumerate(onnx_model.graph.node)}
    keep.sort(key=lambda n: order[id(n)])
    used = {i for n in keep for i in n.input}
    graph = onnx.helper.make_graph(
        keep, "prefix", [i for i in onnx_model.graph.input if i.name in used],
        [onnx.helper.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT, None)],
        [t for t in onnx_model.graph.initializer if t.name in used])
    model = onnx.helper.make_model(graph, opset_imports=onnx_model.opset_import)
    model.ir_version = onnx_model.ir_version
    return model.SerializeToString()


def first_divergence(onnx_model, entries, arrays, provider, level, base_dir=None):
    """(label, rel) of the first mapped tensor where `level` and INSPECT_LEVEL disagree.

    Exposing a tensor as an output can block the very fusion at fault, so each probe
    is a prefix graph ending at that tensor; a bisection over execution order needs
    ~log2(tensors) of them (a change propagates downstream).
    """
    graph_inputs = [g.name for g in onnx_model.graph.input]

    def diverges(entry):
        data = prefix_graph(onnx_model, entry.onnx)
        runs = []
        for lvl in (level, INSPECT_LEVEL):
            probe = session(data, provider, lvl, base_dir)
            feeds = {i.name: arrays[graph_inputs.index(i.name)] for i in probe.get_inputs()}
            runs.append(probe.run(None, feeds)[0])
        rel = rules.tensor_error(runs[0], runs[1]).rel
        return rel if rel > rules.LEVEL_TOLERANCE else None

    lo, hi, found = 0, len(entries) - 1, None
    try:
        while lo <= hi:
            mid = (lo + hi) // 2
            rel = diverges(entries[mid])
            if rel is not None:
                found, hi = (entries[mid].label, rel), mid - 1
            else:
                lo = mid + 1
    except Exception:  # a probe that can't run only costs the location, not the verdict
        return found
    return found

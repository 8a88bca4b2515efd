"""Proving an ONNX graph against its Keras model in onnxruntime, tensor by tensor.

Two sessions per provider: the file as users deploy it (`optimization_level`, default
`"all"`) checks the graph outputs on every run; an inspection copy that also exposes
every Keras tensor the graph still holds (the exporter's tensor map) runs at
`"disable"` (see INSPECT_LEVEL) and checks them all.
When the deployed outputs disagree with Keras but the inspected graph agrees, the
graph is right and onnxruntime's optimiser is not: that is reported as an onnxruntime
optimisation problem, with the first tensor where it appears (a third session).
When tensors differ beyond tolerance, two more measurements decide whether the model
merely amplifies float32 rounding: Keras's own move under a one-ulp input change, and
every layer fed the graph's values of its inputs (a wrong layer shows there at once).
"""

import dataclasses
import json
import os

import keras
import numpy as np

from keras_convx.exporter import stats, tensor_map, trace
from keras_convx.exporter.stats import (  # noqa: F401  (public constants)
    DEFAULT_TOLERANCES, LOW_PRECISION_TOLERANCES, TOLERANCE_RULE,
)

LEVELS = ("disable", "basic", "extended", "all")
# The inspection copy runs unoptimised: ORT_ENABLE_BASIC is documented as
# semantics-preserving, but onnxruntime 1.31's PadFusion (a basic-level pass) moves a zero
# Pad into MaxPool's pads, where padding means -inf (measured on ResNet50V2: 15% of
# pool1_pool's scale). The graph's own semantics are what the export is judged on.
INSPECT_LEVEL = "disable"
SQUASHING = ("softmax", "sigmoid", "hard_sigmoid")


class ExportError(RuntimeError):
    """Export or verification could not be carried out; the message says which step and why."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


class VerificationError(ExportError):
    """The ONNX graph's tensors differ from the Keras model's beyond tolerance."""


@dataclasses.dataclass
class TensorCheck:
    """One tensor compared: a graph output, an internal Keras tensor, or a pre-activation.

    `status` is `"pass"`, `"FAIL"`, `"uninformative"` (a constant reference proves
    nothing), `"fused"` (the graph has no tensor for it: `into` names the layer that
    absorbed it; not compared) or `"amplified"`: beyond tolerance, but Keras itself moves
    this tensor by `sensitivity` when its inputs move by one float32 rounding, and every
    layer of the graph matches Keras on the same inputs (the model amplifies rounding;
    see `VerifyReport.local_worst`).
    """

    tensor: str
    role: str
    provider: str
    level: str
    batch: int
    shape: tuple
    tolerance: float
    status: str
    scale: float = 0.0
    max_abs: float = 0.0
    rel: float = 0.0
    rms_rel: float = 0.0
    cosine: float = 1.0
    into: str = None
    key: str = None
    layer: str = None  # the Keras layer or operation the tensor belongs to
    actual_shape: tuple = None  # set when the ONNX tensor's shape differs from Keras's
    run: tuple = None  # graph outputs: (which run of inputs, which output)
    sensitivity: float = None  # Keras's own move under a one-ulp input change, error/scale
    nonfinite: str = None  # NaN/Inf seen in "keras", "onnx" or "both" (always a failure)

    @property
    def passed(self):
        return self.status != "FAIL"


@dataclasses.dataclass
class VerifyReport:
    """What `verify_onnx` ran and measured.

    `checks`: graph outputs at the deployment level, every run. `tensors`: every Keras
    tensor of the tensor map (outputs of layers and `keras.ops` nodes, pre-activations),
    at the inspection level, one run. `passed` is True when nothing failed and at least
    one informative tensor was compared.
    """

    path: str
    opset: int
    node_count: int
    file_size: int
    providers: list
    level: str = "all"
    rule: str = TOLERANCE_RULE
    checks: list = dataclasses.field(default_factory=list)
    tensors: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    ort_problem: dict = None
    level_spread: float = None  # deployed level vs unoptimised graph, outputs, error/scale
    # worst error/scale of any layer applied by Keras to the graph's values of its inputs
    # (measured when tensors differ beyond tolerance; None otherwise)
    local_worst: float = None
    seconds: float = 0.0

    @property
    def informative(self):
        return [c for c in self.checks + self.tensors
                if c.status in ("pass", "FAIL", "amplified")]

    @property
    def constant_outputs(self):
        """Graph outputs constant (or zero) on every run: nothing proves them."""
        seen = {}
        for c in self.checks:
            if c.role == "output":
                seen[c.tensor] = seen.get(c.tensor, False) or c.status != "uninformative"
        return [name for name, informative in seen.items() if not informative]

    @property
    def passed(self):
        """Nothing failed, and every graph output was informative on some run: a constant
        or zero reference never passes (NaN/Inf always fail)."""
        return (not self.errors and bool(self.informative) and not self.constant_outputs
                and all(c.passed for c in self.checks + self.tensors))

    @property
    def required_tolerance(self):
        """The smallest tolerance that would have passed: the worst error/scale of any
        informative tensor compared; None when none would (NaN/Inf, a shape mismatch, a
        constant output, nothing informative, or an error)."""
        compared = [c for c in self.checks + self.tensors if c.status in ("pass", "FAIL")]
        if self.errors or not compared or self.constant_outputs or any(
                c.nonfinite or c.actual_shape is not None for c in compared):
            return None
        return max(c.rel for c in compared)

    @property
    def diagnosis(self):
        """The failing internal tensors in graph order (the first is where it broke);
        layers that differ from Keras on the same inputs (role "local") come first."""
        failed = [c for c in self.tensors if c.status == "FAIL"]
        return [c for c in failed if c.role == "local"] + \
            [c for c in failed if c.role != "local"]

    def summary(self):
        """One line: what failed first, by how much relative to its scale, where."""
        if self.errors:
            return self.errors[0]
        failed = self.diagnosis or [c for c in self.checks if c.status == "FAIL"]
        if failed:
            c = failed[0]
            where = "first diverging layer" if c.role != "output" else "output"
            if c.nonfinite and c.role != "output":
                where = "first tensor with NaN/Inf"
            if c.actual_shape is not None:
                what = f"shape {c.actual_shape} where Keras has {tuple(c.shape)}"
            elif c.nonfinite:
                what = {"keras": "NaN/Inf in Keras's own tensor: the model itself computes "
                                 "them on these inputs",
                        "onnx": "NaN/Inf in onnxruntime's tensor where Keras is finite",
                        "both": "NaN/Inf in both Keras's and onnxruntime's tensors: the model "
                                "itself computes them on these inputs"}[c.nonfinite]
            else:
                what = f"error {c.rel:.3g} x its scale {c.scale:.3g}, tolerance {c.tolerance:g}"
            return f"{where}: {c.tensor} ({what}; {c.provider}, ORT level {c.level})"
        if not self.informative:
            return "nothing informative to compare: every reference tensor is constant or zero"
        if self.constant_outputs:
            return (f"output {self.constant_outputs[0]} is constant or zero on every input: "
                    f"nothing proves it (an uninformative tensor never passes; verify with "
                    f"samples that move it)")
        return "passed"

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["passed"] = self.passed
        out["summary"] = self.summary()
        return out

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, default=str)


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


def precision_tolerance(model, onnx_model=None):
    """Tolerance floor from the lowest precision the model or the graph computes in."""
    dtypes = {getattr(layer, "compute_dtype", "float32") for layer in getattr(model, "layers", [])}
    if onnx_model is not None and _has_float16(onnx_model):
        dtypes.add("float16")
    floors = [LOW_PRECISION_TOLERANCES[d] for d in dtypes if d in LOW_PRECISION_TOLERANCES]
    return max(floors, default=0.0)


def _has_float16(onnx_model):
    return any(t.data_type == 10 for t in onnx_model.graph.initializer)  # TensorProto.FLOAT16


def _metadata(onnx_model):
    props = {p.key: p.value for p in onnx_model.metadata_props}
    return json.loads(props.get("keras_convx.io", "{}"))


def input_distribution(model, index):
    """How to draw input `index` at the scale the model expects: (kind, a, b).

    Pixels in 0..255 when the input feeds a `Rescaling` that divides by ~255 or ~127.5;
    the `Normalization` statistics when it feeds one; else N(0, 1).
    """
    fmodel = tensor_map.functional(model)
    kt = fmodel.inputs[index]
    consumers = [n.operation for n in getattr(kt._keras_history.operation, "_outbound_nodes", [])]
    for op in consumers:
        if isinstance(op, keras.layers.Rescaling):
            scale = np.abs(np.asarray(op.scale, np.float64))
            if np.all(scale > 0) and np.all(scale <= 1 / 100):
                return ("uniform", 0.0, 255.0)
        if isinstance(op, keras.layers.Normalization) and not getattr(op, "invert", False):
            mean = getattr(op, "mean", None)
            if mean is not None:
                mean = np.asarray(keras.ops.convert_to_numpy(mean), np.float64)
                var = np.asarray(keras.ops.convert_to_numpy(op.variance), np.float64)
                return ("normal", mean, np.sqrt(np.maximum(var, 0)))
    return ("normal", 0.0, 1.0)


def model_inputs(model, io, batch, rng):
    """Random inputs in Keras layout for each model input, at its expected scale."""
    arrays = []
    for i, kt in enumerate(model.inputs):
        shape = list(kt.shape)
        fixed = io.get("input_shapes", [None] * len(model.inputs))[i]
        if fixed:
            shape = list(fixed)
        shape[0] = batch
        if any(d is None for d in shape):
            raise ValueError(
                f"verify: input {kt.name!r} has unknown dims {tuple(kt.shape)}; pass samples "
                f"or export with an input shape"
            )
        kind, a, b = input_distribution(model, i)
        if kind == "uniform":
            x = rng.uniform(a, b, shape)
        else:
            x = a + b * rng.standard_normal(shape)
        arrays.append(np.asarray(x, np.float32))
    return arrays


def calibrate_batch_norm(model, seed=0, batch=None):
    """Sets every BatchNormalization's moving statistics to those of random inputs drawn
    at the model's expected scale, as training would, and returns the model.

    Random-init statistics (mean 0, variance 1) shrink a deep net's activations layer
    after layer (MobileNet's random-init logits are ~1e-12): outputs like that prove
    little. Calibrated statistics keep every tensor at a realistic scale.

    Args:
        model: the Keras model (changed in place).
        seed: seed of the random inputs.
        batch: calibration batch size; default enough samples that every channel of the
            smallest feature map (1x1 at 32x32 inputs) sees >= 256 values, within 4..32.
            Statistics from a handful of values would be noise, and noise compounds.
    """
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return model
    if batch is None:
        spatial = [d for d in model.inputs[0].shape[1:-1] if d] or [32]
        positions = max(1, int(np.prod([max(1, d // 32) for d in spatial])))
        batch = int(np.clip(-(-256 // positions), 4, 32))
    # dropout off: inference has none, and statistics must match what inference sees
    dropouts = [layer for layer in model._flatten_layers()
                if isinstance(getattr(layer, "rate", None), float) and "dropout" in
                type(layer).__name__.lower()]
    saved = [layer.momentum for layer in layers], [layer.rate for layer in dropouts]
    for layer in layers:
        layer.momentum = 0.0  # the moving statistics become this batch's statistics
    for layer in dropouts:
        layer.rate = 0.0
    try:
        arrays = model_inputs(model, {}, batch, np.random.default_rng(seed))
        _training_pass(model, arrays if len(arrays) > 1 else arrays[0])
    finally:
        for layer, momentum in zip(layers, saved[0]):
            layer.momentum = momentum
        for layer, rate in zip(dropouts, saved[1]):
            layer.rate = rate
    return model


def _training_pass(model, x):
    """One forward pass in training mode, keeping the updated BatchNorm statistics."""
    if keras.backend.backend() != "jax":
        model(x, training=True)
        return
    import jax

    # compiled as one XLA program: eager JAX compiles every operation for every new shape
    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]
    step = jax.jit(lambda t, f, x: model.stateless_call(t, f, x, training=True)[1])
    for variable, value in zip(model.non_trainable_variables, step(trainable, fixed, x)):
        variable.assign(value)


def _to_graph(arrays, perms):
    return [np.ascontiguousarray(np.transpose(a, p)) if p else a for a, p in zip(arrays, perms)]


def _from_graph(arrays, perms):
    return [np.transpose(a, np.argsort(p)) if p else a for a, p in zip(arrays, perms)]


def run_keras(model, arrays):
    x = arrays if len(arrays) > 1 else arrays[0]
    if keras.backend.backend() == "jax":
        # one XLA compilation of the whole graph per input shape instead of one per
        # operation in eager mode: DenseNet121 at 32x32, 3.9 s instead of 17 s
        outs = model.predict_on_batch(x)
    else:
        outs = model(x, training=False)
    # a dict of outputs flattens in key order, as the Functional model's `outputs` do
    return [np.asarray(keras.ops.convert_to_numpy(o), np.float32)
            for o in keras.tree.flatten(outs)]


def _without_activation(layer, inputs):
    """The layer's output before its fused activation, computed by Keras itself."""
    saved = layer.activation
    layer.activation = keras.activations.linear
    try:
        out = layer(*inputs, training=False)
    finally:
        layer.activation = saved
    return np.asarray(keras.ops.convert_to_numpy(out), np.float32)


class Reference:
    """Keras's values of the model outputs and of the mapped tensors, for given runs.

    Computed once per model and reused for any number of graphs (the fault-injection
    tests check hundreds of mutants against one reference). Two more views are computed
    on demand, when a graph disagrees with Keras: `sensitivity()` (how far Keras's own
    tensors move when its inputs move by one float32 rounding) and `teacher_forced()`
    (each layer applied to the graph's values of its inputs).
    """

    def __init__(self, model, entries, runs, inspect_run=0, batch=None):
        self.model, self.runs, self.inspect_run = model, runs, inspect_run
        self.tensors = {}  # ("out" | "pre", key) -> reference array on runs[inspect_run]
        self._sensitivity = None
        self._fmodel = tensor_map.functional(model)
        self._flat = tensor_map.flat_graph(model, batch) if entries else None
        found = tensor_map.resolve(model, [e["key"] for e in entries], batch) if entries else {}
        self.skipped = [e["key"] for e in entries if e["key"] not in found]
        self._live = [e for e in entries if e["key"] in found and e["status"] == "live"]
        self._found = found
        self._probe = None
        # tensors inside traced layers or nested models are not reachable from the
        # model's inputs in Keras's graph: the flat graph runs eagerly instead
        self._eager = any("/" in e["key"] for e in self._live)
        if self._live and not self._eager:
            wanted = {}
            for e in self._live:
                kt = found[e["key"]][0]
                for t in (self._node(e).input_tensors if _is_pre(e) else [kt]):
                    wanted.setdefault(id(t), t)
            fm = self._fmodel
            self._probe_ids = list(wanted)
            self._probe = keras.Model(fm.inputs if len(fm.inputs) > 1 else fm.inputs[0],
                                      list(fm.outputs) + list(wanted.values()))
        # the inspected run's outputs come from the probe, and runs that are its leading
        # samples are slices of them: forward passes saved
        self.outputs = [None] * len(runs)
        if self._probe is not None or self._eager:
            self.outputs[inspect_run], self.tensors = self._values(runs[inspect_run])
        elif runs:
            self.outputs[inspect_run] = run_keras(model, runs[inspect_run])
        for i, arrays in enumerate(runs):
            if self.outputs[i] is None:
                n = self._prefix_of_inspected(arrays)
                self.outputs[i] = ([o[:n] for o in self.outputs[inspect_run]] if n
                                   else run_keras(model, arrays))

    def _prefix_of_inspected(self, arrays):
        """The batch size of `arrays` if they are the inspected run's leading samples."""
        inspected = self.runs[self.inspect_run]
        n = arrays[0].shape[0]
        same = len(arrays) == len(inspected) and all(
            a.shape[1:] == b.shape[1:] and a.shape[0] <= b.shape[0] and np.array_equal(a, b[:n])
            for a, b in zip(arrays, inspected))
        return n if same else 0

    def _node(self, entry):
        return self._found[entry["key"]][1].node

    def _layer(self, entry):
        return self._found[entry["key"]][1].operation

    def _values(self, arrays):
        """(model outputs, {ref key: value}) on `arrays`, one forward pass."""
        if self._eager:
            # the outputs from the model itself; the traced graph gives the tensors inside
            values, _ = trace.run(self._flat, arrays)
            outputs = run_keras(self.model, arrays)
        else:
            results = run_keras(self._probe, arrays)
            n_out = len(self._fmodel.outputs)
            values = dict(zip(self._probe_ids, results[n_out:]))
            outputs = results[:n_out]
        tensors = {}
        for e in self._live:
            if _is_pre(e):
                tensors[("pre", e["key"])] = _without_activation(
                    self._layer(e), [values[id(t)] for t in self._node(e).input_tensors])
            else:
                tensors[("out", e["key"])] = _numpy(values[id(self._found[e["key"]][0])])
        return outputs, tensors

    def sensitivity(self, seed=0):
        """How far Keras's own values move when every input element moves by one float32
        ulp (up or down at random): {("output", run, index) | ref key: error/scale}.

        A well-conditioned net moves by ~1e-6 of its scale; deep nets whose
        squeeze-and-excitation gates saturate move by 1e-3 and more, so float32 rounding
        alone (ours or onnxruntime's) moves them that much too.
        """
        if self._sensitivity is None:
            rng = np.random.default_rng(seed)
            sens = {}
            inspected = [_nudge(a, rng) for a in self.runs[self.inspect_run]]
            if self._probe is not None or self._eager:
                inspected_outs, tensors = self._values(inspected)
                for k, v in tensors.items():
                    sens[k] = stats.tensor_error(v, self.tensors[k]).rel
            else:
                inspected_outs = run_keras(self.model, inspected)
            for i, arrays in enumerate(self.runs):
                n = self._prefix_of_inspected(arrays)
                if i == self.inspect_run or n:  # the same nudge on the same samples
                    outs = [o[:n] for o in inspected_outs] if n else inspected_outs
                else:
                    outs = run_keras(self.model, [_nudge(a, rng) for a in arrays])
                for j, (o, ref) in enumerate(zip(outs, self.outputs[i])):
                    sens[("output", i, j)] = stats.tensor_error(o, ref).rel
            self._sensitivity = sens
        return self._sensitivity

    def teacher_forced(self, graph_values):
        """Each layer's output computed by Keras from the graph's values of its inputs.

        `graph_values`: {key: the graph's value of that Keras tensor, Keras layout} for
        the mapped tensors of the inspected run. Walks the Functional graph once; a
        tensor the graph does not hold (fused away) is computed by Keras from its own
        inputs, so each mapped tensor is judged on the layers since the previous mapped
        tensors only. Returns {ref key: array}.
        """
        forced = {id(self._found[k][0]): v for k, v in graph_values.items()}
        values, local = trace.run(self._flat, self.runs[self.inspect_run], forced)
        out = {}
        for e in self._live:
            kt = self._found[e["key"]][0]
            if _is_pre(e):
                ins = [values[id(t)] for t in self._node(e).input_tensors]
                out[("pre", e["key"])] = _without_activation(self._layer(e), ins)
            elif id(kt) in local:
                out[("out", e["key"])] = np.asarray(keras.ops.convert_to_numpy(local[id(kt)]),
                                                    np.float32)
        return out


def _numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value), np.float32)


def _is_pre(entry):
    return entry["kind"] == "preactivation"


def _nudge(array, rng):
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.floating):
        return a
    towards = np.where(rng.random(a.shape) < 0.5, -np.inf, np.inf).astype(a.dtype)
    return np.nextafter(a, towards)


def _session(data, provider, level, base_dir=None):
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
            return _session(path, provider, level)
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
                          f"{_first_line(err)}") from None


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _inspection_graph(onnx_model, names):
    """A serialized copy of the graph with `names` added as outputs."""
    import onnx

    existing = {o.name for o in onnx_model.graph.output}
    elem = onnx.TensorProto.FLOAT16 if _has_float16(onnx_model) else onnx.TensorProto.FLOAT
    added = []
    for name in names:
        if name not in existing:
            info = onnx.helper.make_tensor_value_info(name, elem, None)
            onnx_model.graph.output.append(info)
            existing.add(name)
            added.append(name)
    try:
        return onnx_model.SerializeToString()
    finally:
        for _ in added:
            onnx_model.graph.output.pop()


class Verifier:
    """Verifies ONNX graphs against one Keras model; the Keras side is computed once.

    Args:
        model: the Keras model.
        io: the `keras_convx.io` metadata of the graphs (layouts, static batch, shapes).
        entries: the tensor map (`tensor_map.read`); empty for graphs of other exporters.
        samples: optional list of input lists (Keras layout) to check besides random ones.
        batch_sizes: batch sizes of the random inputs (a static batch uses its own).
        seed: seed of the random inputs.
    """

    def __init__(self, model, io=None, entries=(), samples=None, batch_sizes=(1, 2), seed=0):
        self.model, self.io = model, dict(io or {})
        self.entries = list(entries)
        rng = np.random.default_rng(seed)
        runs = []
        static = self.io.get("static_batch")
        sizes = [static] if static else list(batch_sizes)
        try:
            # Smaller batches are the leading samples of the largest: Keras's values for
            # them are slices of one forward pass (one XLA compilation on JAX, not one per
            # batch size), while onnxruntime still runs each batch size.
            largest = model_inputs(model, self.io, max(sizes), rng)
            runs = [[a[:batch] for a in largest] for batch in sizes]
        except ValueError:
            if not samples:
                raise  # unknown spatial dims: the user's samples are the runs
        for sample in samples or []:
            sample = sample if isinstance(sample, (list, tuple)) else [sample]
            runs.append([np.asarray(s, np.float32) for s in sample])
        # the largest random batch shows every tensor (more samples, same single run)
        inspect = max(range(len(runs)), key=lambda i: runs[i][0].shape[0]) if runs else 0
        self.reference = Reference(model, self.entries, runs, inspect, static)

    def verify(self, onnx_model, path="", providers=None, tolerance=None,
               optimization_level="all", inspect=True, serialized=None, base_dir=None):
        """Runs `onnx_model` (a ModelProto; `serialized`: its bytes, if at hand) and
        compares; returns a `VerifyReport`."""
        import time

        start = time.perf_counter()
        if optimization_level not in LEVELS:
            raise ValueError(f"verify: optimization_level must be one of {LEVELS}, got "
                             f"{optimization_level!r}")
        providers = available_providers(providers)
        report = VerifyReport(
            path=str(path),
            opset=max((o.version for o in onnx_model.opset_import
                       if o.domain in ("", "ai.onnx")), default=0),
            node_count=len(onnx_model.graph.node),
            file_size=os.path.getsize(path) if path and os.path.exists(path) else 0,
            providers=providers, level=optimization_level,
        )
        self._check_inputs(onnx_model)
        if self.reference.skipped:
            report.warnings.append(
                f"{len(self.reference.skipped)} mapped tensor(s) are not in this model "
                f"(e.g. {self.reference.skipped[0]}): not compared")
        floor = precision_tolerance(self.model, onnx_model)
        self._base_dir = base_dir  # set for graphs whose weights are external data
        plain = serialized if serialized is not None else onnx_model.SerializeToString()
        live = [e for e in self.entries if e["status"] == "live"
                and (("pre" if e["kind"] == "preactivation" else "out"), e["key"])
                in self.reference.tensors]
        for provider in providers:
            self._graph_values = {}
            tol = tolerance if tolerance is not None else max(
                DEFAULT_TOLERANCES.get(provider, stats.CPU_TOLERANCE), floor)
            baseline = None
            if inspect and self.entries:
                data = _inspection_graph(onnx_model, [e["onnx"] for e in live])
                baseline = self._run_tensors(report, data, onnx_model, provider, tol)
            deployed = self._run_outputs(report, plain, onnx_model, provider,
                                         optimization_level, tol)
            if baseline is not None:
                self._explain_amplification(report, provider, tol)
            if baseline is not None and deployed is not None \
                    and optimization_level != INSPECT_LEVEL:
                self._check_optimiser(report, onnx_model, live, provider, optimization_level,
                                      deployed, baseline)
        for c in report.checks + report.tensors:
            if c.status == "uninformative" and c.role == "output":
                report.warnings.append(
                    f"output {c.tensor} is constant to float32 precision (scale {c.scale:.3g}) "
                    f"on these inputs: uninformative")
        report.seconds = time.perf_counter() - start
        return report

    def _check_inputs(self, onnx_model):
        initializers = {t.name for t in onnx_model.graph.initializer}
        graph_inputs = [i.name for i in onnx_model.graph.input if i.name not in initializers]
        want = len(self.model.inputs)
        if len(graph_inputs) != want:
            raise ExportError(
                f"verify: the ONNX graph has {len(graph_inputs)} input(s) {graph_inputs}, the "
                f"Keras model {want} ({[kt.name for kt in self.model.inputs]}); a graph that "
                f"needs inputs the model does not have can't be verified")

    def _feeds(self, session, arrays):
        return dict(zip([i.name for i in session.get_inputs()], self._feeds_for(arrays)))

    def _run(self, report, session, arrays, what):
        try:
            return session.run(None, self._feeds(session, arrays))
        except Exception as err:
            report.errors.append(f"verify: onnxruntime failed running the graph ({what}): "
                                 f"{_first_line(err)}")
            return None

    def _run_outputs(self, report, data, onnx_model, provider, level, tol):
        session = _session(data, provider, level, self._base_dir)
        names = [o.name for o in onnx_model.graph.output]
        out_perms = self.io.get("output_perms") or [None] * len(names)
        inspected = None
        for i, arrays in enumerate(self.reference.runs):
            got = self._run(report, session, arrays, f"{provider}, level {level}")
            if got is None:
                return None
            got = _from_graph(got[:len(names)], out_perms)
            if i == self.reference.inspect_run:
                inspected = got
            for j, (name, g, e) in enumerate(zip(names, got, self.reference.outputs[i])):
                report.checks.append(_check(name, "output", provider, level, arrays, g, e, tol,
                                            cosine=True, run=(i, j)))
        return inspected

    def _run_tensors(self, report, data, onnx_model, provider, tol):
        """Every mapped tensor at INSPECT_LEVEL; returns the graph outputs of that run."""
        session = _session(data, provider, INSPECT_LEVEL, self._base_dir)
        arrays = self.reference.runs[self.reference.inspect_run]
        got = self._run(report, session, arrays, f"{provider}, level {INSPECT_LEVEL}, inspection")
        if got is None:
            return None
        values = dict(zip([o.name for o in session.get_outputs()], got))
        self._graph_values = {}  # Keras layout, for the layer-by-layer check
        for e in self.entries:
            role = "preactivation" if e["kind"] == "preactivation" else "internal"
            ref_key = ("pre" if role == "preactivation" else "out", e["key"])
            label = e["label"] + (f" (before {e['activation']})" if role == "preactivation" else "")
            if e["status"] != "live":
                report.tensors.append(TensorCheck(
                    tensor=label, role=role, provider=provider, level=INSPECT_LEVEL,
                    batch=int(arrays[0].shape[0]), shape=(), tolerance=tol, status="fused",
                    into=e["into"], key=e["key"], layer=e["label"]))
                continue
            if ref_key not in self.reference.tensors:
                continue
            g = _from_graph([values[e["onnx"]]], [e["perm"]])[0]
            if role == "internal":
                self._graph_values[e["key"]] = g
            report.tensors.append(_check(label, role, provider, INSPECT_LEVEL, arrays, g,
                                         self.reference.tensors[ref_key], tol, key=e["key"],
                                         layer=e["label"]))
        # the graph outputs themselves, unoptimised: layout moves after the last mapped
        # tensor (an output Transpose) are checked here, and this is what tells an export
        # error from an onnxruntime optimisation problem
        names = [o.name for o in onnx_model.graph.output]
        outputs = _from_graph([values[n] for n in names], self.io.get("output_perms")
                              or [None] * len(names))
        expected = self.reference.outputs[self.reference.inspect_run]
        for j, (name, g, e) in enumerate(zip(names, outputs, expected)):
            report.tensors.append(_check(name, "output", provider, INSPECT_LEVEL, arrays, g, e,
                                         tol, cosine=True, run=(self.reference.inspect_run, j)))
        return outputs

    def _explain_amplification(self, report, provider, tol):
        """Re-judges failures that Keras's own sensitivity to rounding accounts for.

        A tensor beyond tolerance is accepted as "amplified" only when (1) it moves less
        than `stats.AMPLIFICATION` x as far as Keras's own value does when the inputs move
        by one float32 ulp, and (2) every mapped layer of the graph, fed the graph's
        values of its inputs, matches Keras applied to those same values within the
        tolerance. (2) is what a wrong graph cannot pass: a fault changes its own layer
        by far more than rounding, however the model amplifies it downstream.
        """
        failed = [c for c in report.checks + report.tensors
                  if c.provider == provider and c.status == "FAIL" and c.role != "local"
                  and c.actual_shape is None and np.isfinite(c.rel)]
        if not failed or not self._graph_values:
            return
        sens = self.reference.sensitivity()
        explained = []
        for c in failed:
            s = sens.get(_sensitivity_key(c))
            if s is not None:
                c.sensitivity = s
                if c.rel <= stats.AMPLIFICATION * s:
                    explained.append(c)
        if not explained:
            return
        local = self.reference.teacher_forced(self._graph_values)
        worst, wrong = 0.0, []
        arrays = self.reference.runs[self.reference.inspect_run]
        labels = {e["key"]: e["label"] for e in self.entries}
        for key, g in self._graph_values.items():
            ref = local.get(("out", key))
            if ref is None:
                continue
            label = labels[key]
            check = _check(label, "local", provider, INSPECT_LEVEL, arrays, g, ref, tol,
                           key=key, layer=label)
            if check.status in ("pass", "FAIL"):
                worst = max(worst, check.rel)
            if check.status == "FAIL":
                wrong.append(check)
        report.local_worst = max(report.local_worst or 0.0, worst)
        if wrong:  # a layer computes differently: the failures stand, and it is the place
            report.tensors.extend(wrong)
            return
        for c in explained:
            c.status = "amplified"
        top = max(explained, key=lambda c: c.rel)
        report.warnings.append(
            f"{len(explained)} tensor(s) differ from Keras by more than the tolerance "
            f"{tol:g} (worst {top.rel:.3g} x its scale at {top.tensor}) because the model "
            f"amplifies float32 rounding: Keras's own {top.tensor} moves by "
            f"{top.sensitivity:.3g} when its inputs move by one float32 ulp. Every layer of "
            f"the graph matches Keras on the same inputs (worst {worst:.3g} x its scale), so "
            f"the graph is right; expect differences of this size between any two float32 "
            f"runs of this model (Keras backends included)")

    def _check_optimiser(self, report, onnx_model, live, provider, level, deployed, baseline):
        """The deployed level against the unoptimised graph: onnxruntime's own changes.

        Both sides are onnxruntime on the same graph, so they differ by rounding only
        (`stats.LEVEL_TOLERANCE`) unless an optimisation changed the semantics.
        """
        names = [o.name for o in onnx_model.graph.output]
        worst = max((stats.tensor_error(d, b).rel for d, b in zip(deployed, baseline)),
                    default=0.0)
        report.level_spread = max(report.level_spread or 0.0, worst)
        keras_bad = [c for c in report.checks if c.provider == provider and c.status == "FAIL"]
        inspected_bad = any(c.status == "FAIL" for c in report.tensors if c.provider == provider)
        # how far apart two correct float32 computations of these outputs are (Keras and the
        # unoptimised graph): an optimisation that moves them less than that is rounding
        noise = max((c.rel for c in report.tensors if c.provider == provider
                     and c.role == "output" and c.status in ("pass", "amplified")),
                    default=0.0)
        sens = self.reference._sensitivity  # measured when something failed
        if sens:
            noise = max([noise] + [stats.AMPLIFICATION * v for k, v in sens.items()
                                   if k[0] == "output"])
        if inspected_bad or (worst <= max(stats.LEVEL_TOLERANCE, 2 * noise) and not keras_bad):
            return
        first = _first_divergence(onnx_model, [e for e in live if e["kind"] == "output"],
                                  self._feeds_for(self.reference.runs[self.reference.inspect_run]),
                                  provider, level, self._base_dir)
        report.ort_problem = {"provider": provider, "level": level,
                              "correct_at": INSPECT_LEVEL, "output_rel": worst,
                              "first_tensor": first[0] if first else None,
                              "first_rel": first[1] if first else None}
        for c in keras_bad:  # the graph is right; onnxruntime's optimiser is not
            c.status = "ort-optimiser"
        where = f"first at {first[0]} (error {first[1]:.3g} x its scale)" if first else \
            f"outputs {', '.join(names)}"
        report.warnings.append(
            f"onnxruntime problem, not an export problem: level '{level}' optimisation changes "
            f"the results on {provider} by {worst:.3g} x the output scale, {where}; the graph "
            f"itself is right (level '{INSPECT_LEVEL}' agrees with Keras). Deploy with "
            f"GraphOptimizationLevel ORT_DISABLE_ALL, or check a newer onnxruntime")

    def _feeds_for(self, arrays):
        """The input arrays in the graph's layout, in input order."""
        perms = self.io.get("input_perms") or [None] * len(arrays)
        return _to_graph(arrays, perms)


def _prefix_graph(onnx_model, output_name):
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


def _first_divergence(onnx_model, entries, arrays, provider, level, base_dir=None):
    """(label, rel) of the first mapped tensor where `level` and INSPECT_LEVEL disagree.

    Exposing a tensor as an output can block the very fusion at fault, so each probe
    is a prefix graph ending at that tensor; a bisection over execution order needs
    ~log2(tensors) of them (a change propagates downstream).
    """
    graph_inputs = [g.name for g in onnx_model.graph.input]

    def diverges(entry):
        data = _prefix_graph(onnx_model, entry["onnx"])
        runs = []
        for lvl in (level, INSPECT_LEVEL):
            session = _session(data, provider, lvl, base_dir)
            feeds = {i.name: arrays[graph_inputs.index(i.name)] for i in session.get_inputs()}
            runs.append(session.run(None, feeds)[0])
        rel = stats.tensor_error(runs[0], runs[1]).rel
        return rel if rel > stats.LEVEL_TOLERANCE else None

    lo, hi, found = 0, len(entries) - 1, None
    try:
        while lo <= hi:
            mid = (lo + hi) // 2
            rel = diverges(entries[mid])
            if rel is not None:
                found, hi = (entries[mid]["label"], rel), mid - 1
            else:
                lo = mid + 1
    except Exception:  # a probe that can't run only costs the location, not the verdict
        return found
    return found


def _sensitivity_key(check):
    if check.key is not None:  # an internal tensor or pre-activation, inspected run
        return ("pre" if check.role == "preactivation" else "out", check.key)
    return ("output",) + tuple(check.run) if check.run is not None else None


def _check(name, role, provider, level, arrays, actual, expected, tol, cosine=False, key=None,
           layer=None, run=None):
    err = stats.tensor_error(actual, expected, cosine=cosine)
    status = "FAIL" if err.failed(tol) else ("pass" if err.informative else "uninformative")
    return TensorCheck(tensor=name, role=role, provider=provider, level=level,
                       batch=int(arrays[0].shape[0]), shape=err.shape, tolerance=tol,
                       status=status, scale=err.scale, max_abs=err.max_abs, rel=err.rel,
                       rms_rel=err.rms_rel, cosine=err.cosine, key=key, layer=layer or name,
                       actual_shape=err.actual_shape, run=run, nonfinite=err.nonfinite)


def verify_onnx(model, path, samples=None, providers=None, tolerance=None,
                batch_sizes=(1, 2), seed=0, optimization_level="all", inspect=True):
    """Runs the ONNX file `path` in onnxruntime and compares it with `model`, tensor by tensor.

    Args:
        model: the Keras model it was exported from (first, as in `export_onnx`; the old
            order `verify_onnx(path, model)` still works, with a DeprecationWarning).
        path: the ONNX file (or an `onnx.ModelProto`).
        samples: optional list of input lists (Keras layout) to check besides random ones
            (random inputs are drawn at the model's expected scale: 0..255 before a
            `Rescaling(1/255)`, the statistics of a leading `Normalization`, else N(0, 1)).
        providers: e.g. `["cpu", "cuda"]`; default every available one.
        tolerance: max abs error allowed, as a fraction of each tensor's max |value|
            (default per provider, `DEFAULT_TOLERANCES`, widened to
            `LOW_PRECISION_TOLERANCES` when the model or the graph computes in half
            precision). See `keras_convx.exporter.stats` for how the defaults were measured.
        batch_sizes: batch sizes of the random inputs (a static batch uses its own).
        seed: seed of the random inputs.
        optimization_level: the onnxruntime level the outputs are checked at, as deployed:
            `"all"` (default), `"extended"`, `"basic"` or `"disable"`. The internal tensors
            are checked unoptimised (`"disable"`).
        inspect: compare the internal tensors too (graphs exported by keras_convx carry a
            map from each Keras tensor to the ONNX tensor holding it).

    Returns:
        A `VerifyReport`; `report.passed` says whether everything agreed, and
        `report.diagnosis` lists the tensors that diverge, in graph order.

    Raises:
        ExportError: the graph can't be run against this model (onnxruntime rejects it,
            or it needs inputs the model does not have).
    """
    import onnx

    if isinstance(path, keras.Model) and not isinstance(model, keras.Model):
        import warnings

        warnings.warn("verify_onnx(path, model) is deprecated: call verify_onnx(model, path), "
                      "the order of export_onnx(model, path)", DeprecationWarning, stacklevel=2)
        model, path = path, model
    if not isinstance(model, keras.Model):
        raise TypeError(f"verify_onnx: model must be a Keras model, got "
                        f"{type(model).__name__}; call verify_onnx(model, path)")
    if isinstance(path, onnx.ModelProto):
        onnx_model, path = path, ""
    else:
        try:
            # weights in external data stay on disk: sessions read them from there
            onnx_model = onnx.load(os.fspath(path), load_external_data=False)
        except Exception as err:
            raise ExportError(f"verify: can't read {path}: {_first_line(err)}") from None
    verifier = Verifier(model, _metadata(onnx_model), tensor_map.read(onnx_model), samples,
                        batch_sizes, seed)
    external = path and any(t.data_location == 1 for t in onnx_model.graph.initializer)
    return verifier.verify(onnx_model, path, providers, tolerance, optimization_level, inspect,
                           base_dir=os.path.dirname(os.path.abspath(path)) if external else None)

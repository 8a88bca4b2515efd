"""Running an ONNX file in onnxruntime and comparing it with the Keras model."""

import dataclasses
import json
import os

import keras
import numpy as np

# Polygraphy-style: an element fails only if abs error > atol AND rel error > rtol.
DEFAULT_TOLERANCES = {
    "CPUExecutionProvider": (1e-4, 1e-4),
    # cuDNN may pick TF32 or Winograd kernels: ~1e-3 relative error is normal there.
    "CUDAExecutionProvider": (1e-2, 1e-2),
}


class VerificationError(RuntimeError):
    """The ONNX graph's outputs differ from the Keras model's beyond tolerance."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class OutputCheck:
    output: str
    provider: str
    batch: int
    shape: tuple
    max_abs: float
    max_rel: float
    mean_abs: float
    p99_abs: float
    atol: float
    rtol: float
    passed: bool


@dataclasses.dataclass
class VerifyReport:
    """What `verify_onnx` ran and measured; `passed` is True only if every check passed."""

    path: str
    opset: int
    node_count: int
    file_size: int
    providers: list
    checks: list = dataclasses.field(default_factory=list)

    @property
    def passed(self):
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["passed"] = self.passed
        return out

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, default=str)


def compare(actual, expected, atol, rtol):
    """Error statistics of `actual` against `expected` (float64)."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    if a.shape != e.shape:
        return dict(max_abs=float("inf"), max_rel=float("inf"), mean_abs=float("inf"),
                    p99_abs=float("inf"), passed=False)
    diff = np.abs(a - e)
    rel = diff / np.maximum(np.abs(e), 1e-12)
    ok = (diff <= atol) | (rel <= rtol)
    finite = np.isfinite(a).all()
    return dict(
        max_abs=float(diff.max()) if diff.size else 0.0,
        max_rel=float(rel.max()) if rel.size else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        p99_abs=float(np.quantile(diff, 0.99)) if diff.size else 0.0,
        passed=bool(ok.all() and finite),
    )


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


# Half-precision computation (in Keras or in the graph) widens the default tolerances.
LOW_PRECISION_TOLERANCES = {"float16": (1e-2, 1e-2), "bfloat16": (4e-2, 4e-2)}


def precision_tolerances(model, onnx_model=None):
    """(atol, rtol) floor from the lowest precision the model or the graph computes in."""
    dtypes = {getattr(layer, "compute_dtype", "float32") for layer in getattr(model, "layers", [])}
    if onnx_model is not None and any(t.data_type == 10 for t in onnx_model.graph.initializer):
        dtypes.add("float16")  # TensorProto.FLOAT16 weights
    floors = [LOW_PRECISION_TOLERANCES[d] for d in dtypes if d in LOW_PRECISION_TOLERANCES]
    return max(floors) if floors else (0.0, 0.0)


def _metadata(onnx_model):
    props = {p.key: p.value for p in onnx_model.metadata_props}
    return json.loads(props.get("keras_convx.io", "{}"))


def model_inputs(model, io, batch, rng):
    """Random inputs in Keras layout for each model input."""
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
        arrays.append(rng.standard_normal(shape).astype("float32"))
    return arrays


def _to_graph(arrays, perms):
    return [np.ascontiguousarray(np.transpose(a, p)) if p else a for a, p in zip(arrays, perms)]


def _from_graph(arrays, perms):
    return [np.transpose(a, np.argsort(p)) if p else a for a, p in zip(arrays, perms)]


def run_keras(model, arrays):
    outs = model(arrays if len(arrays) > 1 else arrays[0], training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [np.asarray(keras.ops.convert_to_numpy(o), np.float32) for o in outs]


def verify_onnx(path, model, samples=None, providers=None, rtol=None, atol=None,
                batch_sizes=(1, 3), seed=0):
    """Runs `path` in onnxruntime with each provider and compares with `model`.

    Args:
        path: the ONNX file.
        model: the Keras model it was exported from.
        samples: optional list of input lists (Keras layout) to check besides random ones.
        providers: e.g. `["cpu", "cuda"]`; default every available one.
        rtol, atol: tolerances (default per provider: `DEFAULT_TOLERANCES`, widened to
            `LOW_PRECISION_TOLERANCES` when the model or the graph computes in float16/bfloat16).
        batch_sizes: batch sizes of the random inputs (a static batch uses its own).

    Returns:
        A `VerifyReport`; `report.passed` says whether every output of every run passed.
    """
    import onnx
    import onnxruntime as ort

    onnx_model = onnx.load(path)
    io = _metadata(onnx_model)
    in_perms = io.get("input_perms") or [None] * len(model.inputs)
    out_perms = io.get("output_perms") or [None] * len(model.outputs)
    static_batch = io.get("static_batch")
    providers = available_providers(providers)
    report = VerifyReport(
        path=str(path),
        opset=max((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")),
                  default=0),
        node_count=len(onnx_model.graph.node), file_size=os.path.getsize(path),
        providers=providers,
    )
    rng = np.random.default_rng(seed)
    runs = []
    for batch in ([static_batch] if static_batch else batch_sizes):
        try:
            runs.append(model_inputs(model, io, batch, rng))
        except ValueError:
            if not samples:
                raise
            break  # unknown spatial dims: the user's samples are the runs
    for sample in samples or []:
        sample = sample if isinstance(sample, (list, tuple)) else [sample]
        runs.append([np.asarray(s, np.float32) for s in sample])
    names = [o.name for o in onnx_model.graph.output]
    in_names = [i.name for i in onnx_model.graph.input]
    floor_atol, floor_rtol = precision_tolerances(model, onnx_model)
    for provider in providers:
        default_atol, default_rtol = DEFAULT_TOLERANCES.get(provider, (1e-4, 1e-4))
        default_atol, default_rtol = max(default_atol, floor_atol), max(default_rtol, floor_rtol)
        a_tol = default_atol if atol is None else atol
        r_tol = default_rtol if rtol is None else rtol
        session = ort.InferenceSession(str(path), providers=[provider])
        for arrays in runs:
            expected = run_keras(model, arrays)
            feeds = dict(zip(in_names, _to_graph(arrays, in_perms)))
            got = _from_graph(session.run(None, feeds), out_perms)
            for name, g, e in zip(names, got, expected):
                stats = compare(g, e, a_tol, r_tol)
                report.checks.append(OutputCheck(
                    output=name, provider=provider, batch=int(arrays[0].shape[0]),
                    shape=tuple(e.shape), atol=a_tol, rtol=r_tol, **stats))
    return report

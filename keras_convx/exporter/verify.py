"""`verify_onnx`: the exporter as a client of `keras_convx.verification`.

The exporter gives verification what only it knows: the tensor map stored in its files and
the model's flat graph (`tensor_map`: composite layers traced, nested models inlined).
The names below stay importable from here for existing code.
"""

import os

import keras

from keras_convx.exporter import tensor_map
from keras_convx.verification.inputs import input_distribution, metadata, model_inputs  # noqa: F401
from keras_convx.verification.ort_runner import INSPECT_LEVEL, LEVELS, first_line  # noqa: F401
from keras_convx.verification.report import (  # noqa: F401
    ExportError, Report, TensorCheck, VerificationError, VerifyReport,
)
from keras_convx.verification.rules import (  # noqa: F401  (public constants)
    DEFAULT_TOLERANCES, LOW_PRECISION_TOLERANCES, TOLERANCE_RULE,
)
from keras_convx.verification.batch_norm import calibrate_batch_norm  # noqa: F401
from keras_convx.verification import verifier as _core


class Verifier(_core.Verifier):
    """`keras_convx.verification.verifier.Verifier` with the exporter's flat graphs: every
    mapped tensor is compared, inside traced layers and nested models too."""

    def __init__(self, model, io=None, entries=(), samples=None, batch_sizes=(1, 2), seed=0,
                 fills=None):
        super().__init__(model, io, entries, samples, batch_sizes, seed,
                         runner=tensor_map.TracedRunner(model),
                         fills=fills)


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
            precision). See `keras_convx.verification.rules` for how the defaults were measured.
        batch_sizes: batch sizes of the random inputs (a static batch uses its own).
        seed: seed of the random inputs.
        optimization_level: the onnxruntime level the outputs are checked at, as deployed:
            `"all"` (default), `"extended"`, `"basic"` or `"disable"`. The internal tensors
            are checked unoptimised (`"disable"`).
        inspect: compare the internal tensors too (graphs exported by keras_convx carry a
            map from each Keras tensor to the ONNX tensor holding it).

    Returns:
        A `Report` (direction `"verify"`, the type `export_onnx` returns): `report.passed`
        says whether everything agreed, `report.verify` holds the comparison (a
        `VerifyReport`: `report.checks`, `report.tensors` read it), and `report.diagnosis`
        lists the tensors that diverge, in graph order. An INT8 file (its
        `keras_convx.export` metadata says so) is judged by the quantized rule instead:
        `report.quantization` is a `QuantReport` (`keras_convx.verification.quantized`);
        pass real `samples`, since random inputs can fall outside the calibrated ranges.

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
    if tensor_map.subclassed(model):  # as the export took it: a Functional node of itself
        model = tensor_map.functional(model)
    if isinstance(path, onnx.ModelProto):
        onnx_model, path = path, ""
    else:
        try:
            # weights in external data stay on disk: sessions read them from there
            onnx_model = onnx.load(os.fspath(path), load_external_data=False)
        except Exception as err:
            raise ExportError(f"verify: can't read {path}: {first_line(err)}") from None
    from keras_convx.exporter.metadata import EXPORT_KEY, read

    report = Report(path=path, direction="verify", model=model, opset=_opset(onnx_model))
    if (read(onnx_model).get(EXPORT_KEY) or {}).get("precision") == "int8":
        report.precision = "int8"
        report.quantization = _verify_int8(model, onnx_model, path, samples, providers, seed,
                                           optimization_level, inspect)
        return report
    verifier = Verifier(model, metadata(onnx_model), tensor_map.read(onnx_model), samples,
                        batch_sizes, seed)
    external = path and any(t.data_location == 1 for t in onnx_model.graph.initializer)
    report.verify = verifier.verify(
        onnx_model, path, providers, tolerance, optimization_level, inspect,
        base_dir=os.path.dirname(os.path.abspath(path)) if external else None)
    return report


def _opset(onnx_model):
    return next((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")),
                None)


def _verify_int8(model, onnx_model, path, samples, providers, seed, level, inspect):
    """An INT8 file against its Keras model, by the quantized rule (no float graph here:
    mapped tensors are judged against Keras)."""
    import numpy as np

    from keras_convx.verification.int8_verifier import verify_int8

    io = metadata(onnx_model)
    if samples:
        runs = [[np.asarray(a, np.float32) for a in (s if isinstance(s, (list, tuple)) else [s])]
                for s in samples]
    else:
        runs = [model_inputs(model, io, io.static_batch or 8,
                             np.random.default_rng(seed))]
    data = onnx_model.SerializeToString()
    report = verify_int8(model, onnx_model, data, io, tensor_map.read(onnx_model), runs,
                         providers=providers, level=level,
                         runner=tensor_map.TracedRunner(model) if inspect else None)
    if not samples:
        report.warnings.append("judged on random inputs at the model's scale: pass samples "
                               "of real data (random inputs can fall outside the calibrated "
                               "ranges)")
    return report


def verify_export(model, proto, io, rows, data, staged, report, check):
    """The float graph against Keras, tensor by tensor; a failure keeps the `.failed`
    files and raises."""
    from keras_convx.verification.sizes import export_fills

    method = report.method
    try:
        verifier = Verifier(model, io, rows, check.samples,
                            fills=export_fills(model, proto, check.sizes))
        report.verify = verifier.verify(proto, staged.tmp, check.providers, check.tolerance,
                                        check.optimization_level, inspect=check.diagnose,
                                        serialized=data,
                                        base_dir=staged.folder if staged.external else None)
    except ExportError as err:
        kept = staged.keep_failed(report)
        raise ExportError(f"export ({method}): verification could not run: {err}; kept "
                          f"{kept}", report) from None
    report.verify.path = staged.path
    if check.diagnose and method == "tf2onnx":  # said, not silently skipped
        report.verify.warnings.append(
            "tf2onnx's graph carries no map from Keras tensors to its own: only the "
            "graph outputs were compared (method='native' compares every layer)")
    for row in report.float16_kept:
        report.verify.warnings.append(
            f"float16: {row['layer']} ({row['node']}) kept in float32: its output "
            f"{row['reason']}")
    if not report.verify.passed:
        kept = staged.keep_failed(report)
        raise VerificationError(
            f"export ({method}): verification failed, {report.verify.summary()}; kept "
            f"{kept} and {os.path.splitext(staged.path)[0]}.failed.json", report)

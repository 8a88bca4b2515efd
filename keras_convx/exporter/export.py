"""`export_onnx`: native Keras-graph lowering or tf2onnx, then check, verify, write atomically."""

import os
import time
import warnings

import keras

from keras_convx.exporter import metadata as metadata_lib
from keras_convx.exporter import float16, intake, lower, publish
from keras_convx.exporter import verify as verify_lib
from keras_convx.exporter import precision as precision_lib
from keras_convx.exporter.lowering_coverage import CoverageRow, coverage, unsupported_layers  # noqa: F401
from keras_convx.exporter.lower import (  # noqa: F401  (their public home stays here)
    LoweringContext, UnsupportedModel, _tf2onnx, lower_native, lower_tf2onnx,
)
from keras_convx.exporter.verify import ExportError, VerificationError, Verifier, VerifyReport  # noqa: F401
from keras_convx.verification import options as verify_options
from keras_convx.verification.report import Report

ExportReport = Report  # the old name: export's report is the one `Report` type
from keras_convx.exporter import lowerings  # noqa: F401,E402  (registers the lowerings)

METHODS = ("auto", "native", "tf2onnx")
# protobuf refuses messages over 2 GiB: past this many weight bytes, they go to a data file
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**27
DYNAMIC = ("batch", "spatial")


def export_onnx(model, path, *,
                method="auto", opset=17, dynamic_axes=("batch",), input_shape=None,
                batch_size=1, nchw_io=False, fold_batch_norm=True,
                verify=True,
                precision=None, calibration=None, calibration_method="minmax",
                keep_float=None, fp16_headroom=None, input_dtype="float32", target="cpu",
                external_data="auto", metadata=None, **deprecated):
    """Exports a Keras model to ONNX and proves it with onnxruntime before writing it.

    The options come in three groups: what to export, how to verify, what to deploy.

    Args:
        model: a Functional, Sequential or subclassed Keras model (a subclassed model
            is traced through its `call` on inputs of the shape it was built or called
            with, or `input_shape`).
        path: the `.onnx` file to write; it appears only after checks and
            verification passed (a failure leaves `<stem>.failed.onnx` and
            `<stem>.failed.json` instead).

    What to export:
        method: `"native"` (direct lowering, any backend), `"tf2onnx"` (TensorFlow
            backend) or `"auto"` (native when every layer has a lowering).
        opset: ONNX opset (17 to 21).
        dynamic_axes: which dims are symbolic: `("batch",)`, `("batch", "spatial")`
            or `()` (fully static, batch `batch_size`).
        input_shape: shape(s) without batch, to fix unknown spatial dims.
        batch_size: the batch of a fully static graph.
        nchw_io: give channels_last models NCHW graph inputs and outputs.
        fold_batch_norm: fold inference BatchNormalization into the preceding Conv.

    How to verify:
        verify: `True` (default: run onnxruntime and compare with Keras, tensor by
            tensor; a failure raises `VerificationError`), `False`, or a
            `keras_convx.VerifyOptions` (samples, providers, tolerance, sizes of dynamic
            height/width, `diagnose`, optimization level). The same options given flat
            (`tolerance=...`, `samples=...`, `providers=...`, `sizes=...`,
            `diagnose=...`, `optimization_level=...`) still work, with a
            DeprecationWarning.

    What to deploy:
        precision: `"float32"` (default), `"float16"` (weights and compute in float16,
            inputs and outputs float32, verified at float16 tolerance) or `"int8"` (static,
            calibrated QDQ by onnxruntime.quantization: weights symmetric int8 per output
            channel, activations uint8; the float graph is verified first, then the INT8
            graph by the quantized rule, `keras_convx.verification.quantized`).
            Mixed-precision Keras models export to float32 unless asked. A float16 node
            whose values leave float16's range on the verification inputs (|x| > 65504,
            or all below its smallest normal number, which GPUs flush to zero) stays
            float32, named in the report (`float16_kept`) and the file's metadata:
            onnxruntime's CPU provider computes float16 convolutions in float32 and would
            hide the overflow. (`fp16=True`, the older spelling, still works with a
            DeprecationWarning.)
        calibration: INT8 calibration data (float16: data for the range check, besides
            random inputs at the model's scale and the verification samples): arrays, a
            list of batches, a generator, a `keras.utils.PyDataset` or a `tf.data.Dataset`
            (`(x, y)` batches are fine). A fifth of the samples (at most 64) is held out
            to verify on. `"random"` calibrates on random inputs at the model's scale, and
            the report says so.
        calibration_method: `"minmax"`, `"entropy"` or `"percentile"`.
        keep_float: Keras layer names whose nodes stay float32 in an INT8 graph, or
            `"auto"`: the worst layers are kept in float until the quantized rule passes
            (at most 8).
        fp16_headroom: float16 only: a node also stays float32 when its observed max
            |value| comes within this factor of 65504 (default 16: above 4094), since
            data the check did not draw can go further; the report gives each kept
            node's max and margin. 1 keeps only what overflows on the drawn data.
        input_dtype: `"float32"` (default) or `"uint8"`: the graph takes uint8 pixels
            (in the input's layout) and casts them to float32 first, so the model's own
            Rescaling/Normalization layers run in the graph; verified on integer inputs
            (samples must be integers in 0..255).
        target: the execution provider the file is for: `"cpu"` (default), `"cuda"`,
            `"tensorrt"`, `"xnnpack"` or `"coreml"`. The report's `lint` lists what that
            target is known to reject or run slowly, each with its reference
            (`keras_convx.exporter.targets.RULES`); where an alternative lowering exists
            it is applied (CUDA, TensorRT: ConvTranspose pads made symmetric plus a Slice).
        external_data: `"auto"` (weights in `<name>.onnx.data` beside the file when they
            pass protobuf's 2 GiB limit), `True` (always) or `False` (never).
        metadata: a dict of your own keys (class names, normalization...) stored in the
            file's metadata; non-string values as JSON. The file always carries
            `keras_convx.export` (version, opset, precision, input layouts and dtypes, the
            preprocessing layers in the graph) and, once verified,
            `keras_convx.verification` (`keras-convx inspect FILE` prints them).

    Returns:
        A `Report` (`kc.Report`, direction `"export"`).

    Raises:
        UnsupportedModel: `method="native"` and some layers have no lowering.
        VerificationError: the graph disagrees with Keras (the `.failed` files are kept).
        ExportError: a step could not be carried out (the message names the method, the
            step and the cause).

    Example:

    ```python
    report = kc.export_onnx(model, "model.onnx")
    report = kc.export_onnx(model, "model-int8.onnx", precision="int8",
                            calibration=images, verify=kc.VerifyOptions(tolerance=1e-4))
    ```
    """
    fp16 = deprecated.pop("fp16", False)
    if fp16:
        warnings.warn("export_onnx(fp16=True) is deprecated: pass precision='float16'",
                      DeprecationWarning, stacklevel=2)
    verify, check = verify_options.resolve(verify, deprecated, "export_onnx")
    dynamic_axes, precision, path, user_metadata = _check_arguments(
        model, path, method, dynamic_axes, metadata, precision, fp16, fp16_headroom,
        target, input_dtype, calibration, opset, external_data)
    model = intake.intake(model, input_shape)
    start = time.perf_counter()
    proto, builder, io, chosen, reason = lower.convert(model, method, opset, dynamic_axes,
                                                       nchw_io, batch_size, fold_batch_norm)
    io.input_shapes = [list(kt.shape) for kt in model.inputs]
    rows = builder.correspondence() if builder is not None else []
    from keras_convx.exporter import targets

    lint = targets.adapt(proto, target) + targets.lint(proto, target)
    kept16 = []
    if precision == "float16":
        proto, kept16 = precision_lib.to_float16(
            model, proto, io, check.samples, calibration,
            float16.HEADROOM if fp16_headroom is None else fp16_headroom)
    if input_dtype == "uint8":
        precision_lib.uint8_inputs(proto, io, rows)
    proto = metadata_lib.finalize(proto, io, rows)
    metadata_lib.add_export_entries(proto, model, io, opset, precision, kept16, target, lint,
                                    user_metadata)
    report = Report(path=path, method=chosen, reason=reason, opset=int(opset), model=model,
                    node_count=len(proto.graph.node), transpose_count=metadata_lib.count(proto, "Transpose"),
                    bn_folded=builder.bn_folded if builder is not None else 0,
                    fused=builder.pads_fused if builder is not None else 0,
                    precision=precision, float16_kept=kept16, target=target, lint=lint)
    staged = publish.Staged.of(path, external_data is True or (
        external_data == "auto" and sum(len(t.raw_data) for t in proto.graph.initializer)
        > EXTERNAL_DATA_THRESHOLD))
    try:
        data = staged.write(proto, chosen)
        report.export_seconds = time.perf_counter() - start
        report.file_size = staged.size()
        report.external_data = staged.data_name if staged.external else None
        if verify:
            verify_lib.verify_export(model, proto, io, rows, data, staged, report, check)
        if precision == "int8":
            precision_lib.to_int8(model, proto, rows, staged.folder, staged.tmp, io, report,
                                  calibration, calibration_method, keep_float, verify,
                                  check.providers, check.optimization_level, path,
                                  staged.external)
        elif verify:  # appended as bytes: the weights are not serialized again
            metadata_lib.append(staged.tmp, [(metadata_lib.VERIFICATION_KEY,
                                              metadata_lib.verification_entry(report.verify))])
        staged.publish()
    finally:
        staged.remove()
    return report


def _check_arguments(model, path, method, dynamic_axes, metadata, precision, fp16,
                     fp16_headroom, target, input_dtype, calibration, opset, external_data):
    """Every argument of `export_onnx` checked before any work, each error naming the
    argument, the value and what is accepted; returns (dynamic_axes, precision, path,
    user metadata entries)."""
    if method not in METHODS:
        raise ValueError(f"export: method must be one of {METHODS}, got {method!r}")
    dynamic_axes = tuple(dynamic_axes or ())
    if any(a not in DYNAMIC for a in dynamic_axes):
        raise ValueError(f"export: dynamic_axes must be drawn from {DYNAMIC}, got {dynamic_axes}")
    user_metadata = metadata_lib.user_entries(metadata)
    precision = precision_lib.resolve_precision(precision, fp16)
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
    return dynamic_axes, precision, path, user_metadata


__all__ = ["coverage", "CoverageRow", "export_onnx", "ExportError", "ExportReport", "UnsupportedModel", "VerificationError"]

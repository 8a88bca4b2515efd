"""`import_onnx`: an ONNX model -> a Functional Keras model of keras_convx and Keras layers,
in the three stages both directions share: convert (`convert.build`), verify
(`verify.verify_import`), publish (the staging folder `keras_convx.utils.staging`)."""

import dataclasses
import os
import time

import onnx

from keras_convx.importer.convert import build
from keras_convx.importer.errors import ImportVerificationError
from keras_convx.importer.loading import check_tensor
from keras_convx.importer.verify import verify_import
from keras_convx.utils.staging import Stage
from keras_convx.verification import options as verify_options
from keras_convx.verification.sizes import check_sizes


def import_onnx(path_or_model, *, data_format="channels_last", name=None, verify=True,
                output=None, layouts="keras", **deprecated):
    """Imports an ONNX model as a backend-agnostic Keras model with its weights.

    Each ONNX node (or fused group: Pad+Conv, MatMul+Add, the Erf-based GELU) becomes one
    layer named after the node: keras_convx convolutions (explicit asymmetric padding,
    padding modes, groups, dilations with strides, transposed convs with output padding),
    up-sampling and padding, and standard Keras layers. No Lambda layers: the model saves
    as `.keras`, loads in `safe_mode` and serializes with `kc.to_yaml`.

    With `data_format="channels_last"` (the default), NCHW tensors become NHWC: inputs and
    outputs of rank >= 3 are channels-last, and no Permute is inserted except where an op
    depends on ONNX's memory order (a Reshape, or a Flatten not followed by Gemm/MatMul,
    whose weights are permuted once instead).

    Args:
        path_or_model: a path to an `.onnx` file (external data must sit in its folder),
            a `onnx.ModelProto` or serialized bytes.
        data_format: `"channels_last"` or `"channels_first"` (the ONNX layout as is).
        name: the Keras model's name (default: the ONNX graph's name).
        verify: run the model and onnxruntime on the same inputs and compare every tensor
            the model holds, by the export's rule (`verify_import`); the report is
            `model.import_report`. True by default, as `export_onnx`'s (it used to be False:
            `verify=False` gives the unverified model without the comparison's cost). A
            `keras_convx.VerifyOptions` sets how, as for `export_onnx`: `tolerance` (max abs
            error as a fraction of each tensor's scale, default 2e-3), `sizes`,
            `providers` and `optimization_level`; import draws its own inputs (no
            `samples`) and always compares every tensor (`diagnose`). `tolerance=` and
            `sizes=` given flat, as older releases took them, still work with a
            DeprecationWarning.
        output: a `.keras` path to save the model to, atomically, once verified. When
            verification fails, the model is kept as `<stem>.failed.keras` with its report
            `<stem>.failed.json`, and nothing appears at `output`.
        layouts: `"keras"` (default): channels-last inputs and outputs where they are
            feature maps, as listed in `model.import_layouts`; `"onnx"`: every input and
            output keeps the file's layout (the model is a drop-in for the onnxruntime
            session; the layers inside stay channels-last, with a Permute at each end).

    A QDQ graph (onnxruntime's static quantization, PyTorch's) imports as a float model:
    weights dequantized exactly (`(q - zero_point) * scale`), each activation
    QuantizeLinear -> DequantizeLinear pair removed. `model.import_quantization` (and
    the verification report) lists every pair's scale, zero point and axis; verification
    compares against the same graph without the activation pairs. A dynamically
    quantized file (onnxruntime's `quantize_dynamic`: DynamicQuantizeLinear feeding
    ConvInteger/MatMulInteger) imports the same way, as float Conv/MatMul layers with the
    weights dequantized.

    Outputs keep the file's layout unless they are channels-first feature maps (a
    detector's `(1, 3549, 6)` table stays `(None, 3549, 6)`); `model.import_layouts` lists,
    per graph input and output, the ONNX and Keras shapes and whether it moved.

    A dynamic-size graph is verified at two sizes derived from it (multiples of its total
    stride), or at `sizes`. A runtime that raises during verification (onnxruntime on a
    size the net can't run, a backend kernel) is a failed verification naming the
    runtime, the input shape and the node: `ImportVerificationError`, never a raw error.

    Returns:
        A `keras.Model`.

    Raises:
        OnnxImportError: a malformed or hostile file (naming the node, initializer or
            input), or `UnsupportedOps` listing every node without an exact conversion.
        ImportVerificationError: `verify=True` and the model differs from onnxruntime
            (its `report` names the first node that differs).

    Example:
    >>> model = kc.import_onnx("resnet.onnx")
    >>> model.save("resnet.keras")
    """
    verify, check = verify_options.resolve(verify, deprecated, "import_onnx",
                                           flat=("tolerance", "sizes"))
    check = _check_arguments(output, check)  # before the import's work
    model, walk, graph = build(path_or_model, data_format, name, layouts)
    # a QDQ file imports as its float model; what it quantized, and how, is kept here
    model.import_quantization = graph.quantization
    # which inputs and outputs moved to channels-last (a decoder reads the file's layout)
    model.import_layouts = walk.layouts()
    if verify:
        _verify(model, (model, walk, graph), path_or_model, data_format, check, output)
    if output is not None:
        _publish(model, output)
    return model


def _check_arguments(output, check):
    """`output` and the verification options checked before any work; returns the
    options with their sizes normalized."""
    if output is not None and not str(output).endswith(".keras"):
        raise ValueError(f"import_onnx: output={output!r} must end in .keras")
    if check.samples is not None:
        raise ValueError("import_onnx: VerifyOptions(samples=...) is for export; import "
                         "draws inputs at the model's scale (set their sizes with sizes=)")
    if not check.diagnose:
        raise ValueError("import_onnx: VerifyOptions(diagnose=False) is for export; import "
                         "verification compares every tensor the model holds")
    sizes = None if check.sizes is None else check_sizes(check.sizes)
    return dataclasses.replace(check, sizes=sizes)


def _verify(model, built, source, data_format, check, output):
    """Compares the model with onnxruntime (`model.import_report`); on failure keeps the
    model beside `output` (when given) as the `.failed` files and raises
    `ImportVerificationError`."""
    start = time.perf_counter()
    report = verify_import(model, _with_data(source), data_format, tolerance=check.tolerance,
                           providers=check.providers,
                           optimization_level=check.optimization_level, sizes=check.sizes,
                           _built=built)
    report.verify.layouts = model.import_layouts
    report.verify.seconds = time.perf_counter() - start
    if isinstance(source, (str, os.PathLike)):
        report.path = os.fspath(source)
    model.import_report = report
    if not report.passed:
        kept = _publish(model, output, report) if output is not None else None
        raise ImportVerificationError(report, kept)


def _publish(model, output, failed=None):
    """Saves `model` at `output` through a staging folder beside it (Keras writes a
    `.keras` file in several steps). With a `failed` report, keeps it as
    `<stem>.failed.keras` with the report as `<stem>.failed.json` instead, and returns
    that path."""
    with Stage(output, ".keras", stem=str(output)[:-len(".keras")]) as stage:
        model.save(stage.tmp)
        if failed is not None:
            return stage.keep_failed(failed)
        stage.publish()
    return None


def _with_data(source):
    """The graph as imported, as a ModelProto with its weights (external data checked and
    loaded as the front end does)."""
    if isinstance(source, onnx.ModelProto):
        return source
    if isinstance(source, (bytes, bytearray)):
        return onnx.load_from_string(bytes(source))
    proto = onnx.load(os.fspath(source), load_external_data=False)
    folder = os.path.dirname(os.path.abspath(os.fspath(source)))
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            check_tensor(tensor, folder)
    return proto


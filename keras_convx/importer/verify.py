"""Checks an imported model against onnxruntime on the same random inputs, with the
export path's rule (`keras_convx.verification.rules`: error relative to each tensor's scale).

`verify_import` compares the outputs at the sizes a dynamic graph accepts, then every
tensor (`diagnose.diagnose_import`); the report type is `verify_report.ImportVerifyReport`,
the quantized file's float graph `float_graph.float_graph`, the two runtimes' inputs and
failures `runners`.
"""

import keras
import numpy as np

from keras_convx.importer.convert import build
from keras_convx.importer.diagnose import diagnose_import
from keras_convx.importer.errors import OnnxImportError
from keras_convx.importer.float_graph import float_graph
from keras_convx.importer.runners import RuntimeFailure, draw_inputs, first_line, node_of, session
from keras_convx.importer.verify_report import ImportVerifyReport
from keras_convx.verification import rules as stats
from keras_convx.verification import sizes as S
from keras_convx.verification.judge import scale_floors
from keras_convx.verification.ort_runner import available_providers
from keras_convx.verification.report import Report

__all__ = ["ImportVerifyReport", "RuntimeFailure", "diagnose_import", "float_graph",
           "verify_import"]


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
    section = _compare_import(model, onnx_model, data_format, seed, tolerance, providers,
                              optimization_level, sizes, layouts, _built)
    opset = next((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")),
                 None)
    return Report(path="", direction="import", opset=opset, verify=section)


def _compare_import(model, onnx_model, data_format, seed, tolerance, providers,
                    optimization_level, sizes, layouts, _built):
    """`verify_import`'s comparison: an `ImportVerifyReport`."""
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


def _compare_at(model, onnx_model, walk, data_format, seed, providers, level, size, step):
    """{output label: TensorError} of every provider at one size, and the batch;
    `RuntimeFailure` when onnxruntime can't run the graph there, any other exception
    from Keras as a `RuntimeFailure` marked `keras`."""
    outputs, batch, floors = {}, 2, scale_floors(onnx_model)
    for provider in providers:
        ort = session(onnx_model, provider, level)
        feeds, keras_inputs, batch = draw_inputs(ort, data_format, seed, model,
                                                 walk.input_perms, size, step)
        shapes = ", ".join(f"{n} {list(v.shape)}" for n, v in feeds.items())
        try:
            expected = ort.run(None, feeds)
        except Exception as err:
            raise RuntimeFailure(f"onnxruntime ({provider}) raised on input {shapes}"
                                 f"{node_of(err)}: {first_line(err)}") from err
        try:
            actual = keras.tree.flatten(model(keras_inputs if len(keras_inputs) > 1
                                              else keras_inputs[0], training=False))
        except Exception as err:
            failure = RuntimeFailure(f"the Keras model ({keras.backend.backend()} backend) "
                                     f"raised on input {shapes}: {first_line(err)}")
            failure.keras = True
            raise failure from err
        if len(actual) != len(expected):
            raise OnnxImportError(f"verify: the Keras model has {len(actual)} outputs, "
                                  f"the ONNX model {len(expected)}")
        for spec, a, e, perm in zip(ort.get_outputs(), actual, expected,
                                    walk.output_perms):
            a = np.asarray(keras.ops.convert_to_numpy(a))
            a = np.transpose(a, np.argsort(perm))  # back to ONNX order
            name = spec.name if len(providers) == 1 else f"{spec.name} [{provider}]"
            if size is not None:
                name += " @ " + "x".join(str(n) for n in e.shape[2:] or e.shape[1:])
            outputs[name] = stats.tensor_error(a, e, scale_floor=floors.get(spec.name, 0.0))
    return outputs, batch

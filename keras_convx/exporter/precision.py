"""The precision stages of `export_onnx`: uint8 inputs, float16 with headroom, and the
verified INT8 (QDQ) graph that replaces the staged float one."""

import json
import os
import time

import numpy as np
import onnx

from keras_convx.exporter import float16, tensor_map
from keras_convx.exporter import metadata as metadata_lib
from keras_convx.exporter.publish import keep_failed, write_file
from keras_convx.verification.report import ExportError, VerificationError


PRECISIONS = ("float32", "float16", "int8")


def uint8_inputs(proto, io, rows):
    """Float graph inputs become uint8, each cast to float32 by the graph's first node
    (`rows`, the tensor map, then name the float32 value)."""
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
    for row in rows:
        row.onnx = renamed.get(row.onnx, row.onnx)
    io.input_dtypes = ["uint8" if v.type.tensor_type.elem_type == onnx.TensorProto.UINT8
                          else "float32" for v in proto.graph.input
                          if v.name not in initializers]


def to_float16(model, proto, io, samples, calibration, headroom=float16.HEADROOM):
    """The float16 graph, with the nodes whose values leave float16's range on the
    verification inputs (random at the model's scale, `samples`, float16 `calibration`
    data) kept float32; returns (graph, [what was kept and why])."""
    from keras_convx.exporter.calibration_data import samples as calibration_samples
    from keras_convx.verification.inputs import model_inputs, to_graph

    runs = []
    try:
        runs.append(model_inputs(model, io, io.static_batch or 2,
                                 np.random.default_rng(0)))
    except ValueError:
        pass  # unknown spatial dims: the user's data only
    for sample in samples or []:
        runs.append([np.asarray(a, np.float32) for a in
                     (sample if isinstance(sample, (list, tuple)) else [sample])])
    if calibration is not None:
        arrays = calibration_samples(calibration, model)
        size = io.static_batch or 16
        runs += [[a[i:i + size] for a in arrays] for i in range(0, arrays[0].shape[0], size)
                 if not io.static_batch or arrays[0].shape[0] - i >= size]
    initializers = {t.name for t in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in initializers]
    perms = io.input_perms or [None] * len(names)
    for i, node in enumerate(proto.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    found = float16.out_of_range(proto, proto.SerializeToString(),
                                 [dict(zip(names, to_graph(r, perms, io.input_dtypes)))
                                  for r in runs], headroom)
    kept = [{"layer": node.split("/")[0], "node": node, "tensor": tensor, "max_abs": top,
             "margin": float16.FLOAT16_MAX / top if top else None, "reason": why}
            for node, tensor, top, why in found]
    block = [k["node"] for k in kept]
    block += [n for n in float16.consumers(proto, [k["tensor"] for k in kept]) if n not in block]
    return float16.convert(proto, block), kept


def resolve_precision(precision, fp16):
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


def to_int8(model, proto, rows, stage, tmp, io, report, calibration, method, keep_float,
            verify, providers, level, path, external):
    """Replaces the staged float graph with its verified INT8 (QDQ) graph."""
    from keras_convx.exporter import int8

    if external:
        raise ExportError("export: precision='int8' is not supported with external data "
                          "(a model past 2 GiB)")
    start = time.perf_counter()
    try:
        qdq, quant = int8.export_int8(model, proto, stage, io, rows,
                                      calibration, method, keep_float, verify, providers,
                                      level, tensor_map.TracedRunner(model))
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
    write_file(tmp, qdq.SerializeToString())
    report.node_count = len(qdq.graph.node)
    report.file_size = os.path.getsize(tmp)
    if quant is not None and not quant.passed:
        kept = keep_failed(path, stage, report, False)
        raise VerificationError(f"export (int8): verification failed, {quant.summary()}; kept "
                                f"{kept} and {os.path.splitext(path)[0]}.failed.json", report)

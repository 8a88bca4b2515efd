"""What an exported file says about itself: the user's keys, and ours under `keras_convx.`.

Every file carries `keras_convx.export` (package version, opset, precision, each input's
layout and dtype, the preprocessing layers the graph contains) and, once verified,
`keras_convx.verification` (rule, tolerance, worst error, providers, levels, date). The
verification summary is appended to the staged file as bytes: a protobuf message's
repeated field (`metadata_props`) may arrive in several pieces, and parsers concatenate
them, so the weights are not serialized again.
"""

import datetime
import json

from keras_convx.utils.version import VERSION

RESERVED = "keras_convx."
EXPORT_KEY = "keras_convx.export"
VERIFICATION_KEY = "keras_convx.verification"


def user_entries(metadata):
    """The user's `metadata` as (key, string value) pairs; values that are not strings are
    stored as JSON. Raises ValueError for a reserved or empty key."""
    if metadata is None:
        return []
    if not isinstance(metadata, dict):
        raise ValueError(f"export: metadata must be a dict of str keys, got "
                         f"{type(metadata).__name__}")
    entries = []
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key.startswith(RESERVED):
            raise ValueError(f"export: metadata key {key!r} is not allowed: keys are non-empty "
                             f"strings not starting with {RESERVED!r} (ours)")
        entries.append((key, value if isinstance(value, str) else json.dumps(value)))
    return entries


def export_entry(model, io, opset, precision):
    """`keras_convx.export`: how the file was made and what its inputs expect."""
    import keras

    inputs = []
    dtypes = io.input_dtypes or ["float32"] * len(model.inputs)
    for kt, perm, dtype in zip(model.inputs, io.input_perms or [None] * len(model.inputs),
                               dtypes):
        rank = len(kt.shape)
        layout = ("channels_first" if perm else "channels_last") if rank >= 3 else "plain"
        inputs.append({"name": kt.name, "layout": layout, "dtype": dtype})
    preprocessing = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Rescaling):
            preprocessing.append({"layer": layer.name, "class": "Rescaling",
                                  "scale": _plain(layer.scale), "offset": _plain(layer.offset)})
        elif isinstance(layer, (keras.layers.Normalization, keras.layers.Resizing,
                                keras.layers.CenterCrop)):
            preprocessing.append({"layer": layer.name, "class": type(layer).__name__})
    return json.dumps({"keras_convx_version": VERSION, "opset": int(opset),
                       "precision": precision, "inputs": inputs,
                       "preprocessing": preprocessing})


def verification_entry(report):
    """`keras_convx.verification`: the verification summary of a `VerifyReport`."""
    compared = [c for c in report.checks + report.tensors if c.status in ("pass", "amplified")]
    worst = max((c.rel for c in compared), default=None)
    return json.dumps({
        "passed": report.passed, "rule": report.rule,
        "tolerance": max((c.tolerance for c in report.checks), default=None),
        "worst_error": worst, "tensors_compared": len(compared),
        "providers": list(report.providers),
        "levels": sorted({c.level for c in report.checks + report.tensors}),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})


def int8_verification_entry(quant, float_report=None):
    """`keras_convx.verification` of an INT8 file: the quantized rule's summary, with the
    float graph's verification it was quantized from."""
    outputs = [c for c in quant.checks if c.role == "output"]
    return json.dumps({
        "passed": quant.passed, "rule": quant.rule, "precision": "int8",
        "calibration": quant.calibration, "calibration_samples": quant.calibration_samples,
        "held_out_samples": quant.held_out_samples,
        "output_sqnr_db": min((c.sqnr_keras for c in outputs if c.sqnr_keras is not None),
                              default=None),
        "top1_agreement": min((c.top1 for c in outputs if c.top1 is not None), default=None),
        "worst_layers": [{"layer": c.layer, "sqnr_db": c.sqnr_float if c.sqnr_float is not None
                          else c.sqnr_keras, "lost_db": c.drop} for c in quant.worst()],
        "kept_float": quant.kept_float, "providers": list(quant.providers),
        # measured where it was exported: median ms of a run, and int8 / float32
        "latency_ms": quant.latency_ms, "latency_ratio": quant.latency_ratio,
        "latency_on": quant.latency_on,
        "levels": list(quant.levels),
        "float_graph": json.loads(verification_entry(float_report)) if float_report else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})


def append(path, entries):
    """Appends metadata entries to the ONNX file at `path`, as protobuf bytes."""
    import onnx

    extra = onnx.ModelProto()
    for key, value in entries:
        prop = extra.metadata_props.add()
        prop.key, prop.value = key, value
    with open(path, "ab") as f:
        f.write(extra.SerializeToString())


def read(onnx_model):
    """{key: value} of a file's metadata; our JSON entries parsed."""
    out = {}
    for prop in onnx_model.metadata_props:
        value = prop.value
        if prop.key.startswith(RESERVED):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[prop.key] = value
    return out


def _plain(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return [float(v) for v in value]


def count(proto, op):
    return sum(1 for n in proto.graph.node if n.op_type == op)


def finalize(proto, io, rows):
    """The signature and the tensor map, into the file's metadata (the one place they
    are JSON)."""
    from keras_convx.verification import correspondence, signature

    for key, value in ((signature.KEY, io.to_json()),
                       (correspondence.KEY, correspondence.dumps(rows))):
        if key == correspondence.KEY and not rows:
            continue  # tf2onnx's graph: no map
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    return proto


def add_export_entries(proto, model, io, opset, precision, kept16, target, lint, user_metadata):
    """The user's keys and `keras_convx.export` (what the file is and how it was made)."""
    made = json.loads(export_entry(
        model, io, opset, "float16" if precision == "float16" else "float32"))
    if precision == "float16":
        made["float16_kept_float32"] = kept16
    made["target"] = target
    made["lint"] = [{k: f[k] for k in ("rule", "where", "reference", "fixed")} for f in lint]
    for key, value in user_metadata + [(EXPORT_KEY, json.dumps(made))]:
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value

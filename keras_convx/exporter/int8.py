"""INT8 export: static, calibrated QDQ quantization of a verified float graph, by
onnxruntime.quantization (`quant_pre_process`, then `quantize_static`).

Weights are symmetric int8 per output channel (onnxruntime quantizes ConvTranspose
weights on axis 1, Conv on axis 0); activations uint8, asymmetric (onnxruntime's advice
for x86 CPUs with VNNI: no range reduction). BatchNormalization is already folded into
the convolutions by the lowering; Add, Concat, Resize and pooling get QDQ pairs as
onnxruntime's QDQ quantizer places them.
"""

import os

import numpy as np

from keras_convx.exporter import calibration_data
from keras_convx.verification.inputs import to_graph

METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_BATCH = 16
# "auto" keep_float: at most this many layers are kept in float32 before giving up
AUTO_KEEP_MAX = 8


class _Reader:
    """onnxruntime's CalibrationDataReader over batches in the graph's layout."""

    def __init__(self, feeds):
        self._feeds, self._next = feeds, 0

    def get_next(self):
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return self._feeds[self._next - 1]

    def rewind(self):
        self._next = 0


def feeds(arrays, io, input_names, batch=None):
    """Feed dicts (graph layout) of `arrays` (Keras layout) in batches of one size:
    the graph's static batch when it has one (a remainder is dropped), else the largest
    divisor of the sample count up to `batch` (onnxruntime's histogram calibrators stack
    the runs' outputs, so they must agree in shape)."""
    static = io.get("static_batch")
    count = arrays[0].shape[0]
    size = static or max(d for d in range(1, (batch or CALIBRATION_BATCH) + 1)
                         if count % d == 0)
    perms = io.get("input_perms") or [None] * len(arrays)
    out = []
    for chunk in calibration_data.batched(arrays, size):
        if static and chunk[0].shape[0] != static:
            continue
        out.append(dict(zip(input_names, to_graph(chunk, perms, io.get("input_dtypes")))))
    if not out:
        raise calibration_data.CalibrationError(
            f"export: {arrays[0].shape[0]} calibration sample(s) can't fill one batch of the "
            f"graph's static batch size {static}")
    return out


def layer_nodes(onnx_model, entries, labels):
    """Names of the nodes that compute the Keras layers `labels` (by tensor-map label):
    from each layer's output tensor back to the previous mapped tensors."""
    labels = set(labels)
    known = {e["label"] for e in entries}
    unknown = sorted(labels - known)
    if unknown:
        raise ValueError(f"export: keep_float names {unknown}, which are not layers of the "
                         f"graph (mapped layers: {sorted(known)[:12]}...)")
    producer = {o: n for n in onnx_model.graph.node for o in n.output}
    boundary = {e["onnx"] for e in entries if e["status"] == "live"}
    names = set()
    for e in entries:
        if e["label"] not in labels or e["status"] != "live":
            continue
        stack = [e["onnx"]]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node.name in names:
                continue
            names.add(node.name)
            stack.extend(i for i in node.input if i not in boundary)
    return sorted(names)


def _named(onnx_model):
    """Gives every node a name (the quantizer excludes nodes by name)."""
    for i, node in enumerate(onnx_model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    return onnx_model


def preprocess(float_model, stage):
    """onnxruntime's `quant_pre_process` (symbolic shapes, basic fusions) on the float graph;
    the result is what is quantized and what the QDQ graph is compared with."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, pre = os.path.join(stage, "float.onnx"), os.path.join(stage, "float.pre.onnx")
    onnx.save_model(_named(float_model), source)
    try:
        quant_pre_process(source, pre, skip_symbolic_shape=False)
        return _named(onnx.load(pre))
    finally:
        for name in (source, pre):
            if os.path.exists(name):
                os.remove(name)


# onnxruntime's calibrators, with options quantize_static does not pass on: its entropy
# calibrator defaults to as many histogram bins as quantized bins (128/128), where the only
# threshold it can pick is the full range (MinMax's: measured, test_precision), and its
# percentile calibrator to symmetric ranges, which halve uint8 resolution after a ReLU
CALIBRATORS = {
    "minmax": ("MinMax", {"symmetric": False}),
    "entropy": ("Entropy", {"symmetric": False, "num_bins": 2048, "num_quantized_bins": 128}),
    "percentile": ("Percentile", {"symmetric": False, "num_bins": 2048,
                                  "percentile": 99.999}),
}


def calibrate(pre_path, stage, calibration_feeds, method):
    """Activation ranges of the graph at `pre_path` on the feeds (onnxruntime's
    calibrators); returns the path of a calibration cache quantize_static reads."""
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod, create_calibrator, save_tensors_data,
    )

    name, options = CALIBRATORS[method]
    calibrator = create_calibrator(pre_path, [], augmented_model_path=os.path.join(
        stage, "augmented.onnx"), calibrate_method=getattr(CalibrationMethod, name),
        extra_options=options)
    calibrator.collect_data(_Reader(calibration_feeds))
    cache = os.path.join(stage, "calibration.json")
    save_tensors_data(calibrator.compute_data(), cache)
    del calibrator
    return cache


def quantize(pre_model, stage, calibration_feeds, method="minmax", exclude=()):
    """The QDQ graph of the preprocessed float graph, as bytes; `exclude`: node names
    kept in float."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod, QuantFormat, QuantType, quantize_static,
    )

    if method not in METHODS:
        raise ValueError(f"export: calibration_method must be one of {METHODS}, got "
                         f"{method!r}")
    pre, out = os.path.join(stage, "int8.in.onnx"), os.path.join(stage, "int8.onnx")
    onnx.save_model(pre_model, pre)
    cache = None
    try:
        cache = calibrate(pre, stage, calibration_feeds, method)
        quantize_static(
            pre, out, None, quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, CALIBRATORS[method][0]),
            calibration_cache_path=cache, nodes_to_exclude=list(exclude),
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        with open(out, "rb") as f:
            return f.read()
    finally:
        for name in (pre, out, cache, os.path.join(stage, "augmented.onnx")):
            if name and os.path.exists(name):
                os.remove(name)


def export_int8(model, float_model, stage, io, entries, calibration, method="minmax",
                keep_float=None, verify=True, providers=None, level="all", graphs=None,
                seed=0):
    """Quantizes the verified float graph and judges the result by the quantized rule.

    Returns (QDQ ModelProto, QuantReport or None when `verify` is False).
    """
    import onnx

    from keras_convx.verification.inputs import integer_pixels, model_inputs
    from keras_convx.verification.int8_verifier import verify_int8

    random = isinstance(calibration, str) and calibration == "random"
    if random:
        arrays = model_inputs(model, io, 80, np.random.default_rng(seed))
    else:
        arrays = integer_pixels(calibration_data.samples(calibration, model),
                                io.get("input_dtypes"), "export: calibration")
    calib, held = calibration_data.split(arrays)
    initializers = {t.name for t in float_model.graph.initializer}
    input_names = [i.name for i in float_model.graph.input if i.name not in initializers]
    calib_feeds = feeds(calib, io, input_names)
    runs = [list(b) for b in calibration_data.batched(held, io.get("static_batch") or 8)
            if not io.get("static_batch") or b[0].shape[0] == io["static_batch"]]
    if verify and not runs:
        raise calibration_data.CalibrationError(
            f"export: the {held[0].shape[0]} held-out sample(s) can't fill one batch of the "
            f"graph's static batch size {io.get('static_batch')}: pass more calibration data")
    auto = keep_float == "auto"
    kept = [] if auto or keep_float is None else list(keep_float)
    pre_model = preprocess(float_model, stage)
    pre_data = pre_model.SerializeToString()
    while True:
        exclude = layer_nodes(pre_model, _present(entries, pre_model), kept) if kept else ()
        qdq_data = quantize(pre_model, stage, calib_feeds, method, exclude)
        qdq_model = onnx.load_from_string(qdq_data)
        if not verify:
            return qdq_model, None
        report = verify_int8(
            model, qdq_model, qdq_data, io, entries, runs, pre_model, pre_data, providers,
            level, graphs, method=method,
            calibration="random (not representative)" if random else "data",
            calibration_samples=int(calib[0].shape[0]),
            held_out_samples=int(sum(r[0].shape[0] for r in runs)), kept_float=list(kept))
        if random:
            report.warnings.append("calibrated on random inputs at the model's scale, not on "
                                   "real data: the ranges may not fit real inputs")
        if report.passed or not auto or len(kept) >= AUTO_KEEP_MAX:
            return qdq_model, report
        failing = report.failing
        worst = ([failing.layer] if failing is not None and failing.role == "internal" else []) \
            + [c.layer for c in report.worst(len(report.checks))]
        worst = [layer for layer in worst if layer not in kept]
        if not worst:
            return qdq_model, report
        kept.append(worst[0])


def _present(entries, onnx_model):
    produced = {o for n in onnx_model.graph.node for o in n.output}
    return [e for e in entries if e["status"] != "live" or e["onnx"] in produced]

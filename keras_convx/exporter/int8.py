"""INT8 export: static, calibrated QDQ quantization of a verified float graph, by
onnxruntime.quantization (`quant_pre_process`, then `quantize_static`).

Weights are symmetric int8 per output channel (onnxruntime quantizes ConvTranspose
weights on axis 1, Conv on axis 0); activations uint8, asymmetric (onnxruntime's advice
for x86 CPUs with VNNI: no range reduction). BatchNormalization is already folded into
the convolutions by the lowering; Add, Concat, Resize and pooling get QDQ pairs as
onnxruntime's QDQ quantizer places them.

Every file onnxruntime writes goes to a private folder inside the export's staging folder,
which is also the current folder while onnxruntime runs (it writes some files under
relative names), and is removed however the export ends. Which nodes stay in float32
(`keep_float`) is decided in `keep_float.py`.
"""

import dataclasses
import os

import numpy as np

from keras_convx.exporter import calibration_data
from keras_convx.exporter.keep_float import auto_note, check_keep_float, keep_float_nodes
from keras_convx.utils import files
from keras_convx.verification.inputs import to_graph

METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_BATCH = 16
HELD_OUT_BATCH = 8
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
    static = io.static_batch
    count = arrays[0].shape[0]
    size = static or max(d for d in range(1, (batch or CALIBRATION_BATCH) + 1)
                         if count % d == 0)
    perms = io.input_perms or [None] * len(arrays)
    out = []
    for chunk in calibration_data.batched(arrays, size):
        if static and chunk[0].shape[0] != static:
            continue
        out.append(dict(zip(input_names, to_graph(chunk, perms, io.input_dtypes))))
    if not out:
        raise calibration_data.CalibrationError(
            f"export: {arrays[0].shape[0]} calibration sample(s) can't fill one batch of the "
            f"graph's static batch size {static}")
    return out


def _named(onnx_model):
    """Gives every node a name (the quantizer excludes nodes by name)."""
    for i, node in enumerate(onnx_model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    return onnx_model


@dataclasses.dataclass
class Preprocessed:
    """quant_pre_process's graph; `symbolic_shapes_skipped`: why its symbolic shape
    inference was left out (None when it ran)."""

    model: object
    symbolic_shapes_skipped: str = None


def preprocessed(float_model, stage):
    """onnxruntime's `quant_pre_process` (symbolic shapes, basic fusions) on the float graph;
    the result is what is quantized and what the QDQ graph is compared with.

    Symbolic shape inference fails on some graphs ("Incomplete symbolic shape inference",
    seen on imported-then-re-exported nets); ONNX's own shape inference is enough for
    static QDQ quantization of conv nets, so pre-processing is then redone without it and
    the result says so."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with files.scratch_dir(stage, "int8-pre-") as work, files.working_dir(work):
        source, pre = os.path.join(work, "float.onnx"), os.path.join(work, "float.pre.onnx")
        onnx.save_model(_named(float_model), source)
        skipped = None
        try:
            quant_pre_process(source, pre, skip_symbolic_shape=False)
        except Exception as err:  # noqa: BLE001 (any failure of the optional step)
            text = str(err).strip()
            skipped = f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"
            quant_pre_process(source, pre, skip_symbolic_shape=True)
        return Preprocessed(_named(onnx.load(pre)), skipped)


def preprocess(float_model, stage):
    """The preprocessed graph alone (`preprocessed`)."""
    return preprocessed(float_model, stage).model


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


def calibrate(pre_path, stage, calibration_feeds, method, chunk=1):
    """Activation ranges of the graph at `pre_path` on the feeds (onnxruntime's
    calibrators); returns the path of a calibration cache quantize_static reads.

    The calibrator sees `chunk` feeds (batches) per `collect_data` call: each call reduces
    what it ran to ranges (MinMax: running min/max, exactly the all-at-once result) or to
    its histograms (entropy, percentile: merged, re-binned when the range grows), then
    drops the batches' intermediate tensors. Memory is one chunk's activations plus the
    histograms, whatever the number of samples (all at once, a 572x572 U-Net held 0.65
    GB per sample and was killed at 17.9 GB with 80)."""
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod, create_calibrator, save_tensors_data,
    )

    name, options = CALIBRATORS[method]
    calibrator = create_calibrator(pre_path, [], augmented_model_path=os.path.join(
        stage, "augmented.onnx"), calibrate_method=getattr(CalibrationMethod, name),
        extra_options=options)
    from keras_convx.utils.progress import Steps

    calibration_feeds = _within_budget(calibrator.infer_session, calibration_feeds,
                                       _tensor_bytes(pre_path))
    if method != "minmax":
        _seed_histograms(calibrator, calibration_feeds)
    counts = [next(iter(f.values())).shape[0] for f in calibration_feeds]
    steps = Steps(f"INT8 calibration ({method})", sum(counts))
    for start in range(0, len(calibration_feeds), chunk):
        calibrator.collect_data(_Reader(calibration_feeds[start:start + chunk]))
        steps.advance(sum(counts[start:start + chunk]))
    cache = os.path.join(stage, "calibration.json")
    save_tensors_data(calibrator.compute_data(), cache)
    del calibrator
    return cache


# Bytes of intermediate tensors one calibration run may hold: a batch is split into runs of
# fewer samples when one sample's tensors take more (a 572x572 U-Net: its float tensors
# add up to ~1.5 GB a sample, and runs of 16 were killed at 17.6 GB)
ACTIVATION_BUDGET = 1 << 30


def _tensor_bytes(path_or_model):
    """Bytes of one sample's float tensors in a graph (a path or ModelProto; its inferred
    shapes, batch 1; tensors of unknown size are left out)."""
    import onnx

    graph = (path_or_model if isinstance(path_or_model, onnx.ModelProto) else
             onnx.load(path_or_model, load_external_data=False)).graph
    total = 0
    for vi in list(graph.value_info) + list(graph.output):
        tensor = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if tensor.elem_type == onnx.TensorProto.FLOAT and dims and None not in dims[1:]:
            total += 4 * int(np.prod(dims[1:]))
    return total


def _within_budget(session, feeds, graph_bytes=0):
    """`feeds` re-split so that one run's tensors stay within ACTIVATION_BUDGET: one
    sample's are the larger of the graph's float tensors (`graph_bytes`) and what the
    calibrator's session returns for one sample (a graph with a static batch keeps its
    batches)."""
    first = session.get_inputs()[0].shape[0]
    batch = next(iter(feeds[0].values())).shape[0]
    if isinstance(first, int) or batch <= 1:
        return feeds
    one = {k: v[:1] for k, v in feeds[0].items()}
    per_sample = max(graph_bytes,
                     sum(np.asarray(v).nbytes for v in session.run(None, one)))
    size = int(max(1, min(batch, ACTIVATION_BUDGET // max(per_sample, 1))))
    if size >= batch:
        return feeds
    return [{k: v[i:i + size] for k, v in feed.items()}
            for feed in feeds for i in range(0, next(iter(feed.values())).shape[0], size)]


def _seed_histograms(calibrator, calibration_feeds):
    """Gives onnxruntime's histogram collector each tensor's final range before the first
    batch: one pass for min/max, then empty histograms over [-max|x|, max|x|]. Streamed
    batches then add counts to the same bins, the all-at-once histogram; unseeded, each
    wider batch re-bins the histogram and grows its bin count, which moved an entropy
    threshold by 20% (tests/test_int8_calibration.py)."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    session = calibrator.infer_session
    names = [o.name for o in session.get_outputs()]
    wanted = set(calibrator.tensors_to_calibrate)
    low, high = {}, {}
    for feed in calibration_feeds:
        for name, value in zip(names, session.run(None, feed)):
            if name in wanted and np.asarray(value).size:
                low[name] = min(low.get(name, np.inf), float(np.nanmin(value)))
                high[name] = max(high.get(name, -np.inf), float(np.nanmax(value)))
    collector = HistogramCollector(
        method=calibrator.method, symmetric=calibrator.symmetric,
        num_bins=calibrator.num_bins, num_quantized_bins=calibrator.num_quantized_bins,
        percentile=calibrator.percentile, scenario=calibrator.scenario)
    for name in low:
        threshold = np.float32(max(abs(low[name]), abs(high[name])))
        hist, edges = np.histogram(np.zeros(0, np.float32), calibrator.num_bins,
                                   range=(-threshold, threshold))
        collector.histogram_dict[name] = (hist, edges, np.float32(low[name]),
                                          np.float32(high[name]), threshold)
    calibrator.collector = collector


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
    with files.scratch_dir(stage, "int8-") as work, files.working_dir(work):
        pre, out = os.path.join(work, "int8.in.onnx"), os.path.join(work, "int8.onnx")
        onnx.save_model(pre_model, pre)
        cache = calibrate(pre, work, calibration_feeds, method)
        quantize_static(
            pre, out, None, quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, CALIBRATORS[method][0]),
            calibration_cache_path=cache, nodes_to_exclude=list(exclude),
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        with open(out, "rb") as f:
            return f.read()


def export_int8(model, float_model, stage, io, entries, calibration, method="minmax",
                keep_float=None, verify=True, providers=None, level="all", runner=None,
                seed=0):
    """Quantizes the verified float graph and judges the result by the quantized rule.

    Returns (QDQ ModelProto, QuantReport or None when `verify` is False).
    """
    import onnx

    from keras_convx.verification.inputs import integer_pixels, model_inputs
    from keras_convx.verification.int8_verifier import measure_latency, verify_int8

    random = isinstance(calibration, str) and calibration == "random"
    if random:
        arrays = model_inputs(model, io, 80, np.random.default_rng(seed))
    else:
        arrays = integer_pixels(calibration_data.samples(calibration, model),
                                io.input_dtypes, "export: calibration")
    calib, held = calibration_data.split(arrays)
    initializers = {t.name for t in float_model.graph.initializer}
    input_names = [i.name for i in float_model.graph.input if i.name not in initializers]
    calib_feeds = feeds(calib, io, input_names)
    auto = keep_float == "auto"
    check_keep_float(keep_float, float_model, entries)  # before any work
    kept = [] if auto or keep_float is None else list(keep_float)
    pre = preprocessed(float_model, stage)
    # the held-out batches: the first is compared tensor by tensor (every tensor of the
    # float graph, the INT8 graph and Keras at once), so it keeps within the budget too
    size = io.static_batch or int(max(1, min(
        HELD_OUT_BATCH, ACTIVATION_BUDGET // max(_tensor_bytes(pre.model), 1))))
    runs = [list(b) for b in calibration_data.batched(held, size)
            if not io.static_batch or b[0].shape[0] == io.static_batch]
    if verify and not runs:
        raise calibration_data.CalibrationError(
            f"export: the {held[0].shape[0]} held-out sample(s) can't fill one batch of the "
            f"graph's static batch size {io.static_batch}: pass more calibration data")
    pre_model = pre.model
    pre_data = pre_model.SerializeToString()
    first = None  # what the rule found before "auto" kept anything in float
    while True:
        exclude = keep_float_nodes(pre_model, float_model, entries, kept) if kept else ()
        qdq_data = quantize(pre_model, stage, calib_feeds, method, exclude)
        qdq_model = onnx.load_from_string(qdq_data)
        if not verify:
            return qdq_model, None
        report = verify_int8(
            model, qdq_model, qdq_data, io, entries, runs, pre_model, pre_data, providers,
            level, runner, method=method,
            calibration="random (not representative)" if random else "data",
            calibration_samples=int(calib[0].shape[0]),
            held_out_samples=int(sum(r[0].shape[0] for r in runs)), kept_float=list(kept))
        if random:
            report.warnings.append("calibrated on random inputs at the model's scale, not on "
                                   "real data: the ranges may not fit real inputs")
        first = first or report.summary()
        if report.passed or not auto:
            break
        if len(kept) >= AUTO_KEEP_MAX:
            report.auto = auto_note(kept, first, report, f"the most it keeps ({AUTO_KEEP_MAX})")
            break
        failing = report.failing
        worst = ([failing.layer] if failing is not None and failing.role == "internal" else []) \
            + [c.layer for c in report.worst(len(report.checks))]
        worst = [layer for layer in worst if layer not in kept]
        if not worst:
            report.auto = auto_note(kept, first, report, "no mapped layer is left to keep")
            break
        kept.append(worst[0])
    if pre.symbolic_shapes_skipped:
        report.symbolic_shapes_skipped = True
        report.warnings.append(
            f"onnxruntime's symbolic shape inference failed ({pre.symbolic_shapes_skipped}): "
            f"quant_pre_process ran without it (ONNX shape inference only)")
    measure_latency(report, pre_data, qdq_data, io, runs[0], report.providers[0], level)
    return qdq_model, report

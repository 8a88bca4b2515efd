"""Runs an INT8 (QDQ) graph against its float graph and the Keras model and judges it by
the quantized rule (`quantized`)."""

import time

import numpy as np

from keras_convx.verification import ort_runner, quantized
from keras_convx.verification.inputs import from_graph, to_graph
from keras_convx.verification.keras_runner import Reference, runner_for
from keras_convx.verification.quantized import QuantReport


def verify_int8(model, qdq_model, qdq_data, io, entries, runs, float_model=None,
                float_data=None, providers=None, level="all", runner=None, **report_fields):
    """Judges the QDQ graph (`qdq_model`, its bytes `qdq_data`) on `runs` (lists of input
    arrays in Keras layout; the first is also compared tensor by tensor).

    Args:
        float_model, float_data: the float graph it was quantized from (ModelProto, bytes);
            without it, mapped tensors are judged against Keras.
        level: the deployed onnxruntime level; outputs are judged there and at BASIC.
        runner: the Keras side (see `Verifier`); by default outputs only.
        report_fields: `QuantReport` fields (method, calibration, sample counts, kept_float).

    Returns:
        A `QuantReport`.
    """
    start = time.perf_counter()
    providers = ort_runner.available_providers(providers)
    levels = [quantized.INSPECT_LEVEL] + ([level] if level != quantized.INSPECT_LEVEL else [])
    report = QuantReport(levels=levels, providers=providers, **report_fields)
    live, reference = _judged_entries(runner_for(model, runner), qdq_model, float_model, io,
                                      entries, runs)
    # the value consumers see: a quantized tensor's QuantizeLinear -> DequantizeLinear
    # output (the quantizer drops a Relu whose clipping the uint8 range does, so the name
    # itself may hold the pre-activation)
    seen = post_qdq(qdq_model)
    names = [seen.get(e.onnx, e.onnx) for e in live]
    in_perms = io.input_perms or [None] * len(model.inputs)
    for provider in providers:
        inspect = ort_runner.session(ort_runner.inspection_graph(qdq_model, names, qdq_data),
                                     provider, quantized.INSPECT_LEVEL)
        q_values = _run(inspect, runs[0], in_perms, io.input_dtypes)
        f_values = {}
        if float_model is not None:
            f_session = ort_runner.session(
                ort_runner.inspection_graph(float_model, [e.onnx for e in live],
                                            float_data), provider,
                ort_runner.INSPECT_LEVEL)
            f_values = _run(f_session, runs[0], in_perms, io.input_dtypes)
        own = own_values(qdq_model, live, runs[0], f_values, reference, provider, in_perms,
                         io.input_dtypes)
        _judge_mapped(report, live, seen, q_values, f_values, own, reference,
                      float_model, qdq_model, int(runs[0][0].shape[0]))
        _judge_outputs(report, provider, inspect, q_values, qdq_model, qdq_data, io, runs,
                       reference, in_perms)
    skipped = sum(1 for e in entries if e.live) - len(live)
    if skipped:
        report.warnings.append(f"{skipped} mapped tensor(s) are not in the quantized graph "
                               f"(fused by quant_pre_process): not compared")
    report.seconds = time.perf_counter() - start
    return report


def _judged_entries(runner, qdq_model, float_model, io, entries, runs):
    """(the live tensor-map entries both graphs compute and Keras gives a value for, in
    graph order; the Keras `Reference` on `runs`)."""
    produced = {o for n in qdq_model.graph.node for o in n.output}
    if float_model is not None:
        produced &= {o for n in float_model.graph.node for o in n.output}
    live = [e for e in entries if e.live and e.onnx in produced]
    reference = Reference(runner, live, runs, 0, io.static_batch)
    live = [e for e in live if e.ref_key in reference.tensors]
    # graph order (ONNX nodes are topologically sorted): inputs are judged before users
    order = {o: i for i, n in enumerate((float_model or qdq_model).graph.node) for o in n.output}
    live.sort(key=lambda e: order.get(e.onnx, -1))
    return live, reference


def _run(session, arrays, in_perms, dtypes):
    """{output name: value} of `session` on `arrays` (Keras layout)."""
    feeds = dict(zip([i.name for i in session.get_inputs()],
                     to_graph(arrays, in_perms, dtypes)))
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _judge_mapped(report, live, seen, q_values, f_values, own, reference, float_model,
                  qdq_model, samples):
    """Judges each mapped tensor of the QDQ graph (`q_values`, the first run) against the
    float graph's (`f_values`) or else Keras's, with its own error teacher-forced (`own`),
    and attributes the errors to the layers that made them."""
    feeds_from = mapped_inputs(float_model if float_model is not None else qdq_model,
                               [e.onnx for e in live])
    sqnr, rows = {}, {}
    producers = {o: n.op_type for n in (float_model or qdq_model).graph.node
                 for o in n.output}
    for e in live:
        perm = [e.perm]
        q = from_graph([q_values[seen.get(e.onnx, e.onnx)]], perm)[0]
        f = from_graph([f_values[e.onnx]], perm)[0] if f_values else None
        label = e.label + (" (before its activation)" if e.ref_key[0] == "pre" else "")
        ins = [sqnr[n] for n in feeds_from[e.onnx] if sqnr.get(n) is not None]
        keras_value = reference.tensors[e.ref_key]
        ref = f if f is not None else keras_value
        forced = from_graph([own[e.onnx]], perm)[0] if e.onnx in own else None
        row = quantized.judge_internal(
            label, e.label, keras_value, f, q, samples,
            min(ins) if ins else quantized.INPUT_SQNR_DB,
            sqnr_own=quantized.sqnr_db(ref, forced) if forced is not None else None,
            own_rms=None if forced is None else float(np.sqrt(np.mean(
                (np.asarray(ref, np.float64) - forced) ** 2))),
            bounded=quantized.BOUNDED_WIDTHS.get(producers.get(e.onnx))
            if e.ref_key[0] != "pre" else None)
        row.onnx = e.onnx
        sqnr[e.onnx] = row.sqnr_float if f is not None else row.sqnr_keras
        rows[e.onnx] = row
        report.checks.append(row)
    quantized.attribute([rows[e.onnx] for e in live],
                        {e.onnx: feeds_from[e.onnx] for e in live})


def _judge_outputs(report, provider, inspect, q_values, qdq_model, qdq_data, io, runs,
                   reference, in_perms):
    """Judges the QDQ graph's outputs against Keras's on every run, at each level of the
    report (the inspection session's first run is reused at INSPECT_LEVEL)."""
    out_perms = io.output_perms or [None] * len(qdq_model.graph.output)
    out_names = [o.name for o in qdq_model.graph.output]
    for lvl in report.levels:
        session = inspect if lvl == quantized.INSPECT_LEVEL else ort_runner.session(
            qdq_data, provider, lvl)
        got = [from_graph([v[n] for n in out_names], out_perms)
               for v in (q_values if s == 0 and session is inspect
                         else _run(session, arrays, in_perms, io.input_dtypes)
                         for s, arrays in enumerate(runs))]
        for j, name in enumerate(out_names):
            row = quantized.judge_output(name, lvl, [o[j] for o in reference.outputs],
                                         [g[j] for g in got])
            row.tensor = f"{name} ({provider})" if len(report.providers) > 1 else name
            report.checks.append(row)


# the latency comparison times at least this many runs of each graph (after one warm-up
# run each), and more, up to LATENCY_MAX_REPEATS, until both took LATENCY_SECONDS: a tiny
# net's sub-millisecond runs need many for a steady median
LATENCY_REPEATS = 7
LATENCY_MAX_REPEATS = 200
LATENCY_SECONDS = 0.2


def time_sessions(float_data, qdq_data, inputs, provider, level, repeats=LATENCY_REPEATS):
    """Median seconds of one run of the float graph and of the QDQ graph (serialized) on
    `inputs` (graph layout), in onnxruntime at `level`. The runs alternate, so that load
    from other processes on the machine falls on both alike."""
    sessions = [ort_runner.session(data, provider, level) for data in (float_data, qdq_data)]
    feeds = [dict(zip([i.name for i in s.get_inputs()], inputs)) for s in sessions]
    for session, feed in zip(sessions, feeds):
        session.run(None, feed)  # the first run allocates and plans
    times = ([], [])
    while len(times[0]) < repeats or (len(times[0]) < LATENCY_MAX_REPEATS
                                      and sum(times[0]) + sum(times[1]) < LATENCY_SECONDS):
        for session, feed, spent in zip(sessions, feeds, times):
            start = time.perf_counter()
            session.run(None, feed)
            spent.append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1]))


def measure_latency(report, float_data, qdq_data, io, arrays, provider, level):
    """Times the float and the QDQ graph on `arrays` (one batch, Keras layout) and records
    it in `report` (`QuantReport.note_latency`)."""
    inputs = to_graph(arrays, io.input_perms or [None] * len(arrays),
                      io.input_dtypes)
    float_s, int8_s = time_sessions(float_data, qdq_data, inputs, provider, level)
    report.note_latency(float_s, int8_s, batch=int(arrays[0].shape[0]), provider=provider,
                        level=level)


def mapped_inputs(onnx_model, names):
    """{mapped tensor: the mapped tensors it is computed from} (walking back through
    unmapped nodes; graph inputs and weights end a path)."""
    producer = {o: n for n in onnx_model.graph.node for o in n.output}
    mapped = set(names)
    out = {}
    for name in names:
        found, seen = set(), set()
        stack = list(producer[name].input) if name in producer else []
        while stack:
            t = stack.pop()
            if t in seen or not t:
                continue
            seen.add(t)
            if t in mapped:
                found.add(t)
            elif t in producer:
                stack.extend(producer[t].input)
        out[name] = found
    return out


def own_values(qdq_model, live, arrays, f_values, reference, provider, in_perms, dtypes):
    """{mapped tensor: its QDQ value with its inputs teacher-forced} (`teacher_forced`): fed
    the float graph's values of the mapped tensors (Keras's, in the graph's layout, without
    a float graph) and the same graph inputs. Empty when the forced graph can't run."""
    # a tensor mapped twice (a layer's output and, for a fused activation, its input) is
    # fed once: a second feed would leave the first unfed and the graph would not run
    names = list(dict.fromkeys(e.onnx for e in live))
    if f_values:
        teacher = {n: f_values[n] for n in names}
    else:
        teacher = {e.onnx: np.transpose(reference.tensors[e.ref_key], e.perm)
                   if e.perm else reference.tensors[e.ref_key] for e in live}
    teacher = {n: np.asarray(v) for n, v in teacher.items()}
    data, feeds, outputs = teacher_forced(qdq_model, names, {
        n: v.dtype for n, v in teacher.items()})
    try:
        session = ort_runner.session(data, provider, quantized.INSPECT_LEVEL)
        taken = set(feeds.values())
        inputs = dict(zip([i.name for i in session.get_inputs() if i.name not in taken],
                          to_graph(arrays, in_perms, dtypes)))
        inputs.update({feeds[n]: teacher[n] for n in names})
        values = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
    except Exception:  # noqa: BLE001 (an extra measurement: the rule falls back without it)
        return {}
    return {n: values[outputs[n]] for n in names if outputs[n] in values}


def teacher_forced(qdq_model, names, dtypes=None):
    """The QDQ graph with every mapped tensor in `names` fed from outside: each consumer of
    the tensor (or of its QuantizeLinear -> DequantizeLinear pair) reads a new graph input
    instead, while the tensor itself, and its pair, are still computed and are outputs.
    Fed the float graph's values, each mapped tensor then carries its own layer's error
    alone (weights, activation ranges, the nodes between mapped tensors), none of its
    inputs'. Returns (serialized graph, {mapped tensor: its input's name}, {mapped tensor:
    the output holding its value})."""
    import onnx

    forced = onnx.ModelProto()
    forced.CopyFrom(qdq_model)
    graph = forced.graph
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    seen = post_qdq(qdq_model)
    taken = {o for n in graph.node for o in n.output} | {i.name for i in graph.input} | {
        t.name for t in graph.initializer}
    feeds, outputs = {}, {}
    for name in names:
        # the pair that writes the value consumers see stays: it is this layer's rounding
        chain = [q for q in consumers.get(name, []) if q.op_type == "QuantizeLinear"]
        pair = {id(n) for n in chain} | {id(d) for q in chain for d in consumers.get(
            q.output[0], []) if d.op_type == "DequantizeLinear"}
        seen_as = {name} | {d.output[0] for q in chain for d in consumers.get(q.output[0], [])
                            if d.op_type == "DequantizeLinear"}
        feed = name + "__teacher"
        while feed in taken:
            feed += "_"
        taken.add(feed)
        for node in graph.node:
            if id(node) in pair:
                continue
            for i, x in enumerate(node.input):
                if x in seen_as:
                    node.input[i] = feed
        elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype((dtypes or {}).get(name, np.float32)))
        graph.input.append(onnx.helper.make_tensor_value_info(feed, elem, None))
        feeds[name], outputs[name] = feed, seen.get(name, name)
    existing = {o.name for o in graph.output}
    graph.output.extend(onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
                        for o in dict.fromkeys(outputs.values()) if o not in existing)
    return forced.SerializeToString(), feeds, outputs


def post_qdq(qdq_model):
    """{tensor: the output of the DequantizeLinear that follows its QuantizeLinear}."""
    consumers = {}
    for node in qdq_model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    out = {}
    for node in qdq_model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        dq = [c for c in consumers.get(node.output[0], []) if c.op_type == "DequantizeLinear"]
        if dq:
            out[node.input[0]] = dq[0].output[0]
    return out

"""What the `keras-convx` command line shows and writes: rich tables, summaries, the
closing timing line, JSON reports and plots. cli.py parses arguments and calls the
library; this module only presents the results. Rich, onnx and Keras are imported inside
the functions, so `--help` and a config typo stay fast."""

import os
import time


class BadInput(Exception):
    """Exit code 2 with this one-line message (raised here too: a report or plot path)."""


def new_console():
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=140)  # logs and CI: don't truncate the tables
    return console


def build_summary(console, model, title):
    """`build`: the layer table, then the layer and parameter counts."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in (("layer", "left"), ("type", "left"), ("output shape", "left"),
                         ("params", "right")):
        table.add_column(col, justify=justify)
    for layer in model.layers:
        try:
            shape = str(tuple(layer.output.shape))
        except (AttributeError, ValueError):
            shape = "?"
        table.add_row(layer.name, type(layer).__name__, shape, f"{layer.count_params():,}")
    console.print(table)
    console.print(f"layers {len(model.layers)}; params {model.count_params():,} "
                  f"(trainable {sum(int(_size(w)) for w in model.trainable_weights):,})")


def _size(weight):
    n = 1
    for d in weight.shape:
        n *= int(d)
    return n


def write_text(path, text, flag):
    """Writes `text` to `path` atomically (a temporary file, then a rename)."""
    from keras_convx.utils.files import write_atomic

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadInput(f"{flag}: folder {folder} does not exist")
    write_atomic(path, text)


def write_report(path, report):
    write_text(path, report.to_json(), "--report")


def report_table(report):
    """Graph outputs at the deployed level: one row per output and batch."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"{report.path}  [{report.method}: {report.reason}]"))
    for col in ("output", "provider", "ORT level", "batch", "scale", "max abs", "error/scale",
                "cosine", "tolerance", "result"):
        table.add_column(col)
    for c in (report.verify.checks if report.verify else []):
        table.add_row(escape(c.tensor), c.provider.replace("ExecutionProvider", ""), c.level,
                      str(c.batch), f"{c.scale:.3g}", f"{c.max_abs:.2e}", f"{c.rel:.2e}",
                      f"{c.cosine:.7f}", f"{c.tolerance:g}", _status(c.status))
    return table


def _status(status):
    return {"pass": "[green]pass[/]", "FAIL": "[red]FAIL[/]", "fused": "fused",
            "uninformative": "[yellow]uninformative[/]",
            "ort-optimiser": "[yellow]ORT optimiser[/]"}.get(status, status)


def tensor_summary(console, verify, full=False):
    """Per-layer agreement: counts, the worst tensors, the first that diverges."""
    from rich.markup import escape
    from rich.table import Table

    if verify is None:
        return
    tensors = verify.tensors
    if not tensors:
        console.print("internal tensors: not compared (no tensor map: graph from another "
                      "exporter, or --no-diagnose)")
    else:
        counts = {}
        for c in tensors:
            counts[c.status] = counts.get(c.status, 0) + 1
        compared = [c for c in tensors if c.status in ("pass", "FAIL")]
        worst = sorted(compared, key=lambda c: -c.rel)[: (len(compared) if full else 5)]
        table = Table(title=f"layer outputs at ORT level {tensors[0].level}: "
                            + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        for col in ("tensor", "role", "shape", "scale", "error/scale", "p99", "PSNR dB",
                    "result"):
            table.add_column(col)
        shown = verify.diagnosis[:3] + [c for c in worst if c not in verify.diagnosis[:3]]
        for c in shown:
            table.add_row(escape(c.tensor), c.role, str(tuple(c.shape)), f"{c.scale:.3g}",
                          f"{c.rel:.2e}", f"{c.p99_rel:.2e}", f"{c.psnr:.1f}",
                          _status(c.status))
        console.print(table)
        fused = [c for c in tensors if c.status == "fused"]
        if fused:
            console.print(f"fused away (no ONNX tensor to compare): {len(fused)}, e.g. "
                          + ", ".join(escape(f"{c.tensor} -> {c.into}") for c in fused[:3]))
    console.print(f"rule: {verify.rule}")
    for warning in verify.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")


def quant_summary(console, quant):
    if quant.calibration is None:  # an existing file, re-verified
        console.print(f"INT8, by the quantized rule: {quant.summary()}")
    else:
        console.print(f"INT8 ({quant.method} calibration on {quant.calibration_samples} "
                      f"{quant.calibration} samples, judged on {quant.held_out_samples} held "
                      f"out): {quant.summary()}")
    for c in quant.checks:
        if c.role == "output" and c.sqnr_keras is not None:
            top1 = f", top-1 agreement {c.top1:.1%}" if c.top1 is not None else ""
            console.print(f"  output {c.tensor} at {c.level}: {c.sqnr_keras:.1f} dB, cosine "
                          f"{c.cosine:.4f}{top1}")
    # a re-verified file has no float graph: its tensors are judged against Keras
    worst = ", ".join(
        f"{c.layer} (loses {c.drop:.1f} dB itself, at "
        f"{c.sqnr_float if c.sqnr_float is not None else c.sqnr_keras:.1f} dB"
        f"{'' if c.sqnr_float is not None else ' against Keras'})" for c in quant.worst())
    if worst:
        console.print(f"  layers that lose most SQNR themselves: {worst}")
    if quant.kept_float:
        console.print(f"  kept in float: {', '.join(quant.kept_float)}")
    for w in quant.warnings:
        console.print(f"  warning: {w}")


def plot(path, verify):
    from keras_convx.verification.plot import plot_report

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadInput(f"--plot: folder {folder} does not exist")
    plot_report(verify, path)
    print(f"plotted {len(verify.tensors)} tensors to {path}")


# where a command's wall time went (the closing line's parts), from main()'s start
CLOCK = {}


def timing(parts):
    """'total T s: backend import a s, build b s, ...': `parts` (name -> seconds, None
    skipped) with the backend import measured in main() and the rest as 'other'."""
    total = time.perf_counter() - CLOCK.get("start", time.perf_counter())
    parts = {"backend import": CLOCK.get("backend import"), **parts}
    known = {k: v for k, v in parts.items() if v is not None}
    other = total - sum(known.values())
    text = ", ".join(f"{k} {v:.2f} s" for k, v in known.items())
    return f"total {total:.2f} s: {text}, other {max(other, 0.0):.2f} s"


def inspect_summary(console, path, proto):
    """`inspect`: size, inputs and outputs, op counts, metadata and the recorded
    verification of a loaded ONNX file."""
    import collections

    import onnx
    from rich.markup import escape
    from rich.table import Table

    from keras_convx.exporter.metadata import EXPORT_KEY, RESERVED, VERIFICATION_KEY, read

    size = os.path.getsize(path)
    external = sum(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                default=0)
    console.print(f"{escape(path)}: {size / 1e6:.2f} MB"
                  f"{f' (+ {external} tensors of external data)' if external else ''}, "
                  f"opset {opset}, IR {proto.ir_version}, producer "
                  f"{escape(proto.producer_name or '-')}, {len(proto.graph.node)} nodes")
    weights = {t.name for t in proto.graph.initializer}
    table = Table(title="inputs and outputs")
    for col in ("", "name", "type", "shape"):
        table.add_column(col)
    for kind, values in (("input", [v for v in proto.graph.input if v.name not in weights]),
                         ("output", proto.graph.output)):
        for v in values:
            tensor = v.type.tensor_type
            dims = [d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
                    for d in tensor.shape.dim]
            table.add_row(kind, escape(v.name), onnx.TensorProto.DataType.Name(
                tensor.elem_type).lower(), "(" + ", ".join(dims) + ")")
    console.print(table)
    counts = collections.Counter(n.op_type for n in proto.graph.node)
    console.print("ops: " + ", ".join(f"{op} {n}" for op, n in counts.most_common()))
    metadata = read(proto)
    for key, value in metadata.items():
        if not key.startswith(RESERVED):
            console.print(f"metadata {escape(key)}: {escape(str(value))}")
    made = metadata.get(EXPORT_KEY)
    if isinstance(made, dict):
        layouts = ", ".join(f"{i['name']} {i['layout']} {i['dtype']}" for i in made["inputs"])
        steps = ", ".join(p["class"] for p in made["preprocessing"]) or "none"
        console.print(f"exported by keras_convx {made['keras_convx_version']}: "
                      f"{made['precision']}, inputs {escape(layouts)}; preprocessing in the "
                      f"graph: {steps}")
    _recorded_verification(console, metadata.get(VERIFICATION_KEY))


def _recorded_verification(console, verified):
    """The verification summary an export stored in the file's metadata."""
    from rich.markup import escape

    if isinstance(verified, dict) and verified.get("precision") == "int8":
        top1 = verified.get("top1_agreement")
        console.print(f"verification (INT8): {'passed' if verified['passed'] else 'FAILED'} on "
                      f"{verified['date']}, calibrated on {verified['calibration_samples']} "
                      f"samples ({escape(str(verified['calibration']))}), judged on "
                      f"{verified['held_out_samples']} held out: outputs "
                      f"{verified['output_sqnr_db']:.1f} dB SQNR against Keras"
                      + (f", top-1 agreement {top1:.1%}" if top1 is not None else "")
                      + f"; providers {', '.join(verified['providers'])}, ORT levels "
                      f"{', '.join(verified['levels'])}")
        if verified.get("kept_float"):
            console.print(f"kept in float: {', '.join(verified['kept_float'])}")
        if verified.get("latency_ratio") is not None:
            ms, ratio = verified["latency_ms"], verified["latency_ratio"]
            console.print(f"latency: int8 {ms['int8']:.2f} ms, float32 {ms['float32']:.2f} ms "
                          f"a run ({ratio:.2f}x{', INT8 is SLOWER' if ratio > 1.0 else ''}; "
                          f"{escape(str(verified.get('latency_on')))})")
        console.print(f"rule: {escape(verified['rule'])}")
    elif isinstance(verified, dict):
        worst = verified["worst_error"]
        console.print(f"verification: {'passed' if verified['passed'] else 'FAILED'} on "
                      f"{verified['date']}, {verified['tensors_compared']} tensors, worst "
                      f"error/scale {worst:.2e} (tolerance {verified['tolerance']:g}), "
                      f"providers {', '.join(verified['providers'])}, ORT levels "
                      f"{', '.join(verified['levels'])}" if worst is not None else
                      f"verification: {verified}")
        console.print(f"rule: {escape(verified['rule'])}")
    else:
        console.print("verification: none recorded in the file")


def coverage_table(name, rows):
    """`coverage`: one row per class or keras.ops name the trace reached."""
    from rich.table import Table

    table = Table(title=f"{name}: what native export meets")
    for column in ("class", "how", "count", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.kind, row.how, str(row.count), row.reason)
    return table


def export_summary(console, report, out, build_seconds, full=False):
    """`export` after success: target lint, INT8 summary, the tables, then one line on the
    file written and where the time went."""
    for finding in report.lint:
        state = "fixed" if finding["fixed"] else "left as is"
        console.print(f"target {report.target}: {finding['where']}: {finding['what']} "
                      f"[{finding['reference']}]; {state}: {finding['fix']}")
    if report.quantization is not None:
        quant_summary(console, report.quantization)
    if report.verify:
        console.print(report_table(report))
        tensor_summary(console, report.verify, full=full)
    quant = report.quantization
    console.print(f"wrote {out}: {report.node_count} nodes ({report.transpose_count} Transpose, "
                  f"{report.bn_folded} BatchNorm folded), {report.file_size / 1e6:.1f} MB, opset "
                  f"{report.opset}; " + timing({
                      "build": build_seconds, "export": report.export_seconds,
                      "verification": report.verify.seconds if report.verify else None,
                      "INT8 quantization": None if report.int8_seconds is None else
                      report.int8_seconds - (quant.seconds if quant is not None else 0.0),
                      "INT8 verification": quant.seconds if quant is not None else None}),
                  soft_wrap=True)  # one line, whatever the terminal's width


def import_summary(model, out, yaml_path, verified, seconds):
    """`import`'s closing lines; `verified` is False with --no-verify."""
    import keras

    permutes = sum(isinstance(layer, keras.layers.Permute) for layer in model.layers)
    if not verified:  # the verified summary lists them already
        for row in (r for r in model.import_layouts if r["moved"]):
            print(f"{row['role']} {row['name']}: ONNX {row['onnx_shape']} -> Keras "
                  f"{row['keras_shape']} (--layouts onnx keeps the file's)")
    verify_seconds = model.import_report.seconds if verified else None
    print(f"wrote {out}{' and ' + yaml_path if yaml_path else ''}: {len(model.layers)} layers "
          f"({permutes} Permute), {model.count_params()} parameters"
          f"{', verified against onnxruntime' if verified else ''}; "
          + timing({"import and save": seconds - (verify_seconds or 0.0),
                    "verification": verify_seconds}))

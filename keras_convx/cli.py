"""`keras-convx` command line: a thin layer over library functions.

Exit codes: 0 ok; 1 the export or the verification failed (the graph disagrees with
Keras, or a step could not run; `.failed` files are kept); 2 bad input (one-line
reason; `--debug` shows the traceback). Anything else (3: "internal error") is a bug in
keras_convx: please report it with the `--debug` traceback.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from keras_convx import cli_render as render  # stdlib only at import: the CLI stays fast
from keras_convx.cli_render import BadInput  # both modules raise it; exit code 2

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_ZOO_MODEL = "resnet50"

# tests/test_rough_edges.py imports it from here
_quant_summary = render.quant_summary


def _overrides(pairs):
    import yaml

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise BadInput(f"--set expects name=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else value
    return out


def load_source(source, weights=None, overrides=None, scale=None):
    """A Keras model from a YAML config, a `.keras` file or a zoo name; (model, name)."""
    import keras

    from keras_convx.model_config import build_model

    from keras_convx.model_config.loader import resolve

    if Path(source).is_dir():
        raise BadInput(f"{source}: is a directory, not a model file")
    resolved = resolve(source, also=(".keras",))
    path = Path(resolved)
    if path.suffix == ".keras":
        if not path.exists():
            raise BadInput(f"{source}: no such file")
        if overrides or scale:
            raise BadInput("--set/--scale apply to YAML configs, not .keras files")
        try:
            model = keras.saving.load_model(path, safe_mode=True)
        except Exception as err:  # a truncated or foreign file can fail in many ways
            raise BadInput(f"{source}: not a loadable .keras file ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''})") from None
    else:
        model = build_model(path, scale=scale, **(overrides or {}))
    name = path.stem
    if weights:
        if not Path(weights).is_file():
            raise BadInput(f"{weights}: no such weights file")
        try:
            model.load_weights(weights)
        except Exception as err:
            raise BadInput(f"{weights}: can't load into {name} ({str(err).splitlines()[0]})") from None
    return model, name


def cmd_build(args):
    from keras_convx.model_config import build_model

    from keras_convx.model_config.loader import resolve

    console = render.new_console()
    model = build_model(resolve(args.config), scale=args.scale, **_overrides(args.set))
    render.build_summary(console, model, f"{model.name} ({args.config})")
    return 0


def cmd_validate(args):
    from keras_convx.model_config import validate

    from keras_convx.model_config.loader import resolve

    plan = validate(resolve(args.config), scale=args.scale, **_overrides(args.set))
    outputs = ", ".join(f"{k} {plan.shapes.get(v)}" for k, v in plan.outputs.items())
    print(f"{args.config}: ok ({len(plan.order)} layers; outputs {outputs})")
    return 0


def _parse_dynamic(text):
    parts = [a.strip() for a in (text or "batch").split(",") if a.strip()]
    bad = [a for a in parts if a not in ("batch", "spatial", "none")]
    if bad or ("none" in parts and len(parts) > 1):
        raise BadInput(f"--dynamic takes batch, spatial (comma-separated) or none, got {text!r}")
    return tuple(a for a in parts if a != "none")


def _parse_shape(text, model=None):
    if not text:
        return None
    try:
        shapes = [[None if d in ("", "?", "None") else int(d) for d in part.split(",")]
                  for part in text.split(";")]
    except ValueError:
        raise BadInput(f"--input-shape expects e.g. 224,224,3 (several inputs: ';'), got {text!r}")
    if model is not None:
        wanted = [tuple(kt.shape[1:]) for kt in model.inputs]
        if len(shapes) != len(wanted) or any(len(s) != len(w) for s, w in zip(shapes, wanted)):
            raise BadInput(f"--input-shape {text!r} does not fit the model's inputs "
                           f"{'; '.join(','.join(str(d) for d in w) for w in wanted)} "
                           f"(dims without the batch, ';' between inputs)")
    return shapes if len(shapes) > 1 else shapes[0]


def cmd_export(args):
    from keras_convx.exporter import export_onnx
    from keras_convx.exporter import ExportError, VerificationError

    console = render.new_console()
    out = args.output
    timings = {}
    with console.status("build") as status:
        start = time.perf_counter()
        model, name = load_source(args.source, args.weights, _overrides(args.set), args.scale)
        if args.bn_as_trained:
            from keras_convx.verification.batch_norm import calibrate_batch_norm

            status.update("set BatchNorm statistics as after training")
            calibrate_batch_norm(model)
        timings["build"] = time.perf_counter() - start
        out = out or os.path.join("export", f"{name}.onnx")
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder):
            if args.output is None:
                os.makedirs(folder, exist_ok=True)
            else:
                raise BadInput(f"{out}: output folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise BadInput(f"{out}: output folder {folder} is not writable")
        if args.triton_repo and os.path.exists(args.triton_repo) and \
                not os.path.isdir(args.triton_repo):
            raise BadInput(f"--triton-repo: {args.triton_repo} is a file, not a folder")
        status.update("export, check and verify" if not args.no_verify else "export and check")
        from keras_convx.utils.progress import listen

        dynamic = _parse_dynamic(args.dynamic)
        input_shape = _parse_shape(args.input_shape, model)
        try:
            with listen(status.update):  # calibration reports its samples/s here
                report = export_onnx(
                    model, out, opset=args.opset, method=args.method, dynamic_axes=dynamic,
                    verify=not args.no_verify, diagnose=not args.no_diagnose,
                    nchw_io=args.nchw_io,
                    providers=args.providers.split(",") if args.providers else None,
                    input_shape=input_shape, tolerance=args.tolerance,
                    fp16=args.fp16, optimization_level=args.ort_level,
                    metadata=_meta(args.meta), precision=args.precision,
                    calibration=_calibration(args.calibration, model),
                    calibration_method=args.calibration_method,
                    keep_float=_keep_float(args.keep_float),
                    input_dtype="uint8" if args.uint8_input else "float32",
                    target=args.target, sizes=_sizes(args.sizes),
                    fp16_headroom=args.fp16_headroom)
        except ExportError as err:
            status.stop()
            if err.report is not None and err.report.verify is not None:
                console.print(render.report_table(err.report))
                render.tensor_summary(console, err.report.verify)
            if args.report and err.report is not None:
                render.write_report(args.report, err.report)
            if args.plot and err.report is not None and err.report.verify is not None:
                render.plot(args.plot, err.report.verify)
            failed = "verification failed" if isinstance(err, VerificationError) else "export failed"
            print(f"keras-convx: {failed}: {err}", file=sys.stderr)
            return 1
    render.export_summary(console, report, out, timings["build"], args.full_report)
    if args.report:
        render.write_report(args.report, report)
    if args.plot and report.verify is not None:
        render.plot(args.plot, report.verify)
    if args.triton_repo:
        from keras_convx.exporter.triton import TritonError, write_repository

        try:
            folder = write_repository(out, args.triton_repo, args.triton_name,
                                      args.triton_max_batch)
        except TritonError as err:
            raise BadInput(str(err)) from None
        console.print(f"wrote the Triton model {folder} (config.pbtxt, 1/model.onnx)")
    return 0


def _calibration(value, model):
    """--calibration: a .npz file, an image folder, or 'random'."""
    if value is None or value == "random":
        return value
    from keras_convx.exporter.calibration_data import CalibrationError, load

    if not os.path.exists(value):
        raise BadInput(f"--calibration: {value} does not exist (a .npz file, a folder of "
                       f"images, or 'random')")
    try:
        return load(value, model)
    except CalibrationError as err:
        raise BadInput(str(err)) from None


def _keep_float(value):
    if value is None or value == "auto":
        return value
    return [v.strip() for v in value.split(",") if v.strip()]


def _sizes(text):
    """--sizes HxW,HxW -> export_onnx/import_onnx's `sizes=` (None when not given)."""
    if text is None:
        return None
    from keras_convx.verification.sizes import parse_sizes

    try:
        return parse_sizes(text)
    except ValueError as err:
        raise BadInput(str(err)) from None


def cmd_import(args):
    from keras_convx.importer import import_onnx
    from keras_convx.model_config import to_yaml
    from keras_convx.importer import ImportVerificationError, OnnxImportError, UnsupportedOps

    if not os.path.isfile(args.model):  # before the -o checks: the input is what's wrong
        raise BadInput(f"{args.model}: no such file" if not os.path.exists(args.model)
                       else f"{args.model}: not a file")
    out = args.output or os.path.splitext(args.model)[0] + ".keras"
    if not out.endswith(".keras"):
        raise BadInput(f"-o/--output: {out} must end in .keras")
    for path, flag in ((out, "-o/--output"), (args.yaml, "--yaml")):
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise BadInput(f"{flag}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise BadInput(f"{flag}: folder {folder} is not writable")
    start = time.perf_counter()
    try:
        model = import_onnx(args.model, data_format=args.data_format,
                               verify=not args.no_verify, tolerance=args.tolerance, output=out,
                               sizes=_sizes(args.sizes), layouts=args.layouts)
    except ImportVerificationError as err:
        print(err.report.summary())
        print(f"keras-convx: {str(err).replace('import_onnx: ', '', 1)}", file=sys.stderr)
        return 1
    except UnsupportedOps as err:
        # one node per line: a user fixes them all in one go
        print(f"keras-convx: error: {str(err).replace('import_onnx: ', '', 1)}",
              file=sys.stderr)
        return 2
    except OnnxImportError as err:
        raise BadInput(str(err).replace("import_onnx: ", "", 1).replace("\n", "; ")) from None
    seconds = time.perf_counter() - start
    if not args.no_verify:
        print(model.import_report.summary())
    if args.yaml:
        render.write_text(args.yaml, to_yaml(model), "--yaml")
    render.import_summary(model, out, args.yaml, not args.no_verify, seconds)
    return 0


def cmd_verify(args):
    from keras_convx.exporter import verify_onnx

    console = render.new_console()
    if not Path(args.model).is_file():
        raise BadInput(f"{args.model}: no such file")
    model, _ = load_source(args.source, args.weights, _overrides(args.set), args.scale)
    try:
        import onnx

        onnx.checker.check_model(args.model, full_check=True)
    except Exception as err:
        raise BadInput(f"{args.model}: not a valid ONNX file ({str(err).splitlines()[0]})") from None
    from keras_convx.exporter import ExportError

    try:
        report = verify_onnx(model, args.model, tolerance=args.tolerance,
                                providers=args.providers.split(",") if args.providers else None,
                                optimization_level=args.ort_level, inspect=not args.no_diagnose)
    except (ExportError, ValueError) as err:
        raise BadInput(f"{args.model}: can't run against {args.source} "
                       f"({str(err).splitlines()[0]})") from None
    from types import SimpleNamespace

    if report.quantization is not None:  # an INT8 file: the quantized rule
        render.quant_summary(console, report.quantization)
        if args.plot:
            raise BadInput("--plot draws error/scale along the graph; an INT8 file is judged "
                           "by SQNR (the report lists it per layer)")
    else:
        console.print(render.report_table(SimpleNamespace(
            path=args.model, method="verify", reason="existing file", verify=report.verify)))
        render.tensor_summary(console, report.verify, full=args.full_report)
    if args.report:
        render.write_report(args.report, report)
    if args.plot:
        render.plot(args.plot, report.verify)
    if not report.passed and Path(args.source).suffix != ".keras" and not args.weights:
        print("keras-convx: verification failed; the source was built with fresh random "
              "weights: pass --weights or verify against a .keras file", file=sys.stderr)
    return 0 if report.passed else 1


def _meta(pairs):
    """--meta KEY=VALUE pairs as a dict of strings."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--meta: {pair!r} must be KEY=VALUE")
        out[key.strip()] = value
    return out or None


def cmd_inspect(args):
    """What a file holds, from the file alone (no model, no Keras)."""
    import onnx

    if not Path(args.model).is_file():
        raise BadInput(f"{args.model}: no such file")
    try:
        proto = onnx.load(args.model, load_external_data=False)
    except Exception as err:
        raise BadInput(f"{args.model}: not an ONNX file ({str(err).splitlines()[0]})") from None
    render.inspect_summary(render.new_console(), args.model, proto)
    return 0


def cmd_coverage(args):
    from keras_convx.exporter import coverage

    model, name = load_source(args.source, None, _overrides(args.set), args.scale)
    rows = coverage(model, args.batch_size)
    render.new_console().print(render.coverage_table(name, rows))
    missing = sum(r.how == "missing" for r in rows)
    return 1 if missing else 0


def cmd_demo(args):
    return main((["--debug"] if args.debug else []) + [
        "export", DEFAULT_ZOO_MODEL, "--bn-as-trained", "--method", "native", "--providers",
        "cpu"])


def cmd_schema(args):
    from keras_convx.model_config.schema import dumps

    text = dumps()
    if not args.output:
        sys.stdout.write(text)
        return 0
    render.write_text(args.output, text, "--output")
    print(f"wrote {args.output}")
    return 0


def cmd_bench(args):
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
    if not script.exists():
        raise BadInput(f"{script}: the benchmarks ship with the source tree, not the wheel")
    extra = (["--quick"] if args.quick else []) + (["--out", args.out] if args.out else []) + \
        (["--update-results"] if args.update_results else [])
    return subprocess.call([sys.executable, str(script)] + extra)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-convx",
        description="Convolution layers for Keras 3, models from YAML, verified ONNX export.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    def config_args(p):
        p.add_argument("--set", action="append", metavar="NAME=VALUE",
                       help="override a config variable (repeatable)")
        p.add_argument("--scale", help="a scale preset of the config")

    from keras_convx.verification import rules as stats  # constants only: no keras or numpy before parsing

    def sizes_arg(p):
        p.add_argument("--sizes", metavar="HxW,HxW",
                       help="sizes of dynamic height/width to verify at, e.g. 48x192,96x320 "
                            "(default: two derived from the graph, multiples of its stride)")

    def verify_args(p):
        p.add_argument("--providers", help="onnxruntime providers, e.g. cpu,cuda (default: "
                                           "every available one)")
        p.add_argument("--tolerance", type=float,
                       help="max abs error as a fraction of each tensor's max |value| "
                            f"(default {stats.CPU_TOLERANCE:g} on CPU, {stats.CUDA_TOLERANCE:g} "
                            f"on CUDA or in float16)")
        p.add_argument("--ort-level", default="all",
                       choices=("disable", "basic", "extended", "all"),
                       help="onnxruntime optimisation level the outputs are checked at, as "
                            "deployed (default all); internal tensors are checked unoptimised")
        p.add_argument("--no-diagnose", action="store_true",
                       help="compare the graph outputs only, not every layer's output")
        p.add_argument("--diagnose", action="store_true",
                       help="compare every layer's output (the default; kept for scripts)")
        p.add_argument("--full-report", action="store_true",
                       help="list every compared tensor, not only the worst")
        p.add_argument("--plot", metavar="PNG",
                       help="write the error/scale of every compared tensor along the graph, "
                            "with the tolerance line, as a PNG (needs matplotlib)")

    p = sub.add_parser("demo", help=f"export the zoo's {DEFAULT_ZOO_MODEL} (BatchNorm statistics "
                                    f"as after training) natively and verify every layer")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("build", help="build a YAML config and print its layer table")
    p.add_argument("config", help="a zoo name (e.g. resnet50) or a .yaml/.yml config")
    config_args(p)
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("validate", help="check a YAML config without building weights")
    p.add_argument("config", help="a zoo name (e.g. resnet50) or a .yaml/.yml config")
    config_args(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("export", help="export a config, .keras file or zoo model to ONNX")
    p.add_argument("source", help="a .yaml config, a .keras file or a zoo name")
    p.add_argument("-o", "--output", help="the .onnx file (default export/<name>.onnx)")
    p.add_argument("--weights", help="a .weights.h5 file to load first")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17..21 (default 17)")
    p.add_argument("--method", choices=("auto", "native", "tf2onnx"), default="auto",
                   help="native lowering, tf2onnx (TensorFlow backend only), or auto: native, "
                        "else tf2onnx with the reason shown (default auto)")
    p.add_argument("--input-shape", help="shape without batch, e.g. 224,224,3 (';' between inputs)")
    p.add_argument("--dynamic", default="batch",
                   help="dynamic dims, comma-separated: batch, spatial (height/width/...), "
                        "or none (default batch)")
    p.add_argument("--nchw-io", action="store_true", help="NCHW graph inputs/outputs")
    p.add_argument("--fp16", action="store_true", help="float16 weights and compute (same as "
                   "--precision float16)")
    p.add_argument("--fp16-headroom", type=float, default=None,
                   help="float16: keep a tensor float32 when its observed max comes within "
                        "this factor of 65504 (default 16)")
    p.add_argument("--target", choices=("cpu", "cuda", "tensorrt", "xnnpack", "coreml"),
                   default="cpu", help="the execution provider the file is for: lints what it "
                   "rejects or slows, with references, and lowers around it where it can")
    p.add_argument("--triton-repo", metavar="DIR",
                   help="also write a Triton model repository entry: DIR/<name>/1/model.onnx "
                        "and DIR/<name>/config.pbtxt (onnxruntime backend, dims from the graph)")
    p.add_argument("--triton-name", help="the Triton model name (default: the file's stem)")
    p.add_argument("--triton-max-batch", type=int, default=8,
                   help="max_batch_size when the batch is dynamic (default 8)")
    p.add_argument("--uint8-input", action="store_true",
                   help="the graph takes uint8 pixels and casts them first (the model's "
                        "Rescaling/Normalization run in the graph)")
    p.add_argument("--precision", choices=("float32", "float16", "int8"), default=None,
                   help="graph precision (default float32); int8 needs --calibration")
    p.add_argument("--calibration", metavar="NPZ|FOLDER|random",
                   help="INT8 calibration data: a .npz (arrays named after the inputs), a "
                        "folder of images (resized to the input), or 'random' (not "
                        "representative; the report says so)")
    p.add_argument("--calibration-method", choices=("minmax", "entropy", "percentile"),
                   default="minmax", help="INT8 calibration method (default minmax)")
    p.add_argument("--keep-float", metavar="LAYERS|auto",
                   help="comma-separated Keras layers kept in float in an INT8 graph, or auto")
    p.add_argument("--no-verify", action="store_true", help="skip verification in onnxruntime")
    p.add_argument("--bn-as-trained", action="store_true",
                   help="first set every BatchNormalization's statistics to those of random "
                        "inputs at the model's scale, as training would (for random-weight "
                        "models: initial statistics shrink activations until they prove nothing)")
    verify_args(p)
    sizes_arg(p)
    p.add_argument("--report", help="write the report as JSON")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE",
                   help="store KEY=VALUE in the file's metadata (repeatable)")
    config_args(p)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("inspect", help="print what an ONNX file holds: inputs, outputs, op "
                                        "counts, size, metadata and its verification summary")
    p.add_argument("model", help="the .onnx file")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("import", help="import an ONNX model (e.g. from PyTorch) as a Keras "
                                       "model, verified against onnxruntime")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("-o", "--output", help="the .keras file (default: next to the model)")
    p.add_argument("--yaml", help="also write the model's YAML config (weights stay in .keras)")
    p.add_argument("--data-format", choices=("channels_last", "channels_first"),
                   default="channels_last", help="layout of the Keras model (default "
                                                 "channels_last: NCHW graphs become NHWC)")
    p.add_argument("--layouts", choices=("keras", "onnx"), default="keras",
                   help="keras (default): feature-map inputs and outputs channels-last; onnx: "
                        "every input and output keeps the file's layout")
    p.add_argument("--tolerance", type=float,
                   help=f"max abs error as a fraction of each output's max |value| (default "
                        f"{stats.CPU_TOLERANCE:g})")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    sizes_arg(p)
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("verify", help="re-verify an ONNX file against its source model")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("source", help="a .yaml config, a .keras file or a zoo name")
    p.add_argument("--weights", help="a .weights.h5 file to load into the source first")
    verify_args(p)
    p.add_argument("--report", help="write the report as JSON")
    config_args(p)
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("coverage", help="list the layers and keras.ops a model's trace reaches "
                                         "and how each exports (exit 1 if any is missing)")
    p.add_argument("source", help="a .yaml config, a .keras file or a zoo name")
    p.add_argument("--batch-size", type=int, default=None,
                   help="trace with this static batch (an export with --dynamic none)")
    config_args(p)
    p.set_defaults(func=cmd_coverage)
    p = sub.add_parser("schema", help="write the JSON Schema of YAML configs (editor "
                                       "completion and checks)")
    p.add_argument("-o", "--output", help="the .json file (default: standard output)")
    p.set_defaults(func=cmd_schema)
    p = sub.add_parser("bench", help="run the benchmarks (sections 1-4); writes into --out, "
                                      "the recorded results only with --update-results")
    p.add_argument("--quick", action="store_true", help="tiny shapes, one repeat (smoke run)")
    p.add_argument("--out", help="folder for the results (default: a new folder under "
                                 "benchmarks/runs/)")
    p.add_argument("--update-results", action="store_true",
                   help="also rewrite the recorded benchmarks/RESULTS.md and results.png")
    p.set_defaults(func=cmd_bench)
    return parser


def _import_backend_quietly():
    """Imports Keras and its backend with the process's stderr (fd 2) closed: TensorFlow
    2.21's native libraries log through absl before anything reads TF_CPP_MIN_LOG_LEVEL."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import keras  # noqa: F401

            if keras.backend.backend() == "tensorflow":
                import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _precheck(args):
    """A YAML config's checks that need no Keras, before the backend import: a typo costs
    a fraction of a second, not TensorFlow's start-up."""
    source = getattr(args, "config", None) or getattr(args, "source", None)
    if args.func not in (cmd_build, cmd_validate, cmd_export, cmd_verify, cmd_coverage) or \
            not isinstance(source, str) or getattr(args, "weights", None):
        return
    from keras_convx.model_config.loader import ConfigError, resolve

    try:
        path = resolve(source, also=(".keras",))
    except ConfigError:
        return  # not a config: the command says what it accepts
    if isinstance(path, str) and path.endswith((".yaml", ".yml")):
        from keras_convx.model_config.precheck import precheck

        precheck(path, scale=args.scale, **_overrides(args.set))


def main(argv=None):
    render.CLOCK.clear()
    render.CLOCK["start"] = time.perf_counter()
    args = build_parser().parse_args(argv)
    try:
        _precheck(args)
        if not args.debug and args.func is not cmd_inspect:
            before = time.perf_counter()
            _import_backend_quietly()
            render.CLOCK["backend import"] = time.perf_counter() - before
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        # a ConfigError needs its module loaded; importing it here would import Keras
        loader = sys.modules.get("keras_convx.model_config.loader")
        config_error = (loader.ConfigError,) if loader is not None else ()
        bad = isinstance(exc, (BadInput, ValueError, TypeError, OSError) + config_error)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"keras-convx: {'error' if bad else 'internal error'}: {reason}", file=sys.stderr)
        return 2 if bad else 3


if __name__ == "__main__":
    raise SystemExit(main())

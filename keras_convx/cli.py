"""`keras-convx` command line: a thin layer over library functions.

Exit codes: 0 ok; 1 the export or the verification failed (the graph disagrees with
Keras, or a step could not run; `.failed` files are kept); 2 bad input (one-line
reason; `--debug` shows the traceback). Anything else (3: "internal error") is a bug in
keras_convx: please report it with the `--debug` traceback.
"""

import os
import sys
import time
from pathlib import Path

from keras_convx import cli_args as args_lib
from keras_convx import cli_parser
from keras_convx import cli_render as render  # stdlib only at import: the CLI stays fast
from keras_convx.cli_parser import DEFAULT_ZOO_MODEL
from keras_convx.cli_render import BadInput  # both modules raise it; exit code 2


def load_source(source, weights=None, overrides=None, scale=None):
    """`keras_convx.model_config.source.load_source` (kept here for scripts)."""
    from keras_convx.model_config.source import load_source as load

    return load(source, weights, overrides, scale)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# tests/test_rough_edges.py imports it from here
_quant_summary = render.quant_summary


def cmd_build(args):
    from keras_convx.model_config import build_model

    from keras_convx.model_config.loader import resolve

    console = render.new_console()
    model = build_model(resolve(args.config), scale=args.scale, **args_lib.overrides(args.set))
    render.build_summary(console, model, f"{model.name} ({args.config})")
    return 0


def cmd_validate(args):
    from keras_convx.model_config import validate

    from keras_convx.model_config.loader import resolve

    plan = validate(resolve(args.config), scale=args.scale, **args_lib.overrides(args.set))
    outputs = ", ".join(f"{k} {plan.shapes.get(v)}" for k, v in plan.outputs.items())
    print(f"{args.config}: ok ({len(plan.order)} layers; outputs {outputs})")
    return 0


def cmd_export(args):
    from keras_convx.exporter import export_onnx
    from keras_convx.exporter import ExportError, VerificationError

    console = render.new_console()
    out = args.output
    timings = {}
    with console.status("build") as status:
        start = time.perf_counter()
        model, name = load_source(args.source, args.weights, args_lib.overrides(args.set),
                                  args.scale)
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

        dynamic = args_lib.parse_dynamic(args.dynamic)
        input_shape = args_lib.parse_shape(args.input_shape, model)
        precision = args_lib.precision(args)
        verify = args_lib.verify_options(args)
        try:
            with listen(status.update):  # calibration reports its samples/s here
                report = export_onnx(
                    model, out, opset=args.opset, method=args.method, dynamic_axes=dynamic,
                    nchw_io=args.nchw_io, input_shape=input_shape, verify=verify,
                    metadata=args_lib.meta(args.meta), precision=precision,
                    calibration=args_lib.calibration(args.calibration, model),
                    calibration_method=args.calibration_method,
                    keep_float=args_lib.keep_float(args.keep_float),
                    input_dtype="uint8" if args.uint8_input else "float32",
                    target=args.target, fp16_headroom=args.fp16_headroom)
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
                            verify=args_lib.verify_options(args), output=out,
                            layouts=args.layouts)
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
    model, _ = load_source(args.source, args.weights, args_lib.overrides(args.set), args.scale)
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

    model, name = load_source(args.source, None, args_lib.overrides(args.set), args.scale)
    rows = coverage(model, args.batch_size)
    render.new_console().print(render.coverage_table(name, rows))
    missing = sum(r.how == "missing" for r in rows)
    return 1 if missing else 0


def cmd_demo(args):
    # the export's own args, run in this main(): a nested main() would import the backend
    # again and clock that second import (0 s) as the backend's
    export = build_parser().parse_args((["--debug"] if args.debug else []) + [
        "export", DEFAULT_ZOO_MODEL, "--bn-as-trained", "--method", "native", "--providers",
        "cpu"])
    return export.func(export)


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
    """The `keras-convx` parser (`cli_parser`), each subcommand bound to its function."""
    return cli_parser.build_parser({
        "demo": cmd_demo, "build": cmd_build, "validate": cmd_validate, "export": cmd_export,
        "inspect": cmd_inspect, "import": cmd_import, "verify": cmd_verify,
        "coverage": cmd_coverage, "schema": cmd_schema, "bench": cmd_bench})


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

        precheck(path, scale=args.scale, **args_lib.overrides(args.set))


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

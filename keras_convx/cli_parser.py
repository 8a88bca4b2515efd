"""The `keras-convx` argument parser: one function per subcommand. Standard library only,
so parsing (and the YAML checks that follow it) runs before any backend import."""

import argparse

DEFAULT_ZOO_MODEL = "resnet50"


def _config_args(p):
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override a config variable (repeatable)")
    p.add_argument("--scale", help="a scale preset of the config")


def _sizes_arg(p):
    p.add_argument("--sizes", metavar="HxW,HxW",
                   help="sizes of dynamic height/width to verify at, e.g. 48x192,96x320 "
                        "(default: two derived from the graph, multiples of its stride)")


def _verify_args(p, stats):
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


def _export_parser(sub, func, stats):
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
    _verify_args(p, stats)
    _sizes_arg(p)
    p.add_argument("--report", help="write the report as JSON")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE",
                   help="store KEY=VALUE in the file's metadata (repeatable)")
    _config_args(p)
    p.set_defaults(func=func)


def _import_parser(sub, func, stats):
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
    _sizes_arg(p)
    p.set_defaults(func=func)


def build_parser(commands):
    """The parser; `commands`: {subcommand: the function that runs it}."""
    from keras_convx.verification import rules as stats  # constants only: no keras or numpy

    parser = argparse.ArgumentParser(
        prog="keras-convx",
        description="Convolution layers for Keras 3, models from YAML, verified ONNX export.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help=f"export the zoo's {DEFAULT_ZOO_MODEL} (BatchNorm statistics "
                                    f"as after training) natively and verify every layer")
    p.set_defaults(func=commands["demo"])
    p = sub.add_parser("build", help="build a YAML config and print its layer table")
    p.add_argument("config", help="a zoo name (e.g. resnet50) or a .yaml/.yml config")
    _config_args(p)
    p.set_defaults(func=commands["build"])
    p = sub.add_parser("validate", help="check a YAML config without building weights")
    p.add_argument("config", help="a zoo name (e.g. resnet50) or a .yaml/.yml config")
    _config_args(p)
    p.set_defaults(func=commands["validate"])
    _export_parser(sub, commands["export"], stats)
    p = sub.add_parser("inspect", help="print what an ONNX file holds: inputs, outputs, op "
                                        "counts, size, metadata and its verification summary")
    p.add_argument("model", help="the .onnx file")
    p.set_defaults(func=commands["inspect"])
    _import_parser(sub, commands["import"], stats)
    p = sub.add_parser("verify", help="re-verify an ONNX file against its source model")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("source", help="a .yaml config, a .keras file or a zoo name")
    p.add_argument("--weights", help="a .weights.h5 file to load into the source first")
    _verify_args(p, stats)
    p.add_argument("--report", help="write the report as JSON")
    _config_args(p)
    p.set_defaults(func=commands["verify"])
    p = sub.add_parser("coverage", help="list the layers and keras.ops a model's trace reaches "
                                         "and how each exports (exit 1 if any is missing)")
    p.add_argument("source", help="a .yaml config, a .keras file or a zoo name")
    p.add_argument("--batch-size", type=int, default=None,
                   help="trace with this static batch (an export with --dynamic none)")
    _config_args(p)
    p.set_defaults(func=commands["coverage"])
    p = sub.add_parser("schema", help="write the JSON Schema of YAML configs (editor "
                                       "completion and checks)")
    p.add_argument("-o", "--output", help="the .json file (default: standard output)")
    p.set_defaults(func=commands["schema"])
    p = sub.add_parser("bench", help="run the benchmarks (sections 1-4); writes into --out, "
                                      "the recorded results only with --update-results")
    p.add_argument("--quick", action="store_true", help="tiny shapes, one repeat (smoke run)")
    p.add_argument("--out", help="folder for the results (default: a new folder under "
                                 "benchmarks/runs/)")
    p.add_argument("--update-results", action="store_true",
                   help="also rewrite the recorded benchmarks/RESULTS.md and results.png")
    p.set_defaults(func=commands["bench"])
    return parser

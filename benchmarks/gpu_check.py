"""One command for a GPU machine: what the CUDA provider does to our graphs, in minutes.

Measures, on onnxruntime's CUDAExecutionProvider:
  1. the rounding spread (max |onnx - keras| / scale of the outputs) of float32 graphs with
     TF32 off and on, and of float16 graphs, on the zoo and five keras.applications models
     (random weights, BatchNorm statistics as after training) - what `CUDA_TOLERANCE` (1e-2,
     an assumption until measured) should be;
  2. the kill rate of the fault kinds (tests/faults.py) verified on CUDA;
  3. CUDA latency against CPU (median of repeats, batch 8);
  4. keras_convx layers against keras.layers on JAX and torch GPUs, where those backends
     see one (the CUDA builds are not in this project's CPU environment).

Writes a JSON and a markdown table. Without a CUDA provider it says so and exits 0.
`--cpu-smoke` runs the same code on the CPU provider with one tiny model (what CI runs, so
the script is known to work before a GPU is lent).

    python benchmarks/gpu_check.py --json benchmarks/runs/gpu.json
    python benchmarks/gpu_check.py --update-results benchmarks/runs/gpu.json
"""

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

APPLICATIONS = (("ResNet50", 64), ("MobileNetV2", 64), ("EfficientNetB0", 64),
                ("DenseNet121", 64), ("InceptionV3", 75))
ZOO = ("resnet50", "mobilenet", "xception", "unet", "wavenet")
FAULT_MODEL = "zoo resnet50"


def cuda_available():
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def models(smoke):
    import keras

    import keras_convx as kc

    if smoke:
        def tiny():
            inp = keras.Input((16, 16, 3))
            x = kc.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
            x = keras.layers.BatchNormalization()(x)
            return keras.Model(inp, kc.layers.Conv2D(4, 3, strides=2, padding="same")(x))
        return {"zoo resnet50": tiny}
    out = {f"zoo {n}": (lambda n=n: kc.build_model(os.path.join(ROOT, "configs", f"{n}.yaml"),
                                                   scale="t")) for n in ZOO}
    out.update({f"{n} {s}px": (lambda n=n, s=s: getattr(keras.applications, n)(
        weights=None, input_shape=(s, s, 3))) for n, s in APPLICATIONS})
    return out


def session(path, provider, tf32=True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if provider == "CUDAExecutionProvider":
        providers = [(provider, {"use_tf32": "1" if tf32 else "0"}), "CPUExecutionProvider"]
    else:
        providers = [provider]
    return ort.InferenceSession(path, options, providers=providers)


def spread(model, x, path, provider, tf32):
    import keras
    import numpy as np

    from keras_convx.verification.rules import tensor_error

    s = session(path, provider, tf32)
    got = s.run(None, {s.get_inputs()[0].name: x})
    want = keras.tree.flatten(model(x, training=False))
    return max(tensor_error(g, np.asarray(keras.ops.convert_to_numpy(w))).rel
               for g, w in zip(got, want))


def latency(path, provider, x, repeats):
    import numpy as np

    s = session(path, provider)
    feed = {s.get_inputs()[0].name: x}
    s.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        s.run(None, feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def measure(smoke=False, repeats=20):
    import keras
    import numpy as np
    import onnx

    import keras_convx as kc
    from faults import MUTATIONS, mutate
    from helpers import realistic_batch_norm
    from keras_convx.exporter import Verifier, tensor_map
    from keras_convx.verification.inputs import metadata, model_inputs

    provider = "CPUExecutionProvider" if smoke else "CUDAExecutionProvider"
    work = tempfile.mkdtemp()
    out = {"backend": keras.backend.backend(), "provider": provider, "smoke": smoke,
           "models": [], "faults": {}, "layers": layer_parity()}
    fault_model = None
    for name, build in models(smoke).items():
        keras.utils.set_random_seed(len(name))
        model = realistic_batch_norm(build(), seed=len(name))
        f32, f16 = os.path.join(work, "f32.onnx"), os.path.join(work, "f16.onnx")
        kc.export_onnx(model, f32, verify=False)
        kc.export_onnx(model, f16, verify=False, precision="float16")
        x = model_inputs(model, {}, 8, np.random.default_rng(0))[0]
        row = {"model": name,
               "fp32_tf32_off": spread(model, x, f32, provider, tf32=False),
               "fp32_tf32_on": spread(model, x, f32, provider, tf32=True),
               "fp16": spread(model, x, f16, provider, tf32=True),
               "cuda_ms": latency(f32, provider, x, repeats),
               "cpu_ms": latency(f32, "CPUExecutionProvider", x, repeats)}
        out["models"].append(row)
        print(json.dumps(row), flush=True)
        if name == FAULT_MODEL:
            fault_model = (model, onnx.load(f32))
    if fault_model is not None:
        model, proto = fault_model
        verifier = Verifier(model, metadata(proto), tensor_map.read(proto))
        base = verifier.verify(proto, providers=[provider])
        out["faults"]["baseline_passed"] = base.passed
        for kind in MUTATIONS:
            mutant, layer = mutate(proto, kind, {"model": model,
                                                 "tensor_map": tensor_map.read(proto)})
            if layer is None:
                continue
            report = verifier.verify(mutant, providers=[provider])
            out["faults"][kind] = not report.passed
    return out


def layer_parity():
    """keras_convx's Conv2D against keras.layers.Conv2D on this backend's GPU, if it has one."""
    import keras
    import numpy as np

    import keras_convx as kc

    backend = keras.backend.backend()
    devices = []
    if backend == "jax":
        import jax

        devices = [d for d in jax.devices() if d.platform == "gpu"]
    elif backend == "torch":
        import torch

        devices = ["cuda"] if torch.cuda.is_available() else []
    elif backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_physical_devices("GPU")
    if not devices:
        return {"backend": backend, "gpu": False}
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 8)).astype(np.float32)
    ours, theirs = kc.layers.Conv2D(16, 3, padding="same"), keras.layers.Conv2D(16, 3,
                                                                                  padding="same")
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    a = keras.ops.convert_to_numpy(ours(x))
    b = keras.ops.convert_to_numpy(theirs(x))
    return {"backend": backend, "gpu": True,
            "conv2d_rel": float(np.max(np.abs(a - b)) / np.max(np.abs(b)))}


def render(results):
    r = results[0]
    lines = ["## 15. GPU check: the CUDA provider's rounding spread, faults and latency", "",
             f"Made by `python benchmarks/gpu_check.py --json benchmarks/runs/gpu.json` on "
             f"{r['provider']} ({'CPU smoke run: not a GPU measurement' if r['smoke'] else 'a GPU'}"
             f"), then `--update-results`. Spread: max |onnx - keras| / scale of the outputs, "
             f"batch 8, random weights with BatchNorm statistics as after training.", "",
             "| model | fp32, TF32 off | fp32, TF32 on | fp16 | provider ms | CPU ms |",
             "|---|---:|---:|---:|---:|---:|"]
    for m in r["models"]:
        lines.append(f"| {m['model']} | {m['fp32_tf32_off']:.2e} | {m['fp32_tf32_on']:.2e} | "
                     f"{m['fp16']:.2e} | {m['cuda_ms']:.1f} | {m['cpu_ms']:.1f} |")
    faults = {k: v for k, v in r["faults"].items() if k != "baseline_passed"}
    if faults:
        lines += ["", f"Fault kinds caught on {r['provider']}: {sum(faults.values())}/"
                  f"{len(faults)} (correct graph passed: {r['faults']['baseline_passed']})."]
    layer = r["layers"]
    lines += ["", f"Layers on {layer['backend']}'s GPU: " + (
        f"Conv2D vs keras.layers.Conv2D, {layer['conv2d_rel']:.2e} of scale" if layer["gpu"]
        else "no GPU seen by this backend")]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Without a CUDA provider it prints why and exits 0; --cpu-smoke checks the "
               "script itself on the CPU provider with one tiny model.")
    from benchmarks.sections import add_result_arguments, update, write_json

    add_result_arguments(parser, 15)
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="run on the CPU provider with one tiny model (CI)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if args.update_results:
        update(15, render, [args.update_results])
        return 0
    if not args.cpu_smoke and not cuda_available():
        import onnxruntime as ort

        print(f"gpu_check: no GPU here: onnxruntime has no CUDAExecutionProvider (providers: "
              f"{', '.join(ort.get_available_providers())}; install the project's 'gpu' extra "
              f"on a GPU machine). Nothing measured.")
        return 0
    result = measure(args.cpu_smoke, 3 if args.cpu_smoke else args.repeats)
    write_json(args.json, result)
    print("\n".join(render([result])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

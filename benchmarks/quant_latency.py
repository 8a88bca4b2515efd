"""float32 vs INT8 vs float16 onnxruntime CPU latency of keras.applications models, as
ratios in one run, with the agreement of each low-precision graph with the float32 one and
the time quantization took.

Random weights with BatchNorm statistics as after training; INT8 calibrated on 32 random
inputs at the model's scale (`calibration="random"`); exports unverified here (the test
suite verifies; a random-weight deep net's INT8 outputs are not what a trained one's are).
Sessions at ORT_ENABLE_ALL, the precisions interleaved, median of the repeats.

    KERAS_BACKEND=tensorflow python benchmarks/quant_latency.py --json benchmarks/runs/quant-latency.json
    python benchmarks/quant_latency.py --update-results benchmarks/runs/quant-latency.json
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = ("ResNet50", "MobileNetV2", "EfficientNetB0")
PRECISIONS = ("float32", "int8", "float16")


def measure(size=224, batches=(1, 8), repeats=15):
    import keras
    import numpy as np
    import onnxruntime as ort

    import keras_convx as kc
    from keras_convx.verification.batch_norm import calibrate_batch_norm
    from keras_convx.verification.inputs import model_inputs
    from keras_convx.verification.quantized import sqnr_db

    rows = []
    work = tempfile.mkdtemp()
    for name in MODELS:
        model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))
        calibrate_batch_norm(model, seed=0, batch=4)
        sessions, seconds = {}, {}
        for precision in PRECISIONS:
            path = os.path.join(work, f"{name}-{precision}.onnx")
            start = time.perf_counter()
            kc.export_onnx(model, path, verify=False, precision=precision,
                           calibration="random" if precision == "int8" else None)
            seconds[precision] = time.perf_counter() - start
            options = ort.SessionOptions()
            options.log_severity_level = 3
            sessions[precision] = ort.InferenceSession(path, options,
                                                       providers=["CPUExecutionProvider"])
        feed = sessions["float32"].get_inputs()[0].name
        for batch in batches:
            x = model_inputs(model, {}, batch, np.random.default_rng(1))[0]
            outs = {p: s.run(None, {feed: x})[0] for p, s in sessions.items()}
            times = {p: [] for p in PRECISIONS}
            for _ in range(repeats):
                for p in PRECISIONS:
                    start = time.perf_counter()
                    sessions[p].run(None, {feed: x})
                    times[p].append(time.perf_counter() - start)
            med = {p: float(np.median(t)) for p, t in times.items()}
            ref = outs["float32"]
            row = {"model": name, "batch": batch, "float32_ms": med["float32"] * 1e3,
                   "int8_ms": med["int8"] * 1e3, "float16_ms": med["float16"] * 1e3,
                   "int8_ratio": med["int8"] / med["float32"],
                   "float16_ratio": med["float16"] / med["float32"],
                   "int8_sqnr_db": sqnr_db(ref, outs["int8"]),
                   "float16_sqnr_db": sqnr_db(ref, outs["float16"]),
                   "int8_top1": float(np.mean(np.argmax(ref, 1) == np.argmax(outs["int8"], 1))),
                   "int8_export_s": seconds["int8"], "float32_export_s": seconds["float32"]}
            rows.append(row)
            print(row, flush=True)
    return {"backend": keras.backend.backend(), "size": size, "repeats": repeats, "rows": rows}


def render(results):
    r = results[0]
    lines = ["## 14. INT8 and float16 latency on onnxruntime CPU", "",
             f"Made by `KERAS_BACKEND={r['backend']} python benchmarks/quant_latency.py --json "
             f"benchmarks/runs/quant-latency.json`, then `--update-results`. keras.applications "
             f"at {r['size']}x{r['size']}, random weights, BatchNorm statistics as after "
             f"training; INT8 = static QDQ, per-channel int8 weights, uint8 activations, "
             f"calibrated on random inputs at the model's scale; sessions at ORT_ENABLE_ALL on "
             f"this machine's 2 cores (VNNI/AMX), the three interleaved, median of "
             f"{r['repeats']}. Ratios are against float32 in the same run. SQNR and top-1 "
             f"agreement: against the float32 graph's outputs on the timed batch (random "
             f"inputs; a random-weight deep net is far more sensitive to quantization noise "
             f"than a trained one, see section 13). Export s: `export_onnx` without "
             f"verification (INT8: lowering, quant_pre_process, calibration, quantization).",
             "", "| model | batch | float32 ms | int8 ms | int8 / float32 | float16 ms | "
             "float16 / float32 | int8 SQNR dB | int8 top-1 | float16 SQNR dB | export s "
             "(float32 / int8) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['float32_ms']:.1f} | "
            f"{row['int8_ms']:.1f} | {row['int8_ratio']:.2f}x | {row['float16_ms']:.1f} | "
            f"{row['float16_ratio']:.2f}x | {row['int8_sqnr_db']:.1f} | {row['int8_top1']:.0%} "
            f"| {row['float16_sqnr_db']:.1f} | {row['float32_export_s']:.1f} / "
            f"{row['int8_export_s']:.1f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from benchmarks.sections import add_result_arguments, update, write_json

    add_result_arguments(parser, 14)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    if args.update_results:
        update(14, render, [args.update_results])
        return 0
    write_json(args.json, measure(args.size, repeats=args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

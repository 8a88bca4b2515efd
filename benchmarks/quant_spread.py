"""Where the INT8 thresholds come from: per-layer SQNR of healthy quantizations against the
SQNR the fault kinds leave at the layer they corrupt, per model.

For each model: the float export, `quant_pre_process`, static QDQ quantization calibrated
on 48 samples (the trained digits model: its training images; the others: random inputs
at the model's scale), judged on 12 held-out ones. Then each INT8 fault kind of
tests/faults.py is applied to the QDQ graph and judged again.

    KERAS_BACKEND=tensorflow python benchmarks/quant_spread.py --json benchmarks/runs/q.json
    python benchmarks/quant_spread.py --update-results benchmarks/runs/q.json
"""

import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]


def models():
    import keras

    import keras_convx as kc
    from test_precision import mixed_model

    def zoo(name):
        return lambda: kc.build_model(os.path.join(ROOT, "configs", f"{name}.yaml"), scale="t")

    def app(name, size):
        return lambda: getattr(keras.applications, name)(weights=None,
                                                          input_shape=(size, size, 3))

    return {"test mixed (ConvTranspose)": mixed_model, "digits (trained)": None,
            "zoo resnet50": zoo("resnet50"), "zoo mobilenet": zoo("mobilenet"),
            "zoo xception": zoo("xception"), "zoo unet": zoo("unet"),
            "ResNet50 64px": app("ResNet50", 64), "MobileNetV2 64px": app("MobileNetV2", 64),
            "EfficientNetB0 64px": app("EfficientNetB0", 64)}


def digits_model():
    from test_precision import train_digits

    model, x, _ = train_digits()
    return model, x[:60]


def measure():
    import keras
    import numpy as np
    import onnx

    import keras_convx as kc
    from faults import INT8_MUTATIONS, first_judged_after, mutate_int8
    from helpers import realistic_batch_norm
    from keras_convx.exporter import int8, tensor_map
    from keras_convx.exporter.calibration_data import batched, samples, split
    from keras_convx.verification.inputs import metadata, model_inputs
    from keras_convx.verification import quantized
    from keras_convx.verification.int8_verifier import verify_int8

    rows = []
    for name, build in models().items():
        if build is None:
            model, data = digits_model()
        else:
            model = build()
            realistic_batch_norm(model)
            data = None
        work = tempfile.mkdtemp()
        path = os.path.join(work, "f.onnx")
        kc.export_onnx(model, path, verify=False)
        proto = onnx.load(path)
        io, entries = metadata(proto), tensor_map.read(proto)
        if data is None:
            data = model_inputs(model, io, 60, np.random.default_rng(0))
        calib, held = split(samples(data, model))
        pre = int8.preprocess(proto, work)
        names = [i.name for i in proto.graph.input]
        qdq = onnx.load_from_string(int8.quantize(pre, work, int8.feeds(calib, io, names)))
        runs = batched(held, 8)
        pre_data = pre.SerializeToString()

        def judge(graph):
            return verify_int8(model, graph, graph.SerializeToString(), io, entries, runs, pre,
                               pre_data, runner=tensor_map.TracedRunner(model))

        healthy = judge(qdq)
        internal = [c.sqnr_float for c in healthy.checks if c.role == "internal"
                    and c.sqnr_float is not None]
        drops = [c.drop for c in healthy.checks if c.role == "internal" and c.drop is not None]
        outputs = [c for c in healthy.checks if c.role == "output"]
        row = {"model": name, "layers": len(internal), "passed": healthy.passed,
               "layer_sqnr_min": min(internal), "layer_sqnr_median": float(np.median(internal)),
               "drop_max": max(drops),
               "drop_max_low": max([c.drop for c in healthy.checks if c.role == "internal"
                                    and c.drop is not None and c.sqnr_float is not None
                                    and c.sqnr_float < quantized.LAYER_SQNR_DB], default=None),
               "output_sqnr_min": min(c.sqnr_keras for c in outputs),
               "cosine_min": min(c.cosine for c in outputs),
               "top1_min": min((c.top1 for c in outputs if c.top1 is not None), default=None),
               "faults": {}}
        for kind in INT8_MUTATIONS:
            mutant, layer = mutate_int8(qdq, kind)
            if layer is None:
                continue
            report = judge(mutant)
            named = first_judged_after(mutant, layer, report)
            at = [c for c in report.checks if c.role == "internal" and c.layer in named
                  and c.sqnr_float is not None]
            failing = report.failing
            row["faults"][kind] = {
                "layer": layer, "sqnr_at_layer": min(c.sqnr_float for c in at) if at else None,
                "drop_at_layer": max((c.drop for c in at if c.drop is not None), default=None),
                "caught": not report.passed,
                "caught_at_layer": failing is not None and failing.role == "internal",
                "named": failing is not None and failing.layer in named}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"backend": keras.backend.backend(), "rows": rows}


def render(results):
    from keras_convx.verification import quantized

    r = results[0]
    lines = ["## 13. INT8 thresholds: healthy per-layer SQNR against the fault kinds", "",
             f"Made by `KERAS_BACKEND={r['backend']} python benchmarks/quant_spread.py --json "
             f"benchmarks/runs/quant-spread.json`, then `--update-results`. Static QDQ "
             f"(onnxruntime.quantization, per-channel int8 weights, uint8 activations, MinMax) "
             f"calibrated on 48 samples, judged on 12 held out; SQNR in dB of each mapped "
             f"tensor against the float graph at onnxruntime BASIC; outputs against Keras. "
             f"Thresholds in `keras_convx/verification/quantized.py`: layers "
             f">= {quantized.LAYER_SQNR_DB:g} dB, outputs >= {quantized.OUTPUT_SQNR_DB:g} dB "
             f"and cosine >= {quantized.OUTPUT_COSINE:g}, top-1 agreement >= "
             f"{quantized.TOP1_AGREEMENT:.0%}; a layer fails when below "
             f"{quantized.LAYER_SQNR_DB:g} dB and {quantized.LAYER_DROP_DB:g} dB or more below "
             f"its inputs' ('lost'). 'most lost < {quantized.LAYER_SQNR_DB:g} dB': the most "
             f"one healthy layer under that SQNR lost. Fault columns: SQNR at the corrupted "
             f"layer / what it lost (caught at that layer and named).", "",
             "| model | layers | healthy layer SQNR min / median | most lost < 15 dB | output "
             "SQNR min | cosine min | top-1 | weight scale x4 | zero point moved | "
             "ConvTranspose wrong axis |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        cells = []
        for kind in ("weight_scale_x4", "zero_point_moved", "convtranspose_wrong_axis"):
            f = row["faults"].get(kind)
            cells.append("n/a" if f is None else
                         f"{f['sqnr_at_layer']:.1f} / {f['drop_at_layer']:.1f} ("
                         f"{'caught' if f['caught_at_layer'] else 'MISSED'}"
                         f"{', named' if f['named'] else ''})")
        top1 = f"{row['top1_min']:.0%}" if row["top1_min"] is not None else "-"
        low = f"{row['drop_max_low']:.1f}" if row["drop_max_low"] is not None else "-"
        lines.append(f"| {row['model']} | {row['layers']} | {row['layer_sqnr_min']:.1f} / "
                     f"{row['layer_sqnr_median']:.1f} | {low} | {row['output_sqnr_min']:.1f} | "
                     f"{row['cosine_min']:.4f} | {top1} | " + " | ".join(cells) + " |")
    healthy = max(row["drop_max_low"] or 0.0 for row in r["rows"])
    faults = [f["drop_at_layer"] for row in r["rows"] for f in row["faults"].values()
              if f["drop_at_layer"] is not None]
    caught = sum(f["caught_at_layer"] and f["named"] for row in r["rows"]
                 for f in row["faults"].values())
    total = sum(len(row["faults"]) for row in r["rows"])
    failed = [row["model"] for row in r["rows"] if not row["passed"]]
    lines += ["", f"A healthy layer under {quantized.LAYER_SQNR_DB:g} dB lost at most "
              f"{healthy:.1f} dB; the faults cost their layer {min(faults):.1f}-"
              f"{max(faults):.1f} dB: {caught}/{total} caught at their layer and named, with "
              f"the drop threshold at {quantized.LAYER_DROP_DB:g} dB. Healthy quantizations "
              f"that fail, all by the output rule, none at a layer: {', '.join(failed)} "
              f"(random-weight deep nets: noise grows with depth; a trained net's does not, "
              f"see the digits row)."]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from benchmarks.sections import add_result_arguments, update, write_json

    add_result_arguments(parser, 13)
    args = parser.parse_args(argv)
    if args.update_results:
        update(13, render, [args.update_results])
        return 0
    result = measure()
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A model past protobuf's 2 GiB limit: the zoo ResNet50 widened 4.8x (about 540M
parameters) exports with ONNX external data and verifies. Prints one JSON line.

    python benchmarks/large_export.py [--width 4.8] [--out DIR] [--json FILE]
    python benchmarks/large_export.py --update-results FILE   # RESULTS.md section 7
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.sections import add_result_arguments, update, write_json  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=4.8, help="channel multiplier")
    parser.add_argument("--size", type=int, default=64, help="input height and width")
    parser.add_argument("--out", help="folder for the files (default: a temporary one)")
    add_result_arguments(parser, 7)
    args = parser.parse_args(argv)
    if args.update_results:
        update(7, render, [args.update_results])
        return

    import keras

    import keras_convx as kc

    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = kc.build_model(os.path.join(ROOT, "configs", "resnet50.yaml"), size=args.size,
                           width=args.width, classes=10)
    built = time.perf_counter() - start
    folder = args.out or tempfile.mkdtemp()
    path = os.path.join(folder, "resnet50-wide.onnx")
    start = time.perf_counter()
    report = kc.export_onnx(model, path, method="native")  # external_data="auto"
    seconds = time.perf_counter() - start
    files = {name: os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)}
    result = {
        "keras": keras.__version__, "backend": keras.backend.backend(),
        "params": model.count_params(), "weights_gib": model.count_params() * 4 / 2**30,
        "build_s": round(built, 1), "export_and_verify_s": round(seconds, 1),
        "verify_s": round(report.verify.seconds, 1), "passed": report.passed,
        "files": files, "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "compared_tensors": len(report.verify.informative),
    }
    print(json.dumps(result))
    write_json(args.json, result)


def render(results):
    r = results[0]
    files = ", ".join(f"`{k}` {v / 2**30:.2f} GiB" if v > 2**20 else f"`{k}` {v / 1024:.0f} kB"
                      for k, v in sorted(r["files"].items()))
    return ["## 7. Export past protobuf's 2 GiB limit", "",
            "Made by `python benchmarks/large_export.py --json l.json` then "
            "`python benchmarks/large_export.py --update-results l.json` (TensorFlow backend "
            "here; the zoo ResNet50 widened 4.8x at 64x64, 10 classes, random weights).", "",
            "| params | weights | files | build s | export + verification s | verification s "
            "| tensors compared | passed | peak RSS |", "|---:|---:|---|---:|---:|---:|---:|---|---:|",
            f"| {r['params']:,} | {r['weights_gib']:.2f} GiB | {files} | {r['build_s']} | "
            f"{r['export_and_verify_s']} | {r['verify_s']} | {r['compared_tensors']} | "
            f"{'yes' if r['passed'] else 'no'} | {r['max_rss_gib']:.1f} GiB |"]


if __name__ == "__main__":
    main()

"""ddddocr's trained CRNN (conv backbone -> bidirectional LSTM -> a Linear on the folded
sequence) imported at a static width, against onnxruntime on the original file.

The file's width is dynamic and its Shape arithmetic runs on the time-major tensor (the
batch on axis 1), which the importer does not follow symbolically: the width is fixed
first (`--width`), as `benchmarks/trained_corpus.py` fixes MTCNN's. The file also declares
its output as rank 2 while it computes (T, 1, classes) (onnxruntime warns and runs it):
the declaration is mended to what onnxruntime computes. Reports import with verification,
the error of the logits and how often the per-step argmax (the CTC path) agrees, on
rendered-digit-like random pages.

    KERAS_BACKEND=torch python benchmarks/ddddocr_crnn.py [--width 160] [--samples 8]
"""

import argparse
import os
import time

import numpy as np

MODEL = os.path.join(os.path.dirname(__file__), "runs", "corpus_cache", "models", "common.onnx")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL, help="ddddocr's common.onnx (trained_corpus.py "
                        "unzips it from the ddddocr 1.6.1 wheel)")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args(argv)
    import keras
    import onnx
    import onnxruntime as ort

    import keras_convx as kc

    proto = onnx.load(args.model)
    proto.graph.input[0].type.tensor_type.shape.dim[3].dim_value = args.width
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    # light pages with dark strokes, as ddddocr's grey-scale 0..1 inputs look
    pages = [np.clip(0.9 - 0.8 * (rng.random((1, 1, 64, args.width)) > 0.93), 0, 1)
             .astype(np.float32) for _ in range(args.samples)]
    want = [session.run(None, {"input1": p})[0] for p in pages]
    declared = proto.graph.output[0].type.tensor_type.shape
    declared.ClearField("dim")
    for d in want[0].shape:
        declared.dim.add().dim_value = d
    start = time.perf_counter()
    model = kc.import_onnx(proto)
    seconds = time.perf_counter() - start
    worst, agree, steps = 0.0, 0, 0
    for page, y in zip(pages, want):
        got = np.asarray(keras.ops.convert_to_numpy(model(np.transpose(page, (0, 2, 3, 1)))))
        y = np.transpose(y, (1, 0, 2))  # (T, 1, classes) -> batch-first
        worst = max(worst, float(np.abs(got - y).max() / np.abs(y).max()))
        agree += int((got.argmax(-1) == y.argmax(-1)).sum())
        steps += y.shape[1]
    print(f"backend {keras.backend.backend()}, width {args.width}: import with verification "
          f"{model.import_report.passed} ({seconds:.1f} s, {len(model.import_report.tensors)} "
          f"tensors compared); logits worst {worst:.1e} of scale over {len(pages)} pages; "
          f"per-step argmax agrees {agree}/{steps}")


if __name__ == "__main__":
    main()

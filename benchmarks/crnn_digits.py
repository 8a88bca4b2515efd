"""The zoo's CRNN (configs/crnn.yaml, scale s) trained on digit strings rendered with PIL's
default font, read by CTC greedy decoding: character accuracy on held-out lines in Keras,
in onnxruntime on the native float export, on the INT8 export, and imported back.

Lines are 32x128, 4-6 digits at a random offset, ink and paper shades and pixel noise
drawn at random; 3000 training lines, 500 held out (another seed). Character accuracy is
1 - (edit distance / characters) over the held-out lines.

    KERAS_BACKEND=torch python benchmarks/crnn_digits.py [--epochs 14] [--json out.json]
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "configs", "crnn.yaml")
MAX_DIGITS = 6


def render(n, seed, width=128, height=32):
    """(lines (n, 32, 128, 1) 0..255, labels (n, 6) with digit d as d + 1 and 0 padding,
    texts)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=20)
    lines, labels, texts = [], [], []
    for _ in range(n):
        text = "".join(str(d) for d in rng.integers(0, 10, rng.integers(4, MAX_DIGITS + 1)))
        image = Image.new("L", (width, height), int(rng.integers(200, 256)))
        ImageDraw.Draw(image).text((int(rng.integers(0, 20)), int(rng.integers(2, 8))), text,
                                   fill=int(rng.integers(0, 80)), font=font)
        pixels = np.asarray(image, np.float32) + rng.normal(0, 8, (height, width))
        lines.append(np.clip(pixels, 0, 255)[..., None])
        labels.append([int(c) + 1 for c in text] + [0] * (MAX_DIGITS - len(text)))
        texts.append(text)
    return np.stack(lines).astype(np.float32), np.array(labels, np.int32), texts


def greedy(logits):
    """CTC greedy decoding (class 0 is the blank): repeats merged, blanks dropped."""
    texts = []
    for row in np.asarray(logits).argmax(-1):
        keep = [c for i, c in enumerate(row) if c != 0 and (i == 0 or c != row[i - 1])]
        texts.append("".join(str(c - 1) for c in keep))
    return texts


def _edits(a, b):
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def char_accuracy(predicted, truth):
    return 1 - sum(_edits(p, t) for p, t in zip(predicted, truth)) / sum(map(len, truth))


def _onnx_logits(path, lines):
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: lines[i:i + 100]})[0]
                           for i in range(0, len(lines), 100)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args(argv)
    import keras

    import keras_convx as kc

    lines, labels, _ = render(3000, 0)
    held, _, truth = render(500, 1)
    keras.utils.set_random_seed(0)
    model = kc.build_model(CONFIG, scale="s")
    model.compile(keras.optimizers.Adam(3e-3), loss=keras.losses.CTC())
    start = time.perf_counter()
    model.fit(lines, labels, batch_size=64, epochs=args.epochs, verbose=0)
    result = {"backend": keras.backend.backend(), "epochs": args.epochs,
              "train_s": round(time.perf_counter() - start, 1)}
    result["keras"] = char_accuracy(greedy(model.predict(held, verbose=0)), truth)
    with tempfile.TemporaryDirectory() as work:
        float_path, int8_path = os.path.join(work, "crnn.onnx"), os.path.join(work, "q.onnx")
        report = kc.export_onnx(model, float_path, verify=kc.VerifyOptions(samples=[held[:8]]))
        result["export"] = f"{report.method}, {'passed' if report.passed else 'failed'}"
        result["onnx"] = char_accuracy(greedy(_onnx_logits(float_path, held)), truth)
        quant = kc.export_onnx(model, int8_path, precision="int8", calibration=lines[:256])
        result["int8_rule"] = "passed" if quant.passed else quant.quantization.summary()
        path = int8_path if quant.passed else int8_path.replace(".onnx", ".failed.onnx")
        result["int8"] = char_accuracy(greedy(_onnx_logits(path, held)), truth)
        back = kc.import_onnx(float_path)
        result["import"] = char_accuracy(greedy(back.predict(held, verbose=0)), truth)
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

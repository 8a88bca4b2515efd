"""Every keras.applications constructor (Keras 3.15) exports natively and verifies, tensor
by tensor, on this backend: small inputs, weights=None, BatchNorm statistics as after
training. The largest constructors run in the benchmark only (benchmarks/applications.py).
"""

import keras
import pytest

import keras_convx as kc
from helpers import BACKEND, realistic_batch_norm

APPLICATIONS = sorted(n for n, obj in vars(keras.applications).items()
                      if callable(obj) and n[:1].isupper())
# Benchmark only (CI time): >= 19M parameters at these sizes, or minutes of CI per backend.
# The larger EfficientNets amplify float32 rounding past the tolerance; verification tells
# that from a wrong graph (test_verification.py runs EfficientNetB5, README: "Models that
# amplify rounding"), and benchmarks/applications.py exports and verifies all of them.
LARGE = {"ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge", "EfficientNetB4", "EfficientNetB5",
         "EfficientNetB6", "EfficientNetB7", "EfficientNetV2S", "EfficientNetV2M",
         "EfficientNetV2L", "NASNetLarge", "ResNet152", "ResNet152V2"}
# Smallest input each family accepts; EfficientNets at 64 (at 32 their deepest maps are
# 1x1 and every SE gate saturates: the test of amplified rounding uses that).
SIZES = {"Xception": 71, "InceptionV3": 75, "InceptionResNetV2": 75}
FAMILY_SIZES = {"EfficientNet": 64}
# JAX compiles every op per shape: the smallest model of each family.
# (ResNet50V2, MobileNetV2 and the zoo's ResNet50 run in the fault-injection module there.)
ON_JAX = {"ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0", "InceptionV3",
          "MobileNetV3Small", "NASNetMobile", "VGG16", "Xception"}


def input_size(name):
    for family, size in FAMILY_SIZES.items():
        if name.startswith(family):
            return size
    return SIZES.get(name, 32)


def build(name, seed=None, **kwargs):
    """The application with deterministic weights and BatchNorm statistics."""
    seed = len(name) if seed is None else seed
    keras.utils.set_random_seed(seed)
    size = input_size(name)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                              **kwargs)
    return realistic_batch_norm(model, seed=seed)


def test_there_are_forty():
    assert len(APPLICATIONS) == 40, APPLICATIONS


CASES = [n for n in APPLICATIONS if n not in LARGE and (BACKEND != "jax" or n in ON_JAX)]


@pytest.mark.thin_on_jax(3)  # 3 of the 9 families a run on JAX (CI time), rotating by day
@pytest.mark.parametrize("name", CASES)
def test_application_exports_natively_and_verifies(name, tmp_path):
    if BACKEND == "torch" and name.startswith("NASNet"):
        pytest.skip("Keras 3.15 refuses NASNet on the torch backend ('not available with the "
                    "torch backend at this time due to an outstanding bug')")
    model = build(name)
    report = kc.export_onnx(model, tmp_path / f"{name}.onnx", method="native")
    assert report.passed, report.verify.summary()
    compared = [c for c in report.verify.tensors if c.status in ("pass", "FAIL")]
    assert len(compared) > 10  # layer by layer, not only the logits
    # at most one Transpose per channels_last input and output
    assert report.transpose_count <= len(model.inputs) + len(model.outputs)


@pytest.mark.thin_on_jax(3)  # one pooling a run on JAX, rotating by day (CI time)
@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_headless_with_each_pooling(pooling, tmp_path):
    model = build("MobileNetV3Small", include_top=False, pooling=pooling)
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    assert report.passed, report.verify.summary()


def test_logits_without_classifier_activation(tmp_path):
    model = build("EfficientNetV2B0", classifier_activation=None)
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    assert report.passed
    assert "predictions" not in [c.layer for c in report.verify.tensors
                                 if c.role == "preactivation"]


# channels_first: models of the layer kinds that care about the layout (pads, pooling,
# depthwise and separable convs, SE gates, concatenations); ConvNeXt and DenseNet refuse
# channels_first in Keras itself. JAX runs the first only (CI time).
CHANNELS_FIRST = ["ResNet50V2", "MobileNetV3Small", "EfficientNetB0", "InceptionV3",
                  "Xception"]


@pytest.mark.skipif(BACKEND == "tensorflow",
                    reason="Keras's own channels_first convs don't run on TensorFlow's CPU")
@pytest.mark.parametrize("name", CHANNELS_FIRST[:1] if BACKEND == "jax" else CHANNELS_FIRST)
def test_channels_first(name, tmp_path):
    keras.config.set_image_data_format("channels_first")
    try:
        keras.utils.set_random_seed(3)
        size = max(input_size(name), 32)
        model = getattr(keras.applications, name)(weights=None, input_shape=(3, size, size))
        realistic_batch_norm(model, seed=3)
    finally:
        keras.config.set_image_data_format("channels_last")
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    assert report.passed, report.verify.summary()
    assert report.transpose_count == 0

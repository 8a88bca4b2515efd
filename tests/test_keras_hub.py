"""keras-hub's vision models (small random-weight configurations, BatchNorm statistics as
after training) export natively, with their composite blocks traced through `call`, and
verify against Keras tensor by tensor, inside the blocks too.

TensorFlow and torch run every model; JAX (which compiles every op on first use, 2-15 s a
model) runs one model per family, half of the families a run, rotating by day. The full
grid on every backend is `benchmarks/hub_export.py` (`make bench`).
"""

import datetime

import keras
import pytest

import keras_convx as kc

pytest.importorskip("keras_hub", reason="keras-hub is not installed (make test installs it "
                                        "with --no-deps; see the README's plain pip block)")
import hub_models as H  # noqa: E402
from benchmarks.hub_export import readme_rows, short_kind
from helpers import BACKEND

# Their embeddings compute with the batch size as a number (ops.tile(cls_token,
# (batch, 1, 1)), reshapes to batch * heads): traced with the batch symbol, their graphs
# compute those from the input's batch (checked at a batch verification did not use).
BATCH_AS_NUMBER = {"vitdet", "dinov2", "depth_anything", "vit_classifier", "swin_classifier"}
# Refused with the reason the exporter gives (tests below).
REFUSED = {"deit_classifier": r"deit_encoder"}
# A task model whose backbone's family runs on JAX already.
SAME_FAMILY = {"resnet_classifier", "mobilenet_v3_classifier", "efficientnet_classifier",
               "hgnetv2_classifier", "vgg_classifier", "mobilenet_v5_classifier"}


def _names():
    names = [n for n in H.FAMILIES if n not in REFUSED]
    if BACKEND != "jax":
        return names
    families = [n for n in names if n not in SAME_FAMILY]
    turn = datetime.date.today().toordinal() % 2
    return [n for i, n in enumerate(families) if i % 2 == turn]


@pytest.mark.parametrize("name", _names())
def test_keras_hub_model_exports_natively_and_verifies(name, tmp_path):
    model = H.build(name)
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    assert report.method == "native"
    assert report.passed and report.verify.informative, report.verify.summary()
    assert {c.batch for c in report.verify.checks} == {1, 2}  # a dynamic batch
    if name in BATCH_AS_NUMBER:
        _check_at_batch(model, tmp_path / "m.onnx", 3)
    compared = [c for c in report.verify.tensors if c.status == "pass"]
    hub_blocks = [layer for layer in model._flatten_layers(include_self=False)
                  if type(layer).__module__.startswith("keras_hub") and
                  not isinstance(layer, keras.Model)]
    if hub_blocks:  # the tensors inside traced blocks are compared by their path
        assert any("/" in c.tensor for c in compared)
    assert len(compared) >= 5
    if BACKEND == "tensorflow":  # the README's coverage table says how each class exports
        table = readme_rows()
        rows = kc.exporter.coverage(model)
        missing = [(short_kind(r.kind), r.how) for r in rows
                   if (short_kind(r.kind), r.how) not in table]
        assert not missing, f"not in README's coverage table (make it again): {missing}"


def _check_at_batch(model, path, batch):
    import numpy as np
    import onnxruntime as ort

    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    data = np.random.default_rng(batch).uniform(0, 1, shape).astype("float32")
    expected = [keras.ops.convert_to_numpy(o) for o in
                keras.tree.flatten(model(data, training=False))]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: data})
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        assert np.max(np.abs(g - e)) <= 1e-4 * np.max(np.abs(e))


@pytest.mark.skipif(BACKEND == "jax", reason="TF and torch check the static path")
def test_a_batch_as_a_number_model_still_exports_with_a_static_batch(tmp_path):
    model = H.build("vit_classifier")
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native", dynamic_axes=(),
                            batch_size=2)
    assert report.passed and {c.batch for c in report.verify.checks} == {2}


@pytest.mark.skipif(BACKEND == "jax", reason="the refusals are the same on every backend; "
                    "TF and torch check them")
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_untraceable_keras_hub_model_is_refused_by_name(name, tmp_path):
    with pytest.raises(kc.exporter.UnsupportedModel, match=REFUSED[name]):
        kc.export_onnx(H.build(name), tmp_path / "m.onnx", method="native",
                       dynamic_axes=(), batch_size=1)
    assert not (tmp_path / "m.onnx").exists()

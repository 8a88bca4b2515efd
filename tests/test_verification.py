"""Verification's rules on small models: the tensor map through fusion and folding, the
tolerance rule, uninformative tensors, onnxruntime optimisation problems, clear errors."""

import os

import keras
import numpy as np
import onnx
import pytest

import keras_convx as kc
from keras_convx.exporter import ExportError, VerificationError, tensor_map
from keras_convx.verification import rules as stats
from keras_convx.exporter.verify import input_distribution
from helpers import BACKEND, rand


def _model(layers, shape, seed=0, name=None):
    x = keras.Input(shape, name="x")
    h = x
    for layer in layers:
        h = layer(h)
    model = keras.Model(x, h, name=name)
    for i, w in enumerate(model.weights):
        value = rand(tuple(w.shape), seed + i)
        w.assign(np.abs(value) + 0.5 if "variance" in w.path else value)
    return model


def test_map_survives_folding_and_fusion_and_reports_fused(tmp_path):
    model = _model([keras.layers.ZeroPadding2D(1, name="pad"), kc.Conv2D(6, 3, name="conv"),
                    keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(name="relu"),
                    keras.layers.GlobalAveragePooling2D(name="gap"),
                    keras.layers.Dense(5, activation="softmax", name="head")], (9, 9, 3))
    report = kc.export_onnx(model, tmp_path / "m.onnx")
    assert report.passed and report.bn_folded == 1 and report.fused == 1
    by_layer = {c.layer: c for c in report.verify.tensors if c.role != "output"}
    assert (by_layer["pad"].status, by_layer["pad"].into) == ("fused", "conv")
    assert (by_layer["conv"].status, by_layer["conv"].into) == ("fused", "bn")
    assert by_layer["bn"].status == by_layer["relu"].status == "pass"
    pre = [c for c in report.verify.tensors if c.role == "preactivation"]
    assert [c.tensor for c in pre] == ["head (before softmax)"] and pre[0].status == "pass"
    # a squashed layer is compared after its activation too, not only before it
    head = {c.role: c.status for c in report.verify.tensors if c.layer == "head"}
    assert head == {"internal": "pass", "preactivation": "pass", "output": "pass"} or \
        head == {"internal": "pass", "preactivation": "pass"}, head
    # the map travels in the file: verify_onnx in the same way, from disk
    entries = tensor_map.read(onnx.load(tmp_path / "m.onnx"))
    assert {e.label for e in entries} >= {"pad", "conv", "bn", "relu", "gap", "head"}
    again = kc.verify_onnx(model, tmp_path / "m.onnx")
    assert again.passed and len(again.tensors) == len(report.verify.tensors)


def test_keras_ops_nodes_are_compared(tmp_path):
    x = keras.Input((8, 8, 2), name="x")
    h = kc.Conv2D(4, 3, padding="same", name="conv")(x)
    out = keras.layers.Add(name="add")([h, h])
    model = keras.Model(x, out)
    report = kc.export_onnx(model, tmp_path / "m.onnx")
    keys = [c.key for c in report.verify.tensors if c.role == "internal"]
    assert keys == ["conv:0:0", "add:0:0"]


def test_tolerance_is_relative_to_scale(tmp_path):
    """A 1% error on a tensor of magnitude 1e-6 fails; rounding on one of 1e3 passes."""
    small = _model([kc.Conv2D(3, 3, name="conv")], (8, 8, 2))
    for w in small.weights:
        w.assign(keras.ops.convert_to_numpy(w) * 1e-6)
    path = tmp_path / "s.onnx"
    kc.export_onnx(small, path)
    graph = onnx.load(path)
    kernel = next(t for t in graph.graph.initializer if t.name.endswith("kernel"))
    array = onnx.numpy_helper.to_array(kernel) * np.float32(1.01)
    kernel.CopyFrom(onnx.numpy_helper.from_array(array, kernel.name))
    report = kc.verify_onnx(small, graph)
    assert not report.passed and report.diagnosis[0].layer == "conv"
    assert 5e-3 < report.diagnosis[0].rel < 2e-2 and report.diagnosis[0].scale < 1e-4
    big = _model([kc.Conv2D(3, 3, name="conv")], (8, 8, 2))
    for w in big.weights:
        w.assign(keras.ops.convert_to_numpy(w) * 1e3)
    assert kc.export_onnx(big, tmp_path / "b.onnx").passed


def test_constant_output_is_uninformative_not_a_pass(tmp_path):
    model = _model([kc.Conv2D(2, 3, name="zero")], (6, 6, 1))
    for w in model.weights:
        w.assign(np.zeros(tuple(w.shape), np.float32))
    with pytest.raises(VerificationError, match="nothing informative to compare"):
        kc.export_onnx(model, tmp_path / "z.onnx")
    report = kc.verify_onnx(model, tmp_path / "z.failed.onnx")
    assert {c.status for c in report.checks} == {"uninformative"} and not report.passed
    assert any("uninformative" in w for w in report.warnings)


def test_a_constant_output_never_passes_even_when_the_tensors_before_it_do(tmp_path):
    # conv -> x * 0: the conv is proven, the output (what users deploy) is not
    x = keras.Input((6, 6, 2), name="x")
    model = keras.Model(x, kc.Conv2D(3, 3, name="conv")(x) * 0.0)
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), i))
    with pytest.raises(VerificationError, match="is constant or zero on every input"):
        kc.export_onnx(model, tmp_path / "m.onnx")
    report = kc.verify_onnx(model, tmp_path / "m.failed.onnx")
    assert any(c.status == "pass" for c in report.tensors) and not report.passed
    assert len(report.constant_outputs) == 1


def test_onnxruntime_pad_fusion_into_maxpool_is_reported_as_its_problem(tmp_path):
    """onnxruntime 1.31's PadFusion moves a zero Pad into MaxPool (whose pads mean -inf):
    the graph is right, the optimised session is not. Reported as such, located."""
    model = _model([kc.Conv2D(4, 3, name="conv"), keras.layers.ZeroPadding2D(1, name="pad"),
                    keras.layers.MaxPooling2D(3, 2, name="pool"), kc.Conv2D(3, 1, name="out")],
                   (12, 12, 2))
    conv = model.get_layer("conv")
    conv.bias.assign(np.full((4,), -3.0, np.float32))  # mostly negative: zero padding wins
    report = kc.export_onnx(model, tmp_path / "m.onnx")
    assert report.passed, report.verify.summary()  # not an export failure
    problem = report.verify.ort_problem
    assert problem is not None and problem["level"] == "all"
    assert problem["first_tensor"] == "pool" and problem["first_rel"] > 1e-2
    assert any("onnxruntime problem" in w for w in report.verify.warnings)
    clean = kc.verify_onnx(model, tmp_path / "m.onnx", optimization_level="disable")
    assert clean.passed and clean.ort_problem is None


def test_graph_needing_inputs_the_model_lacks_is_a_clear_error(tmp_path):
    model = _model([kc.Conv2D(2, 3)], (6, 6, 1))
    kc.export_onnx(model, tmp_path / "m.onnx")
    graph = onnx.load(tmp_path / "m.onnx")
    graph.graph.input.append(onnx.helper.make_tensor_value_info("extra", 1, [1]))
    with pytest.raises(ExportError, match=r"the ONNX graph has 2 input\(s\) .*'extra'.*model 1"):
        kc.verify_onnx(model, graph)


def test_graph_onnxruntime_rejects_is_a_clear_error(tmp_path):
    model = _model([kc.Conv2D(2, 3)], (6, 6, 1))
    kc.export_onnx(model, tmp_path / "m.onnx")
    graph = onnx.load(tmp_path / "m.onnx")
    conv = next(n for n in graph.graph.node if n.op_type == "Conv")
    conv.op_type = "NoSuchOp"
    with pytest.raises(ExportError, match=r"onnxruntime \(CPUExecutionProvider, level disable\) "
                                          r"rejected the graph"):
        kc.verify_onnx(model, graph)


def test_inputs_drawn_at_the_expected_scale():
    x = keras.Input((4, 4, 3))
    pixels = keras.Model(x, kc.Conv2D(2, 1)(keras.layers.Rescaling(1 / 255.0)(x)))
    assert input_distribution(pixels, 0) == ("uniform", 0.0, 255.0)
    norm = keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 9.0, 16.0])
    x = keras.Input((4, 4, 3))
    normalized = keras.Model(x, kc.Conv2D(2, 1)(norm(x)))
    kind, mean, std = input_distribution(normalized, 0)
    assert kind == "normal"
    np.testing.assert_allclose(np.ravel(mean), [1, 2, 3])
    np.testing.assert_allclose(np.ravel(std), [2, 3, 4])
    plain = _model([kc.Conv2D(2, 1)], (4, 4, 3))
    assert input_distribution(plain, 0) == ("normal", 0.0, 1.0)


def test_tensor_error_statistics():
    e = np.array([[1.0, -2.0, 4.0], [0.5, 0.25, -4.0]], np.float32)
    err = stats.tensor_error(e + np.float32(0.04), e, cosine=True)
    assert err.scale == 4.0 and abs(err.rel - 0.01) < 1e-6 and err.informative
    assert not err.failed(0.02) and err.failed(0.005)
    # Polygraphy's numbers: every element is off by 0.04 = 1% of the scale; PSNR 40 dB
    assert abs(err.median_rel - 0.01) < 1e-6 and abs(err.p99_rel - 0.01) < 1e-6
    assert abs(err.psnr - 40.0) < 1e-3
    assert stats.tensor_error(np.ones((2, 3)), np.ones((2, 3)) * 7).informative is False
    assert stats.tensor_error(np.zeros((2, 2)), np.zeros((2, 3))).failed(1.0)  # shape
    assert stats.tensor_error(np.full((2,), np.nan), np.ones(2) * [1, 2]).failed(1.0)
    # NaN/Inf fail on either side, NaN on both sides included: it is no agreement
    both = stats.tensor_error(np.array([1.0, np.nan]), np.array([1.0, np.nan]))
    assert both.failed(1.0) and both.nonfinite == "both"
    assert stats.tensor_error(np.array([1.0, 2.0]), np.array([1.0, np.inf])).nonfinite == "keras"
    assert stats.tensor_error(np.array([1.0, -np.inf]), np.array([1.0, 2.0])).failed(1.0)
    # inside the graph, the same infinities in the same places agree (-inf padding before
    # a max pool); in outputs, or anywhere with NaN, they don't
    pad = np.array([-np.inf, 1.0, 2.0, -np.inf])
    assert not stats.tensor_error(pad, pad.copy(), matching_inf_ok=True).failed(1e-6)
    assert stats.tensor_error(pad, pad.copy()).failed(1.0)
    assert stats.tensor_error(pad, pad[::-1].copy() * [1, 1, 1, -1],
                              matching_inf_ok=True).failed(1.0)  # a sign flipped
    assert stats.tensor_error(pad, np.array([-np.inf, 1.0, 2.0, 3.0]),
                              matching_inf_ok=True).failed(1.0)
    nan = np.array([np.nan, 1.0])
    assert stats.tensor_error(nan, nan.copy(), matching_inf_ok=True).failed(1.0)


def test_nan_outputs_never_verify_and_the_first_nan_layer_is_named(tmp_path):
    # sqrt of a conv's negative values: NaN in Keras and in onnxruntime alike
    x = keras.Input((6, 6, 2), name="x")
    h = kc.Conv2D(3, 3, name="conv")(x)
    h = keras.ops.sqrt(h)
    model = keras.Model(x, kc.Conv2D(2, 1, name="head")(h))
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), i))
    with pytest.raises(VerificationError, match=r"first tensor with NaN/Inf: sqrt.*both"):
        kc.export_onnx(model, tmp_path / "m.onnx")
    report = kc.verify_onnx(model, tmp_path / "m.failed.onnx")
    assert not report.passed
    assert {c.status for c in report.checks} == {"FAIL"}  # the outputs: NaN on both sides
    assert report.diagnosis[0].tensor.startswith("sqrt")


def test_external_data_is_written_atomically_and_verified(tmp_path):
    """Graphs past protobuf's 2 GiB keep their weights in `<name>.onnx.data` (forced here
    on a small model; `make bench` exports a >2 GB one)."""
    model = _model([kc.Conv2D(32, 3, name="conv"), keras.layers.BatchNormalization(name="bn"),
                    kc.Conv2D(16, 3, name="out")], (12, 12, 3))
    path = tmp_path / "m.onnx"
    report = kc.export_onnx(model, path, external_data=True)
    assert report.passed and report.external_data == "m.onnx.data"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]  # nothing staged left
    assert os.path.getsize(tmp_path / "m.onnx.data") > 4 * os.path.getsize(tmp_path / "m.onnx")
    again = kc.verify_onnx(model, path)  # from disk: weights read from the data file
    assert again.passed and again.tensors
    # a corrupted weight in the data file is caught and located
    raw = bytearray((tmp_path / "m.onnx.data").read_bytes())
    raw[256:1024] = bytes(768)
    (tmp_path / "m.onnx.data").write_bytes(bytes(raw))
    broken = kc.verify_onnx(model, path)
    assert not broken.passed and broken.diagnosis
    # a failing export keeps its folder (model + data) and the report, nothing at `path`
    bad = _model([kc.Conv2D(32, 3)], (6, 6, 16))
    for w in bad.weights:
        w.assign(np.zeros(tuple(w.shape), np.float32))
    with pytest.raises(VerificationError, match=r"kept .*b\.failed"):
        kc.export_onnx(bad, tmp_path / "b.onnx", external_data=True)
    assert sorted(os.listdir(tmp_path / "b.failed")) == ["b.onnx", "b.onnx.data"]
    assert (tmp_path / "b.failed.json").exists() and not (tmp_path / "b.onnx").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".keras_convx")]


@pytest.fixture(scope="module")
def amplifying_export(tmp_path_factory):
    """EfficientNetB5 with random weights at 32x32: its saturated squeeze-and-excitation
    gates flip under a one-ulp change of the input, so float32 rounding alone moves its
    deep tensors by more than any useful tolerance (Keras's own run included)."""
    from helpers import realistic_batch_norm

    keras.utils.set_random_seed(1)
    model = realistic_batch_norm(
        keras.applications.EfficientNetB5(weights=None, input_shape=(32, 32, 3)), seed=1)
    path = tmp_path_factory.mktemp("amplifying") / "b5.onnx"
    return model, path, kc.export_onnx(model, path, method="native")


AMPLIFYING = pytest.mark.skipif(
    BACKEND == "jax", reason="CI time: JAX compiles EfficientNetB5's ops one by one for three "
    "eager passes (the rule is backend-independent code; TF and torch run it)")


@AMPLIFYING
def test_amplified_rounding_passes_when_every_layer_matches(amplifying_export):
    model, path, report = amplifying_export
    v = report.verify
    assert v.passed, v.summary()
    amplified = [c for c in v.checks + v.tensors if c.status == "amplified"]
    # a correct graph the plain rule would fail: errors far beyond tolerance...
    assert amplified and max(c.rel for c in amplified) > 10 * stats.CPU_TOLERANCE
    # ...each within a small multiple of Keras's own one-ulp sensitivity...
    assert all(c.rel <= stats.AMPLIFICATION * c.sensitivity for c in amplified)
    # ...while every layer fed the graph's values matches Keras far inside the tolerance
    assert v.local_worst < stats.CPU_TOLERANCE / 5
    assert any("amplifies float32 rounding" in w for w in v.warnings)


@AMPLIFYING
def test_a_wrong_layer_inside_the_amplified_region_still_fails(amplifying_export):
    from faults import _get, _put
    from keras_convx.exporter.verify import Verifier, metadata

    model, path, _ = amplifying_export
    proto = onnx.load(path)
    conv = next(n for n in proto.graph.node if n.name == "block7b_project_conv/Conv")
    _put(proto, conv.input[1], _get(proto, conv.input[1]) * np.float32(1.01))
    report = Verifier(model, metadata(proto), tensor_map.read(proto)).verify(proto)
    assert not report.passed
    first = report.diagnosis[0]
    # the layer itself, judged on the graph's own inputs: the conv is folded into its BN
    assert (first.role, first.layer) == ("local", "block7b_project_bn"), report.summary()
    # a 1% weight change moves the layer by up to 1% of its scale (here 0.99%): 5x the tolerance
    assert first.rel > 4 * stats.CPU_TOLERANCE
    # the global error there is inside the amplified band: only the local check sees it
    there = next(c for c in report.tensors
                 if c.layer == "block7b_project_bn" and c.role == "internal")
    assert there.sensitivity is not None
    assert there.rel <= stats.AMPLIFICATION * there.sensitivity


def test_batch_norm_calibration_sets_the_batch_statistics():
    """The moving statistics become those of the calibration batch (on JAX through one
    compiled stateless pass), with dropout off; checked against NumPy on that batch."""
    from keras_convx.exporter.verify import calibrate_batch_norm, model_inputs

    x = keras.Input((6, 6, 3))
    h = keras.layers.Dropout(0.5, name="drop")(x)
    h = keras.layers.Conv2D(4, 3, name="conv")(h)
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(x, bn(h))
    calibrate_batch_norm(model, seed=3, batch=8)
    batch = model_inputs(model, {}, 8, np.random.default_rng(3))[0]
    conv = keras.Model(x, h)
    y = np.asarray(keras.ops.convert_to_numpy(conv(batch, training=False)), np.float64)
    mean, var = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
    got_mean = keras.ops.convert_to_numpy(bn.moving_mean)
    got_var = keras.ops.convert_to_numpy(bn.moving_variance)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-4, atol=1e-5 * np.abs(mean).max())
    np.testing.assert_allclose(got_var, var, rtol=1e-3)
    assert bn.momentum == 0.99 and model.get_layer("drop").rate == 0.5  # restored


def test_verify_onnx_takes_the_model_first_and_the_old_order_warns(tmp_path):
    model = _model([kc.Conv2D(3, 3, name="conv")], (6, 6, 2))
    kc.export_onnx(model, tmp_path / "m.onnx")
    assert kc.verify_onnx(model, tmp_path / "m.onnx").passed
    with pytest.warns(DeprecationWarning, match=r"verify_onnx\(model, path\)"):
        assert kc.verify_onnx(tmp_path / "m.onnx", model).passed
    with pytest.raises(TypeError, match="must be a Keras model"):
        kc.verify_onnx(str(tmp_path / "m.onnx"), str(tmp_path / "m.onnx"))


def test_one_report_type_for_export_verify_and_import(tmp_path):
    """Export, verification and import give the same `Report` type, with the same
    `passed`, `why()`, `summary()` and JSON; failures carry it in either direction."""
    import json

    from keras_convx.importer import ImportVerificationError

    model = _model([kc.Conv2D(4, 3, name="conv"), keras.layers.ReLU(name="relu"),
                    kc.Conv2D(3, 1, name="head")], (8, 8, 2))
    path = str(tmp_path / "m.onnx")
    made = kc.export_onnx(model, path)
    again = kc.verify_onnx(model, path)
    back = kc.import_onnx(path)  # verifies by default, as export does
    assert not hasattr(kc.import_onnx(path, verify=False), "import_report")
    reports = {"export": made, "verify": again, "import": back.import_report}
    for direction, report in reports.items():
        assert type(report) is kc.Report and report.direction == direction
        assert report.passed and report.why() == "passed" and report.path == path
        data = json.loads(report.to_json())
        assert data["direction"] == direction and data["passed"] is True
        assert data["verify"] is not None and report.summary().splitlines()[0].endswith(
            "passed")
    assert made.model is model and again.model is model
    assert len(again.checks) == len(again.verify.checks) > 0  # sections read through
    assert list(back.import_report.outputs) == list(back.import_report.verify.outputs)
    # a wrong weight: the same type says what failed, in both directions
    proto = onnx.load(path)
    for init in proto.graph.initializer:
        if "conv" in init.name and len(init.dims) == 4:
            values = onnx.numpy_helper.to_array(init) * 1.5
            init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))
            break
    bad = str(tmp_path / "bad.onnx")
    onnx.save(proto, bad)
    verdict = kc.verify_onnx(model, bad)
    assert type(verdict) is kc.Report and not verdict.passed
    assert "conv" in verdict.why() and "FAILED" in verdict.summary().splitlines()[0]
    # the imported model against the wrong file: the import direction's failure
    differs = kc.verify_import(back, onnx.load(bad))
    assert type(differs) is kc.Report and differs.direction == "import" and not differs.passed
    assert "first difference at node" in differs.why()
    error = ImportVerificationError(differs)
    assert isinstance(error, kc.VerificationFailed) and error.report is differs
    assert differs.why() in str(error)


def test_the_signature_is_typed_and_stored_in_the_file(tmp_path):
    """The exporter's per input/output contract is a `Signature`, written to the file's
    `keras_convx.io` and read back as one; its dict form and None are accepted, anything
    else is refused by name."""
    from keras_convx.verification.signature import Signature

    model = _model([kc.Conv2D(4, 3, name="conv")], (8, 8, 3))
    path = tmp_path / "m.onnx"
    report = kc.export_onnx(model, path, nchw_io=True, input_dtype="uint8",
                            dynamic_axes=(), batch_size=2)
    assert report.passed
    sig = Signature.read(onnx.load(path))
    assert sig == Signature(input_perms=[[0, 3, 1, 2]], output_perms=[[0, 3, 1, 2]],
                            input_dtypes=["uint8"], input_shapes=[[None, 8, 8, 3]],
                            static_batch=2)
    assert Signature.of(sig) is sig and Signature.of(None) == Signature()
    assert Signature.of({"static_batch": 4, "unknown": 1}).static_batch == 4
    with pytest.raises(TypeError, match="Signature: expected a Signature, its dict form"):
        Signature.of([1, 2])


class _Decoding(keras.Model):
    """A task model as keras-hub's detectors are: `predict_step` decodes, and unpacks
    `(x, y)` as their training data comes (a bare batch makes it fail)."""

    def predict_step(self, data):
        x, _ = data
        return keras.ops.argmax(self(x, training=False), axis=-1)


class _Block(keras.layers.Layer):
    """A composite layer (no lowering: traced through its `call`), as keras-hub's are."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = kc.Conv2D(4, 3, padding="same", name="inner")

    def call(self, x):
        return keras.ops.relu(self.conv(x)) + x


def test_verification_runs_the_forward_pass_not_a_decoding_predict_step(tmp_path):
    """Verification compares the model's forward pass (`call`), on every backend: never
    `predict_on_batch`, which a task model's `predict_step` turns into decoding (on JAX it
    crashed on keras-hub's RetinaNet). Weights assigned after a first verification are the
    ones the next one runs with."""
    x = keras.Input((8, 8, 2), name="x")
    h = _Block(name="block")(kc.Conv2D(4, 3, name="conv")(x))  # traced: keys inside it
    model = _Decoding(x, keras.layers.GlobalAveragePooling2D(name="gap")(h), name="decoding")
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), i))
    path = str(tmp_path / "m.onnx")
    assert kc.export_onnx(model, path).passed
    assert kc.export_onnx(model, str(tmp_path / "m2.onnx"),
                          verify=kc.VerifyOptions(diagnose=False)).passed
    conv = model.get_layer("conv")
    conv.kernel.assign(conv.kernel * 1.5)  # the file is stale now: verification must see it
    assert not kc.verify_onnx(model, path).passed


def test_one_typed_correspondence_for_both_directions(tmp_path):
    """The export's tensor map and the import's are the same `Row`s, with one meaning of
    `perm` (graph = transpose(keras, perm)); JSON only in the file's metadata."""
    from keras_convx.importer.convert import build
    from keras_convx.verification.correspondence import Row, dumps, loads

    model = _model([kc.Conv2D(4, 3, name="conv"), keras.layers.ReLU(name="relu")], (8, 8, 2))
    kc.export_onnx(model, tmp_path / "m.onnx")
    exported = tensor_map.read(onnx.load(tmp_path / "m.onnx"))
    assert exported and all(type(r) is Row for r in exported)
    assert loads(dumps(exported)) == exported
    conv = next(r for r in exported if r.label == "conv")
    assert conv.perm == (0, 3, 1, 2)  # NHWC Keras tensor, NCHW in the graph
    net, walk, graph = build(str(tmp_path / "m.onnx"), "channels_last")
    imported = walk.correspondence(graph)
    assert imported and all(type(r) is Row for r in imported)
    # the conv's NCHW tensor of the same file: the same perm from the other direction
    assert {r.onnx: r.perm for r in imported}[conv.onnx] == (0, 3, 1, 2)
    with pytest.raises(ValueError, match="status must be one of"):
        Row(key="a:0:0", label="a", onnx="a", perm=(0,), status="gone")


def test_verifying_a_model_again_reuses_its_probe(tmp_path):
    """The Keras model that exposes the mapped tensors is made once per model (on JAX its
    XLA compilation is the larger part of verification: ResNet50 2.1 s -> 1.2 s again)."""
    from keras_convx.verification import keras_runner

    model = _model([kc.Conv2D(4, 3, name="conv"), keras.layers.ReLU(name="relu")], (8, 8, 2))
    kc.export_onnx(model, tmp_path / "m.onnx")
    probes = dict(keras_runner._PROBES[model])
    assert len(probes) == 1
    assert kc.verify_onnx(model, tmp_path / "m.onnx").passed
    assert keras_runner._PROBES[model] == probes  # the same probe object, not a new one


def test_verifier_takes_a_runner_object_for_the_keras_side(tmp_path):
    from keras_convx.verification.keras_runner import KerasRunner
    from keras_convx.verification.verifier import Verifier
    from keras_convx.exporter.verify import metadata

    model = _model([kc.Conv2D(4, 3, name="conv"), keras.layers.ReLU(name="relu"),
                    keras.layers.GlobalAveragePooling2D(name="gap")], (8, 8, 3))
    path = tmp_path / "m.onnx"
    kc.export_onnx(model, path, verify=False)
    proto = onnx.load(path)
    entries = tensor_map.read(proto)
    # the exporter's runner compares every mapped tensor, the default one the outputs only
    traced = Verifier(model, metadata(proto), entries,
                      runner=tensor_map.TracedRunner(model)).verify(proto)
    plain = Verifier(model, metadata(proto), entries).verify(proto)
    assert traced.passed and plain.passed
    assert {c.layer for c in traced.tensors if c.role == "internal"} >= {"conv", "relu"}
    assert not [c for c in plain.tensors if c.role == "internal"]

    class Off(KerasRunner):  # a Keras side 1% off: the verifier judges what the runner gives
        def outputs(self, arrays):
            return [o * np.float32(1.01) for o in super().outputs(arrays)]

    assert not Verifier(model, metadata(proto), runner=Off(model)).verify(proto).passed
    with pytest.raises(ValueError, match="runner runs model"):
        Verifier(model, metadata(proto), runner=KerasRunner(_model([keras.layers.ReLU()], (8,))))
    with pytest.raises(TypeError, match="runner must be a KerasRunner"):
        Verifier(model, metadata(proto), runner=tensor_map)

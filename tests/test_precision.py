"""Low-precision export. INT8: calibrated QDQ graphs judged by SQNR, the fault kinds of quantized graphs,
calibration data in every accepted form, and accuracy on real data (scikit-learn's digits).

Models are tiny and shared across the module (one float export, one quantization each).
"""

import json
import os

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import keras_convx as kc
from faults import INT8_MUTATIONS, first_judged_after, mutate_int8
from helpers import BACKEND, realistic_batch_norm
from keras_convx.exporter import int8, tensor_map
from keras_convx.exporter.calibration_data import (
    CalibrationError, batched, samples, split,
)
from keras_convx.exporter.metadata import read as read_metadata
from keras_convx.verification import quantized
from keras_convx.verification.inputs import metadata
from keras_convx.verification.int8_verifier import verify_int8


def mixed_model():
    """Convs (strided, with ReLU, a BatchNorm that can't fold), a ConvTranspose with as many
    input as output channels, pooling, Add and a Dense head."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = kc.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = kc.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    y = kc.layers.Conv2DTranspose(16, 3, strides=2, padding="same", name="up")(x)
    x = keras.layers.Add()([keras.layers.MaxPooling2D()(y), x])
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(10)(x))
    realistic_batch_norm(model)
    # channel ranges that differ, as trained kernels' do (why weights are quantized per
    # channel): 0.1x to 3x across the ConvTranspose's output channels
    up = model.get_layer("up")
    kernel = keras.ops.convert_to_numpy(up.kernel)  # (kh, kw, out, in)
    gain = np.geomspace(0.1, 3.0, kernel.shape[2])[np.random.default_rng(1).permutation(
        kernel.shape[2])]
    up.kernel.assign(kernel * gain[None, None, :, None])
    return model


# The QDQ graphs and their judge don't depend on the Keras backend beyond the reference
# values: TensorFlow and torch run the INT8-export tests, JAX (the slowest pass) runs
# model.quantize and float16 (suite time; all three in `make bench`'s quant_spread)
qdq = pytest.mark.skipif(BACKEND == "jax", reason="INT8 export tests run on TF and torch "
                         "(backend-independent graphs; suite time)")


def pixels(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 16, 16, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    model = mixed_model()
    data = pixels(60)
    report = kc.export_onnx(model, str(folder / "m.onnx"), precision="int8", calibration=data)
    # the pieces, for the fault kinds: the float graph, its preprocessed form, the QDQ graph
    kc.export_onnx(model, str(folder / "f.onnx"), verify=False)
    proto = onnx.load(str(folder / "f.onnx"))
    io, entries = metadata(proto), tensor_map.read(proto)
    pre = int8.preprocess(proto, str(folder))
    calib, held = split(samples(data, model))
    qdq = int8.quantize(pre, str(folder), int8.feeds(calib, io, [proto.graph.input[0].name]))
    return dict(model=model, path=str(folder / "m.onnx"), report=report, io=io, entries=entries,
                pre=pre, pre_data=pre.SerializeToString(), qdq=onnx.load_from_string(qdq),
                runs=batched(held, 8), data=data, folder=folder)


def _judge(m, qdq):
    return verify_int8(m["model"], qdq, qdq.SerializeToString(), m["io"], m["entries"],
                       m["runs"], m["pre"], m["pre_data"],
                       runner=tensor_map.TracedRunner(m["model"]))


@qdq
def test_int8_export_passes_with_every_tensor_judged(mixed):
    report = mixed["report"]
    quant = report.quantization
    assert report.passed and quant.passed, quant.summary()
    internal = [c for c in quant.checks if c.role == "internal"]
    assert len(internal) >= 8 and all(c.sqnr_float is not None for c in internal)
    # the quantization alone costs far less than the thresholds, and Keras agrees as well
    assert min(c.sqnr_float for c in internal) > quantized.LAYER_SQNR_DB + 10
    assert all(c.drop < quantized.LAYER_DROP_DB or c.sqnr_float > quantized.LAYER_SQNR_DB + 10
               for c in internal)
    assert all(abs(c.sqnr_keras - c.sqnr_float) < 1 for c in internal)
    outputs = [c for c in quant.checks if c.role == "output"]
    assert {c.level for c in outputs} == {"basic", "all"}
    assert all(c.sqnr_keras > 25 and c.cosine > 0.99 and c.top1 >= 0.9 for c in outputs)
    assert quant.calibration == "data" and quant.calibration_samples == 48
    assert quant.held_out_samples == 12


@qdq
def test_int8_file_is_qdq_per_channel_and_says_so(mixed):
    m = onnx.load(mixed["path"])
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") >= 6 and "DequantizeLinear" in ops
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    users = {i: n for n in m.graph.node for i in n.input}
    axes = {}
    for n in m.graph.node:
        user = users.get(n.output[0])
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and user is not None \
                and user.op_type in ("Conv", "ConvTranspose") and user.input[1] == n.output[0]:
            w, scale = inits[n.input[0]], inits[n.input[1]]
            assert w.dtype == np.int8 and scale.size > 1  # symmetric int8, per channel
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            axes[user.op_type] = axis
            assert scale.size == w.shape[axis]
    assert axes == {"Conv": 0, "ConvTranspose": 1}
    meta = read_metadata(m)
    assert meta["keras_convx.export"]["precision"] == "int8"
    assert meta["keras_convx.export"]["quantization"]["method"] == "minmax"
    ver = meta["keras_convx.verification"]
    assert ver["passed"] and ver["precision"] == "int8" and ver["rule"] == quantized.QUANTIZED_RULE
    assert ver["float_graph"]["passed"] and ver["output_sqnr_db"] > 25
    # it runs as a plain onnxruntime model, close to Keras
    session = ort.InferenceSession(mixed["path"], providers=["CPUExecutionProvider"])
    x = pixels(4, seed=9)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = keras.ops.convert_to_numpy(mixed["model"](x))
    assert quantized.sqnr_db(want, got) > 25


@qdq
@pytest.mark.parametrize("kind", sorted(INT8_MUTATIONS))
def test_int8_fault_kinds_fail_and_name_the_layer(mixed, kind):
    qdq, layer = mutate_int8(mixed["qdq"], kind)
    assert layer is not None, f"{kind} found nothing to corrupt"
    report = _judge(mixed, qdq)
    assert not report.passed
    assert report.failing.role == "internal"
    assert report.failing.layer in first_judged_after(qdq, layer, report), (kind, layer)


@qdq
def test_int8_unmutated_graph_passes_the_same_judge(mixed):
    assert _judge(mixed, mixed["qdq"]).passed  # no false failure: the faults are what fails


def test_int8_judge_pure_functions():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 50))
    assert quantized.sqnr_db(ref, ref) == float("inf")
    assert abs(quantized.sqnr_db(ref, ref * 1.1) - 20.0) < 1e-9  # noise = signal / 10
    assert quantized.sqnr_db(np.zeros(5), np.ones(5)) is None
    assert quantized.sqnr_db(ref, ref + np.nan) == float("-inf")
    row = quantized.judge_internal("t", "t", ref, ref, ref * 4, 4)
    assert row.status == "FAIL" and "float graph" in row.reason
    flipped = quantized.judge_output("y", "all", [ref], [-ref])
    assert flipped.status == "FAIL" and "top-1" in flipped.reason and "cosine" in flipped.reason
    # a near-tie broken the other way is no disagreement; a clear winner lost is
    tie = np.array([[1.0, 0.999, 0.0]])
    assert quantized.top1_agreement(tie, np.array([[0.998, 1.0, 0.0]])) == 1.0
    clear = np.array([[3.0, 1.0] + [0.0] * 8])
    assert quantized.top1_agreement(clear, clear + np.eye(10)[1] * 2.1) == 0.0


@qdq
def test_calibration_forms_agree(mixed):
    model, data = mixed["model"], mixed["data"]
    want = samples(data, model)[0]
    batches = [data[i:i + 16] for i in range(0, 60, 16)]
    labels = np.zeros(60)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            return batches[i], labels[:len(batches[i])]

    forms = {"list": batches, "generator": (b for b in batches),
             "xy": [(b, labels[:len(b)]) for b in batches], "pydataset": Batches(),
             "dict": {model.inputs[0].name: data}}
    if BACKEND == "tensorflow":
        import tensorflow as tf

        forms["tf.data"] = tf.data.Dataset.from_tensor_slices((data, labels)).batch(16)
    for name, form in forms.items():
        np.testing.assert_array_equal(samples(form, model)[0], want, err_msg=name)


@qdq
def test_calibration_refusals(mixed, tmp_path):
    model = mixed["model"]
    with pytest.raises(CalibrationError, match="needs calibration data"):
        kc.export_onnx(model, str(tmp_path / "x.onnx"), precision="int8")
    with pytest.raises(CalibrationError, match=r"shape \(4, 8, 8, 3\)"):
        samples(np.zeros((4, 8, 8, 3), np.float32), model)
    with pytest.raises(CalibrationError, match="NaN"):
        samples(np.full((4, 16, 16, 3), np.nan, np.float32), model)
    with pytest.raises(CalibrationError, match="at least 2"):
        samples(pixels(1), model)
    with pytest.raises(ValueError, match="bfloat16.*no bfloat16 kernels"):
        kc.export_onnx(model, str(tmp_path / "x.onnx"), precision="bfloat16")
    with pytest.raises(ValueError, match="precision must be one of"):
        kc.export_onnx(model, str(tmp_path / "x.onnx"), precision="int4")
    assert not os.listdir(tmp_path)  # nothing half-written


@qdq
def test_random_calibration_is_said_and_keep_float(mixed, tmp_path):
    path = str(tmp_path / "r.onnx")
    report = kc.export_onnx(mixed["model"], path, precision="int8", calibration="random",
                            keep_float=["up"])
    quant = report.quantization
    assert quant.passed and quant.calibration.startswith("random")
    assert any("random inputs" in w for w in quant.warnings)
    m = onnx.load(path)
    up = [n for n in m.graph.node if n.op_type == "ConvTranspose"][0]
    producers = {o: n for n in m.graph.node for o in n.output}
    assert up.input[1] not in producers  # its weight is a float initializer, not dequantized
    meta = read_metadata(m)
    assert meta["keras_convx.export"]["quantization"]["kept_float"] == ["up"]
    assert meta["keras_convx.verification"]["calibration"].startswith("random")
    with pytest.raises(ValueError, match="keep_float names \\['nope'\\]"):
        kc.export_onnx(mixed["model"], path, precision="int8", calibration="random",
                       keep_float=["nope"])


@qdq
def test_keep_float_auto_keeps_the_worst_until_the_rule_passes(mixed, tmp_path, monkeypatch):
    internal = [c for c in mixed["report"].quantization.checks if c.role == "internal"]
    worst = max(internal, key=lambda c: c.drop)
    # a rule the plain quantization misses at one layer: auto must keep it in float
    monkeypatch.setattr(quantized, "LAYER_SQNR_DB", 100.0)
    monkeypatch.setattr(quantized, "LAYER_DROP_DB", worst.drop - 1e-3)
    path = str(tmp_path / "a.onnx")
    try:
        report = kc.export_onnx(mixed["model"], path, precision="int8",
                                calibration=mixed["data"], keep_float="auto")
        quant = report.quantization
    except kc.VerificationError as err:  # gave up: at most AUTO_KEEP_MAX layers
        quant = err.report.quantization
        assert len(quant.kept_float) == int8.AUTO_KEEP_MAX
    assert quant.kept_float[0] == worst.layer
    assert all(c.layer != worst.layer for c in quant.checks if c.status == "FAIL")


@qdq
def test_cli_int8_from_npz(mixed, tmp_path, capsys):
    import re

    from keras_convx.cli import main

    mixed["model"].save(str(tmp_path / "m.keras"))
    np.savez(str(tmp_path / "calib.npz"), pixels(30, seed=4))
    out = str(tmp_path / "m.onnx")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "m.keras"), "-o", out, "--precision", "int8",
                 "--calibration", str(tmp_path / "calib.npz"), "--report",
                 str(tmp_path / "r.json")]) == 0
    # the closing line accounts for the INT8 stage: quantization and its verification
    line = next(x for x in capsys.readouterr().out.splitlines() if "total " in x)
    parts = dict((k.strip(), float(v)) for k, v in re.findall(
        r"([a-zA-Z0-9 ]+) (\d+\.\d+) s", line.split("total ")[1]))
    total = float(line.split("total ")[1].split(" s:")[0])
    assert parts["INT8 quantization"] > 0 and parts["INT8 verification"] > 0, line
    # each printed value is rounded to 0.01 s: the parts add up within half that per value
    assert abs(sum(parts.values()) - total) <= 0.005 * (len(parts) + 1) + 1e-9, line
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["precision"] == "int8" and report["quantization"]["passed"]
    assert read_metadata(onnx.load(out))["keras_convx.export"]["precision"] == "int8"


def train_digits():
    """A conv net trained on scikit-learn's handwritten digits (real data, no download);
    returns (model, images, labels), shuffled, the first 1400 used for training."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x.reshape(-1, 8, 8, 1).astype(np.float32)  # pixel values 0..16
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Rescaling(1 / 16)(inp)
    h = kc.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    h = keras.layers.BatchNormalization()(h)
    h = kc.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(10)(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x[:1400], y[:1400], epochs=25, batch_size=64, verbose=0)
    return model, x, y


@pytest.fixture(scope="module")
def digits():
    return train_digits()


@qdq
def test_digits_int8_keeps_accuracy_within_one_point(digits, tmp_path):
    model, x, y = digits
    test_x, test_y = x[1400:], y[1400:]
    float_acc = float(np.mean(np.argmax(keras.ops.convert_to_numpy(model(test_x)), 1) == test_y))
    assert float_acc > 0.9  # a trained model, not a random one
    path = str(tmp_path / "digits.onnx")
    report = kc.export_onnx(model, path, precision="int8", calibration=x[:400])
    assert report.passed
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: test_x})[0]
    int8_acc = float(np.mean(np.argmax(logits, 1) == test_y))
    assert abs(int8_acc - float_acc) <= 0.01, (float_acc, int8_acc)
    _qdq_file_imports_as_float(model, path, test_x, test_y, float_acc)


def _qdq_file_imports_as_float(model, path, test_x, test_y, float_acc):
    """The INT8 file imported back: a float Keras model with the int8 weights dequantized
    exactly, no quantize/dequantize layers, the parameters kept; it verifies against the
    file's float graph and stays close to the original float model."""
    back = kc.import_onnx(path, verify=True)
    kinds = {type(layer).__name__ for layer in back.layers}
    assert not any("Quant" in k for k in kinds), kinds
    quantization = back.import_quantization
    weights = [q for q in quantization if q["weight"]]
    activations = [q for q in quantization if not q["weight"] and q["op"] == "QuantizeLinear"]
    assert len(weights) >= 3 and len(activations) >= 3, quantization
    kernels = [q for q in weights if "kernel" in q["node"]]
    assert len(kernels) == 3 and all(len(q["scale"]) > 1 and q["axis"] is not None
                                     and q["dtype"] == "int8" for q in kernels), kernels
    assert back.import_report.passed and back.import_report.verify.quantization == quantization
    logits = keras.ops.convert_to_numpy(back(test_x))
    expected = keras.ops.convert_to_numpy(model(test_x))
    sqnr = 10 * np.log10(np.sum(expected ** 2) / np.sum((logits - expected) ** 2))
    assert sqnr >= 30, sqnr  # weight rounding and the calibrated clips (measured 38.4 dB)
    acc = float(np.mean(np.argmax(logits, 1) == test_y))
    assert abs(acc - float_acc) <= 0.01, (float_acc, acc)


def hot_model(gain):
    """A conv whose outputs are scaled by `gain`, then rescaled back by a Rescaling."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((8, 8, 3))
    x = kc.layers.Conv2D(4, 3, padding="same", name="hot")(inp)
    x = keras.layers.Rescaling(1 / gain)(x)
    model = keras.Model(inp, kc.layers.Conv2D(4, 1, name="after")(x))
    hot = model.get_layer("hot")
    hot.kernel.assign(keras.ops.convert_to_numpy(hot.kernel) * gain)
    hot.bias.assign(np.full(4, gain * 0.1, np.float32))
    return model


@pytest.mark.parametrize("gain, why", [(1e5, "past float16's 65504"),
                                       (1e-7, "subnormals, flushed to zero")])
def test_float16_keeps_out_of_range_layers_float32(tmp_path, gain, why):
    from onnx.reference import ReferenceEvaluator

    model = hot_model(gain)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    hot = np.abs(keras.ops.convert_to_numpy(model.get_layer("hot")(x)))
    assert hot.max() > 65504 if gain > 1 else hot.max() < 2.0 ** -14
    path = str(tmp_path / "h.onnx")
    with pytest.deprecated_call(match=r"fp16=True\) is deprecated: pass precision='float16'"):
        report = kc.export_onnx(model, path, fp16=True)  # the old alias of precision="float16"
    assert report.passed and report.precision == "float16"
    assert [k["layer"] for k in report.float16_kept] == ["hot"]
    assert why in report.float16_kept[0]["reason"]
    assert any("hot (hot/Conv) kept in float32" in w for w in report.verify.warnings)
    m = onnx.load(path)
    meta = read_metadata(m)["keras_convx.export"]
    assert meta["precision"] == "float16" and meta["float16_kept_float32"][0]["layer"] == "hot"
    inits = {t.name: t.data_type for t in m.graph.initializer}
    assert inits["hot/kernel"] == onnx.TensorProto.FLOAT
    assert inits["after/kernel"] == onnx.TensorProto.FLOAT16  # the rest is float16
    # onnx's reference evaluator computes float16 nodes in float16 (NumPy), as a GPU
    # would: finite, and close to Keras
    got = ReferenceEvaluator(m).run(None, {m.graph.input[0].name: x})[0]
    want = keras.ops.convert_to_numpy(model(x))
    assert np.isfinite(got).all()
    assert np.max(np.abs(got - want)) < 1e-2 * np.max(np.abs(want))


def offset_model(level):
    """A conv whose outputs sit near `level` (a bias of 0.9 * level, the kernel moving
    them by about a tenth of it), rescaled back to ~1 by a Rescaling."""
    keras.utils.set_random_seed(6)
    inp = keras.Input((8, 8, 3))
    x = kc.layers.Conv2D(4, 3, padding="same", name="hot")(inp)
    x = keras.layers.Rescaling(1 / level)(x)
    model = keras.Model(inp, kc.layers.Conv2D(4, 1, name="after")(x))
    hot = model.get_layer("hot")
    kernel = keras.ops.convert_to_numpy(hot.kernel)
    hot.kernel.assign(kernel * (0.1 * level / 4))
    hot.bias.assign(np.full(4, 0.9 * level, np.float32))
    return model


@pytest.mark.parametrize("level, headroom, kept", [(45000, None, True), (300, None, False),
                                                   (6000, None, True), (6000, 1, False)])
def test_float16_headroom(tmp_path, level, headroom, kept):
    """A conv at ~45,000 on the drawn inputs fits float16 there, but data the check did not
    draw goes further (a user's reached 67,700 where drawn ones gave 47,000): within the
    16x headroom it stays float32, its max and margin in the report; at ~300 it goes
    float16; fp16_headroom=1 keeps only what overflows (at ~6,000 here: at ~45,000 the
    float16 graph then fails verification against Keras's own float16, 0.7x its scale)."""
    model = offset_model(level)
    report = kc.export_onnx(model, str(tmp_path / "h.onnx"), precision="float16",
                            fp16_headroom=headroom)
    assert report.passed
    rows = [k for k in report.float16_kept if k["layer"] == "hot"]
    assert bool(rows) == kept, report.float16_kept
    if kept:
        assert level / 2 < rows[0]["max_abs"] < 2 * level and \
            rows[0]["margin"] == pytest.approx(65504 / rows[0]["max_abs"])
        assert "within the 16x headroom" in rows[0]["reason"]
    inits = {t.name: t.data_type for t in onnx.load(str(tmp_path / "h.onnx")).graph.initializer}
    assert inits["hot/kernel"] == (onnx.TensorProto.FLOAT if kept else onnx.TensorProto.FLOAT16)


def test_float16_headroom_is_checked():
    with pytest.raises(ValueError, match="fp16_headroom must be a number >= 1"):
        kc.export_onnx(offset_model(300), "never.onnx", precision="float16",
                       fp16_headroom=0.5)
    with pytest.raises(ValueError, match="fp16_headroom applies to precision='float16'"):
        kc.export_onnx(offset_model(300), "never.onnx", fp16_headroom=4)
    assert not os.path.exists("never.onnx")


# --- model.quantize("int8") for the convolution family ------------------------------

def family_model():
    keras.utils.set_random_seed(11)
    inp = keras.Input((10, 10, 4))
    x = kc.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inp)
    x = kc.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = kc.layers.SeparableConv2D(8, 3, padding="same", padding_mode="reflect", name="sep")(x)
    x = kc.layers.Conv2DTranspose(6, 3, strides=2, padding="same", name="up")(x)
    x = keras.layers.Reshape((20 * 20, 6))(x)
    x = kc.layers.Conv1D(5, 3, padding="same", name="c1")(x)
    y = kc.layers.Conv3D(3, 2, name="c3")(keras.layers.Reshape((20, 20, 5, 1))(x))
    return keras.Model(inp, y)


@pytest.fixture(scope="module")
def quantized_family():
    model = family_model()
    x = np.random.default_rng(2).standard_normal((2, 10, 10, 4)).astype(np.float32)
    before = keras.ops.convert_to_numpy(model(x))
    model.quantize("int8")
    return model, x, before


def test_model_quantize_int8_covers_the_conv_family(quantized_family):
    model, x, before = quantized_family
    # the kernels and their output-channel axes (from the end): a conv's last axis,
    # depthwise's (in, multiplier), a transposed conv's filters
    expected = {"conv": {"kernel": [-1]}, "dw": {"kernel": [-2, -1]},
                "sep": {"depthwise_kernel": [-2, -1], "pointwise_kernel": [-1]},
                "up": {"kernel": [-2]}, "c1": {"kernel": [-1]}, "c3": {"kernel": [-1]}}
    for name, kernels in expected.items():
        layer = model.get_layer(name)
        assert layer.dtype_policy.name == "int8_from_float32", name
        weights = {w.name: w for w in layer.weights}
        for k, axes in kernels.items():
            assert keras.backend.standardize_dtype(weights[k].dtype) == "int8"
            scale = keras.ops.convert_to_numpy(weights[k + "_scale"])
            shape = tuple(weights[k].shape)
            n = len(shape)
            assert scale.shape == tuple(d if a - n in axes else 1 for a, d in enumerate(shape)), \
                (name, k, scale.shape)
    after = keras.ops.convert_to_numpy(model(x))
    assert 25 < quantized.sqnr_db(before, after) < 80  # quantized, and close


def test_int8_conv_matches_a_float64_oracle(quantized_family):
    """conv: inputs rounded per position over channels, the int8 kernel dequantized."""
    import oracle

    model, x, _ = quantized_family
    layer = model.get_layer("conv")
    weights = {w.name: keras.ops.convert_to_numpy(w) for w in layer.weights}
    xs = x.astype(np.float64)
    scale = 127.0 / (np.max(np.abs(x), axis=-1, keepdims=True).astype(np.float64) + 1e-7)
    xq = np.clip(np.round(xs * scale), -127, 127) / scale
    w = weights["kernel"].astype(np.float64) / weights["kernel_scale"]
    want = np.maximum(oracle.conv(xq, w, (1, 1), ((1, 1), (1, 1)), (1, 1)) + weights["bias"], 0)
    got = keras.ops.convert_to_numpy(layer(x))
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))


def test_int8_layers_save_load_and_config(quantized_family, tmp_path):
    model, x, _ = quantized_family
    path = str(tmp_path / "q.keras")
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(x)),
                                  keras.ops.convert_to_numpy(model(x)))
    assert again.get_layer("sep").dtype_policy.name == "int8_from_float32"
    layer = model.get_layer("up")
    clone = type(layer).from_config(layer.get_config())
    clone.build((None, 10, 10, 8))
    assert [w.name for w in clone.weights] == [w.name for w in layer.weights]
    if BACKEND == "torch":  # a fresh process: the saved layers register and load alone
        import subprocess
        import sys

        np.save(str(tmp_path / "x.npy"), x)
        np.save(str(tmp_path / "y.npy"), keras.ops.convert_to_numpy(model(x)))
        code = ("import numpy as np, keras; import keras_convx\n"
                f"m = keras.saving.load_model({path!r})\n"
                f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
                f"y = keras.ops.convert_to_numpy(m(x))\n"
                f"assert np.array_equal(y, np.load({str(tmp_path / 'y.npy')!r}))\n")
        subprocess.run([sys.executable, "-c", code], check=True,
                       env={**os.environ, "KERAS_BACKEND": BACKEND})


def test_int8_layers_refuse_what_they_do_not_support():
    layer = kc.layers.Conv2D(4, 3)
    layer.build((None, 8, 8, 3))
    with pytest.raises(NotImplementedError, match="mode='int8'"):
        layer.quantize("int4")
    lora = kc.layers.Conv2D(4, 3, lora_rank=2)
    lora.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match="LoRA"):
        lora.quantize("int8")


def test_int8_layers_export_as_qdq_and_verify(quantized_family, tmp_path):
    model, x, _ = quantized_family
    path = str(tmp_path / "q.onnx")
    report = kc.export_onnx(model, path, verify=kc.VerifyOptions(samples=[[x]]))
    assert report.passed, report.verify.summary()
    m = onnx.load(path)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    dqs = [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dqs) == 7  # one per int8 kernel
    conv = model.get_layer("conv")
    w = next(n for n in dqs if n.name.startswith("conv/"))
    np.testing.assert_array_equal(inits[w.input[0]].transpose(2, 3, 1, 0),
                                  keras.ops.convert_to_numpy(conv._kernel))
    scale = keras.ops.convert_to_numpy(conv.kernel_scale).ravel()
    np.testing.assert_array_equal(inits[w.input[1]], np.float32(1) / scale)
    # a scale 2% off at one layer: that layer, fed the graph's own inputs, no longer
    # matches Keras, and verification says where
    bad = onnx.load(path)
    target = next(t for t in bad.graph.initializer if t.name == w.input[1])
    target.CopyFrom(onnx.numpy_helper.from_array(inits[w.input[1]] * 1.02, w.input[1]))
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    verdict = kc.verify_onnx(model, str(tmp_path / "bad.onnx"), samples=[[x]])
    assert not verdict.passed and verdict.diagnosis[0].layer == "conv"


def test_digits_model_quantize_keeps_accuracy_and_exports(digits, tmp_path):
    model, x, y = digits
    test_x, test_y = x[1400:], y[1400:]
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.quantize("int8")
    acc = {name: float(np.mean(np.argmax(keras.ops.convert_to_numpy(m(test_x)), 1) == test_y))
           for name, m in (("float", model), ("int8", clone))}
    assert abs(acc["int8"] - acc["float"]) <= 0.01, acc
    report = kc.export_onnx(clone, str(tmp_path / "d.onnx"),
                            verify=kc.VerifyOptions(samples=[[test_x[:16]]]))
    assert report.passed


@qdq
def test_verify_onnx_rejudges_an_int8_file_by_the_quantized_rule(mixed, tmp_path, capsys):
    from keras_convx.cli import main
    from keras_convx.verification.quantized import QuantReport

    model, path = mixed["model"], mixed["path"]
    held = [pixels(8, seed=21)]
    report = kc.verify_onnx(model, path, samples=[held])
    # the one Report type, its INT8 section a QuantReport
    assert isinstance(report, kc.Report) and isinstance(report.quantization, QuantReport)
    assert report.direction == "verify" and report.verify is None and report.passed, \
        report.summary()
    assert report.calibration is None and not report.warnings  # real samples: no warning
    bad, layer = mutate_int8(onnx.load(path), "weight_scale_x4")
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    verdict = kc.verify_onnx(model, str(tmp_path / "bad.onnx"), samples=[held])
    assert not verdict.passed and verdict.failing.layer in first_judged_after(bad, layer,
                                                                              verdict)
    # the CLI prints the INT8 summary from the file alone
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert "verification (INT8): passed" in out and "top-1 agreement" in out
    assert "latency: int8 " in out and "ms a run" in out  # measured at export, kept in the file
    # the CLI re-verifies it too (no float graph then: layers judged against Keras)
    model.save(str(tmp_path / "m.keras"))
    code = main(["verify", path, str(tmp_path / "m.keras")])
    out, err = capsys.readouterr()
    assert code in (0, 1) and "error" not in err, out + err
    assert "INT8" in out


@qdq
def test_calibration_from_an_image_folder(mixed, tmp_path):
    from keras_convx.exporter.calibration_data import load

    rng = np.random.default_rng(5)
    for i in range(3):  # other sizes: resized to the model's input
        keras.utils.save_img(str(tmp_path / f"{i}.png"),
                             rng.integers(0, 256, (20 + i, 24, 3)).astype(np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    arrays = load(str(tmp_path), mixed["model"])
    assert arrays.shape == (3, 16, 16, 3) and arrays.max() > 1.0  # pixels, 0..255
    with pytest.raises(CalibrationError, match="neither a .npz file nor a folder"):
        load(str(tmp_path / "notes.txt"), mixed["model"])


@qdq
@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_other_calibration_methods(mixed, digits, tmp_path, method):
    model, x, _ = digits
    path = str(tmp_path / f"{method}.onnx")
    report = kc.export_onnx(model, path, precision="int8", calibration=x[:200],
                            calibration_method=method)
    assert report.passed and report.quantization.method == method
    meta = read_metadata(onnx.load(path))["keras_convx.export"]["quantization"]
    assert meta["method"] == method
    # with an outlier among the calibration samples (one pixel of one sample), MinMax
    # stretches the first activation's range to it; entropy and percentile do not
    data = mixed["data"].copy()
    data[0, 0, 0] *= 40
    feeds = int8.feeds([data], mixed["io"], [mixed["pre"].graph.input[0].name])

    rescaling = next(layer.name for layer in mixed["model"].layers
                     if isinstance(layer, keras.layers.Rescaling))  # "rescaling_<n>" in a suite

    def input_scale(how):
        qdq = onnx.load_from_string(int8.quantize(mixed["pre"], str(tmp_path), feeds, how))
        return float(next(onnx.numpy_helper.to_array(t) for t in qdq.graph.initializer
                          if t.name == f"{rescaling}/Mul:0_scale"))

    # (percentile 99.999 drops one value in 10^5; these 46,080 values keep it, near the top)
    assert input_scale(method) < (0.5 if method == "entropy" else 1.0) * input_scale("minmax")


def test_calibration_method_refused():
    with pytest.raises(ValueError, match="calibration_method must be one of"):
        int8.quantize(onnx.ModelProto(), "/tmp", [], method="kl")


def test_float16_graphs_are_also_compared_with_keras_in_float16(tmp_path):
    model = mixed_model()
    path = str(tmp_path / "h.onnx")
    report = kc.export_onnx(model, path, precision="float16")
    rows = [c for c in report.verify.checks if c.tensor.endswith("(Keras mixed_float16)")]
    assert report.passed and rows and all(c.status == "pass" for c in rows)
    # a weight 5% off: the float16 reference sees it too
    bad = onnx.load(path)
    weight = next(t for t in bad.graph.initializer if t.name.endswith("up/kernel"))
    weight.CopyFrom(onnx.numpy_helper.from_array(
        onnx.numpy_helper.to_array(weight) * np.float16(1.05), weight.name))
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    verdict = kc.verify_onnx(model, str(tmp_path / "bad.onnx"))
    assert any(c.status == "FAIL" for c in verdict.checks
               if c.tensor.endswith("(Keras mixed_float16)"))

"""INT8 export of what real nets hold (issue 31, item 4): PyTorch's ceil_mode max pooling
(imported as a Pad filling with the lowest float32, then a valid MaxPool), the blame put on
the layer whose own error is large rather than on a sensitive layer downstream of it, and
`keep_float="auto"` saying what it kept and why the rule still fails.
"""

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import keras_convx as kc
from helpers import BACKEND
from keras_convx.exporter import int8
from keras_convx.verification import quantized

pytestmark = pytest.mark.skipif(BACKEND == "jax", reason="INT8 export tests run on TF and "
                                "torch (backend-independent graphs; suite time)")

# a quantization scale no activation of these nets needs: the ceil_mode pad's was ~1.3e36
HUGE_SCALE = 1e6


def ceil_mode_graph():
    """Conv -> Relu -> MaxPool(3, stride 2, ceil_mode=1) -> Conv on 14x14: the pool's last
    window hangs over the edge (7 outputs where floor would give 6)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w1"),
               numpy_helper.from_array(rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2],
                              ceil_mode=1),
             helper.make_node("Conv", ["p1", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "ceil_mode_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                               [1, 3, 14, 14])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 7, 7])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _scales(proto):
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    return [float(np.max(inits[n.input[1]])) for n in proto.graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in inits]


def test_ceil_mode_max_pool_exports_as_one_max_pool_and_quantizes(tmp_path):
    model = kc.import_onnx(ceil_mode_graph(), verify=False)
    pad = next(layer for layer in model.layers if "Padding" in type(layer).__name__)
    assert pad.constant_value < -1e38  # what the importer builds: the lowest float32
    report = kc.export_onnx(model, str(tmp_path / "f.onnx"))
    assert report.passed
    graph = onnx.load(str(tmp_path / "f.onnx")).graph
    # the pad is the MaxPool's own (ignored cells), no tensor holds -3.4e38
    assert [n.op_type for n in graph.node].count("Pad") == 0
    pool = next(n for n in graph.node if n.op_type == "MaxPool")
    assert list(helper.get_attribute_value(
        next(a for a in pool.attribute if a.name == "pads"))) == [0, 0, 1, 1]
    data = np.random.default_rng(1).normal(0, 1, (40, 14, 14, 3)).astype(np.float32)
    path = str(tmp_path / "q.onnx")
    report = kc.export_onnx(model, path, precision="int8", calibration=data)
    assert report.passed and report.quantization.passed, report.quantization.summary()
    assert max(_scales(onnx.load(path))) < HUGE_SCALE
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: data[-8:]})[0]
    assert np.abs(got).max() > 0
    want = keras.ops.convert_to_numpy(model(data[-8:]))
    assert quantized.sqnr_db(want, got) > quantized.OUTPUT_SQNR_DB


def sensitive_net():
    """`upstream` is badly quantized: each output channel has one weight 100x the others,
    on an input channel that carries almost nothing, so its per-channel scale rounds the
    other weights coarsely. Its output sits on a large offset (bias 2), so its own SQNR
    stays above 15 dB; the BatchNormalization after it removes the offset and divides by
    a small deviation: it amplifies that error below 15 dB (a HardSwish follows, as in
    MobileNetV3)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 4))
    x = kc.layers.Conv2D(8, 3, padding="same", activation="relu", name="upstream",
                         kernel_initializer=keras.initializers.RandomNormal(0, 0.1))(inp)
    x = keras.layers.BatchNormalization(name="sensitive")(x)
    x = keras.layers.Activation("hard_swish", name="hard_swish")(x)
    model = keras.Model(inp, kc.layers.Conv2D(4, 1, name="head")(x))
    up = model.get_layer("upstream")
    kernel = keras.ops.convert_to_numpy(up.kernel)
    kernel[1, 1, 3, :] = 10.0
    up.kernel.assign(kernel)
    up.bias.assign(np.full(8, 2.0, np.float32))
    data = np.random.default_rng(0).normal(0, 1, (40, 8, 8, 4)).astype(np.float32)
    data[..., 3] *= 0.01
    features = keras.ops.convert_to_numpy(keras.Model(inp, up.output)(data))
    model.get_layer("sensitive").set_weights([np.ones(8), np.zeros(8), features.mean((0, 1, 2)),
                                              features.var((0, 1, 2))])
    return model, data


def _quant(export):
    try:
        return export().quantization
    except kc.VerificationError as err:
        return err.report.quantization


def test_int8_blame_names_the_layer_whose_own_error_is_large(tmp_path):
    model, data = sensitive_net()
    quant = _quant(lambda: kc.export_onnx(model, str(tmp_path / "m.onnx"), precision="int8",
                                          calibration=data))
    assert quant.failing.layer == "upstream"  # was: "sensitive"
    rows = {c.layer: c for c in quant.checks if c.role == "internal"}
    up, bn = rows["upstream"], rows["sensitive"]
    # measured: upstream 23.9 dB (23.9 dB fed the float inputs), the BatchNormalization
    # 11.1 dB, 40.9 dB fed the float inputs: 12.8 dB below its input, none of it its own
    assert up.sqnr_float > quantized.LAYER_SQNR_DB > bn.sqnr_float
    assert bn.sqnr_inputs - bn.sqnr_float >= quantized.LAYER_DROP_DB
    assert bn.sqnr_own > 35 and bn.drop < 1 and bn.status == "pass"
    assert up.sqnr_own < 30 and up.status == "FAIL" and "sensitive" in up.reason
    assert [c.layer for c in quant.worst(1)] == ["upstream"]


def test_keep_float_auto_repairs_the_blamed_layer(tmp_path):
    model, data = sensitive_net()
    report = kc.export_onnx(model, str(tmp_path / "m.onnx"), precision="int8",
                            calibration=data, keep_float="auto")
    quant = report.quantization
    assert report.passed and quant.kept_float == ["upstream"] and quant.auto is None


def test_keep_float_auto_says_what_it_kept_and_why_it_still_fails(tmp_path, monkeypatch):
    model, data = sensitive_net()
    # outputs no quantization can reach: auto keeps the worst own errors, then stops
    monkeypatch.setattr(quantized, "OUTPUT_SQNR_DB", 200.0)
    monkeypatch.setattr(int8, "AUTO_KEEP_MAX", 2)
    with pytest.raises(kc.VerificationError) as caught:
        kc.export_onnx(model, str(tmp_path / "m.onnx"), precision="int8", calibration=data,
                       keep_float="auto")
    quant = caught.value.report.quantization
    assert quant.kept_float[0] == "upstream" and len(quant.kept_float) == 2
    message = str(caught.value)
    assert f"keep_float='auto' kept {', '.join(quant.kept_float)} in float32" in message
    assert "the most it keeps (2)" in message and "before: internal upstream" in message
    assert "outputs fail with no layer to blame" in message
    assert quant.auto in message and quant.auto in quant.to_json()


def objectness_net():
    """A detector's objectness head: a conv, a Sigmoid on logits near -8 (a sparse map,
    almost all of it below one uint8 step), as YOLOX's; the conv before it has a SiLU
    (Sigmoid -> Mul), as YOLOX's blocks."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    x = kc.layers.Conv2D(8, 3, padding="same", activation="silu", name="block")(inp)
    logits = kc.layers.Conv2D(1, 1, name="objectness",
                              bias_initializer=keras.initializers.Constant(-8.0))(x)
    prob = keras.layers.Activation("sigmoid", name="prob")(logits)
    return keras.Model(inp, keras.layers.Concatenate(name="head")([x, prob]))


def test_int8_sparse_probability_map_is_judged_by_its_rounding(tmp_path):
    """Measured on ddddocr's YOLOX: its objectness Sigmoid at 5.6 dB SQNR, whose own error
    is 0.03x uint8 rounding's, failed the rule while the boxes agreed 13/13; and its
    teacher-forced graph did not run (a tensor mapped twice got two feeds), so no layer's
    own error was measured at all."""
    model = objectness_net()
    data = np.random.default_rng(2).normal(0, 1, (40, 8, 8, 3)).astype(np.float32)
    quant = _quant(lambda: kc.export_onnx(model, str(tmp_path / "m.onnx"), precision="int8",
                                          calibration=data))
    rows = [c for c in quant.checks if c.role == "internal"]
    assert rows and all(c.sqnr_own is not None for c in rows if c.status != "uninformative")
    prob = next(c for c in rows if c.layer == "prob" and "before" not in c.tensor)
    assert prob.rounding and prob.status == "pass", prob.reason  # its error is rounding
    assert quant.passed, quant.summary()


def test_bounded_rounding_rule_against_faults():
    """`judge_internal` on a Sigmoid's values: uint8 rounding over [0, 1] passes however
    sparse the map; a map read 2x high fails, as does a sparse map shifted by 0.01 (2.5
    steps) and read 10% high."""
    rng = np.random.default_rng(0)
    sparse = 1 / (1 + np.exp(-rng.normal(-8, 1.5, (4, 16, 16, 1))))
    spread = rng.uniform(0, 1, (4, 16, 16, 1))

    def rounded(v, step=1 / 255):
        return np.round(v / step) * step

    def judge(ref, forced, bounded=1.0):
        rms = float(np.sqrt(np.mean((ref - forced) ** 2)))
        return quantized.judge_internal("prob", "prob", ref, ref, forced, 4, 40.0,
                                        sqnr_own=quantized.sqnr_db(ref, forced),
                                        own_rms=rms, bounded=bounded)

    assert judge(sparse, rounded(sparse)).status == "pass"
    assert judge(sparse, rounded(sparse), bounded=None).status == "FAIL"  # SQNR alone
    assert judge(spread, rounded(spread)).status == "pass"
    # a grid 4x too coarse still holds 42 dB of a spread-out map: no fault by SQNR either;
    # a scale read 2x wrong is one
    assert judge(spread, rounded(spread, 4 / 255)).status == "pass"
    assert judge(spread, rounded(np.clip(spread * 2, 0, 1))).status == "FAIL"
    assert judge(sparse, rounded(np.clip(sparse * 1.1 + 0.01, 0, 1))).status == "FAIL"

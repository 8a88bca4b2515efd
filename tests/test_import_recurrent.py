"""ONNX LSTM and GRU import (issue 35): golden graphs against onnxruntime, forward, reverse
and bidirectional, batch-major (layout 1) and time-major behind PyTorch's Transposes
(layout 0), the gate orders and GRU's linear_before_reset; what Keras's layers can't
compute is refused by name."""

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import keras_convx as kc
from keras_convx.importer import OnnxImportError

SEQ, INPUT, HIDDEN = 6, 4, 5
TOL = 1e-5  # of scale: float32 recurrences over 6 steps, measured <= 1.3e-6


def recurrent_graph(op, direction="forward", layout=1, states=True, batch="N", seed=0,
                    lbr=0, extra=None, squeeze=False, **attrs):
    """x (batch, seq, input) -> [Transpose to time-major] -> op -> outputs batch-first."""
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    gates = 4 if op == "LSTM" else 3
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in (
        (rng.standard_normal((dirs, gates * HIDDEN, INPUT)) * 0.5, "W"),
        (rng.standard_normal((dirs, gates * HIDDEN, HIDDEN)) * 0.5, "R"),
        (rng.standard_normal((dirs, 2 * gates * HIDDEN)) * 0.5, "B"))]
    nodes, x = [], "x"
    if layout == 0:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_tm"], perm=[1, 0, 2]))
        x = "x_tm"
    inputs = [x, "W", "R", "B"]
    for name, value in (extra or {}).items():  # optional inputs by position name
        position = {"sequence_lens": 4, "initial_h": 5, "initial_c": 6, "P": 7}[name]
        inputs += [""] * (position + 1 - len(inputs))
        inputs[position] = name
        inits.append(numpy_helper.from_array(np.asarray(value), name))
    names = ["Y", "Y_h", "Y_c"][:(3 if op == "LSTM" else 2) if states else 1]
    if op == "GRU":
        attrs["linear_before_reset"] = lbr
    nodes.append(helper.make_node(op, inputs, names, hidden_size=HIDDEN, direction=direction,
                                  layout=layout, **attrs))
    outputs = []
    if layout == 0 and squeeze:  # PyTorch's single direction: drop the directions axis
        nodes += [helper.make_node("Squeeze", ["Y", "axes1"], ["Y_s"]),
                  helper.make_node("Transpose", ["Y_s"], ["y"], perm=[1, 0, 2])]
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes1"))
        outputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                     [batch, SEQ, HIDDEN]))
    elif layout == 0:
        nodes.append(helper.make_node("Transpose", ["Y"], ["y"], perm=[2, 0, 1, 3]))
        outputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                     [batch, SEQ, dirs, HIDDEN]))
    else:
        outputs.append(helper.make_tensor_value_info("Y", TensorProto.FLOAT,
                                                     [batch, SEQ, dirs, HIDDEN]))
    for state in names[1:]:
        if layout == 0:
            nodes.append(helper.make_node("Transpose", [state], [state.lower()],
                                          perm=[1, 0, 2]))
            state = state.lower()
        outputs.append(helper.make_tensor_value_info(state, TensorProto.FLOAT,
                                                     [batch, dirs, HIDDEN]))
    graph = helper.make_graph(
        nodes, f"{op.lower()}_{direction}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, SEQ, INPUT])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def _against_onnxruntime(model, proto):
    """The model against onnxruntime, or against onnx's reference evaluator for
    batch-major (layout 1) graphs, which onnxruntime's CPU kernels refuse."""
    x = np.random.default_rng(1).standard_normal((2, SEQ, INPUT)).astype(np.float32)
    if any(a.name == "layout" and a.i == 1 for n in proto.graph.node for a in n.attribute):
        from onnx.reference import ReferenceEvaluator

        expected = ReferenceEvaluator(proto).run(None, {"x": x})
    else:
        session = ort.InferenceSession(proto.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        expected = session.run(None, {"x": x})
    got = model(x)
    got = got if isinstance(got, (list, tuple)) else [got]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        g = np.asarray(keras.ops.convert_to_numpy(g))
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, atol=TOL * np.abs(e).max())


CASES = [dict(op=op, direction=d, layout=lay, states=s)
         for op in ("LSTM", "GRU") for d in ("forward", "reverse", "bidirectional")
         for lay in (0, 1) for s in (True, False)]
CASES += [dict(op="GRU", direction=d, layout=lay, lbr=1)
          for d in ("forward", "bidirectional") for lay in (0, 1)]
CASES += [dict(op="LSTM", layout=0, states=False, squeeze=True),
          dict(op="GRU", layout=0, states=False, squeeze=True, lbr=1),
          dict(op="LSTM", layout=1, batch=2, direction="bidirectional"),
          dict(op="LSTM", layout=1, extra={
              "sequence_lens": np.full((2,), SEQ, np.int32),
              "initial_h": np.zeros((1, 2, HIDDEN), np.float32),
              "initial_c": np.zeros((1, 2, HIDDEN), np.float32)}, batch=2),
          dict(op="LSTM", extra={"P": np.zeros((1, 3 * HIDDEN), np.float32)},
               activations=["Sigmoid", "Tanh", "Tanh"])]


def _case_id(case):
    parts = [case["op"], case.get("direction", "forward"), f"layout{case.get('layout', 1)}"]
    parts += [k for k in ("squeeze", "extra") if case.get(k)]
    parts += ["lbr"] if case.get("lbr") else []
    parts += ["no-states"] if case.get("states") is False else []
    parts += ["static"] if case.get("batch") == 2 else []
    return "-".join(parts)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_recurrent_import_matches_onnxruntime(case):
    proto = recurrent_graph(**case)
    # verified: every tensor against onnxruntime (which runs time-major graphs only)
    model = kc.import_onnx(proto, verify=case.get("layout", 1) == 0)
    if case.get("layout", 1) == 0:
        assert model.import_report.passed, model.import_report.summary()
    kinds = {type(layer).__name__ for layer in model.layers}
    assert kinds & {"LSTM", "GRU", "Bidirectional"}
    # a time-major graph moved no data: no Permute around the recurrent layer
    assert "Permute" not in kinds
    _against_onnxruntime(model, proto)


def test_gate_order_is_what_the_match_rests_on():
    """Keras's gates in ONNX's order (no remapping) must fail: the test above can tell."""
    from keras_convx.importer.conversions import recurrent

    proto = recurrent_graph("LSTM")
    saved = recurrent._LSTM_GATES
    recurrent._LSTM_GATES = (0, 1, 2, 3)
    try:
        model = kc.import_onnx(proto, verify=False)
    finally:
        recurrent._LSTM_GATES = saved
    with pytest.raises(AssertionError):
        _against_onnxruntime(model, proto)


@pytest.mark.parametrize("case, message", [
    (dict(op="LSTM", activations=["Sigmoid", "Relu", "Tanh"]), "activations="),
    (dict(op="LSTM", clip=3.0), "clip=3.0"),
    (dict(op="LSTM", extra={"P": np.ones((1, 3 * HIDDEN), np.float32)}), "peephole"),
    (dict(op="LSTM", batch=2, extra={"sequence_lens": np.array([SEQ, 3], np.int32)}),
     "sequence_lens=\\[6, 3\\]"),
    (dict(op="GRU", batch=2, extra={"initial_h": np.ones((1, 2, HIDDEN), np.float32)}),
     "a constant non-zero state is not imported"),
    (dict(op="LSTM", input_forget=1), "input_forget=1"),
], ids=["activation", "clip", "peepholes", "sequence-lens", "initial-state", "input-forget"])
def test_what_keras_cannot_compute_is_refused_by_name(case, message):
    with pytest.raises(OnnxImportError, match=message):
        kc.import_onnx(recurrent_graph(**case))


def test_a_moved_batch_reaching_another_op_is_refused_by_name():
    """Time-major tensors go to LSTM/GRU (and Squeeze/Transpose) only: a Relu on one would
    be fine, but ops that index axes would take the batch for axis 0."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", SEQ, INPUT])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
         helper.make_node("ReduceMax", ["t"], ["y"], axes=[2], keepdims=0)],
        "moved", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    with pytest.raises(OnnxImportError, match="batch on ONNX axis 1"):
        kc.import_onnx(proto)

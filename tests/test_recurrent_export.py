"""Native export of Keras's recurrent layers (issue 35): LSTM, GRU and Bidirectional lowered
to ONNX's LSTM and GRU ops on every backend, verified tensor by tensor against Keras, with
what ONNX can't express refused by name, and a wrong gate order caught by verification."""

import os

import keras
import numpy as np
import onnx
import pytest

import keras_convx as kc
from keras_convx.exporter.export import UnsupportedModel

L = keras.layers


def crnn(kind="lstm", seq=True, back=False, bidi=None, state=False, seed=0):
    """A small conv front end -> recurrent layer -> Dense head (a CRNN's shape)."""
    x = keras.Input((10, 6), name="x")
    h = kc.Conv1D(8, 3, padding="same", name="conv")(x)
    rnn = L.LSTM if kind == "lstm" else L.GRU
    if bidi == "none":  # merge_mode=None: the two directions' outputs
        outs = L.Bidirectional(rnn(5, return_sequences=seq), merge_mode=None, name="rnn")(h)
        outs = [L.Dense(3, name=f"head{i}")(o) for i, o in enumerate(outs)]
    elif bidi:
        outs = L.Bidirectional(rnn(5, return_sequences=seq), merge_mode=bidi, name="rnn")(h)
    elif state:
        outs = rnn(5, return_sequences=seq, go_backwards=back, return_state=True, name="rnn")(h)
        outs = [L.Dense(3, name="head")(outs[0])] + list(outs[1:])
    else:
        outs = L.Dense(3, name="head")(
            rnn(5, return_sequences=seq, go_backwards=back, name="rnn")(h))
    model = keras.Model(x, outs)
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.5, tuple(w.shape)).astype("float32"))
    return model


CASES = {
    "lstm-sequence": dict(),
    "lstm-backwards-last": dict(back=True, seq=False),
    "gru-backwards-sequence": dict(kind="gru", back=True),
    "gru-reset-before": dict(kind="gru"),
    "bidirectional-lstm-concat": dict(bidi="concat"),
    "bidirectional-gru-ave-last": dict(kind="gru", bidi="ave", seq=False),
    "lstm-states": dict(state=True),
    "bidirectional-gru-unmerged": dict(kind="gru", bidi="none"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_recurrent_layers_export_natively_and_verify(name, tmp_path):
    model = crnn(**CASES[name])
    if name == "gru-reset-before":  # reset_after=False: ONNX's linear_before_reset=0
        x = keras.Input((10, 6), name="x")
        h = kc.Conv1D(8, 3, padding="same", name="conv")(x)
        h = L.GRU(5, return_sequences=True, reset_after=False, name="rnn")(h)
        model = keras.Model(x, L.Dense(3, name="head")(h))
        rng = np.random.default_rng(1)
        for w in model.weights:
            w.assign(rng.normal(0, 0.5, tuple(w.shape)).astype("float32"))
    path = str(tmp_path / "m.onnx")
    report = kc.export_onnx(model, path, method="native")
    assert report.passed and report.method == "native", report.why()
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert ("LSTM" if "lstm" in name else "GRU") in ops
    # the recurrent layer's own output is among the compared tensors, not only the head's
    rnn = [c for c in report.verify.tensors if c.layer == "rnn" and c.status == "pass"]
    assert rnn and max(c.rel for c in rnn) < 1e-5
    assert report.verify.required_tolerance < 1e-5


def _gate_swapped(path, out):
    """The file with the LSTM's f and o gate blocks of W exchanged: a wrong gate order."""
    model = onnx.load(path)
    node = next(n for n in model.graph.node if n.op_type == "LSTM")
    for init in model.graph.initializer:
        if init.name == node.input[1]:
            w = onnx.numpy_helper.to_array(init).copy()
            units = w.shape[1] // 4
            w[:, units:2 * units], w[:, 2 * units:3 * units] = (
                w[:, 2 * units:3 * units].copy(), w[:, units:2 * units].copy())
            init.CopyFrom(onnx.numpy_helper.from_array(w, init.name))
    onnx.save(model, out)


def test_a_wrong_gate_order_fails_verification_at_the_recurrent_layer(tmp_path):
    model = crnn()
    path, bad = str(tmp_path / "m.onnx"), str(tmp_path / "bad.onnx")
    assert kc.export_onnx(model, path).passed
    _gate_swapped(path, bad)
    verdict = kc.verify_onnx(model, bad)
    assert not verdict.passed and verdict.diagnosis[0].layer == "rnn", verdict.why()


@pytest.mark.parametrize("make,reason", [
    (lambda: L.LSTM(4, activation="relu"), "activation='relu'"),
    (lambda: L.GRU(4, recurrent_activation="hard_sigmoid"), "recurrent_activation"),
])
def test_what_onnx_cannot_express_is_refused_by_name(make, reason, tmp_path):
    x = keras.Input((7, 3), name="x")
    model = keras.Model(x, make()(x))
    with pytest.raises(UnsupportedModel, match=reason):
        kc.export_onnx(model, str(tmp_path / "m.onnx"), method="native")


def test_a_masked_sequence_is_refused_by_name(tmp_path):
    x = keras.Input((7, 3), name="x")
    keep = keras.Input((7,), dtype="bool", name="keep")
    model = keras.Model([x, keep], L.LSTM(4, name="rnn")(x, mask=keep))
    with pytest.raises(UnsupportedModel, match="LSTM with a mask"):
        kc.export_onnx(model, os.path.join(tmp_path, "m.onnx"), method="native")


@pytest.mark.parametrize("kind", ["lstm", "bigru"])
def test_an_initial_state_exports_as_initial_h_and_c_and_imports_back(kind, tmp_path):
    """An encoder's final state seeding a decoder: `initial_state=[h, c]` (per direction for
    Bidirectional) becomes ONNX's initial_h/initial_c, verified tensor by tensor, and the
    file imports back to the same values."""
    x = keras.Input((7, 3), name="x")
    if kind == "lstm":
        _, h, c = L.LSTM(5, return_state=True, name="encoder")(x)
        states = [h, c]
        y = L.LSTM(5, return_sequences=True, name="decoder")(x, initial_state=states)
    else:
        h = L.Dense(4, activation="tanh", name="h0")(L.GlobalAveragePooling1D()(x))
        states = [h, L.Dense(4, activation="tanh", name="h1")(h)]
        y = L.Bidirectional(L.GRU(4, return_sequences=True), name="decoder")(
            x, initial_state=states)
    model = keras.Model(x, y)
    for i, w in enumerate(model.weights):
        w.assign(np.random.default_rng(i).standard_normal(w.shape).astype("float32") * 0.5)
    path = str(tmp_path / "m.onnx")
    report = kc.export_onnx(model, path)
    assert report.passed and report.method == "native", report.summary()
    node = next(n for n in onnx.load(path).graph.node if n.op_type in ("LSTM", "GRU")
                and "decoder" in n.name)
    assert all(node.input[5:])  # initial_h (and initial_c) given
    back = kc.import_onnx(path)
    data = np.random.default_rng(9).standard_normal((2, 7, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(model(data))
    got = keras.ops.convert_to_numpy(back(data))
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-5


def test_zoo_crnn_exports_imports_and_exports_again_verified(tmp_path):
    """configs/crnn.yaml (tiny scale): Keras -> ONNX -> Keras -> ONNX, each step verified,
    the logits equal to the first model's at the end (BatchNorm statistics as after
    training)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model = kc.build_model(os.path.join(root, "configs", "crnn.yaml"), scale="t")
    rng = np.random.default_rng(0)
    for w in model.weights:
        value = rng.standard_normal(w.shape).astype("float32") * 0.3
        w.assign(np.abs(value) + 0.5 if "variance" in w.path else value)
    first = str(tmp_path / "crnn.onnx")
    assert kc.export_onnx(model, first).method == "native"
    back = kc.import_onnx(first)  # verified against onnxruntime
    again = kc.export_onnx(back, str(tmp_path / "again.onnx"))
    assert again.passed and again.method == "native", again.summary()
    lines = rng.uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    want = keras.ops.convert_to_numpy(model(lines))
    got = keras.ops.convert_to_numpy(back(lines))
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-5

"""PyTorch's `nn.LSTM`/`nn.GRU` and a CRNN through `torch.onnx.export(dynamo=False)` (issue
35): batch-first and time-major, one and two layers, one and both directions, against
PyTorch itself; the CRNN's `fc(r.view(T*b, h)).view(T, b, -1)` becomes one Dense, and the
imported CRNN exports and imports again, verified both ways."""

import warnings

import keras
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import keras_convx as kc
from keras_convx.importer import OnnxImportError

torch = pytest.importorskip("torch")

TOL = 1e-5  # of scale: float32 recurrences over 5 steps, measured <= 4e-7


class Recurrent(torch.nn.Module):
    def __init__(self, cell, layers, bidirectional, batch_first):
        super().__init__()
        self.rnn = getattr(torch.nn, cell)(8, 6, num_layers=layers,
                                           bidirectional=bidirectional, batch_first=batch_first)

    def forward(self, x):
        return self.rnn(x)[0]


class Seeded(Recurrent):
    """The recurrence started from given states (an encoder's, a streaming chunk's)."""

    def forward(self, x, h, c=None):
        return self.rnn(x, h if c is None else (h, c))[0]


class CRNN(torch.nn.Module):
    """crnn.pytorch's shape: conv features -> (T, b, c) -> BiLSTM -> a Linear on the rows."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.MaxPool2d((4, 1)))
        self.rnn = torch.nn.LSTM(16, 6, bidirectional=True)
        self.fc = torch.nn.Linear(12, 5)

    def forward(self, x):
        c = self.conv(x)
        b, ch, h, w = c.size()
        r, _ = self.rnn(c.view(b, ch * h, w).permute(2, 0, 1))
        steps, b, hidden = r.size()
        return self.fc(r.view(steps * b, hidden)).view(steps, b, -1)


def _export(module, x, path, dynamic=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], dynamic_axes=dynamic)
    with torch.no_grad():
        return module(x).numpy()


def _rel(got, want):
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


# (cell, layers, bidirectional, batch_first): each axis of the grid in both states
CASES = [("LSTM", 2, True, True), ("LSTM", 1, True, False), ("LSTM", 1, False, False),
         ("LSTM", 2, False, True), ("GRU", 2, True, False), ("GRU", 1, True, True),
         ("GRU", 1, False, True), ("GRU", 2, False, False)]


@pytest.mark.thin_on_jax(2)  # backend-independent conversion; JAX compiles each case
@pytest.mark.parametrize("cell, layers, bidirectional, batch_first", CASES,
                         ids=["-".join(map(str, c)) for c in CASES])
def test_pytorch_recurrent_modules_match_pytorch(cell, layers, bidirectional, batch_first,
                                                 tmp_path):
    torch.manual_seed(layers)
    module = Recurrent(cell, layers, bidirectional, batch_first)
    x = torch.randn((2, 5, 8) if batch_first else (5, 2, 8))
    want = _export(module, x, tmp_path / "m.onnx")
    model = kc.import_onnx(tmp_path / "m.onnx")  # verified against onnxruntime
    assert model.import_report.passed
    # a time-major file's input and output become batch-first Keras tensors
    layout = (0, 1, 2) if batch_first else (1, 0, 2)
    assert [row["perm"] for row in model.import_layouts] == [list(layout)] * 2
    got = np.asarray(keras.ops.convert_to_numpy(model(np.transpose(x.numpy(), layout))))
    assert _rel(got, np.transpose(want, layout)) < TOL


STATE_CASES = [("LSTM", 2, True, True), ("GRU", 2, False, False), ("LSTM", 1, True, False)]


@pytest.mark.parametrize("cell, layers, bidirectional, batch_first", STATE_CASES,
                         ids=["-".join(map(str, c)) for c in STATE_CASES])
def test_initial_states_given_as_inputs_match_pytorch_and_export_again(
        cell, layers, bidirectional, batch_first, tmp_path):
    """h0 (and c0), (layers * directions, batch, hidden): the batch is their axis 1, each
    layer's slice seeds its Keras layer's `initial_state`; exported again, they become
    initial_h/initial_c and import back."""
    torch.manual_seed(3)
    module = Seeded(cell, layers, bidirectional, batch_first).eval()
    x = torch.randn((2, 5, 8) if batch_first else (5, 2, 8))
    states = [torch.randn(layers * (2 if bidirectional else 1), 2, 6)
              for _ in range(2 if cell == "LSTM" else 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x, *states), str(tmp_path / "m.onnx"), dynamo=False,
                          opset_version=17, input_names=["x", "h", "c"][:1 + len(states)],
                          output_names=["y"])
        with torch.no_grad():
            want = module(x, *states).numpy()
    model = kc.import_onnx(tmp_path / "m.onnx")
    layout = (0, 1, 2) if batch_first else (1, 0, 2)
    inputs = [np.transpose(x.numpy(), layout)] + [
        np.transpose(s.numpy(), (1, 0, 2)) for s in states]  # states batch-first in Keras
    assert _rel(np.asarray(keras.ops.convert_to_numpy(model(inputs))),
                np.transpose(want, layout)) < TOL
    assert kc.export_onnx(model, tmp_path / "again.onnx").passed
    back = kc.import_onnx(tmp_path / "again.onnx")
    assert _rel(np.asarray(keras.ops.convert_to_numpy(back(inputs))),
                np.transpose(want, layout)) < TOL


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
def test_dynamic_batch_with_zero_states_made_from_the_batch_size(batch_first, tmp_path):
    """PyTorch makes the zero initial states with ConstantOfShape of the batch size and
    slices them per layer: they are the default, dropped with the Shape arithmetic that
    made them, and any batch runs (time-major: the batch is the file's axis 1)."""
    torch.manual_seed(0)
    module = Recurrent("LSTM" if batch_first else "GRU", 2, True, batch_first)
    axis = 0 if batch_first else 1
    _export(module, torch.randn((2, 5, 8) if batch_first else (5, 2, 8)), tmp_path / "m.onnx",
            {"x": {axis: "batch"}, "y": {axis: "batch"}})
    assert "ConstantOfShape" in {n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node}
    model = kc.import_onnx(tmp_path / "m.onnx")
    x = torch.randn((3, 5, 8) if batch_first else (5, 3, 8))
    with torch.no_grad():
        want = module(x).numpy()
    layout = (0, 1, 2) if batch_first else (1, 0, 2)
    got = model(np.transpose(x.numpy(), layout))
    assert _rel(np.asarray(keras.ops.convert_to_numpy(got)), np.transpose(want, layout)) < TOL


def test_dead_nodes_are_neither_converted_nor_refused():
    """A node nothing reads (here an op with no conversion) is dropped, as onnxruntime
    drops it, instead of failing the import."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Hardmax", ["x"], ["unread"])],
        "dead", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    model = kc.import_onnx(proto)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "ReLU"]


@pytest.fixture(scope="module")
def crnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crnn")
    torch.manual_seed(0)
    module = CRNN()
    x = torch.randn(2, 1, 8, 7)
    want = _export(module, x, folder / "crnn.onnx")
    return folder, x.numpy(), want


def test_pytorch_crnn_imports_with_its_folded_linear_as_one_dense(crnn):
    folder, x, want = crnn
    model = kc.import_onnx(folder / "crnn.onnx")
    layers = [type(layer).__name__ for layer in model.layers]
    assert "Bidirectional" in layers and layers.count("Dense") == 1
    # no layer folds the batch into the rows: every Reshape keeps (batch, ...) of its input
    got = np.asarray(keras.ops.convert_to_numpy(model(np.transpose(x, (0, 2, 3, 1)))))
    assert got.shape == (2, 7, 5)  # (T, b, classes) in the file, batch-first here
    assert _rel(got, np.transpose(want, (1, 0, 2))) < TOL


def test_imported_crnn_exports_and_imports_again_verified(crnn, tmp_path):
    folder, x, want = crnn
    model = kc.import_onnx(folder / "crnn.onnx")
    report = kc.export_onnx(model, tmp_path / "again.onnx")
    assert report.passed, report.summary()
    back = kc.import_onnx(tmp_path / "again.onnx")
    assert back.import_report.passed
    got = np.asarray(keras.ops.convert_to_numpy(back(np.transpose(x, (0, 2, 3, 1)))))
    assert _rel(got, np.transpose(want, (1, 0, 2))) < TOL


def _time_major_graph(second_reshape):
    """x (T, N, 4) time-major -> LSTM -> Y (T, 1, N, 3) -> Squeeze -> Reshape to rows ->
    MatMul -> Reshape `second_reshape`."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for s, n in (((1, 12, 4), "W"), ((1, 12, 3), "R"), ((3, 2), "K"))]
    inits += [numpy_helper.from_array(np.array(v, np.int64), n) for v, n in (
        ([5 * 2, 3], "rows"), (second_reshape, "back"), ([1], "axis1"))]
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R"], ["Y"], hidden_size=3),
         helper.make_node("Squeeze", ["Y", "axis1"], ["s"]),
         helper.make_node("Reshape", ["s", "rows"], ["r"]),
         helper.make_node("MatMul", ["r", "K"], ["m"]),
         helper.make_node("Reshape", ["m", "back"], ["y"])],
        "tm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, second_reshape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_a_folded_linear_unfolded_in_another_order_is_refused_not_fused():
    """(T*N, n) read back as (N, T, n) mixes time steps and samples: no Dense computes it."""
    proto = _time_major_graph([5, 2, 2])
    model = kc.import_onnx(proto)  # the same order: one Dense
    assert model.import_report.passed
    with pytest.raises(OnnxImportError, match="batch"):
        kc.import_onnx(_time_major_graph([2, 5, 2]))


def test_time_major_input_under_layouts_onnx_is_refused_by_name():
    with pytest.raises(OnnxImportError, match="time-major.*layouts='keras'"):
        kc.import_onnx(_time_major_graph([5, 2, 2]), layouts="onnx")

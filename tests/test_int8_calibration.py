"""Calibration that streams (issue 34): onnxruntime's calibrators fed one batch per call
reduce each batch to ranges or histograms and drop its intermediate tensors; the result is
the all-at-once one."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from keras_convx.exporter import int8


def _graph(path):
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((4, 8, 3, 3)) * 0.3).astype(np.float32), "w2")
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1] * 4),
         helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[1] * 4)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 12, 12])], [w1, w2]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(onnx.shape_inference.infer_shapes(model), path)  # as quant_pre_process leaves it


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_streamed_calibration_equals_all_at_once(method, tmp_path):
    from onnxruntime.quantization.calibrate import load_tensors_data

    path = str(tmp_path / "g.onnx")
    _graph(path)
    rng = np.random.default_rng(1)
    # batches of different spread, the widest last: the histograms must grow their range
    feeds = [{"x": (rng.standard_normal((4, 3, 12, 12)) * (1 + i)).astype(np.float32)}
             for i in range(6)]
    ranges = {}
    for chunk in (len(feeds), 1):
        folder = tmp_path / f"c{chunk}"
        folder.mkdir()
        data = load_tensors_data(int8.calibrate(path, str(folder), feeds, method, chunk=chunk))
        ranges[chunk] = {name: (float(np.asarray(t.range_value[0]).ravel()[0]),
                                float(np.asarray(t.range_value[1]).ravel()[0]))
                         for name, t in data.items()}
    whole, streamed = ranges[len(feeds)], ranges[1]
    assert whole.keys() == streamed.keys() and {"c1", "r1", "y"} <= set(whole)
    # the same ranges: MinMax's running min/max; the histograms seeded with the final range
    # count into the same bins (unseeded, entropy's threshold for y moved 39.5 -> 31.7)
    for name, (low, high) in whole.items():
        assert streamed[name] == pytest.approx((low, high), rel=1e-6), name


def test_calibration_reports_progress(tmp_path):
    """The CLI's spinner hears each streamed batch: samples done and samples/s."""
    from keras_convx.utils.progress import listen

    path = str(tmp_path / "g.onnx")
    _graph(path)
    feeds = [{"x": np.random.default_rng(i).standard_normal((4, 3, 12, 12)).astype(np.float32)}
             for i in range(3)]
    heard = []
    with listen(heard.append):
        int8.calibrate(path, str(tmp_path), feeds, "minmax")
    assert heard[0] == "INT8 calibration (minmax): 0/12 samples"
    assert heard[-1].startswith("INT8 calibration (minmax): 12/12 samples, ") and \
        heard[-1].endswith(" samples/s")
    assert len(heard) == 4
    int8.calibrate(path, str(tmp_path), feeds, "minmax")  # no listener: nothing heard
    assert len(heard) == 4


def test_calibration_runs_stay_within_the_activation_budget(tmp_path, monkeypatch):
    """A batch whose intermediate tensors exceed the budget runs in smaller pieces, with
    the same ranges."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    path = str(tmp_path / "g.onnx")
    _graph(path)
    feeds = [{"x": np.random.default_rng(i).standard_normal((4, 3, 12, 12)).astype(np.float32)}
             for i in range(2)]
    whole = load_tensors_data(int8.calibrate(path, str(tmp_path), feeds, "minmax"))
    heard = []
    from keras_convx.utils.progress import listen

    # one sample's float tensors here: 11.5 KB; a budget of 30 KB allows runs of 2 samples
    monkeypatch.setattr(int8, "ACTIVATION_BUDGET", 30_000)
    (tmp_path / "b").mkdir()
    with listen(heard.append):
        small = load_tensors_data(int8.calibrate(path, str(tmp_path / "b"), feeds, "minmax"))
    assert len(heard) == 1 + 4  # 8 samples in 4 runs of 2
    for name, t in whole.items():
        assert np.allclose(small[name].range_value, t.range_value), name


def test_held_out_batches_stay_within_the_activation_budget(tmp_path, monkeypatch):
    """The held-out batch compared tensor by tensor is split like calibration runs (a
    572x572 U-Net would expose every tensor of 8 samples at once, three times over)."""
    import keras

    import keras_convx as kc

    inp = keras.Input((8, 8, 3))
    x = kc.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    model = keras.Model(inp, kc.layers.Conv2D(4, 1)(x))
    data = np.random.default_rng(0).normal(0, 1, (40, 8, 8, 3)).astype(np.float32)
    def inspected():
        quant = kc.export_onnx(model, str(tmp_path / "q.onnx"), precision="int8",
                               calibration=data).quantization
        assert quant.held_out_samples == 8 and quant.passed
        return {c.samples for c in quant.checks if c.role == "internal"}

    assert inspected() == {8}  # 1 GiB: the whole held-out batch
    monkeypatch.setattr(int8, "ACTIVATION_BUDGET", 10_000)  # a few samples' tensors
    assert max(inspected()) < 8

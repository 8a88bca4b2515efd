"""INT8 export around its edges (issue 31, items 4 and 5): no file left in the caller's
working folder or beside the output, stale staging folders of killed runs cleaned, the
`keep_float` names users know (Keras layers, ONNX nodes, folded ones), the measured
INT8/float32 latency, and quantization that survives onnxruntime's symbolic shape
inference failing.
"""

import os
import subprocess
import sys
import time

import keras
import numpy as np
import onnx
import pytest
from onnxruntime.tools import symbolic_shape_infer

import keras_convx as kc
from helpers import BACKEND, realistic_batch_norm
from keras_convx.utils import files
from keras_convx.verification import int8_verifier, quantized
from keras_convx.verification.quantized import QuantReport

pytestmark = pytest.mark.skipif(BACKEND == "jax", reason="INT8 export tests run on TF and "
                                "torch (backend-independent graphs; suite time)")

# what a failed INT8 export leaves beside its path (README: `.failed` files)
FAILED_FILES = ["m.failed.json", "m.failed.onnx"]
HOUR = 3600


def conv_bn_relu():
    """Conv2D + BatchNormalization (folded into the Conv) + ReLU, and a second Conv."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", name="head")(x))
    realistic_batch_norm(model)
    return model


@pytest.fixture(scope="module")
def model():
    return conv_bn_relu()


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).uniform(0, 1, (30, 12, 12, 3)).astype(np.float32)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """(an empty working folder, made current; an empty output folder)."""
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    out.mkdir()
    monkeypatch.chdir(cwd)
    return cwd, out


def incomplete_symbolic_shapes(monkeypatch):
    """onnxruntime's symbolic shape inference ends incomplete, as on some imported-then-
    re-exported nets: its own code then saves `sym_shape_infer_temp.onnx` and a
    `<uuid>.data` in the current folder and raises."""
    real = symbolic_shape_infer.SymbolicShapeInference._infer_impl

    def incomplete(self, *args, **kwargs):
        real(self, *args, **kwargs)
        return False

    monkeypatch.setattr(symbolic_shape_infer.SymbolicShapeInference, "_infer_impl", incomplete)


# --- no litter ---------------------------------------------------------------------------

def test_failed_int8_export_leaves_only_its_failed_files(model, data, folders, monkeypatch):
    cwd, out = folders
    incomplete_symbolic_shapes(monkeypatch)
    monkeypatch.setattr(quantized, "OUTPUT_SQNR_DB", 1000.0)  # no graph can pass
    with pytest.raises(kc.VerificationError, match="export \\(int8\\): verification failed"):
        kc.export_onnx(model, str(out / "m.onnx"), precision="int8", calibration=data)
    assert sorted(os.listdir(cwd)) == []
    assert sorted(os.listdir(out)) == FAILED_FILES


def test_interrupted_int8_export_leaves_nothing(model, data, folders, monkeypatch):
    import onnxruntime.quantization

    cwd, out = folders

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kc.export_onnx(model, str(out / "m.onnx"), precision="int8", calibration=data)
    assert os.listdir(cwd) == [] and os.listdir(out) == []


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_staging_folders_are_cleaned_live_ones_kept(model, folders):
    _, out = folders
    dead = out / f"{files.STAGE_PREFIX}{files.owner_tag(_dead_pid())}-killed1"
    live = out / f"{files.STAGE_PREFIX}{files.owner_tag(os.getpid())}-running"
    old = out / f"{files.STAGE_PREFIX}old12345"  # no owner in the name: judged by age
    young = out / f"{files.STAGE_PREFIX}young123"
    old_tmp = out / f"{files.STAGE_PREFIX}abc.tmp"  # an atomic write's temporary file
    for folder in (dead, live, old, young):
        folder.mkdir()
        (folder / "m.onnx").write_bytes(b"x" * 10)
    old_tmp.write_bytes(b"x")
    stale = time.time() - 2 * HOUR
    for path in (old, old_tmp):
        os.utime(path, (stale, stale))
    kc.export_onnx(model, str(out / "m.onnx"), verify=False)
    assert sorted(os.listdir(out)) == sorted(["m.onnx", live.name, young.name])


# --- keep_float by the names users know --------------------------------------------------

def _float_weight_nodes(path):
    """Names of the Conv nodes whose weight is a float initializer (not dequantized)."""
    graph = onnx.load(path).graph
    produced = {o for n in graph.node for o in n.output}
    return sorted(n.name for n in graph.node
                  if n.op_type == "Conv" and n.input[1] not in produced)


@pytest.mark.parametrize("name", ["conv", "bn", "conv/Conv"],
                         ids=["keras-conv", "keras-bn-folded", "onnx-node"])
def test_keep_float_names_the_folded_conv_any_way(model, data, tmp_path, name):
    path = str(tmp_path / "k.onnx")
    kc.export_onnx(model, path, precision="int8", calibration=data, keep_float=[name],
                   verify=False)
    assert _float_weight_nodes(path) == ["conv/Conv"]  # and `head` quantized


def test_keep_float_refuses_unknown_names_with_close_matches(model, data, tmp_path):
    with pytest.raises(ValueError,
                       match="keep_float names \\['convv'\\].*close matches.*'conv'"):
        kc.export_onnx(model, str(tmp_path / "k.onnx"), precision="int8",
                       calibration=data, keep_float=["convv"], verify=False)
    assert os.listdir(tmp_path) == []


# --- measured latency ------------------------------------------------------------------

def test_int8_report_measures_latency_against_float32(model, data, tmp_path):
    report = kc.export_onnx(model, str(tmp_path / "m.onnx"), precision="int8",
                            calibration=data)
    quant = report.quantization
    assert quant.latency_ratio > 0
    assert quant.latency_ms["float32"] > 0 and quant.latency_ms["int8"] > 0
    assert quant.to_dict()["latency_ratio"] == quant.latency_ratio


@pytest.mark.parametrize("int8_ms, slower", [(2.0, True), (0.5, False)],
                         ids=["int8-slower", "int8-faster"])
def test_slower_int8_is_warned(int8_ms, slower):
    report = QuantReport(levels=["basic"], providers=["CPUExecutionProvider"])
    report.note_latency(1.0e-3, int8_ms * 1e-3, batch=8, provider="CPUExecutionProvider")
    assert report.latency_ratio == pytest.approx(int8_ms)
    said = [w for w in report.warnings if "slower than float32" in w]
    assert bool(said) == slower
    assert ("slower than float32" in report.summary()) == slower


def test_slower_int8_is_warned_in_an_export(model, data, tmp_path, monkeypatch):
    monkeypatch.setattr(int8_verifier, "time_sessions", lambda *a, **k: (1e-3, 3e-3))
    report = kc.export_onnx(model, str(tmp_path / "m.onnx"), precision="int8",
                            calibration=data)
    quant = report.quantization
    assert quant.latency_ratio == pytest.approx(3.0)
    assert any("3.00x slower than float32" in w for w in quant.warnings)
    assert "slower than float32" in quant.summary()


# --- symbolic shape inference failing ----------------------------------------------------

def test_incomplete_symbolic_shapes_are_skipped_and_said(model, data, folders, monkeypatch):
    cwd, out = folders
    incomplete_symbolic_shapes(monkeypatch)
    report = kc.export_onnx(model, str(out / "m.onnx"), precision="int8", calibration=data)
    quant = report.quantization
    assert report.passed and quant.symbolic_shapes_skipped
    assert any("symbolic shape inference" in w for w in quant.warnings)
    assert os.listdir(cwd) == [] and os.listdir(out) == ["m.onnx"]

"""Rough edges a new user met (issue 32): each one small, each pinned here."""

import keras
import numpy as np
import pytest

from keras_convx.exporter.calibration_data import CalibrationError, load
from keras_convx.verification.quantized import QuantCheck, QuantReport


@pytest.fixture(scope="module")
def two_inputs():
    a, b = keras.Input((4,), name="image"), keras.Input((4,), name="mask")
    return keras.Model([a, b], keras.layers.Add()([a, b]))


def test_calibration_npz_arrays_must_be_named_after_the_inputs(two_inputs, tmp_path):
    data = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.savez(tmp_path / "named.npz", image=data, mask=data + 1)
    got = load(str(tmp_path / "named.npz"), two_inputs)
    assert np.array_equal(got[1], data + 1)
    np.savez(tmp_path / "positional.npz", data, data + 1)  # arr_0, arr_1: in order
    assert np.array_equal(load(str(tmp_path / "positional.npz"), two_inputs)[1], data + 1)
    np.savez(tmp_path / "wrong.npz", images=data, mask=data)
    with pytest.raises(CalibrationError, match=r"holds arrays \['images', 'mask'\]; expected "
                                               r"one per model input named \['image', 'mask'\]"):
        load(str(tmp_path / "wrong.npz"), two_inputs)


def test_int8_summary_lists_only_layers_that_lose(capsys):
    from rich.console import Console

    from keras_convx.cli import _quant_summary

    checks = [QuantCheck(tensor=f"t{i}", layer=name, role="internal", level="basic", samples=8,
                         sqnr_inputs=40.0, sqnr_float=40.0 - max(drop, 0), drop=drop)
              for i, (name, drop) in enumerate([("gains", -0.8), ("loses", 3.25), ("flat", 0.0)])]
    report = QuantReport(levels=["basic"], providers=["cpu"], checks=checks)
    assert [c.layer for c in report.worst()] == ["loses"]
    _quant_summary(Console(), report)
    out = capsys.readouterr().out
    assert "loses (loses 3.2 dB itself, at 36.8 dB)" in out and "gains (" not in out and "--" not in out

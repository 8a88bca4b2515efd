"""The backends' own CPU conv kernels return garbage for one input channel when the last
spatial axis is strided and its output has length 1 (TensorFlow 2.21 and torch 2.13, both
through oneDNN; benchmarks/kernel_sweep.py, RESULTS.md section 17). The raw bug is shown
where it exists; keras_convx's layers are exact on the same inputs (float64 oracle)."""

import keras
import numpy as np
import pytest

import keras_convx as kc
from benchmarks.kernel_sweep import same_pads
from oracle import conv as oracle
from helpers import BACKEND

TOL = 1e-4  # of the oracle's scale; the garbage is 1e0..1e38


def _error(got, want):
    got = np.asarray(keras.ops.convert_to_numpy(got), np.float64)
    err = np.abs(got - want).max() / np.abs(want).max()
    return err if np.isfinite(err) else np.inf


def _minimal(seed):
    """Issue 33's case after padding: (3, 11, 3, 1) NHWC, a (3, 2) kernel, strides (1, 2):
    the output's width is 1."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((3, 11, 3, 1)).astype(np.float32),
            rng.standard_normal((3, 2, 1, 7)).astype(np.float32))


def test_the_raw_backend_kernel_is_wrong_here():
    errors = []
    for seed in range(3):
        x, w = _minimal(seed)
        want = oracle(x, w, (1, 2), [(0, 0), (0, 0)], (1, 1))
        errors.append(_error(keras.ops.conv(x, w, strides=(1, 2)), want))
    if max(errors) <= TOL:
        pytest.skip(f"{BACKEND}'s own conv kernel is exact on this machine (the bug is "
                    f"TensorFlow's and torch's oneDNN CPU kernels)")
    assert max(errors) > 1e-2  # garbage, not rounding


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_one_channel_strided_convs_are_exact(rank):
    """The layers on the bug's trigger set: one channel, batch 3, the last axis strided
    with one window (explicit padding, 'valid' and 'same'), every rank."""
    rng = np.random.default_rng(rank)
    cls = {1: kc.layers.Conv1D, 2: kc.layers.Conv2D, 3: kc.layers.Conv3D}[rank]
    kernel = (3, 2, 2)[-rank:] if rank > 1 else (2,)
    strides = (1,) * (rank - 1) + (2,)
    cases = [((5, 1, 1)[-rank:] if rank > 1 else (1,), {"padding": (3, 1, 1)[-rank:]}),
             ((7, 3, 3)[-rank:] if rank > 1 else (3,), {"padding": "valid"}),
             ((7, 4, 2)[-rank:] if rank > 1 else (2,), {"padding": "same"})]
    for size, padding in cases:
        layer = cls(7, kernel, strides=strides, **padding)
        x = rng.standard_normal((3,) + size + (1,)).astype(np.float32)
        y = layer(x)
        w, b = (keras.ops.convert_to_numpy(v) for v in layer.weights)
        if padding["padding"] == "same":
            pads = same_pads(size, kernel, strides, (1,) * rank)
        elif padding["padding"] == "valid":
            pads = [(0, 0)] * rank
        else:
            pads = [(p, p) for p in padding["padding"]]
        want = oracle(x, w, strides, pads, (1,) * rank) + b
        assert _error(y, want) <= TOL, (rank, size, padding)
        assert tuple(y.shape) == tuple(layer.compute_output_shape(x.shape))


def test_issue_case_matches_the_oracle_at_many_seeds():
    """`kc.Conv2D(7, (3, 2), strides=(1, 2), padding=(3, 1))` on (3, 5, 1, 1): garbage at
    every seed before the guard on TensorFlow and torch."""
    for seed in range(10):
        rng = np.random.default_rng(seed)
        layer = kc.layers.Conv2D(7, (3, 2), strides=(1, 2), padding=(3, 1))
        x = rng.standard_normal((3, 5, 1, 1)).astype(np.float32)
        y = layer(x)
        w, b = (keras.ops.convert_to_numpy(v) for v in layer.weights)
        want = oracle(x, w, (1, 2), [(3, 3), (1, 1)], (1, 1)) + b
        assert _error(y, want) <= TOL, seed


def test_unknown_lengths_take_the_zero_channel_path():
    """A one-channel strided conv in a model of unknown height and width: exact at the
    sizes that put one window on the last axis, and at others."""
    inputs = keras.Input((None, None, 1))
    layer = kc.layers.Conv2D(4, (3, 2), strides=(1, 2))
    model = keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(0)
    w, b = (keras.ops.convert_to_numpy(v) for v in layer.weights)
    for size in [(11, 3), (9, 2), (6, 7)]:
        x = rng.standard_normal((3,) + size + (1,)).astype(np.float32)
        want = oracle(x, w, (1, 2), [(0, 0), (0, 0)], (1, 1)) + b
        assert _error(model.predict(x, verbose=0), want) <= TOL, size


def test_one_channel_depthwise_and_separable_are_exact():
    """A one-channel depthwise conv is a plain conv and hits the same kernels."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((3, 5, 1, 1)).astype(np.float32)
        depthwise = kc.layers.DepthwiseConv2D((3, 2), strides=(1, 2), padding=(3, 1),
                                              depth_multiplier=4)
        y = depthwise(x)
        w, b = (keras.ops.convert_to_numpy(v) for v in depthwise.weights)
        want = oracle(x, w, (1, 2), [(3, 3), (1, 1)], (1, 1)) + b  # (3, 2, 1, 4): HWIO
        assert _error(y, want) <= TOL, seed
        separable = kc.layers.SeparableConv2D(5, (3, 2), strides=(1, 2), padding=(3, 1),
                                              depth_multiplier=2)
        y = separable(x)
        dw, pw, b = (keras.ops.convert_to_numpy(v) for v in separable.weights)
        want = oracle(x, dw, (1, 2), [(3, 3), (1, 1)], (1, 1)) @ pw.reshape(2, 5) + b
        assert _error(y, want) <= TOL, seed

"""keras_convx.ops.pad against numpy.pad for every mode, rank and data format."""

import itertools

import keras
import numpy as np
import pytest

import keras_convx as kc
import oracle
from helpers import make_input

MODES = ("zeros", "constant", "reflect", "symmetric", "replicate", "circular")


@pytest.mark.parametrize("rank,mode,fmt", list(itertools.product(
    (1, 2, 3), MODES, ("channels_last", "channels_first"))),
    ids=lambda v: str(v))
def test_pad_matches_numpy_pad(rank, mode, fmt):
    x = make_input(rank, 2, fmt, size=5)
    pads = ((3, 1), (0, 2), (4, 0))[:rank]  # asymmetric, one side zero, up to L-1
    got = kc.ops.pad(x, pads, mode=mode, constant_value=-1.5, data_format=fmt)
    expected = oracle.pad(x, pads, mode, constant_value=-1.5, data_format=fmt)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), expected.astype("float32"))


@pytest.mark.parametrize("mode,pads,message", [
    ("reflect", 5, r"pad: 'reflect' padding \(5, 5\) must be smaller than the input length 5"),
    ("circular", ((6, 0),), r"pad: 'circular' padding \(6, 0\) must be at most the input length 5"),
    ("mirror", 1, r"pad: mode must be one of \('constant', 'zeros', 'reflect', "
                  r"'symmetric', 'replicate', 'circular'\), got 'mirror'"),
    ("constant", -1, r"pad: pads must not be negative, got \(\(-1, -1\),\)"),
])
def test_pad_errors(mode, pads, message):
    with pytest.raises(ValueError, match=message):
        kc.ops.pad(make_input(1, 2, "channels_last", size=5), pads, mode=mode)


def test_replicate_pads_beyond_length():
    x = make_input(1, 2, "channels_last", size=3)
    got = kc.ops.pad(x, ((7, 5),), mode="replicate")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got),
                                  oracle.pad(x, ((7, 5),), "replicate").astype("float32"))

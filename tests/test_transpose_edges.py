"""Transposed convolutions at the edges PyTorch accepts: same arguments, same numbers.

Own module because every test needs torch (the reference), so a missing torch skips these
and nothing else.
"""

import numpy as np
import pytest

import keras_convx as kc
from helpers import assert_close, rand, randomize_weights

torch = pytest.importorskip("torch", reason="PyTorch is the reference here")


def _torch_reference(layer, x, **kwargs):
    """PyTorch's functional transposed conv with the layer's weights (channels_first)."""
    F = torch.nn.functional
    t = {k: torch.from_numpy(np.ascontiguousarray(v)).double()
         for k, v in kc.weights.to_torch(layer).items()}
    tconv = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[layer.rank]
    pads = [p[0] for p in layer.padding] if not isinstance(layer.padding, str) else 0
    return tconv(torch.from_numpy(x).double(), t["weight"], t.get("bias"),
                 stride=layer.strides, padding=pads, groups=layer.groups,
                 dilation=layer.dilation_rate, **kwargs).numpy()


CASES = [
    # output_padding on a size-1 kernel axis with dilation: allowed since < dilation
    ("k1-dilated-output-padding", lambda: kc.Conv1DTranspose(
        1, 1, dilation_rate=2, output_padding=1, data_format="channels_first"), (1, 1, 1),
     {"output_padding": 1}),
    ("k1x3-dilated-output-padding", lambda: kc.Conv2DTranspose(
        4, (1, 3), strides=(1, 2), dilation_rate=(2, 1), output_padding=(1, 1), groups=2,
        padding=(0, 1), data_format="channels_first"), (2, 4, 3, 4),
     {"output_padding": (1, 1)}),
]


@pytest.mark.parametrize("name,make,shape,torch_kwargs", CASES, ids=[c[0] for c in CASES])
def test_matches_pytorch(name, make, shape, torch_kwargs):
    layer = make()
    x = rand(shape, 3)
    layer.build(x.shape)
    randomize_weights(layer)
    expected = _torch_reference(layer, x, **torch_kwargs)
    got = layer(x)
    assert tuple(got.shape) == expected.shape
    assert_close(got, expected)


def test_output_size_at_call_time_where_the_default_is_empty():
    """`ConvTranspose1d(1, 1, 2, stride=3, padding=1)(x, output_size=[2])` on length 1: the
    default output would be empty, the requested one is not; given at call time as at
    construction, it works (it raised at build before)."""
    x = rand((1, 1, 1), 4)
    layer = kc.Conv1DTranspose(1, 2, strides=3, padding=1, data_format="channels_first")
    got = layer(x, output_size=(2,))
    expected = _torch_reference(layer, x, output_padding=2)  # what output_size=[2] means
    assert tuple(got.shape) == expected.shape == (1, 1, 2)
    assert_close(got, expected)
    built = kc.Conv1DTranspose(1, 2, strides=3, padding=1, output_size=(2,),
                               data_format="channels_first")
    built.build(x.shape)
    built.set_weights(layer.get_weights())
    assert_close(built(x), expected)


@pytest.mark.parametrize("groups", [1, 2])
def test_an_empty_output_is_an_error_with_or_without_groups(groups):
    """Keras's semantics, deliberately (README: differences): where PyTorch returns an empty
    tensor for some arguments, keras_convx raises, naming the sizes, grouped or not."""
    layer = kc.Conv1DTranspose(2, 2, strides=3, padding=1, groups=groups,
                               data_format="channels_first")
    with pytest.raises(ValueError, match=r"Conv1DTranspose: input spatial shape \(1,\) is too "
                                         r"small .* the output would have shape \(0,\)"):
        layer(rand((1, 2, 1), 5))

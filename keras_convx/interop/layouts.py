"""Axis permutations. A permutation `perm` says where each axis comes from: the array
`np.transpose(x, perm)` has axis `i` = axis `perm[i]` of `x` (ONNX Transpose's meaning)."""

import numpy as np


def channels_last_perm(ndim):
    """N, C, spatial... -> N, spatial..., C (identity below rank 3)."""
    return (0,) + tuple(range(2, ndim)) + (1,) if ndim >= 3 else tuple(range(ndim))


def channels_first_perm(ndim):
    """N, spatial..., C -> N, C, spatial... (identity below rank 3)."""
    return (0, ndim - 1) + tuple(range(1, ndim - 1)) if ndim >= 3 else tuple(range(ndim))


def inverse(perm):
    """The permutation undoing `perm`."""
    return tuple(int(i) for i in np.argsort(perm))


def compose(first, then):
    """The permutation of `transpose(transpose(x, first), then)`."""
    return tuple(first[i] for i in then)


def constant_in_layout(array, perm):
    """A constant that broadcasts (NumPy rules) against a tensor of `len(perm)` dims, moved
    like that tensor: leading size-1 axes first, then `np.transpose(., perm)`."""
    array = np.asarray(array)
    if array.ndim == 0 or perm is None:
        return array
    if array.ndim < len(perm):
        array = array.reshape((1,) * (len(perm) - array.ndim) + array.shape)
    return np.ascontiguousarray(np.transpose(array, perm))


def only_unit_axes_move(shape, source, target):
    """Whether laying out a tensor of `shape` by axis order `target` instead of `source`
    moves only axes of size 1: the memory order is the same, so a reshape (no copy) or
    nothing at all does it (a channels-first (N, C, 1, 1) is (N, 1, 1, C) in memory)."""
    return ([a for a in source if shape[a] != 1] == [a for a in target if shape[a] != 1])


def unit_axes_relabel(in_shape, out_shape):
    """The permutation `perm` with `out_shape == [in_shape[p] for p in perm]` that moves
    only axes of size 1 (the others keep their order), or None when a reshape from
    `in_shape` to `out_shape` moves data. Such a reshape is a relabeling of axes: no
    transpose, no copy. Unknown sizes (None) count as larger than 1."""
    if len(in_shape) != len(out_shape):
        return None
    big_in = [i for i, n in enumerate(in_shape) if n != 1]
    big_out = [i for i, n in enumerate(out_shape) if n != 1]
    if [in_shape[i] for i in big_in] != [out_shape[i] for i in big_out]:
        return None
    perm = [None] * len(out_shape)
    for o, i in zip(big_out, big_in):
        perm[o] = i
    ones_in = [i for i, n in enumerate(in_shape) if n == 1]
    for o, i in zip([i for i, n in enumerate(out_shape) if n == 1], ones_in):
        perm[o] = i
    return tuple(perm)

"""Transposed-conv padding. keras_convx describes the output as (before, after) crops of
the full output `(L-1)*s + d*(k-1) + 1` (a negative `after` extends it); ONNX and PyTorch
use `pads` (crops) and `output_padding` (extension at the end)."""

from keras_convx.utils import shapes as S


def crops_to_onnx(crops):
    """Per-axis (before, after) crops -> ONNX (`pads`, `output_padding`) attribute lists."""
    pads = [c[0] for c in crops] + [max(c[1], 0) for c in crops]
    return pads, [max(-c[1], 0) for c in crops]


def _total(length, kernel, stride, dilation, output_padding):
    return S.transpose_full_length(length, kernel, stride, dilation) + output_padding


def conv_transpose_padding(lengths, kernel_size, strides, dilations, pads=None,
                           output_padding=None, output_shape=None, auto_pad="NOTSET"):
    """ONNX ConvTranspose attributes -> keras_convx (`padding` pairs, `output_padding`).

    `output_shape` (spatial lengths) takes precedence over `pads` as in the ONNX spec:
    total padding `s*(L-1) + output_padding + d*(k-1) + 1 - output_shape`, split with the
    odd pixel at the end for SAME_UPPER and at the start otherwise. A negative total
    becomes output padding when it stays below max(stride, dilation).

    Returns:
        (pairs, output_padding): tuples per spatial axis.
    Raises:
        ValueError naming the attribute when keras_convx can't express the result.
    """
    rank = len(kernel_size)
    output_padding = list(output_padding or [0] * rank)
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise ValueError(f"auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, got "
                         f"{auto_pad!r}")
    if output_shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        output_shape = [None if n is None else n * s for n, s in zip(lengths, strides)]
    if output_shape is not None:
        if len(output_shape) != rank or any(n is None for n in lengths):
            raise ValueError(f"output_shape {list(output_shape)} needs {rank} spatial lengths "
                             f"and a static input, got input lengths {list(lengths)}")
        pairs = []
        for i in range(rank):
            total = _total(lengths[i], kernel_size[i], strides[i], dilations[i],
                           output_padding[i]) - output_shape[i]
            if total < 0:
                output_padding[i] -= total
                total = 0
            upper = auto_pad == "SAME_UPPER"
            pairs.append((total // 2, total - total // 2) if upper else
                         (total - total // 2, total // 2))
    elif auto_pad == "VALID":
        pairs = [(0, 0)] * rank
    else:
        pads = list(pads or [0] * (2 * rank))
        if len(pads) != 2 * rank or any(p < 0 for p in pads):
            raise ValueError(f"pads must be {2 * rank} non-negative ints, got {pads}")
        pairs = [(pads[i], pads[i + rank]) for i in range(rank)]
    for op, s, d in zip(output_padding, strides, dilations):
        if not 0 <= op < max(s, d):
            raise ValueError(
                f"output_padding {output_padding} must be in [0, max(stride, dilation)) on "
                f"each axis (strides={list(strides)}, dilations={list(dilations)})")
    return tuple(tuple(p) for p in pairs), tuple(output_padding)

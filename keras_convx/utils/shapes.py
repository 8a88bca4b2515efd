"""Integer-only shape arithmetic (output sizes, broadcasting), shared by layers, ops,
tests and the exporter.

Lengths may be `None` (unknown); every function then returns `None` for that axis.
"""


def effective_kernel(kernel, dilation):
    """Extent of a dilated kernel: d * (k - 1) + 1."""
    return dilation * (kernel - 1) + 1


def same_pads(length, kernel, stride, dilation):
    """(before, after) zero pads of TensorFlow's 'SAME' (the extra pixel goes after).

    Returns `None` when it depends on an unknown length (stride > 1).
    """
    k = effective_kernel(kernel, dilation)
    if stride == 1:
        total = k - 1
    elif length is None:
        return None
    else:
        out = -(-length // stride)
        total = max((out - 1) * stride + k - length, 0)
    return (total // 2, total - total // 2)


def causal_pads(kernel, dilation):
    """Pads that make an output step see only current and past inputs."""
    return (effective_kernel(kernel, dilation) - 1, 0)


def resolve_pads(padding, lengths, kernel_size, strides, dilation_rate):
    """Explicit (before, after) pads per spatial axis for a normalized `padding`.

    'causal' is causal along the first spatial axis and 'same' on the others.
    Entries are `None` where they depend on an unknown length.
    """
    if not isinstance(padding, str):
        return list(padding)
    pads = []
    for axis, (n, k, s, d) in enumerate(zip(lengths, kernel_size, strides, dilation_rate)):
        if padding == "valid":
            pads.append((0, 0))
        elif padding == "causal" and axis == 0:
            pads.append(causal_pads(k, d))
        else:
            pads.append(same_pads(n, k, s, d))
    return pads


def resize_output_length(length, scale):
    """floor(L * scale), tolerant of float round-off (1.1 * 10 is 11)."""
    if length is None:
        return None
    return int(length * scale + 1e-9)


def conv_output_length(length, kernel, stride, dilation, pads):
    """floor((L + before + after - d(k-1) - 1) / s) + 1, or None if unknown."""
    if length is None or pads is None:
        return None
    span = length + pads[0] + pads[1] - effective_kernel(kernel, dilation)
    return span // stride + 1


def conv_output_lengths(padding, lengths, kernel_size, strides, dilation_rate):
    """Output lengths per spatial axis; 'same' with unknown length gives ceil(L/s)."""
    pads = resolve_pads(padding, lengths, kernel_size, strides, dilation_rate)
    return [
        conv_output_length(n, k, s, d, p)
        for n, k, s, d, p in zip(lengths, kernel_size, strides, dilation_rate, pads)
    ]


def axis_padding(padding, axis):
    """The padding of one axis: the string itself, or that axis's (before, after) pair."""
    return padding if isinstance(padding, str) else padding[axis]


def transpose_full_length(length, kernel, stride, dilation):
    """Length of the uncropped transposed convolution: (L - 1) * s + d(k - 1) + 1."""
    if length is None:
        return None
    return (length - 1) * stride + effective_kernel(kernel, dilation)


def transpose_length_range(length, kernel, stride, dilation, padding):
    """Inclusive (min, max) output lengths whose forward conv gives back `length`.

    This is what an explicit `output_size` may pick (TensorFlow 1's
    `get_deconv_dim` gives the defaults).
    """
    if length is None:
        return None
    k = effective_kernel(kernel, dilation)
    if padding == "same":
        return ((length - 1) * stride + 1, length * stride)
    before, after = (0, 0) if padding == "valid" else padding
    low = (length - 1) * stride + k - before - after
    return (low, low + stride - 1)


def transpose_crop(kernel, stride, dilation, padding, output_padding=None, delta=None):
    """(before, after) cropped from the full transposed output; a negative `after` extends it.

    `delta` is target length minus full length when an explicit output size is
    asked for; otherwise it follows Keras/TensorFlow (valid: (L-1)s + max(k, s),
    or + k + output_padding; same: L*s, or (L-1)s + k%2 + output_padding) and
    PyTorch for explicit (before, after) padding. It does not depend on L.
    """
    k = effective_kernel(kernel, dilation)
    if delta is None:
        if padding == "valid":
            delta = max(k, stride) - k if output_padding is None else output_padding
        elif padding == "same":
            delta = stride - k if output_padding is None else k % 2 + output_padding - k
        else:
            delta = (output_padding or 0) - padding[0] - padding[1]
    if padding == "valid":
        before = 0
    elif padding == "same":
        before = max(-delta, 0) // 2
    else:
        before = padding[0]
    return (before, -delta - before)


def broadcast_shapes(a, b):
    """NumPy broadcasting of two shapes that may hold None (unknown)."""
    a, b = tuple(a), tuple(b)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x == 1:
            out.append(y)
        elif y == 1 or y is None or x == y:
            out.append(x)
        elif x is None:
            out.append(y)
        else:
            raise ValueError(f"shapes {a} and {b} don't broadcast")
    return tuple(out)

"""Float64 NumPy references, written without keras: direct sums over kernel offsets."""

import itertools

import numpy as np

from keras_convx.utils import shapes as S

NP_MODES = {"zeros": "constant", "constant": "constant", "reflect": "reflect",
            "symmetric": "symmetric", "replicate": "edge", "circular": "wrap"}


def to_last(x, data_format):
    return x if data_format == "channels_last" else np.moveaxis(x, 1, -1)


def from_last(x, data_format):
    return x if data_format == "channels_last" else np.moveaxis(x, -1, 1)


def pad(x, pads, mode="zeros", constant_value=0.0, data_format="channels_last"):
    x = to_last(np.asarray(x, np.float64), data_format)
    width = [(0, 0)] + [tuple(p) for p in pads] + [(0, 0)]
    kw = {"constant_values": constant_value if mode == "constant" else 0.0} \
        if NP_MODES[mode] == "constant" else {}
    return from_last(np.pad(x, width, mode=NP_MODES[mode], **kw), data_format)


def _windows(xp, kshape, strides, dilation, out):
    """Yields (offset, strided slice of xp for that kernel offset)."""
    for off in itertools.product(*[range(k) for k in kshape]):
        index = [slice(None)]
        for o, s, d, n in zip(off, strides, dilation, out):
            start = o * d
            index.append(slice(start, start + (n - 1) * s + 1, s))
        yield off, xp[tuple(index)]


def conv(x, w, strides, pads, dilation, data_format="channels_last", mode="zeros"):
    """Grouped N-D cross-correlation; w is (k..., in/groups, out), pads explicit pairs."""
    w = np.asarray(w, np.float64)
    xp = to_last(pad(x, pads, mode, data_format=data_format), data_format)
    kshape, cin_g, cout = w.shape[:-2], w.shape[-2], w.shape[-1]
    groups = xp.shape[-1] // cin_g
    out = [(n - S.effective_kernel(k, d)) // s + 1
           for n, k, s, d in zip(xp.shape[1:-1], kshape, strides, dilation)]
    y = np.zeros((xp.shape[0], *out, groups, cout // groups))
    for off, win in _windows(xp, kshape, strides, dilation, out):
        xg = win.reshape(win.shape[:-1] + (groups, cin_g))
        wg = w[off].reshape(cin_g, groups, cout // groups)
        y += np.einsum("...gi,igo->...go", xg, wg)
    return from_last(y.reshape(y.shape[:-2] + (cout,)), data_format)


def depthwise(x, w, strides, pads, dilation, data_format="channels_last", mode="zeros"):
    """w is (k..., in, multiplier); output channel c*m + j."""
    w = np.asarray(w, np.float64)
    xp = to_last(pad(x, pads, mode, data_format=data_format), data_format)
    kshape, cin, mult = w.shape[:-2], w.shape[-2], w.shape[-1]
    out = [(n - S.effective_kernel(k, d)) // s + 1
           for n, k, s, d in zip(xp.shape[1:-1], kshape, strides, dilation)]
    y = np.zeros((xp.shape[0], *out, cin, mult))
    for off, win in _windows(xp, kshape, strides, dilation, out):
        y += win[..., :, None] * w[off]
    return from_last(y.reshape(y.shape[:-2] + (cin * mult,)), data_format)


def conv_transpose(x, w, strides, dilation, crops, groups=1, data_format="channels_last"):
    """Scatter-add transposed conv; w is (k..., out/groups, in); crops (before, after),
    a negative `after` appends zeros."""
    w = np.asarray(w, np.float64)
    x = to_last(np.asarray(x, np.float64), data_format)
    kshape, cout_g, cin = w.shape[:-2], w.shape[-2], w.shape[-1]
    lengths = x.shape[1:-1]
    full = [S.transpose_full_length(n, k, s, d)
            for n, k, s, d in zip(lengths, kshape, strides, dilation)]
    y = np.zeros((x.shape[0], *full, groups, cout_g))
    xg = x.reshape(x.shape[:-1] + (groups, cin // groups))
    for off in itertools.product(*[range(k) for k in kshape]):
        index = [slice(None)]
        for o, s, d, n in zip(off, strides, dilation, lengths):
            index.append(slice(o * d, o * d + (n - 1) * s + 1, s))
        wg = w[off].reshape(cout_g, groups, cin // groups)
        y[tuple(index)] += np.einsum("...gi,ogi->...go", xg, wg)
    y = y.reshape(y.shape[:-2] + (groups * cout_g,))
    for axis, (before, after) in enumerate(crops, start=1):
        if after < 0:
            width = [(0, 0)] * y.ndim
            width[axis] = (0, -after)
            y = np.pad(y, width)
            after = 0
        y = np.take(y, range(before, y.shape[axis] - after), axis=axis)
    return from_last(y, data_format)


def _cubic(d, a=-0.75):
    """Keys' cubic convolution kernel at distance d."""
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    if d < 2:
        return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
    return 0.0


def resize_matrix(length, scale, mode, align_corners, exclude_outside=False):
    """(out, length) interpolation matrix, one output position at a time; with
    `exclude_outside`, cubic taps outside the input are dropped and the row renormalized
    (ONNX Resize's definition)."""
    out = int(np.floor(length * scale + 1e-9))
    m = np.zeros((out, length))
    for i in range(out):
        if mode == "nearest":
            m[i, min(int(np.floor(i / scale)), length - 1)] = 1.0
            continue
        if align_corners:
            src = i * (length - 1) / (out - 1) if out > 1 else 0.0
        else:
            src = (i + 0.5) / scale - 0.5
        if mode == "bicubic":
            base = int(np.floor(src))
            taps = [(j, _cubic(src - j)) for j in range(base - 1, base + 3)]
            if exclude_outside:
                taps = [(j, w) for j, w in taps if 0 <= j < length]
                total = sum(w for _, w in taps)
                taps = [(j, w / total) for j, w in taps]
            for j, w in taps:
                m[i, min(max(j, 0), length - 1)] += w
        else:
            src = max(src, 0.0)
            lo = min(int(np.floor(src)), length - 1)
            hi = min(lo + 1, length - 1)
            frac = src - np.floor(src)
            m[i, lo] += 1 - frac
            m[i, hi] += frac
    return m


def resize(x, scales, mode, align_corners=False, data_format="channels_last",
           exclude_outside=False):
    y = to_last(np.asarray(x, np.float64), data_format)
    for axis, s in enumerate(scales, start=1):
        m = resize_matrix(y.shape[axis], s, mode, align_corners, exclude_outside)
        y = np.moveaxis(np.tensordot(m, np.moveaxis(y, axis, 0), axes=1), 0, axis)
    return from_last(y, data_format)

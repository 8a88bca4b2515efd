"""Regularizers for convolution kernels: Keras's L1/L2 and structured, layout-aware ones.

Layers bind layout-aware regularizers to their kernel layout (`for_layout`),
so "per filter" means the output filters of whatever layer holds the kernel.
"""

import copy

import keras
from keras import ops as kops

from keras_convx.utils.layout import KernelLayout

register = keras.saving.register_keras_serializable(package="keras_convx")


@register
class L1(keras.regularizers.L1):
    """`l1 * sum(|w|)`, as `keras.regularizers.L1`."""


@register
class L2(keras.regularizers.L2):
    """`l2 * sum(w**2)`, as `keras.regularizers.L2`."""


@register
class L1L2(keras.regularizers.L1L2):
    """`l1 * sum(|w|) + l2 * sum(w**2)`, as `keras.regularizers.L1L2`."""


class KernelRegularizer(keras.regularizers.Regularizer):
    """Base of layout-aware regularizers: `penalty(w, layout)` does the work.

    Args:
        l: the penalty's weight.
    """

    layout = None

    def __init__(self, l=1e-4):  # noqa: E741 (the issue's and the literature's name)
        self.l = float(l)
        if self.l < 0:
            raise ValueError(f"{type(self).__name__}: l must be >= 0, got {l!r}")

    def for_layout(self, layout):
        bound = copy.copy(self)
        bound.layout = layout
        return bound

    def __call__(self, w):
        w = kops.convert_to_tensor(w)
        return self.l * self.penalty(w, self.layout or KernelLayout.default(len(w.shape)))

    def penalty(self, w, layout):
        raise NotImplementedError

    def get_config(self):
        return {"l": self.l}


def _flat_filters(w, layout):
    """(n_filters, filter_size) matrix of the kernel."""
    order = list(layout.filter_axes) + list(layout.reduce_axes)
    m = kops.transpose(w, order)
    n = 1
    for a in layout.filter_axes:
        n *= int(w.shape[a])
    return kops.reshape(m, (n, -1))


@register
class GroupLasso(KernelRegularizer):
    """L2,1 norm over output filters: `l * sum_f ||w_f||_2`; drives whole filters to zero."""

    def penalty(self, w, layout):
        # epsilon inside the sqrt keeps the gradient finite at an all-zero filter
        return kops.sum(kops.sqrt(kops.sum(kops.square(w), axis=layout.reduce_axes) + 1e-12))


@register
class OrthogonalFilters(KernelRegularizer):
    """`l * ||W W^T - I||_F^2` over the flattened filters W (one row per output filter).

    Valid for any rank and for depthwise and transposed layouts.
    """

    def penalty(self, w, layout):
        m = _flat_filters(w, layout)
        gram = kops.matmul(m, kops.transpose(m))
        eye = kops.eye(gram.shape[0], dtype=gram.dtype)
        return kops.sum(kops.square(gram - eye))


@register
class TotalVariation(KernelRegularizer):
    """Anisotropic total variation of filters: `l * sum |w[i+1] - w[i]|` along spatial axes."""

    def penalty(self, w, layout):
        total = 0.0
        for axis in layout.spatial_axes:
            n = w.shape[axis]
            if n is None or n < 2:
                continue
            head = [slice(None)] * len(w.shape)
            tail = list(head)
            head[axis], tail[axis] = slice(1, None), slice(None, -1)
            total = total + kops.sum(kops.abs(w[tuple(head)] - w[tuple(tail)]))
        return total


def get(identifier):
    """Resolves a regularizer: None, an instance, a keras_convx or Keras name, or
    `{"Name": {args}}` / Keras's serialized dict."""
    from keras_convx.utils import registry

    return registry.resolve(identifier, keras.regularizers, "regularizer", __name__)


serialize = keras.regularizers.serialize

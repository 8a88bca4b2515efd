"""Conv-aware weight constraints: they act per output filter, whatever the kernel layout.

A layer binds each constraint to its kernel's layout (`for_layout`), so
`DepthwiseConv2D(3, depthwise_constraint=FilterMaxNorm(1.0))` bounds each
depthwise filter and `Conv2DTranspose(..., kernel_constraint=FilterMaxNorm(1.0))`
each output filter of the `(k..., out, in)` kernel. Unbound (e.g. on a Dense
kernel), the last axis holds the filters, as in Keras.
"""

import copy

import keras
from keras import ops as kops

from keras_convx.utils.layout import KernelLayout

register = keras.saving.register_keras_serializable(package="keras_convx")
_EPSILON = 1e-7


class KernelConstraint(keras.constraints.Constraint):
    """Base of layout-aware constraints: `project(w, layout)` does the work."""

    layout = None

    def for_layout(self, layout):
        """A copy bound to `layout` (the caller's instance stays unbound and shareable)."""
        bound = copy.copy(self)
        bound.layout = layout
        return bound

    def _layout(self, w):
        return self.layout or KernelLayout.default(len(w.shape))

    def __call__(self, w):
        w = kops.convert_to_tensor(w)
        return self.project(w, self._layout(w))

    def project(self, w, layout):
        raise NotImplementedError

    def get_config(self):
        return {}


def _filter_norms(w, layout):
    return kops.sqrt(kops.sum(kops.square(w), axis=layout.reduce_axes, keepdims=True))


@register
class FilterMaxNorm(KernelConstraint):
    """Scales down each output filter whose L2 norm exceeds `max_value`.

    Args:
        max_value: the largest allowed L2 norm of a filter.
    """

    def __init__(self, max_value=2.0):
        self.max_value = float(max_value)

    def project(self, w, layout):
        norms = _filter_norms(w, layout)
        return w * (kops.clip(norms, 0, self.max_value) / (_EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value}


@register
class FilterUnitNorm(KernelConstraint):
    """Rescales each output filter to unit L2 norm."""

    def project(self, w, layout):
        return w / (_EPSILON + _filter_norms(w, layout))


@register
class FilterMinMaxNorm(KernelConstraint):
    """Keeps each filter's L2 norm in [min_value, max_value], moving it by `rate`.

    Args:
        min_value, max_value: the norm bounds.
        rate: 1.0 projects exactly; smaller values move part of the way (as Keras's MinMaxNorm).
    """

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0):
        self.min_value, self.max_value, self.rate = float(min_value), float(max_value), float(rate)
        if not 0 <= self.min_value <= self.max_value:
            raise ValueError(
                f"FilterMinMaxNorm: need 0 <= min_value <= max_value, got "
                f"min_value={min_value}, max_value={max_value}"
            )

    def project(self, w, layout):
        norms = _filter_norms(w, layout)
        target = self.rate * kops.clip(norms, self.min_value, self.max_value) \
            + (1 - self.rate) * norms
        return w * (target / (_EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate}


@register
class NonNeg(KernelConstraint):
    """Sets negative weights to zero."""

    def project(self, w, layout):
        return w * kops.cast(kops.greater_equal(w, 0.0), w.dtype)


@register
class ZeroMeanFilter(KernelConstraint):
    """Makes every spatial slice of every filter sum to zero (high-pass / edge kernels).

    Each (input channel, output filter) slice has its spatial mean removed, so
    each whole filter sums to zero too and passes no constant signal.
    """

    def project(self, w, layout):
        if not layout.spatial_axes:
            return w - kops.mean(w, axis=layout.reduce_axes, keepdims=True)
        return w - kops.mean(w, axis=layout.spatial_axes, keepdims=True)


@register
class SymmetricKernel(KernelConstraint):
    """Makes filters symmetric under flipping each spatial axis (the nearest such kernel)."""

    def project(self, w, layout):
        for axis in layout.spatial_axes:
            w = (w + kops.flip(w, axis=axis)) / 2
        return w


def get(identifier):
    """Resolves a constraint: None, an instance, a keras_convx or Keras name, or
    `{"Name": {args}}` / Keras's serialized dict."""
    from keras_convx.utils import registry

    return registry.resolve(identifier, keras.constraints, "constraint", __name__)


serialize = keras.constraints.serialize

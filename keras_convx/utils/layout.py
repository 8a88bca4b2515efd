"""Kernel layouts: which axes of a conv kernel index output filters and which are spatial.

Layers bind layout-aware constraints and regularizers to their kernels with
`for_layout`, so users never pass axes.
"""


class KernelLayout:
    """Axes of a kernel of `ndim` dims: `rank` leading spatial axes, `filter_axes` index filters.

    Conv `(k..., in/g, out)`: filter_axes=(rank+1,). Depthwise `(k..., in, m)`:
    filter_axes=(rank, rank+1) (each input channel and multiplier is one filter).
    Transposed `(k..., out/g, in)`: filter_axes=(rank,). Pointwise: as conv.
    """

    def __init__(self, rank, filter_axes):
        self.rank = int(rank)
        self.ndim = self.rank + 2
        self.filter_axes = tuple(sorted(a % self.ndim for a in filter_axes))
        self.spatial_axes = tuple(range(self.rank))
        self.reduce_axes = tuple(a for a in range(self.ndim) if a not in self.filter_axes)

    @classmethod
    def default(cls, ndim):
        """Keras's convention when no layer bound a layout: the last axis holds filters."""
        return cls(max(ndim - 2, 0), (ndim - 1,)) if ndim >= 2 else cls(0, (0,))

    def __repr__(self):
        return f"KernelLayout(rank={self.rank}, filter_axes={self.filter_axes})"

    def __eq__(self, other):
        return isinstance(other, KernelLayout) and (self.rank, self.filter_axes) == (
            other.rank, other.filter_axes)

    def __hash__(self):
        return hash((self.rank, self.filter_axes))


CONV = "conv"
DEPTHWISE = "depthwise"
TRANSPOSE = "transpose"


def for_kind(kind, rank):
    """The layout of a `kind` kernel with `rank` spatial axes."""
    filter_axes = {CONV: (rank + 1,), DEPTHWISE: (rank, rank + 1), TRANSPOSE: (rank,)}[kind]
    return KernelLayout(rank, filter_axes)

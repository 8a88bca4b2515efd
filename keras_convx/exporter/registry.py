"""The lowering registry: one function per exact layer or operation class, with its contract.

A lowering declares at registration the layout it wants its inputs in and whether the
layer's fused `activation` follows it; the driver (`apply`) moves the layouts, builds
the output values and applies the activation, so a lowering body only emits ONNX nodes.
"""

import dataclasses

from keras_convx.exporter.graph import Value, channels_first_perm

# Spatial inputs as N, C, spatial... (by the layer's `data_format`): convs, pools, resizes.
CHANNELS_FIRST = "channels_first"
# Inputs in Keras's own axis order: ops whose meaning depends on it (Dense, Reshape, ...).
KERAS_ORDER = "keras"
# Elementwise: any layout, every input of the same rank laid out like the first.
SAME = "same"
LAYOUTS = (CHANNELS_FIRST, KERAS_ORDER, SAME)

LOWERINGS = {}


@dataclasses.dataclass(frozen=True)
class Lowering:
    """A registered lowering: `fn(builder, layer, ctx)` and its contract."""

    fn: object
    layout: str = SAME
    activation: bool = False
    when: object = None  # fn(layer) -> bool: the layers it covers; others are traced

    @property
    def __name__(self):
        return getattr(self.fn, "__name__", "lowering")


def lowering(*classes, layout=SAME, activation=False, when=None):
    """Registers `fn(builder, layer, ctx)` as the ONNX lowering of `classes`.

    The public way to teach the exporter a layer of your own:

    ```python
    @kc.exporter.lowering(MyScale, layout=kc.exporter.SAME)
    def lower_my_scale(b, layer, ctx):
        return b.node("Mul", [ctx.x.name, b.const(np.float32(layer.factor), "factor")])
    ```

    Args:
        classes: the exact classes (a subclass may change `call`, so it is not assumed
            to lower like its parent). Registering a class twice is an error.
        layout: how the driver hands over the inputs (`ctx.inputs`, `ctx.x`):
            `CHANNELS_FIRST`, `KERAS_ORDER` or `SAME` (elementwise; the default).
        activation: apply the layer's `activation` attribute to the result.
        when: optional `fn(layer) -> bool`: the instances this lowering covers; the
            others are traced through their `call` like a class without a lowering.

    The function returns the ONNX name of its output (or a list, one per output), in the
    layout of its inputs (`ctx.perm`), or `Value`s when it changes the layout itself.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"exporter: layout must be one of {LAYOUTS}, got {layout!r}")

    def decorate(fn):
        for cls in classes:
            if cls in LOWERINGS:
                raise ValueError(
                    f"exporter: {cls.__module__}.{cls.__name__} already has a lowering "
                    f"({LOWERINGS[cls].__name__})"
                )
            LOWERINGS[cls] = fn if isinstance(fn, Lowering) else Lowering(fn, layout, activation,
                                                                          when)
        return fn
    return decorate


def find(layer):
    entry = LOWERINGS.get(type(layer))
    if entry is not None and entry.when is not None and not entry.when(layer):
        return None
    return entry


def _values(obj):
    if isinstance(obj, Value):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [v for item in obj for v in _values(item)]
    if isinstance(obj, dict):
        return [v for item in obj.values() for v in _values(item)]
    return []


class _Moved:
    """The inputs in the wanted layout, each moved on first use only (an input read for
    its shape, like CropToMatch's reference, costs no Transpose)."""

    def __init__(self, values, move):
        self._values, self._move, self._done = values, move, {}

    def __len__(self):
        return len(self._values)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        i = range(len(self))[i]
        if i not in self._done:
            self._done[i] = self._move(self._values[i])
        return self._done[i]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def apply(b, entry, layer, ctx):
    """Runs `entry` for `layer`: layouts in, Values out, the activation after."""
    from keras_convx.exporter.lowerings.common import activation

    values = _values(ctx.args) + _values(ctx.kwargs)
    if entry.layout == CHANNELS_FIRST:
        fmt = getattr(layer, "data_format", None) or "channels_last"

        def move(v):
            return b.to_perm(v, channels_first_perm(v.ndim, fmt))
    elif entry.layout == KERAS_ORDER:
        def move(v):
            return b.to_perm(v, tuple(range(v.ndim)))
    else:
        first = values[0] if values else None

        def move(v):
            return v if v is first or v.ndim != first.ndim else b.to_perm(v, first.perm)
    ctx.inputs = _Moved(values, move)
    ctx.x = ctx.inputs[0] if values else None
    ctx.perm = ctx.x.perm if values else ()
    result = entry.fn(b, layer, ctx)
    results = result if isinstance(result, list) else [result]
    out = []
    for i, r in enumerate(results):
        if not isinstance(r, Value):
            shape = ctx.output_shapes[i]
            perm = ctx.perm if len(ctx.perm) == len(shape) else tuple(range(len(shape)))
            r = Value(r, shape, perm)
        out.append(r)
    if entry.activation:
        out[0] = activation(b, getattr(layer, "activation", None), out[0])
    return out

"""The conversion registry: one function per (domain, ONNX op type, since-version).

A conversion declares at registration the layout it wants its tensor inputs in; the
driver (`keras_convx.importer.driver`) moves layouts with `keras.layers.Permute` only
when a conversion really needs another order, so a body only creates Keras layers.
"""

import dataclasses

# Spatial ops (Conv, Pool, Resize, BatchNormalization...): N, spatial..., C for
# channels_last, N, C, spatial... for channels_first.
SPATIAL = "spatial"
# Ops whose meaning depends on ONNX's memory order (Reshape, MatMul on the last axis...).
ONNX_ORDER = "onnx_order"
# Elementwise and axis-parameterised ops: any layout; tensor inputs of the same rank are
# laid out like the first.
SAME = "same"
# Ops that read each input's axis order themselves (Einsum rewrites its subscripts): no move.
ANY = "any"
LAYOUTS = (SPATIAL, ONNX_ORDER, SAME, ANY)
# Ops produced by the importer's own fusion passes (Erf-based GELU, MatMul + Add...).
FUSED_DOMAIN = "keras_convx.fused"
ONNX_DOMAINS = ("", "ai.onnx")

CONVERSIONS = {}


@dataclasses.dataclass(frozen=True)
class Conversion:
    """A registered conversion `fn(ctx)` and its contract."""

    fn: object
    op_type: str
    domain: str
    since: int
    layout: str = SAME

    @property
    def __name__(self):
        return getattr(self.fn, "__name__", "conversion")


def conversion(op_type, since=1, *, domain="", layout=SAME):
    """Registers `fn(ctx)` as the conversion of ONNX op `op_type` from opset `since` on.

    The public way to teach the importer an op of your own:

    ```python
    @kc.importer.conversion("Celu", since=12)
    def convert_celu(ctx):
        return ctx.layer(keras.layers.Activation, activation="celu")
    ```

    Args:
        op_type: the ONNX op type.
        since: the first opset version this conversion's semantics apply to (the op's
            `since_version` in the ONNX spec); the newest one not above the model's
            opset is used. Registering the same (domain, op_type, since) twice is an error.
        domain: "" (ai.onnx) or a custom domain.
        layout: how the driver hands over tensor inputs: `SPATIAL`, `ONNX_ORDER`, `SAME`
            or `ANY` (as they are; the conversion reads each `Value.perm`).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"importer: layout must be one of {LAYOUTS}, got {layout!r}")
    if not isinstance(since, int) or since < 1:
        raise ValueError(f"importer: since must be a positive int, got {since!r}")
    domain = "" if domain == "ai.onnx" else domain

    def decorate(fn):
        key = (domain, op_type, since)
        if key in CONVERSIONS:
            raise ValueError(f"importer: {op_type} (domain {domain!r}, since opset {since}) "
                             f"already has a conversion ({CONVERSIONS[key].__name__})")
        CONVERSIONS[key] = Conversion(fn, op_type, domain, since, layout)
        return fn
    return decorate


def find(domain, op_type, opset):
    """The conversion of `op_type` for a model importing `domain` at version `opset`."""
    domain = "" if domain == "ai.onnx" else domain
    best = None
    for (d, op, since), entry in CONVERSIONS.items():
        if d == domain and op == op_type and since <= opset and (best is None
                                                                  or since > best.since):
            best = entry
    return best


def supported_ops():
    """Sorted (domain, op_type, since) of every registered conversion."""
    return sorted(CONVERSIONS)

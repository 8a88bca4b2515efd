"""BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization ->
Keras's normalization layers, on the channel axis wherever the layout put it."""

import keras
import numpy as np

from keras_convx.importer.conversions.common import float32
from keras_convx.importer.context import Value
from keras_convx.importer.errors import Unsupported
from keras_convx.importer.registry import FUSED_DOMAIN, conversion

L = keras.layers


def _channel_axis(ctx):
    if ctx.x.ndim < 2:
        raise Unsupported(f"input of rank {ctx.x.ndim} has no channel axis")
    return ctx.x.keras_axis(1)


def _per_channel(ctx, index, what, channels):
    value = float32(ctx.const(index, what), what).reshape(-1)
    if value.size != channels:
        raise Unsupported(f"{what} has {value.size} values for {channels} channels")
    return value


@conversion("BatchNormalization", since=1)
def convert_batch_normalization(ctx):
    if ctx.flag("training_mode") or ctx.attr("is_test", 1) == 0:
        raise Unsupported("training_mode=1 is not supported (inference graphs only)")
    if any(o for o in ctx.node.outputs[1:]):
        raise Unsupported("running mean/variance outputs are not supported")
    channels = ctx.x.shape[1]
    gamma, beta, mean, var = (_per_channel(ctx, i, n, channels) for i, n in
                              enumerate(("scale", "B", "input_mean", "input_var"), 1))
    out = ctx.layer(L.BatchNormalization, axis=_channel_axis(ctx),
                    epsilon=float(ctx.attr("epsilon", 1e-5)),
                    momentum=float(ctx.attr("momentum", 0.9)))
    ctx.last_layer.set_weights([gamma, beta, mean, var])
    return out


def _group_norm(ctx, groups, gamma, beta):
    out = ctx.layer(L.GroupNormalization, groups=groups, axis=_channel_axis(ctx),
                    epsilon=float(ctx.attr("epsilon", 1e-5)))
    ctx.last_layer.set_weights([gamma, beta])
    return out


@conversion("InstanceNormalization", since=1)
def convert_instance_normalization(ctx):
    channels = ctx.x.shape[1]
    if ctx.x.ndim < 3:
        raise Unsupported("needs at least one spatial axis")
    return _group_norm(ctx, channels, _per_channel(ctx, 1, "scale", channels),
                       _per_channel(ctx, 2, "B", channels))


@conversion("GroupNorm", domain=FUSED_DOMAIN)
def convert_fused_group_norm(ctx):
    """PyTorch's GroupNorm as exported before opset 18 (fused by passes.fuse_group_norm)."""
    extra = ctx.node.extra
    out = ctx.layer(L.GroupNormalization, groups=extra["groups"], axis=_channel_axis(ctx),
                    epsilon=extra["epsilon"])
    ctx.last_layer.set_weights([float32(extra["gamma"], "gamma"), float32(extra["beta"], "beta")])
    return out


@conversion("GroupNormalization", since=21)
def convert_group_normalization(ctx):
    """Opset 21's per-channel scale and bias (opset 18's per-group version is deprecated
    and refused by onnx's checker)."""
    channels = ctx.x.shape[1]
    groups = int(ctx.attr("num_groups", 0))
    if groups < 1 or channels % groups:
        raise Unsupported(f"num_groups={groups} must divide the {channels} channels")
    if int(ctx.attr("stash_type", 1)) != 1:
        raise Unsupported("stash_type must be 1 (float32 statistics)")
    gamma, beta = (_per_channel(ctx, i, n, channels) for i, n in ((1, "scale"), (2, "bias")))
    return _group_norm(ctx, groups, gamma, beta)


@conversion("LayerNormalization", since=17)
def convert_layer_normalization(ctx):
    x = ctx.x  # Mean/InvStdDev outputs: the walk refuses them only where something reads them
    axis = int(ctx.attr("axis", -1)) % x.ndim
    if axis == 0:
        raise Unsupported("normalizing over the batch axis is not supported")
    onnx_axes = list(range(axis, x.ndim))
    keras_axes = sorted(x.keras_axis(a) for a in onnx_axes)
    if keras_axes != list(range(x.ndim - len(onnx_axes), x.ndim)):
        # Keras's LayerNormalization on torch normalizes trailing axes only
        x = ctx.move(x, tuple(range(x.ndim)))
        keras_axes = onnx_axes
    shape = tuple(x.shape[axis:])
    scale = ctx.const(1, "Scale")
    bias = ctx.const(2, "B", optional=True) if len(ctx.inputs) > 2 else None
    try:
        gamma = np.broadcast_to(float32(scale, "Scale"), shape)
        beta = np.broadcast_to(float32(bias, "B") if bias is not None else np.float32(0), shape)
    except ValueError:
        raise Unsupported(f"Scale/B shapes don't broadcast to the normalized shape "
                          f"{list(shape)}") from None
    # Keras keeps gamma over its (sorted) axes in Keras order
    order = [x.perm[k] - axis for k in keras_axes]
    out = ctx.layer(L.LayerNormalization, axis=keras_axes,
                    epsilon=float(ctx.attr("epsilon", 1e-5)), inputs=x.tensor)
    ctx.last_layer.set_weights([np.transpose(gamma, order).reshape(ctx.last_layer.gamma.shape),
                                np.transpose(beta, order).reshape(ctx.last_layer.beta.shape)])
    return Value(out, x.perm)

"""The `keras.ops` that real models reach inside their blocks (keras-hub's: split, pad,
attention, resize, slicing, gathers, moments...), each lowered in both layouts it can meet
(straight from the input: Keras order; after a conv: channels-first inside the graph) and
verified in onnxruntime tensor by tensor against Keras at 1e-5 of each tensor's scale."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_convx as kc
from helpers import BACKEND, rand

L = keras.layers
TOL = 1e-5
IDX = np.asarray([3, 0, 2, 2], np.int64)


def _attention(x):
    # hand-written attention over the 48 pixels of a (6, 8, 4) map, 2 heads of 2
    seq = ops.reshape(x, (-1, 48, 4))
    heads = ops.transpose(ops.reshape(seq, (-1, 48, 2, 2)), (0, 2, 1, 3))
    scores = ops.softmax(ops.matmul(heads, ops.transpose(heads, (0, 1, 3, 2))) * 0.7, axis=-1)
    out = ops.transpose(ops.matmul(scores, heads), (0, 2, 1, 3))
    return ops.reshape(out, (-1, 6, 8, 4))


def _einsum_attention(x):
    seq = ops.reshape(x, (-1, 48, 4))
    scores = ops.softmax(ops.einsum("bqc,bkc->bqk", seq, seq) * 0.5, axis=-1)
    kernel = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)
    return ops.einsum("bqk,bkc,cd->bqd", scores, seq, kernel)


def _dot_product_attention(x, causal=False):
    q = ops.reshape(x, (-1, 48, 2, 2))
    return ops.dot_product_attention(q, q * 0.5, q + 1.0, is_causal=causal)


CASES = {
    "split-sections": lambda x: ops.concatenate(
        [a * (i + 1) for i, a in enumerate(ops.split(x, 2, axis=-1))], axis=1),
    "split-indices": lambda x: ops.split(x, [1, 4], axis=2)[1]
    + ops.split(x, [1, 4], axis=2)[2][:, :, :1],
    "split-spatial-three-ways": lambda x: ops.sum(ops.stack(ops.split(x, 3, axis=1)), axis=0),
    "pad-constant": lambda x: ops.pad(x, ((0, 0), (1, 2), (0, 3), (0, 0)), constant_values=0.5),
    "pad-channels": lambda x: ops.pad(x, ((0, 0), (0, 0), (0, 0), (1, 2))),
    "pad-reflect": lambda x: ops.pad(x, ((0, 0), (2, 1), (1, 2), (0, 0)), mode="reflect"),
    "pad-symmetric": lambda x: ops.pad(x, ((0, 0), (2, 1), (1, 2), (0, 0)), mode="symmetric"),
    "pad-edge": lambda x: ops.pad(x, ((0, 0), (2, 1), (1, 2), (0, 0)), mode="edge"),
    "pad-wrap": lambda x: ops.pad(x, ((0, 0), (2, 1), (1, 2), (0, 0)), mode="wrap"),
    "matmul-attention": _attention,
    "einsum-attention": _einsum_attention,
    "dot-product-attention": _dot_product_attention,
    "dot-product-attention-causal": lambda x: _dot_product_attention(x, causal=True),
    "erf": lambda x: ops.erf(x) + ops.gelu(x),
    "resize-bilinear": lambda x: ops.image.resize(x, (11, 13)),
    "resize-bilinear-down": lambda x: ops.image.resize(x, (3, 4)),
    "resize-nearest": lambda x: ops.image.resize(x, (12, 5), interpolation="nearest"),
    "resize-bicubic": lambda x: ops.image.resize(x, (13, 16), interpolation="bicubic"),
    "resize-antialias-up": lambda x: ops.image.resize(x, (12, 16), antialias=True),
    "reshape-minus-one": lambda x: ops.reshape(x, (-1, 12, 16)) * 2.0,
    "reshape-batch-folded": lambda x: ops.reshape(ops.reshape(x, (-1, 4)), (-1, 8, 4)),
    "transpose": lambda x: ops.transpose(x, (0, 2, 1, 3)) + 1.0,
    "expand-squeeze": lambda x: ops.squeeze(ops.expand_dims(x, 3), 3)
    + ops.squeeze(ops.expand_dims(x, 1), axis=1),
    "expand-dims-then-concat": lambda x: ops.concatenate(
        [ops.expand_dims(x, -1), ops.expand_dims(x * 2, -1)], axis=-1),
    "stack": lambda x: ops.stack([x, -x, x * 3], axis=1),
    "stack-last": lambda x: ops.stack([x, -x], axis=-1),
    "getitem-slices": lambda x: x[:, 1:5, ::2, :3],
    "getitem-negative-step": lambda x: x[:, ::-1, 2:-1],
    "getitem-int-and-newaxis": lambda x: x[:, 2, None, :, -1],
    "getitem-ellipsis": lambda x: x[..., 1:3] + x[..., :2],
    "getitem-last-channel": lambda x: x[:, :, :, -1],
    "take-axis": lambda x: ops.take(x, IDX, axis=-1),
    "take-scalar": lambda x: ops.take(x, 3, axis=1),
    "take-along-axis": lambda x: ops.take_along_axis(
        x, np.tile(IDX.reshape(1, 1, 1, 4), (1, 6, 8, 1)), axis=-1),
    "mean-var-std": lambda x: (x - ops.mean(x, axis=-1, keepdims=True))
    / ops.sqrt(ops.var(x, axis=-1, keepdims=True) + 1e-3) + ops.std(x, axis=[1, 2])[:, None,
                                                                                     None, :],
    "where": lambda x: ops.where(x > 0.1, x, x * 0.01),
    "where-constant-condition": lambda x: ops.where(
        np.asarray([True, False, True, False]), x, 0.0),
    "clip-cast": lambda x: ops.cast(ops.clip(x, -0.4, 0.4), "float32") + 1.0,
    "cast-through-int": lambda x: ops.cast(ops.cast(x * 4, "int32"), "float32"),
    "sqrt-rsqrt-power-abs": lambda x: ops.sqrt(ops.abs(x)) + ops.rsqrt(ops.abs(x) + 1.0)
    + ops.power(ops.abs(x), 1.5),
    "comparisons": lambda x: ops.cast(ops.logical_and(x > -0.3, x <= 0.4), "float32") * x,
}


# cases Keras itself can't run on a backend, or that the exporter refuses there by name
REFUSED = {
    ("tensorflow", "pad-edge"): "Keras's TensorFlow backend has no edge pad (tf.pad)",
    ("tensorflow", "pad-wrap"): "Keras's TensorFlow backend has no wrap pad (tf.pad)",
    ("tensorflow", "resize-bicubic"): "refused on TensorFlow (test_tf_bicubic_is_refused)",
    ("torch", "pad-edge"): "Keras's torch backend passes mode 'edge' to torch, which has none",
    ("torch", "pad-wrap"): "refused on torch (test_op_without_exact_lowering_is_refused)",
    ("torch", "getitem-negative-step"): "torch tensors have no negative-step slices",
}


# both layouts on TF and torch; every other case on JAX
@pytest.mark.thin_on_jax(2)
@pytest.mark.parametrize("after_conv", [False, True], ids=["keras-order", "channels-first"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_op_lowering_verifies(name, after_conv, tmp_path):
    if (BACKEND, name) in REFUSED:
        pytest.skip(REFUSED[BACKEND, name])
    x = keras.Input((6, 8, 4), name="x")
    h = kc.Conv2D(4, 3, padding="same", name="conv")(x) if after_conv else x
    model = keras.Model(x, CASES[name](h))
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), i) * 0.5)
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native",
                            verify=kc.VerifyOptions(tolerance=TOL))
    assert report.passed, report.verify.summary()
    assert report.verify.informative


@pytest.mark.parametrize("op, message", [
    (lambda x: ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="maximum"),
     r"pad\(mode='maximum'\)"),
    (lambda x: ops.image.resize(x, (3, 4), antialias=True), r"antialias"),
    (lambda x: ops.image.resize(x, (12, 16), interpolation="lanczos3"), r"lanczos3"),
    (lambda x: ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
     if BACKEND == "torch" else ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="median"),
     r"pad\(mode='(wrap|median)'\)"),
])
def test_op_without_exact_lowering_is_refused_by_name(op, message, tmp_path):
    x = keras.Input((6, 8, 4), name="x")
    try:
        model = keras.Model(x, op(x))
    except Exception as err:  # noqa: BLE001 (a backend may refuse the op itself)
        pytest.skip(f"Keras on {BACKEND} refuses it: {err}")
    with pytest.raises(kc.exporter.UnsupportedModel, match=message):
        kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's bicubic only")
def test_tf_bicubic_is_refused(tmp_path):
    x = keras.Input((6, 8, 4), name="x")
    model = keras.Model(x, ops.image.resize(x, (13, 16), interpolation="bicubic"))
    with pytest.raises(kc.exporter.UnsupportedModel, match="1024-entry weight table"):
        kc.export_onnx(model, tmp_path / "m.onnx", method="native")

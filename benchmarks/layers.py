"""Section 1: keras_convx layers against keras.layers on one backend (a subprocess per backend).

Same shapes, same weights; each pair is timed interleaved (A B A B ...) and the median
of the repeats is compared as a ratio. Writes a JSON list of rows to --out.
"""

import argparse
import json
import os
import statistics
import sys
import time


def cases(quick):
    import keras

    import keras_convx as kc

    L = keras.layers
    s = 8 if quick else 1  # shape divisor for the smoke run
    b = 2 if quick else 8
    return [
        ("Conv1D causal d2", lambda: kc.Conv1D(64, 3, padding="causal", dilation_rate=2),
         lambda: L.Conv1D(64, 3, padding="causal", dilation_rate=2), (b, 2048 // s, 64)),
        ("Conv2D 3x3 64->64 56x56", lambda: kc.Conv2D(64, 3, padding="same"),
         lambda: L.Conv2D(64, 3, padding="same"), (b, 56 // s, 56 // s, 64)),
        ("Conv3D 3x3x3 16->16 16^3", lambda: kc.Conv3D(16, 3, padding="same"),
         lambda: L.Conv3D(16, 3, padding="same"), (2, 16 // s * 2 if quick else 16, 16, 16, 16)),
        ("DepthwiseConv2D 3x3 56x56x64", lambda: kc.DepthwiseConv2D(3, padding="same"),
         lambda: L.DepthwiseConv2D(3, padding="same"), (b, 56 // s, 56 // s, 64)),
        ("SeparableConv2D 3x3 64->64", lambda: kc.SeparableConv2D(64, 3, padding="same"),
         lambda: L.SeparableConv2D(64, 3, padding="same"), (b, 56 // s, 56 // s, 64)),
        ("Conv2DTranspose 3x3 s2 28->56", lambda: kc.Conv2DTranspose(64, 3, strides=2, padding="same"),
         lambda: L.Conv2DTranspose(64, 3, strides=2, padding="same"), (b, 28 // s, 28 // s, 64)),
        ("UpSampling2D bilinear x2", lambda: kc.UpSampling2D(2, interpolation="bilinear"),
         lambda: L.UpSampling2D(2, interpolation="bilinear"), (b, 56 // s, 56 // s, 64)),
        # Extensions: compared with what a user would otherwise write.
        ("Conv2D reflect vs ops.pad+conv", lambda: kc.Conv2D(64, 3, padding="same", padding_mode="reflect"),
         lambda: _PadThenConv(), (b, 56 // s, 56 // s, 64)),
        ("DepthwiseConv3D vs grouped Conv3D", lambda: kc.DepthwiseConv3D(3, padding="same"),
         lambda: L.Conv3D(16, 3, padding="same", groups=16), (2, 16 // s * 2 if quick else 16, 16, 16, 16)),
    ]


def _PadThenConv():
    import keras

    class PadThenConv(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(64, 3)

        def build(self, shape):
            self.conv.build((shape[0], shape[1] + 2, shape[2] + 2, shape[3]))

        def call(self, x):
            x = keras.ops.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
            return self.conv(x)

    return PadThenConv()


def compiled(layer, backward):
    """The function users run: jit/tf.function where that is how the backend is used.

    The backward pass takes gradients w.r.t. the input and the weights, as inside a
    network (and so that weightless layers have a backward pass too).
    """
    import keras

    backend = keras.backend.backend()
    variables = [v.value for v in layer.trainable_variables]
    if backend == "jax":
        import jax

        def loss(vals, x):
            y, _ = layer.stateless_call(vals, [], x)
            return (y * y).mean()

        fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))) if backward else \
            jax.jit(lambda vals, x: layer.stateless_call(vals, [], x)[0])
        return lambda x: jax.block_until_ready(fn(variables, x))
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def fwd(x):
            return layer(x)

        @tf.function
        def fwd_bwd(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                loss = tf.reduce_mean(y * y)
            return tape.gradient(loss, [x] + layer.trainable_variables)

        f = fwd_bwd if backward else fwd
        return lambda x: [t.numpy() for t in tf.nest.flatten(f(tf.convert_to_tensor(x)))]
    import torch

    def run(x):
        if backward:
            for v in layer.trainable_variables:
                v.value.grad = None
            x = x.detach().requires_grad_(True)
            y = layer(x)
            (y * y).mean().backward()
        else:
            with torch.no_grad():
                layer(x)
    return run


def time_pair(fa, fb, x, repeats, warmup=2):
    for _ in range(warmup):
        fa(x)
        fb(x)
    ta, tb = [], []
    for _ in range(repeats):  # interleaved, so drift hits both alike
        t = time.perf_counter()
        fa(x)
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        fb(x)
        tb.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import keras
    import numpy as np

    backend = keras.backend.backend()
    rows = []
    for name, make_ours, make_ref, shape in cases(args.quick):
        x = np.random.default_rng(0).standard_normal(shape).astype("float32")
        if backend == "torch":
            import torch
            x = torch.from_numpy(x)
        ours, ref = make_ours(), make_ref()
        ours.build(shape)
        ref.build(shape)
        if len(ours.get_weights()) == len(ref.get_weights()) and all(
                a.shape == b.shape for a, b in zip(ours.get_weights(), ref.get_weights())):
            ours.set_weights(ref.get_weights())
        for backward in (False, True):
            a, b = time_pair(compiled(ours, backward), compiled(ref, backward), x, args.repeats)
            rows.append({"backend": backend, "case": name,
                         "pass": "fwd+bwd" if backward else "fwd",
                         "ours_ms": a * 1e3, "keras_ms": b * 1e3, "ratio": a / b})
            print(f"{backend:10s} {name:36s} {rows[-1]['pass']:8s} ours {a*1e3:8.2f} ms  "
                  f"keras {b*1e3:8.2f} ms  ratio {a/b:5.2f}", file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    raise SystemExit(main())

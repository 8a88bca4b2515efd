"""One process of a multi-process JAX training run of keras_convx layers (gloo CPU
collectives), started by tests/test_distributed.py: `python distributed_worker.py MODE
PROCESS COUNT PORT OUT`, MODE "data" (DataParallel) or "model" (ModelParallel: conv kernels
sharded on their output axis by a LayoutMap). COUNT 1 is the single-process reference.
Writes OUT/weights-MODE-COUNT.npz (process 0), then, for COUNT 2, exports the trained model
and verifies it (OUT/MODE.onnx)."""

import os
import sys

MODE, PROCESS, COUNT, PORT, OUT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \
    sys.argv[5]
os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402

if COUNT > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{PORT}", num_processes=COUNT,
                               process_id=PROCESS)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_convx as kc  # noqa: E402

# the kernels ModelParallel shards: anchored names. A bare ".*conv.*kernel" also matches
# "depthwise_conv2d/kernel", whose last axis is the depth multiplier (1): not splittable
LAYOUT = {r"^conv2d(_\d+)?/kernel$": (None, None, None, "model"),
          r"^dense/kernel$": (None, "model")}


def build():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = kc.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = kc.layers.DepthwiseConv2D(3, padding="same")(x)
    x = kc.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(4)(x))


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8, 8, 3)).astype(np.float32)
    y = rng.standard_normal((32, 4)).astype(np.float32)
    batch = 8
    if COUNT > 1:
        devices = keras.distribution.list_devices()
        if MODE == "data":
            distribution = keras.distribution.DataParallel(devices=devices)
            # each process feeds its share of every global batch, in process order
            share = batch // COUNT
            rows = np.concatenate([np.arange(b + PROCESS * share, b + (PROCESS + 1) * share)
                                   for b in range(0, len(x), batch)])
            x, y, batch = x[rows], y[rows], share
        else:
            mesh = keras.distribution.DeviceMesh((1, COUNT), ["batch", "model"], devices)
            layout = keras.distribution.LayoutMap(mesh)
            for key, axes in LAYOUT.items():
                layout[key] = axes
            distribution = keras.distribution.ModelParallel(layout_map=layout,
                                                            batch_dim_name="batch")
        # the data is fed per process, as written above (ModelParallel: all of it, since
        # the batch axis is not split)
        distribution.auto_shard_dataset = False
        keras.distribution.set_distribution(distribution)
    model = build()
    if COUNT == 1:
        np.savez(os.path.join(OUT, "weights-initial.npz"), *model.get_weights())
    else:
        import json

        specs = {w.path: str(w.value.sharding.spec) for w in model.weights}
        if PROCESS == 0:
            with open(os.path.join(OUT, f"sharding-{MODE}.json"), "w") as f:
                json.dump(specs, f)
    model.compile(keras.optimizers.SGD(0.05), "mse")
    model.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0)
    weights = [np.asarray(w.value) if COUNT == 1 else _gather(w.value) for w in model.weights]
    if PROCESS == 0:
        np.savez(os.path.join(OUT, f"weights-{MODE}-{COUNT}.npz"), *weights)
    if COUNT > 1 and PROCESS == 0:
        # the trained weights, gathered from their shards, into the same model on one device
        keras.distribution.set_distribution(None)
        plain = build()
        plain.set_weights(weights)
        report = kc.export_onnx(plain, os.path.join(OUT, f"{MODE}.onnx"))
        assert report.passed, report.verify.summary()


def _gather(value):
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(value, tiled=True))


if __name__ == "__main__":
    main()

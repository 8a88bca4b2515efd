"""The `make demo` model: a small encoder-decoder using what Keras can't do.

It builds the model, runs it on random data, checks the reflect-padded
convolution against an explicit `keras_convx.ops.pad` + valid conv, and prints
a per-layer table.
"""

import time

import keras
import numpy as np
from rich.console import Console
from rich.table import Table

import keras_convx as kc


def build_demo_model(size=32, channels=3):
    inputs = keras.Input((size, size, channels), name="image")
    h = kc.Conv2D(16, 3, padding="same", padding_mode="reflect", activation="relu",
                  name="stem")(inputs)
    h = kc.Conv2D(32, 3, strides=2, dilation_rate=2, padding="same", groups=2,
                  activation="relu", name="down")(h)
    h = kc.SeparableConv2D(32, 3, padding="same", activation="relu", name="sep")(h)
    h = kc.Conv2DTranspose(16, 3, strides=2, padding="same", groups=2, name="up")(h)
    outputs = kc.Conv2D(channels, 1, name="head")(h)
    return keras.Model(inputs, outputs, name="convx_demo")


def run():
    console = Console()
    start = time.perf_counter()
    model = build_demo_model()
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(model(x))
    stem = model.get_layer("stem")
    padded = kc.ops.pad(x, 1, mode="reflect")
    direct = kc.ops.conv(padded, stem.kernel) + keras.ops.convert_to_numpy(stem.bias)
    stem_out = keras.ops.convert_to_numpy(stem(x))
    err = float(np.max(np.abs(np.maximum(keras.ops.convert_to_numpy(direct), 0) - stem_out)))

    table = Table(title=f"{model.name} on the {keras.backend.backend()} backend")
    for col in ("layer", "type", "output shape", "params"):
        table.add_column(col)
    for layer in model.layers:
        shape = layer.output.shape if hasattr(layer, "output") else ""
        table.add_row(layer.name, type(layer).__name__, str(tuple(shape)),
                      f"{layer.count_params():,}")
    console.print(table)
    console.print(f"output {tuple(y.shape)}; total params {model.count_params():,}")
    console.print(f"reflect-padded stem vs explicit pad + conv: max abs error {err:.2e}")
    console.print(f"done in {time.perf_counter() - start:.2f} s")
    return 0 if err < 1e-5 and np.isfinite(y).all() else 1

"""Conv-aware constraints and regularizers: properties after training, NumPy values,
finite-difference gradients, pruning behaviour, serialization."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_convx as kc
from keras_convx import constraints as C, regularizers as R
from keras_convx.utils.layout import for_kind
from helpers import BACKEND, rand, scalar_grad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, layer factory given a constraint/regularizer kwarg dict, input shape, kernel attr, kind)
LAYERS = [
    ("conv1d", lambda **k: kc.Conv1D(4, 3, **k), (8, 3), "kernel", "conv"),
    ("conv2d", lambda **k: kc.Conv2D(4, 3, **k), (6, 6, 3), "kernel", "conv"),
    ("conv3d", lambda **k: kc.Conv3D(4, 3, **k), (4, 4, 4, 2), "kernel", "conv"),
    ("depthwise2d", lambda **k: kc.DepthwiseConv2D(3, depth_multiplier=2, **{
        a.replace("kernel", "depthwise"): v for a, v in k.items()}), (6, 6, 3), "kernel",
     "depthwise"),
    ("separable2d-depthwise", lambda **k: kc.SeparableConv2D(4, 3, **{
        a.replace("kernel", "depthwise"): v for a, v in k.items()}), (6, 6, 3),
     "depthwise_kernel", "depthwise"),
    ("separable2d-pointwise", lambda **k: kc.SeparableConv2D(4, 3, **{
        a.replace("kernel", "pointwise"): v for a, v in k.items()}), (6, 6, 3),
     "pointwise_kernel", "conv"),
    ("conv2dtranspose", lambda **k: kc.Conv2DTranspose(4, 3, strides=2, **k), (4, 4, 3),
     "kernel", "transpose"),
]


def filters_of(w, kind):
    """Independent of the library: (n_filters, filter_size) per kernel layout."""
    rank = w.ndim - 2
    if kind == "conv":        # (k..., in, out): filter = out
        return np.moveaxis(w, -1, 0).reshape(w.shape[-1], -1)
    if kind == "transpose":   # (k..., out, in): filter = out
        return np.moveaxis(w, -2, 0).reshape(w.shape[-2], -1)
    return np.moveaxis(w.reshape(w.shape[:rank] + (-1,)), -1, 0).reshape(-1, int(np.prod(w.shape[:rank])))


def holds(name, w, kind, tol=1e-5):
    f = filters_of(w, kind)
    norms = np.linalg.norm(f, axis=1)
    rank = w.ndim - 2
    if name == "FilterMaxNorm":
        return bool(np.all(norms <= 0.3 + tol))
    if name == "FilterUnitNorm":
        return bool(np.allclose(norms, 1.0, atol=tol))
    if name == "FilterMinMaxNorm":
        return bool(np.all((norms >= 0.5 - tol) & (norms <= 0.8 + tol)))
    if name == "NonNeg":
        return bool(np.all(w >= 0))
    if name == "ZeroMeanFilter":
        return bool(np.allclose(f.sum(axis=1), 0, atol=tol))
    if name == "SymmetricKernel":
        return all(np.allclose(w, np.flip(w, axis=a), atol=tol) for a in range(rank))
    raise AssertionError(name)


CONSTRAINTS = {
    "FilterMaxNorm": lambda: C.FilterMaxNorm(0.3),
    "FilterUnitNorm": C.FilterUnitNorm,
    "FilterMinMaxNorm": lambda: C.FilterMinMaxNorm(0.5, 0.8),
    "NonNeg": C.NonNeg,
    "ZeroMeanFilter": C.ZeroMeanFilter,
    "SymmetricKernel": C.SymmetricKernel,
}


@pytest.mark.parametrize("cname", sorted(CONSTRAINTS))
def test_constraint_holds_per_filter_after_fit(cname):
    # One multi-branch model per constraint keeps the number of graph builds low.
    inputs, outputs, layers = [], [], []
    for name, make, shape, attr, kind in LAYERS:
        x = keras.Input(shape)
        layer = make(kernel_constraint=CONSTRAINTS[cname]())
        inputs.append(x)
        outputs.append(keras.layers.GlobalAveragePooling1D()(keras.layers.Reshape((-1, 4))(
            layer(x))) if kind != "depthwise" else keras.layers.Flatten()(layer(x)))
        layers.append((name, layer, attr, kind))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=["mse"] * len(outputs))
    data = [rand((8,) + s, i) for i, (_, _, s, _, _) in enumerate(LAYERS)]
    targets = [rand((8,) + tuple(o.shape[1:]), 50 + i) * 3 for i, o in enumerate(outputs)]
    before = [keras.ops.convert_to_numpy(getattr(l, a)) for _, l, a, _ in layers]
    model.fit(data, targets, epochs=2, batch_size=4, verbose=0)
    for (name, layer, attr, kind), w0 in zip(layers, before):
        w = keras.ops.convert_to_numpy(getattr(layer, attr))
        assert not np.allclose(w, w0), f"{name}: training did not move the kernel"
        assert holds(cname, w, kind), f"{cname} does not hold per output filter of {name}"


def test_misapplied_axis_counter_example():
    # Keras's MaxNorm with the conv axes, applied to a transposed kernel (k, k, out, in),
    # bounds each *input* channel: the per-output-filter property fails; ours holds.
    w = rand((3, 3, 4, 6), 3)
    wrong = keras.ops.convert_to_numpy(keras.constraints.MaxNorm(0.3, axis=[0, 1, 2])(w))
    assert not holds("FilterMaxNorm", wrong, "transpose")
    right = C.FilterMaxNorm(0.3).for_layout(for_kind("transpose", 2))(w)
    assert holds("FilterMaxNorm", keras.ops.convert_to_numpy(right), "transpose")
    # and the check itself is strict: an unconstrained kernel fails it
    assert not holds("FilterMaxNorm", w, "transpose")


def np_penalty(name, w, kind, l):
    w = w.astype(np.float64)
    f = filters_of(w, kind)
    if name == "L1":
        return l * np.abs(w).sum()
    if name == "L2":
        return l * (w ** 2).sum()
    if name == "L1L2":
        return l * np.abs(w).sum() + l * (w ** 2).sum()
    if name == "GroupLasso":
        return l * np.linalg.norm(f, axis=1).sum()
    if name == "OrthogonalFilters":
        return l * ((f @ f.T - np.eye(len(f))) ** 2).sum()
    if name == "TotalVariation":
        rank = w.ndim - 2
        return l * sum(np.abs(np.diff(w, axis=a)).sum() for a in range(rank))
    raise AssertionError(name)


REGULARIZERS = {
    "L1": lambda: R.L1(0.01), "L2": lambda: R.L2(0.01), "L1L2": lambda: R.L1L2(0.01, 0.01),
    "GroupLasso": lambda: R.GroupLasso(0.01), "OrthogonalFilters": lambda: R.OrthogonalFilters(0.01),
    "TotalVariation": lambda: R.TotalVariation(0.01),
}


@pytest.mark.parametrize("rname", sorted(REGULARIZERS))
@pytest.mark.parametrize("lname", [c[0] for c in LAYERS])
def test_regularizer_value_matches_numpy(rname, lname):
    name, make, shape, attr, kind = next(c for c in LAYERS if c[0] == lname)
    layer = make(kernel_regularizer=REGULARIZERS[rname]())
    layer.build((None,) + shape)
    w = rand(tuple(getattr(layer, attr).shape), 11)
    getattr(layer, attr).assign(w)
    (loss,) = [keras.ops.convert_to_numpy(v) for v in layer.losses]
    expected = np_penalty(rname, w, kind, 0.01)
    assert abs(float(loss) - expected) <= 1e-5 * max(abs(expected), 1.0)


@pytest.mark.parametrize("rname", sorted(REGULARIZERS))
@pytest.mark.parametrize("kind", ["conv", "depthwise", "transpose"])
def test_regularizer_gradient_by_finite_differences(rname, kind):
    reg = REGULARIZERS[rname]()
    if hasattr(reg, "for_layout"):
        reg = reg.for_layout(for_kind(kind, 2))
    w = rand((2, 3, 2, 3), 5)
    grad = scalar_grad(lambda v: reg(v), w)
    eps = 1e-3
    numeric = np.zeros_like(w, dtype=np.float64)
    for idx in np.ndindex(w.shape):
        up, down = w.astype(np.float64), w.astype(np.float64)
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (np_penalty(rname, up, kind, 0.01) - np_penalty(rname, down, kind, 0.01)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-2, atol=1e-4)


def _train_with(regularizer, seed=0):
    keras.utils.set_random_seed(seed)
    x = rand((64, 8, 8, 3), 21)
    y = x[..., :1].mean(axis=(1, 2)) * 2.0  # only needs channel 0
    inputs = keras.Input((8, 8, 3))
    conv = kc.Conv2D(8, 3, kernel_regularizer=regularizer, use_bias=False)
    h = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False)(h))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, epochs=150, batch_size=64, verbose=0)
    norms = np.linalg.norm(filters_of(keras.ops.convert_to_numpy(conv.kernel), "conv"), axis=1)
    return norms


def test_group_lasso_zeroes_whole_filters_l2_does_not():
    lasso = _train_with(R.GroupLasso(0.1))
    l2 = _train_with(R.L2(0.1 / 8))
    zero = 0.02
    assert (lasso < zero).sum() >= 2, lasso
    assert (l2 < zero).sum() == 0, l2


def test_string_and_dict_forms_resolve():
    layer = kc.Conv2D(2, 3, kernel_constraint="FilterUnitNorm",
                      kernel_regularizer={"GroupLasso": {"l": 0.5}}, bias_regularizer="l2")
    assert isinstance(layer.kernel_constraint, C.FilterUnitNorm)
    assert isinstance(layer.kernel_regularizer, R.GroupLasso) and layer.kernel_regularizer.l == 0.5
    assert isinstance(layer.bias_regularizer, keras.regularizers.L2)
    for obj in list(CONSTRAINTS.values()) + list(REGULARIZERS.values()):
        inst = obj()
        clone = type(inst).from_config(inst.get_config())
        assert clone.get_config() == inst.get_config()
        assert keras.saving.get_registered_name(type(inst)).startswith("keras_convx>")
    with pytest.raises(ValueError, match="unknown constraint 'FilterMaxNorn'"):
        kc.Conv2D(2, 3, kernel_constraint="FilterMaxNorn")


def test_keras_file_with_all_of_them_reloads_in_fresh_process(tmp_path):
    inputs, outputs = [], []
    pairs = list(zip(sorted(CONSTRAINTS), sorted(REGULARIZERS)))
    for i, (cname, rname) in enumerate(pairs):
        name, make, shape, attr, kind = LAYERS[i % len(LAYERS)]
        x = keras.Input(shape)
        inputs.append(x)
        outputs.append(make(kernel_constraint=CONSTRAINTS[cname](),
                            kernel_regularizer=REGULARIZERS[rname]())(x))
    model = keras.Model(inputs, outputs)
    data = [rand((2,) + tuple(x.shape[1:]), i) for i, x in enumerate(inputs)]
    outs = [keras.ops.convert_to_numpy(y) for y in model(data)]
    losses = [float(keras.ops.convert_to_numpy(v)) for v in model.losses]
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "io.npz", *data, *outs, np.array(losses))
    n = len(data)
    script = f"""
import numpy as np, keras, keras_convx
m = keras.saving.load_model({str(tmp_path / 'm.keras')!r})
io = np.load({str(tmp_path / 'io.npz')!r})
a = [io[f"arr_{{i}}"] for i in range({2 * n + 1})]
for got, want in zip(m(a[:{n}]), a[{n}:{2 * n}]):
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), want)
np.testing.assert_allclose([float(keras.ops.convert_to_numpy(v)) for v in m.losses], a[-1], rtol=1e-6)
print("same", len(m.losses))
"""
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"same {len(pairs)}" in result.stdout

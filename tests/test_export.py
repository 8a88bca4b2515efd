"""ONNX export: every lowering verified in onnxruntime, tf2onnx on the same models,
cross-backend equality, fallback, diagnosis of a broken lowering, atomic writes."""

import dataclasses
import itertools
import os
import subprocess
import sys

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import keras_convx as kc
from keras_convx import exporter
from helpers import BACKEND, rand

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE_TOL = 1e-5  # max abs error <= 1e-5 x max|keras output|


def single(make, shape, seed=0):
    inputs = keras.Input(shape, name="x")
    model = keras.Model(inputs, make()(inputs))
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), seed + i))
    return model


def export_and_check(model, path, method="native", **kwargs):
    report = kc.export_onnx(model, path, method=method,
                            verify=kc.VerifyOptions(tolerance=SCALE_TOL), **kwargs)
    assert report.passed and os.path.exists(path)
    assert {c.batch for c in report.verify.checks} == {1, 2}  # dynamic batch
    # every tensor the graph keeps was compared, none failed
    assert all(c.status in ("pass", "fused", "uninformative") for c in report.verify.tensors)
    return report


def _conv_cases():
    for rank, padding, mode, (s, d), groups, fmt in itertools.product(
        (1, 2, 3), ("valid", "same", "causal", "explicit"), ("zeros", "reflect", "symmetric",
                                                           "replicate", "circular"),
        ((1, 1), (2, 1), (2, 2)), (1, 2), ("channels_last", "channels_first"),
    ):
        if padding == "valid" and mode != "zeros" or rank == 3 and (mode not in ("zeros", "reflect") or groups > 1):
            continue
        if (s, d) == (2, 2) and fmt == "channels_first" or mode in ("symmetric", "circular") and groups > 1:
            continue
        pad = ((2, 1), (0, 2), (1, 0))[:rank] if padding == "explicit" else padding
        yield pytest.param(
            (lambda r=rank, p=pad, m=mode, s=s, d=d, g=groups, f=fmt: {1: kc.Conv1D, 2: kc.Conv2D, 3: kc.Conv3D}[r](
                4, 3, strides=s, dilation_rate=d, padding=p, padding_mode=m, groups=g,
                data_format=f, activation="relu")),
            ((9,) * rank + (4,)) if fmt == "channels_last" else ((4,) + (9,) * rank),
            id=f"conv{rank}d-{padding}-{mode}-s{s}-d{d}-g{groups}-{fmt}")


def _family_cases():
    cases = []
    for rank, padding, mult, (s, d) in itertools.product(
            (1, 2, 3), ("valid", "same", "causal"), (1, 2), ((1, 1), (2, 1), (1, 2), (2, 2))):
        if rank == 3 and (mult > 1 or s == d == 2):
            continue
        shape = (9,) * rank + (3,)
        cases.append(pytest.param(
            lambda r=rank, p=padding, m=mult, s=s, d=d: {1: kc.DepthwiseConv1D, 2: kc.DepthwiseConv2D, 3: kc.DepthwiseConv3D}[r](
                3, depth_multiplier=m, padding=p, strides=s, dilation_rate=d, padding_mode="reflect" if p != "valid" else "zeros"),
            shape, id=f"depthwise{rank}d-{padding}-m{mult}-s{s}-d{d}"))
        cases.append(pytest.param(
            lambda r=rank, p=padding, m=mult, s=s, d=d: {1: kc.SeparableConv1D, 2: kc.SeparableConv2D, 3: kc.SeparableConv3D}[r](
                5, 3, depth_multiplier=m, padding=p, strides=s, dilation_rate=d),
            shape, id=f"separable{rank}d-{padding}-m{mult}-s{s}-d{d}"))
    for rank, padding, (s, d), groups, op, fmt in itertools.product(
            (1, 2, 3), ("valid", "same", 1, ((2, 0), (0, 1), (1, 1))), ((1, 1), (2, 1), (3, 1), (2, 2)),
            (1, 2), (None, 1), ("channels_last", "channels_first")):
        if op and max(s, d) == 1 or rank == 3 and (groups > 1 or fmt == "channels_first" or s == 3):
            continue
        pad = padding[:rank] if isinstance(padding, tuple) else padding
        pid = pad if isinstance(pad, (int, str)) else "explicit"
        cases.append(pytest.param(
            lambda r=rank, p=pad, s=s, d=d, g=groups, o=op, f=fmt: {1: kc.Conv1DTranspose, 2: kc.Conv2DTranspose, 3: kc.Conv3DTranspose}[r](
                4, 3, strides=s, dilation_rate=d, padding=p, groups=g, output_padding=o, data_format=f),
            ((5,) * rank + (4,)) if fmt == "channels_last" else ((4,) + (5,) * rank),
            id=f"convtr{rank}d-{pid}-s{s}-d{d}-g{groups}-op{op}-{fmt}"))
    return cases


def _reshaping_cases():
    cases = []
    for rank in (1, 2, 3):
        sp = (6,) * rank + (2,)
        cls = lambda n: getattr(kc, f"{n}{rank}D")  # noqa: E731
        cases += [
            pytest.param(lambda c=cls("Cropping"), r=rank: c(((1, 2), (0, 1), (2, 0))[:r] if r > 1 else (1, 2)), sp, id=f"cropping{rank}d"),
            pytest.param(lambda c=cls("ZeroPadding"): c(), sp, id=f"zeropadding{rank}d"),
        ]
        for mode in ("constant", "reflect", "symmetric", "replicate", "circular"):
            cases.append(pytest.param(
                lambda c=cls("Padding"), r=rank, m=mode: c(((2, 1), (0, 3), (1, 1))[:r] if r > 1 else (2, 1), mode=m, constant_value=0.5),
                sp, id=f"padding{rank}d-{mode}"))
        linear = {1: "linear", 2: "bilinear", 3: "trilinear"}[rank]
        for interp, align, size in itertools.product(("nearest", linear, "bicubic"), (False, True), (2, 1.5, 3)):
            if interp == "bicubic" and rank != 2 or interp == "nearest" and align:
                continue
            cases.append(pytest.param(
                lambda c=cls("UpSampling"), i=interp, a=align, s=size: c(s, interpolation=i, align_corners=a),
                (5,) * rank + (2,), id=f"upsampling{rank}d-{interp}-align{int(align)}-x{size}"))
    return cases


# the lowering reads weights only, so the graph doesn't depend on the backend
# (test_native_export_equal_across_backends exports from JAX and torch directly)
@pytest.mark.thin_on_jax(6)
@pytest.mark.parametrize("make,shape", list(_conv_cases()) + _family_cases() + _reshaping_cases())
def test_single_layer_native_export(make, shape, tmp_path):
    export_and_check(single(make, shape), tmp_path / "m.onnx")


KERAS_LAYER_MODELS = {
    "keras-conv-bn-pool": lambda: keras.Sequential([
        keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, padding="same"),
        keras.layers.BatchNormalization(), keras.layers.ReLU(max_value=6.0),
        keras.layers.MaxPooling2D(3, 2, padding="same"), keras.layers.AveragePooling2D(2, padding="same"),
        keras.layers.Dropout(0.3), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]),
    "keras-1d": lambda: keras.Sequential([
        keras.Input((20, 4)), keras.layers.Conv1D(6, 3, padding="causal", dilation_rate=2),
        keras.layers.LeakyReLU(0.1), keras.layers.MaxPooling1D(2), keras.layers.AveragePooling1D(3, padding="same"),
        keras.layers.GlobalMaxPooling1D(), keras.layers.Dense(3), keras.layers.Activation("gelu")]),
    "keras-3d-cf": lambda: keras.Sequential([
        keras.Input((2, 8, 8, 8)), keras.layers.Conv3D(4, 3, data_format="channels_first"),
        keras.layers.BatchNormalization(axis=1), keras.layers.ELU(),
        keras.layers.MaxPooling3D(2, data_format="channels_first"),
        keras.layers.GlobalAveragePooling3D(data_format="channels_first", keepdims=True),
        keras.layers.Reshape((4,)), keras.layers.Activation("hard_sigmoid")]),
    "keras-family": lambda: keras.Sequential([
        keras.Input((12, 12, 3)), keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
        keras.layers.SeparableConv2D(8, 3, strides=2), keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same"),
        keras.layers.UpSampling2D(2, interpolation="bilinear"), keras.layers.ZeroPadding2D(1),
        keras.layers.Cropping2D(((1, 0), (2, 1))), keras.layers.Activation("swish"),
        keras.layers.Softmax(axis=-1)]),
}


def _merge_model():
    x = keras.Input((10, 10, 3), name="image")
    a = kc.Conv2D(4, 3, padding="same", activation="silu")(x)
    b = kc.Conv2D(4, 1, activation="tanh")(x)
    s = keras.layers.Add()([a, b])
    m = keras.layers.Multiply()([a, s])
    c = keras.layers.Concatenate()([s, m, keras.layers.Maximum()([a, b])])
    c = keras.layers.Average()([c, keras.layers.Subtract()([c, kc.Conv2D(12, 1)(c)])])
    d = kc.SeparableConv2D(6, 3, padding="same")(c)
    e = kc.Conv2DTranspose(6, 2, strides=2)(d)
    f = kc.CropToMatch()([e, kc.UpSampling2D(2)(d)])
    g = keras.layers.Concatenate(axis=-1)([f, kc.UpSampling2D(2)(c)])
    out = keras.layers.GlobalAveragePooling2D()(g)
    return keras.Model(x, [out, keras.layers.Minimum()([a, b])], name="merge")


@pytest.mark.parametrize("name", sorted(KERAS_LAYER_MODELS) + ["merge"])
def test_models_with_keras_layers(name, tmp_path):
    model = KERAS_LAYER_MODELS[name]() if name != "merge" else _merge_model()
    for i, w in enumerate(model.weights):
        if "moving_variance" in w.path:
            w.assign(np.abs(rand(tuple(w.shape), i)) + 0.5)
        else:
            w.assign(rand(tuple(w.shape), i) * 0.5)
    report = export_and_check(model, tmp_path / "m.onnx")
    graph = onnx.load(tmp_path / "m.onnx").graph
    layer_names = {layer.name for layer in model.layers} | {"graph"}
    assert all(n.name.split("/")[0] in layer_names for n in graph.node)
    if name == "keras-conv-bn-pool":
        assert report.bn_folded == 1
        assert not any(n.op_type == "BatchNormalization" for n in graph.node)


def test_channels_last_chain_has_one_transpose_per_input_and_output(tmp_path):
    model = single(lambda: kc.Conv2D(4, 3, padding="same"), (8, 8, 3))
    x = model.inputs[0]
    h = model(x)
    for layer in (kc.SeparableConv2D(4, 3), kc.Conv2DTranspose(4, 3, strides=2),
                  kc.UpSampling2D(2, interpolation="bilinear"), kc.Padding2D(1, mode="reflect")):
        h = layer(h)
    chain = keras.Model(x, h)
    report = export_and_check(chain, tmp_path / "m.onnx")
    assert report.transpose_count == 2
    nchw = kc.export_onnx(chain, tmp_path / "n.onnx", nchw_io=True)
    assert nchw.transpose_count == 0 and nchw.passed
    graph = onnx.load(tmp_path / "n.onnx").graph
    assert graph.input[0].type.tensor_type.shape.dim[1].dim_value == 3  # NCHW input


def test_dynamic_axes(tmp_path):
    model = single(lambda: kc.Conv2D(4, 3, padding="same", padding_mode="replicate"), (None, None, 3))
    report = kc.export_onnx(model, tmp_path / "s.onnx", dynamic_axes=("batch", "spatial"),
                            verify=kc.VerifyOptions(
                                samples=[[rand((2, 7, 9, 3))], [rand((1, 12, 5, 3))]]))
    # the two samples and random inputs at two sizes derived from the graph (16x24, 32x40)
    assert report.passed and len(report.verify.checks) == 4
    assert {c.shape[1:3] for c in report.verify.checks} == {(7, 9), (12, 5), (16, 24), (32, 40)}
    static = single(lambda: kc.Conv2D(4, 3), (8, 8, 3))
    report = kc.export_onnx(static, tmp_path / "f.onnx", dynamic_axes=(), batch_size=4)
    dims = onnx.load(tmp_path / "f.onnx").graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [4, 8, 8, 3] and report.verify.checks[0].batch == 4
    with pytest.raises(ValueError, match=r"export: dynamic_axes must be drawn from \('batch', 'spatial'\)"):
        kc.export_onnx(static, tmp_path / "g.onnx", dynamic_axes=("time",))


def test_unsupported_layer_native_names_it_auto_falls_back(tmp_path):
    inputs = keras.Input((8, 8, 3))
    h = kc.Conv2D(4, 3)(inputs)
    h = keras.layers.RandomContrast(0.2, name="contrast")(h)
    model = keras.Model(inputs, keras.ops.cumsum(h, axis=1))
    # all listed at once, each with its kind and class path (an op node is no layer)
    with pytest.raises(exporter.UnsupportedModel, match=r"can't lower 2 layer\(s\)/operation\(s\): contrast \(layer keras.layers.RandomContrast\).*cumsum \(operation keras.src.ops.numpy.Cumsum\).*@keras_convx.exporter.lowering"):
        kc.export_onnx(model, tmp_path / "n.onnx", method="native")
    assert not os.path.exists(tmp_path / "n.onnx")
    if BACKEND == "tensorflow":
        report = kc.export_onnx(model, tmp_path / "a.onnx", method="auto")
        assert report.method == "tf2onnx" and "contrast (layer keras.layers.RandomContrast)" in report.reason
        assert report.passed
    else:
        with pytest.raises(exporter.UnsupportedModel, match="method='auto' would fall back to tf2onnx, which needs the TensorFlow backend"):
            kc.export_onnx(model, tmp_path / "a.onnx", method="auto")


def test_broken_lowering_is_caught_and_diagnosed(tmp_path, monkeypatch):
    inputs = keras.Input((8, 8, 3))
    h = kc.Conv2D(4, 3, padding="same", name="first")(inputs)
    h = kc.Conv2D(4, 3, strides=2, name="broken")(h)
    model = keras.Model(inputs, kc.Conv2D(2, 1, name="last")(h))
    real = exporter.LOWERINGS[kc.Conv2D]

    def wrong(b, layer, ctx):
        y = real.fn(b, layer, ctx)
        if layer.name == "broken":  # an off-by-a-constant bug
            y = b.node("Add", [y, b.const(np.float32(0.01), "bug")])
        return y

    monkeypatch.setitem(exporter.LOWERINGS, kc.Conv2D, dataclasses.replace(real, fn=wrong))
    path = tmp_path / "m.onnx"
    with pytest.raises(exporter.VerificationError, match="first diverging layer: broken") as info:
        kc.export_onnx(model, path, verify=kc.VerifyOptions(diagnose=True))
    assert not os.path.exists(path)  # atomic: nothing at path
    assert os.path.exists(tmp_path / "m.failed.onnx") and os.path.exists(tmp_path / "m.failed.json")
    diagnosis = info.value.report.diagnosis
    assert diagnosis[0].tensor == "broken" and "first" not in [d.tensor for d in diagnosis]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already has a lowering"):
        exporter.lowering(kc.Conv2D)(lambda b, layer, ctx: None)


def test_missing_output_folder(tmp_path):
    model = single(lambda: kc.Conv1D(2, 3), (8, 2))
    with pytest.raises(ValueError, match="export: output folder .* does not exist"):
        kc.export_onnx(model, tmp_path / "nope" / "m.onnx")


TF2ONNX_CASES = {
    "conv2d-same-s2": (lambda: kc.Conv2D(4, 3, strides=2, padding="same"), (9, 9, 3)),
    "conv2d-reflect-g2": (lambda: kc.Conv2D(4, 3, padding="same", padding_mode="reflect", groups=2), (9, 9, 4)),
    "conv1d-causal": (lambda: kc.Conv1D(4, 3, padding="causal", dilation_rate=2), (12, 3)),
    "conv2d-s2-d2": (lambda: kc.Conv2D(4, 3, strides=2, dilation_rate=2), (12, 12, 3)),
    "conv3d": (lambda: kc.Conv3D(2, 3, padding="same"), (5, 5, 5, 2)),
    "depthwise2d": (lambda: kc.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 3)),
    "depthwise3d": (lambda: kc.DepthwiseConv3D(3), (5, 5, 5, 2)),
    "separable2d": (lambda: kc.SeparableConv2D(4, 3, padding="same"), (8, 8, 3)),
    "convtr2d-same-s2": (lambda: kc.Conv2DTranspose(4, 3, strides=2, padding="same"), (5, 5, 3)),
    "convtr2d-g2": (lambda: kc.Conv2DTranspose(4, 3, strides=2, groups=2), (5, 5, 4)),
    "convtr1d-d2": (lambda: kc.Conv1DTranspose(4, 3, dilation_rate=2), (6, 2)),
    "conv2d-channels_first": (lambda: kc.Conv2D(4, 3, data_format="channels_first"), (3, 8, 8)),
    "padding2d-symmetric": (lambda: kc.Padding2D(2, mode="symmetric"), (6, 6, 2)),
    "cropping2d": (lambda: kc.Cropping2D(1), (6, 6, 2)),
    "upsampling2d-bilinear": (lambda: kc.UpSampling2D(2, interpolation="bilinear"), (5, 5, 2)),
    "upsampling2d-bicubic-align": (lambda: kc.UpSampling2D(1.5, interpolation="bicubic", align_corners=True), (5, 5, 2)),
}


# tf2onnx limitations, by case: Keras runs grouped convolutions on TF CPU inside an
# XLA-compiled tf.function, which tf2onnx leaves as an unconvertible StatefulPartitionedCall.
TF2ONNX_LIMITS = {
    "conv2d-reflect-g2": "No Op registered for (Stateful)?PartitionedCall",
    "convtr2d-g2": "No Op registered for (Stateful)?PartitionedCall",
    "depthwise3d": "No Op registered for (Stateful)?PartitionedCall",
}


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf2onnx converts TensorFlow graphs only")
@pytest.mark.parametrize("name", sorted(TF2ONNX_CASES))
def test_same_models_through_tf2onnx(name, tmp_path):
    make, shape = TF2ONNX_CASES[name]
    model = single(make, shape)
    native = export_and_check(model, tmp_path / "n.onnx")
    if name in TF2ONNX_LIMITS:
        with pytest.raises(Exception, match=TF2ONNX_LIMITS[name]):
            kc.export_onnx(model, tmp_path / "t.onnx", method="tf2onnx")
        assert not os.path.exists(tmp_path / "t.onnx")
        return
    converted = export_and_check(model, tmp_path / "t.onnx", method="tf2onnx")
    assert converted.method == "tf2onnx"
    # record the graph sizes side by side (the benchmark compares them at scale)
    print(f"{name}: native {native.node_count} nodes / {native.transpose_count} Transpose, "
          f"tf2onnx {converted.node_count} / {converted.transpose_count}")


CROSS_SCRIPT = r"""
import sys, numpy as np, keras, keras_convx as kc, onnxruntime as ort
sys.path.insert(0, {tests!r})
from test_export import cross_backend_model
model = cross_backend_model()
model.load_weights({weights!r})
kc.export_onnx(model, {out!r}, verify=True)
x = np.load({data!r})
y = ort.InferenceSession({out!r}).run(None, {{"image": x}})[0]
np.save({result!r}, y)
"""


def cross_backend_model():
    x = keras.Input((12, 12, 3), name="image")
    h = kc.Conv2D(6, 3, strides=2, dilation_rate=2, padding="same", padding_mode="reflect", groups=3)(x)
    h = kc.DepthwiseConv2D(3, depth_multiplier=2, padding="causal")(h)
    h = kc.Conv2DTranspose(4, 3, strides=2, groups=2, padding=1, output_padding=1)(h)
    h = kc.UpSampling2D(1.5, interpolation="bicubic")(h)
    return keras.Model(x, kc.SeparableConv2D(3, 3, padding="same")(h))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="run once, from the TF process, against jax and torch")
def test_native_export_equal_across_backends(tmp_path):
    model = cross_backend_model()
    for i, w in enumerate(model.weights):
        w.assign(rand(tuple(w.shape), i) * 0.5)
    model.save_weights(tmp_path / "w.weights.h5")
    x = rand((2, 12, 12, 3), 3)
    np.save(tmp_path / "x.npy", x)
    kc.export_onnx(model, tmp_path / "tf.onnx")
    reference = ort.InferenceSession(str(tmp_path / "tf.onnx")).run(None, {"image": x})[0]
    for backend in ("jax", "torch"):
        script = CROSS_SCRIPT.format(tests=os.path.join(ROOT, "tests"), weights=str(tmp_path / "w.weights.h5"),
                                     out=str(tmp_path / f"{backend}.onnx"), data=str(tmp_path / "x.npy"),
                                     result=str(tmp_path / f"{backend}.npy"))
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT)
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        np.testing.assert_allclose(np.load(tmp_path / f"{backend}.npy"), reference, rtol=0,
                                   atol=1e-5 * np.abs(reference).max())


def test_readme_custom_lowering_example(tmp_path, monkeypatch):
    """The README's example of a user's own layer and lowering runs as written."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index("# custom-lowering example")
    block = text[start:text.index("```", start)]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    report = scope["report"]
    assert report.passed and os.path.exists(tmp_path / "scaled.onnx")
    assert any(n.op_type == "Mul" and n.name.startswith("scale")
               for n in onnx.load(tmp_path / "scaled.onnx").graph.node)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf2onnx converts TensorFlow graphs only")
def test_tf2onnx_honours_dynamic_spatial(tmp_path):
    """`dynamic_axes=("batch", "spatial")` means the same on both paths (it was ignored on
    tf2onnx's: the input stayed [unk, 16, 16, 3])."""
    x = keras.Input((16, 16, 3))
    model = keras.Model(x, keras.layers.MaxPooling2D()(kc.Conv2D(4, 3, padding="same")(x)))
    path = tmp_path / "m.onnx"
    report = kc.export_onnx(model, path, method="tf2onnx", dynamic_axes=("batch", "spatial"))
    assert report.passed
    assert any("only the graph outputs were compared" in w for w in report.verify.warnings)
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, True, True, False]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rand((1, 32, 24, 3), 0)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = keras.ops.convert_to_numpy(model.layers[2](model.layers[1](x)))
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())


def test_an_output_that_is_an_input_gets_its_own_name(tmp_path):
    # Model(x, [x, conv(x)]): ONNX defines each name once, so the passthrough is x_output
    x = keras.Input((5, 4, 3), name="x")
    model = keras.Model(x, [x, kc.Conv2D(2, 3, name="conv")(x)])
    report = kc.export_onnx(model, tmp_path / "m.onnx", method="native")
    assert report.passed
    graph = onnx.load(tmp_path / "m.onnx").graph
    assert [o.name for o in graph.output] == ["x_output", "conv"]
    assert [i.name for i in graph.input] == ["x"]


def test_checker_keeps_strict_shape_inference_with_large_weights():
    # _check runs shape inference with large weights declared as inputs: a weight whose shape
    # contradicts its Conv must still be rejected, as the full checker rejects it
    from onnx import TensorProto, helper, numpy_helper

    from keras_convx.exporter.publish import _SMALL_CONSTANT_BYTES, check as _check

    def conv_model(out_channels):
        weight = numpy_helper.from_array(
            np.zeros((out_channels, 8, 3, 3), np.float32), "w")  # large: well over the threshold
        assert len(weight.raw_data) > _SMALL_CONSTANT_BYTES
        shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")  # small: kept
        graph = helper.make_graph(
            [helper.make_node("Conv", ["x", "w"], ["y"]),
             helper.make_node("Reshape", ["y", "shape"], ["z"])], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6, 6])],
            [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 64 * 16])],
            [weight, shape])
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        proto.ir_version = 10
        return proto

    good = conv_model(64)
    _check(good.SerializeToString(), good)
    bad = conv_model(32)  # the declared output has room for 64 channels
    with pytest.raises(Exception, match="differ in dimension 1"):
        onnx.checker.check_model(bad, full_check=True)
    with pytest.raises(Exception, match="differ in dimension 1"):
        _check(bad.SerializeToString(), bad)
    # what the structural check would see of a large weight: its bytes against its shape
    short = conv_model(64)
    short.graph.initializer[0].raw_data = short.graph.initializer[0].raw_data[:-4]
    with pytest.raises(ValueError, match="initializer w holds 18428 bytes.*need 18432"):
        _check(short.SerializeToString(), short)


def test_a_dynamic_batch_has_one_name_on_every_input_and_output(tmp_path):
    """ONNX knows the batch axes are equal when they share a dim name (they had one name
    per tensor: image_d0, fc_d0)."""
    a, b = keras.Input((8, 8, 3), name="image"), keras.Input((5,), name="extra")
    fmap = kc.Conv2D(4, 3, padding="same")(a)
    pooled = keras.layers.GlobalAveragePooling2D()(fmap)
    head = keras.layers.Dense(2, name="fc")(keras.layers.Concatenate()([pooled, b]))
    model = keras.Model([a, b], [fmap, head])
    path = tmp_path / "two.onnx"
    assert kc.export_onnx(model, path, dynamic_axes=("batch", "spatial")).passed
    graph = onnx.load(path).graph
    names = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
             for v in list(graph.input) + list(graph.output)]
    assert {dims[0] for dims in names} == {"batch"}, names
    assert names[0][2] not in ("batch", names[0][3])  # height and width stay their own


def test_verify_options_group_and_the_old_flat_form(tmp_path):
    """export_onnx's verification options are one group, `VerifyOptions`; the flat keywords
    of older releases still work, with a DeprecationWarning, and mean the same."""
    import inspect

    model = single(lambda: kc.layers.Conv2D(3, 3, padding="same"), (6, 6, 2))
    grouped = kc.export_onnx(model, tmp_path / "g.onnx",
                             verify=kc.VerifyOptions(tolerance=2e-5, diagnose=False))
    with pytest.deprecated_call(match=r"export_onnx\(diagnose=\.\.\., tolerance=\.\.\.\) is "
                                      r"deprecated: pass verify=keras_convx\.VerifyOptions"):
        flat = kc.export_onnx(model, tmp_path / "f.onnx", tolerance=2e-5, diagnose=False)
    for report in (grouped, flat):
        assert report.passed and {c.tolerance for c in report.verify.checks} == {2e-5}
        assert not report.verify.tensors  # diagnose=False: outputs only
    named = [p for p in inspect.signature(kc.export_onnx).parameters.values()
             if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert len(named) == 17 and "tolerance" not in [p.name for p in named]
    with pytest.raises(TypeError, match="inside verify=VerifyOptions"):
        kc.export_onnx(model, tmp_path / "x.onnx", verify=kc.VerifyOptions(), tolerance=1e-5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'tolerence'"):
        kc.export_onnx(model, tmp_path / "x.onnx", tolerence=1e-5)
    with pytest.raises(TypeError, match="verify must be True, False or a VerifyOptions"):
        kc.export_onnx(model, tmp_path / "x.onnx", verify="yes")
    with pytest.raises(ValueError, match="optimization_level must be one of"):
        kc.VerifyOptions(optimization_level="max")
    with pytest.raises(ValueError, match="tolerance must be a positive number, got -1"):
        kc.VerifyOptions(tolerance=-1)
    assert not os.path.exists(tmp_path / "x.onnx")

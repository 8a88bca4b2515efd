"""Files that deploy: uint8 pixel inputs (issue 25)."""

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import keras_convx as kc
from keras_convx.exporter.metadata import read as read_metadata


@pytest.fixture(scope="module")
def pixels_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = kc.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(4)(x))


def raw(n, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3)).astype(np.uint8)


@pytest.mark.parametrize("nchw_io", [False, True])
def test_uint8_input_runs_the_preprocessing_in_the_graph(pixels_model, tmp_path, nchw_io):
    path = str(tmp_path / "u8.onnx")
    report = kc.export_onnx(pixels_model, path, input_dtype="uint8", nchw_io=nchw_io)
    assert report.passed
    m = onnx.load(path)
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert m.graph.node[0].op_type == "Cast"  # first, before any layer (Rescaling included)
    assert any(n.op_type == "Mul" for n in m.graph.node)  # Rescaling's scale, in the graph
    assert read_metadata(m)["keras_convx.export"]["inputs"][0]["dtype"] == "uint8"
    px = raw(3)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = px.transpose(0, 3, 1, 2) if nchw_io else px
    got = session.run(None, {session.get_inputs()[0].name: feed})[0]
    want = keras.ops.convert_to_numpy(pixels_model(px.astype(np.float32)))
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))
    # verification drew integer pixels (the graph can't take anything else)
    assert kc.verify_onnx(pixels_model, path, samples=[[px.astype(np.float32)]]).passed


def test_uint8_input_refuses_what_a_cast_would_change(pixels_model, tmp_path):
    path = str(tmp_path / "u8.onnx")
    with pytest.raises(ValueError, match="integers in 0..255; got values in \\[0.5, 0.5\\]"):
        kc.export_onnx(pixels_model, path, input_dtype="uint8",
                       verify=kc.VerifyOptions(
                           samples=[[np.full((1, 16, 16, 3), 0.5, np.float32)]]))
    with pytest.raises(ValueError, match="input_dtype must be 'float32' or 'uint8'"):
        kc.export_onnx(pixels_model, path, input_dtype="int16")
    assert not list(tmp_path.iterdir())


def test_uint8_input_with_int8_and_the_cli(pixels_model, tmp_path):
    from keras_convx.cli import main

    path = str(tmp_path / "q.onnx")
    report = kc.export_onnx(pixels_model, path, input_dtype="uint8", precision="int8",
                            calibration=raw(40).astype(np.float32))
    assert report.passed and report.quantization.passed
    pixels_model.save(str(tmp_path / "m.keras"))
    out = str(tmp_path / "cli.onnx")
    assert main(["export", str(tmp_path / "m.keras"), "-o", out, "--uint8-input"]) == 0
    assert onnx.load(out).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_triton_repository_from_the_graph(pixels_model, tmp_path, monkeypatch):
    from keras_convx.cli import main
    from keras_convx.exporter import triton

    pixels_model.save(str(tmp_path / "m.keras"))
    repo = tmp_path / "repo"  # not there yet: --triton-repo creates it
    out = str(tmp_path / "cam.onnx")
    assert main(["export", str(tmp_path / "m.keras"), "-o", out, "--uint8-input",
                 "--triton-repo", str(repo), "--triton-max-batch", "16"]) == 0
    text = (repo / "cam" / "config.pbtxt").read_text()
    assert (repo / "cam" / "1" / "model.onnx").read_bytes() == open(out, "rb").read()
    pb2 = triton.model_config_pb2()
    if pb2 is None:  # Triton's own parser: make test installs it
        pytest.skip("tritonclient is not installed (make test installs it with --no-deps; "
                    "see the README's plain pip block)")
    config = triton.validate(text)
    assert config.backend == "onnxruntime" and config.max_batch_size == 16
    assert config.HasField("dynamic_batching")
    graph = onnx.load(out)
    assert [i.name for i in config.input] == [graph.graph.input[0].name]
    assert config.input[0].data_type == pb2.TYPE_UINT8 and list(config.input[0].dims) == [16, 16, 3]
    assert config.output[0].data_type == pb2.TYPE_FP32 and list(config.output[0].dims) == [4]
    # a static batch: no batching, the batch is in the dims
    static = str(tmp_path / "static.onnx")
    kc.export_onnx(pixels_model, static, dynamic_axes=(), batch_size=2)
    folder = triton.write_repository(static, str(repo))
    config = triton.validate(open(f"{folder}/config.pbtxt").read())
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [2, 16, 16, 3]
    assert not config.HasField("dynamic_batching")
    with pytest.raises(triton.TritonError, match="no field named"):
        triton.validate(text + "max_batchsize: 3\n")
    with pytest.raises(triton.TritonError, match="model name 'a b'"):
        triton.write_repository(static, str(repo), name="a b")
    (tmp_path / "a_file").write_text("")  # a file where the repository should go
    assert main(["export", str(tmp_path / "m.keras"), "-o", out, "--triton-repo",
                 str(tmp_path / "a_file")]) == 2
    # without tritonclient, the fields this module writes are checked
    monkeypatch.setattr(triton, "model_config_pb2", lambda: None)
    assert triton.validate(text) is None
    with pytest.raises(triton.TritonError, match="data types"):
        triton.validate(text.replace("TYPE_UINT8", "TYPE_PIXEL"))


def upsampler():
    keras.utils.set_random_seed(4)
    inp = keras.Input((8, 8, 4))
    x = kc.layers.Conv2DTranspose(6, 3, strides=2, padding="same", name="up")(inp)
    return keras.Model(inp, kc.layers.Conv2D(3, 3, padding="same", name="head")(x))


def test_target_cuda_makes_convtranspose_pads_symmetric(tmp_path):
    from keras_convx.exporter import targets

    model = upsampler()
    plain = str(tmp_path / "cpu.onnx")
    report = kc.export_onnx(model, plain)
    # Keras's 'same' with stride 2: the pads CUDA and TensorRT reject
    assert report.lint == [] and [f["rule"] for f in targets.lint(onnx.load(plain), "cuda")] \
        == ["convtranspose-asymmetric-pads"]
    path = str(tmp_path / "cuda.onnx")
    report = kc.export_onnx(model, path, target="cuda")
    assert report.passed and report.target == "cuda"
    assert [(f["rule"], f["fixed"]) for f in report.lint] == [
        ("convtranspose-asymmetric-pads", True)]
    assert "onnxruntime#11312" in report.lint[0]["reference"]
    m = onnx.load(path)
    up = next(n for n in m.graph.node if n.op_type == "ConvTranspose")
    pads = next(list(a.ints) for a in up.attribute if a.name == "pads")
    assert pads[:2] == pads[2:] and any(n.op_type == "Slice" for n in m.graph.node)
    assert targets.lint(m, "cuda") == [] and targets.lint(m, "tensorrt") == []
    meta = read_metadata(m)["keras_convx.export"]
    assert meta["target"] == "cuda" and meta["lint"][0]["fixed"]
    # the same values as the plain graph, on other inputs than verification's
    x = np.random.default_rng(7).standard_normal((2, 8, 8, 4)).astype(np.float32)
    a = ort.InferenceSession(plain, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(b.run(None, {b.get_inputs()[0].name: x})[0],
                               a.run(None, {a.get_inputs()[0].name: x})[0], rtol=1e-5,
                               atol=1e-6)


def test_target_lints_name_the_construct_and_the_reference(tmp_path):
    from keras_convx.exporter import targets

    keras.utils.set_random_seed(4)
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, kc.layers.Conv2D(4, 3, padding="same")(inp))
    report = kc.export_onnx(model, str(tmp_path / "x.onnx"), target="xnnpack",
                            dynamic_axes=("batch", "spatial"),
                            verify=kc.VerifyOptions(samples=[[np.ones((1, 9, 11, 3), np.float32) *
                                      np.arange(3, dtype=np.float32)]]))
    assert [f["rule"] for f in report.lint] == ["symbolic-spatial-conv"]
    assert "onnxruntime#32387" in report.lint[0]["reference"] and not report.lint[0]["fixed"]
    report = kc.export_onnx(upsampler(), str(tmp_path / "c.onnx"), target="coreml")
    assert [f["rule"] for f in report.lint] == ["dynamic-input-shape"]
    assert "make-dynamic-shape-fixed" in report.lint[0]["reference"]
    static = kc.export_onnx(upsampler(), str(tmp_path / "s.onnx"), target="coreml",
                            dynamic_axes=(), batch_size=1)
    assert static.lint == []
    proto = onnx.load(str(tmp_path / "s.onnx"))  # opset 22+ loses onnxruntime's fusions
    proto.opset_import[0].version = 22
    assert [f["rule"] for f in targets.lint(proto, "cpu")] == ["opset-loses-fusions"]
    with pytest.raises(ValueError, match="target must be one of"):
        kc.export_onnx(upsampler(), str(tmp_path / "z.onnx"), target="tpu")


def fully_convolutional(padding_mode="zeros"):
    """Strided 'same' convs and pools, transposed convs back up, a U-Net skip."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    a = kc.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    b = kc.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu",
                         padding_mode=padding_mode)(a)
    c = keras.layers.MaxPooling2D(3, strides=2, padding="same")(b)
    c = keras.layers.AveragePooling2D(2, strides=1, padding="same")(c)
    c = kc.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2)(c)
    u = kc.layers.Conv2DTranspose(16, 3, strides=2, padding="same")(c)
    u = kc.layers.Conv2DTranspose(8, 3, strides=2, padding="same")(u)
    u = kc.layers.CropToMatch()([u, a])  # odd sizes come back one pixel larger
    x = keras.layers.Concatenate()([u, a])
    return keras.Model(inp, kc.layers.Conv2D(2, 1)(x))


def test_dynamic_height_width_with_strided_same(tmp_path):
    rng = np.random.default_rng(0)
    sizes = [(16, 16), (17, 23), (9, 31), (32, 15)]
    samples = [[rng.standard_normal((1, h, w, 3)).astype(np.float32)] for h, w in sizes]
    model = fully_convolutional()
    path = str(tmp_path / "fcn.onnx")
    report = kc.export_onnx(model, path, dynamic_axes=("batch", "spatial"),
                            verify=kc.VerifyOptions(samples=samples))
    assert report.passed
    outputs = {c.run[0] for c in report.verify.checks}
    # two random runs at sizes derived from the graph, then every sample's size, odd ones too
    assert outputs == set(range(2 + len(sizes)))
    m = onnx.load(path)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_value") for d in dims] == [False, False, False, True]
    auto = [n for n in m.graph.node if any(a.name == "auto_pad" for a in n.attribute)]
    assert {n.op_type for n in auto} == {"Conv", "MaxPool"}  # the strided 'same' ones
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((2, 13, 21, 3)).astype(np.float32)  # a size not verified
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = keras.ops.convert_to_numpy(model(x))
    assert got.shape == want.shape == (2, 13, 21, 2)
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))


def test_dynamic_sizes_that_stay_static_are_named(tmp_path):
    # reflect padding of a strided conv depends on the length's parity: no ONNX auto_pad
    with pytest.raises(kc.exporter.UnsupportedModel, match="needs static spatial sizes"):
        kc.export_onnx(fully_convolutional("reflect"), str(tmp_path / "r.onnx"),
                       method="native", dynamic_axes=("batch", "spatial"))

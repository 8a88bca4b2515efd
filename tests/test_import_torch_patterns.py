"""Issue 24's PyTorch patterns (tests/torch_patterns.py), exported with
`torch.onnx.export(..., dynamo=False)` at opset 17: each imports on every backend without
Lambda layers and matches PyTorch within 1e-4 of scale at several input shapes (other
batch sizes where the batch is dynamic, other heights and widths for the U-Net)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import keras  # noqa: E402

import keras_convx as kc  # noqa: E402
from helpers import RTOL_SCALE, assert_close  # noqa: E402
from torch_patterns import PATTERNS, export_patterns  # noqa: E402

# Permutes the import needs: channel shuffle is one (reshaping channels-last data,
# swapping the group axes, reshaping back); attention's head split, its products (einsums
# in the tensors' own layouts) and GroupNorm (fused) need none.
MAX_PERMUTES = {"csp_split": 0, "eca_expand_as": 0, "eca_expand_as_dynamic_batch": 0, "channel_shuffle_dynamic_batch": 1,
                "tf_same_padding": 0, "tf_same_padding_dynamic_batch": 0,
                "unet_dynamic_hw": 0, "attention": 0}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_patterns(str(tmp_path_factory.mktemp("patterns")))


@pytest.fixture(scope="module")
def imported(exported):
    return {name: kc.import_onnx(path, verify=False) for name, (path, _, _) in exported.items()}


def _nhwc(x):
    return np.moveaxis(x, 1, -1)


@pytest.mark.parametrize("name", list(PATTERNS))
def test_pattern_matches_pytorch_at_every_shape(name, exported, imported):
    _, module, shapes = exported[name]
    model = imported[name]
    for i, shape in enumerate(shapes):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(7 + i))
        with torch.no_grad():
            expected = module(x).numpy()
        got = keras.ops.convert_to_numpy(model(_nhwc(x.numpy()), training=False))
        assert_close(np.moveaxis(got, -1, 1), expected, RTOL_SCALE)
        assert float(np.std(expected)) > 1e-3


@pytest.mark.parametrize("name", list(PATTERNS))
def test_pattern_is_native_keras(name, imported):
    model = imported[name]
    kinds = [type(layer).__name__ for layer in model.layers]
    assert "Lambda" not in kinds
    assert kinds.count("Permute") == MAX_PERMUTES[name], kinds
    if name == "attention":  # Reshape -> InstanceNormalization -> Reshape -> Mul -> Add
        assert "GroupNormalization" in kinds and "Einsum" in kinds, kinds
    if 2 in PATTERNS[name][2]:
        assert tuple(model.inputs[0].shape) == (None, None, None, 3)


def test_dynamic_hw_import_verifies_at_two_sizes(exported):
    path = exported["unet_dynamic_hw"][0]
    model = kc.import_onnx(path, verify=True)
    names = list(model.import_report.outputs)
    assert names == ["y @ 32x48", "y @ 64x80"], names
    assert model.import_report.passed


@pytest.mark.parametrize("name", list(PATTERNS))
def test_imported_pattern_exports_again_and_verifies(name, imported, tmp_path):
    """The importer's layers (Slice, BroadcastTo, Einsum...) have lowerings: an imported
    model goes back to ONNX and verifies against Keras, tensor by tensor."""
    dynamic = PATTERNS[name][2]
    axes = ("batch", "spatial") if 2 in dynamic else ("batch",) if 0 in dynamic else ()
    # a model of any height and width is verified on samples of two sizes
    rng = np.random.default_rng(3)
    samples = [rng.standard_normal(s).astype(np.float32) for s in ((2, 16, 24, 3),
                                                                   (1, 32, 8, 3))] \
        if 2 in dynamic else None
    report = kc.export_onnx(imported[name], str(tmp_path / f"{name}.onnx"), dynamic_axes=axes,
                            verify=kc.VerifyOptions(samples=samples))
    assert report.passed, report.verify.summary()

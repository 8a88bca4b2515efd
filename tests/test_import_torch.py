"""Import of PyTorch models exported with `torch.onnx.export(..., dynamo=False)`: the Keras
model matches PyTorch on every backend, fine-tunes, and holds no Transpose/Lambda."""

import os

import pytest

torch = pytest.importorskip("torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import keras_convx as kc  # noqa: E402
from helpers import RTOL_SCALE, assert_close  # noqa: E402
from torch_patterns import randomize  # noqa: E402

OPSET = 17


class ResNetish(nn.Module):
    """ResNet-18's stem and basic blocks (one with a strided 1x1 shortcut)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.a1, self.a2 = nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.abn1, self.abn2 = nn.BatchNorm2d(8), nn.BatchNorm2d(8)
        self.b1, self.b2 = nn.Conv2d(8, 16, 3, 2, 1, bias=False), nn.Conv2d(16, 16, 3, 1, 1, bias=False)
        self.bbn1, self.bbn2 = nn.BatchNorm2d(16), nn.BatchNorm2d(16)
        self.down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.abn2(self.a2(F.relu(self.abn1(self.a1(x))))))
        x = F.relu(self.down(x) + self.bbn2(self.b2(F.relu(self.bbn1(self.b1(x))))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        self.residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
            nn.ReLU6(), nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetish(nn.Module):
    """MobileNetV2's inverted residuals (ReLU6, depthwise), a MobileNetV3 squeeze-excite
    gate (Hardsigmoid) and Hardswish, a Dropout before the classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(8, 8, 1, 2), InvertedResidual(8, 12, 2, 3),
                                    InvertedResidual(12, 12, 1, 2))
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(12, 4, 1), nn.ReLU(),
                                nn.Conv2d(4, 12, 1), nn.Hardsigmoid())
        self.head = nn.Sequential(nn.Conv2d(12, 16, 1), nn.Hardswish())
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, 7))

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = self.head(x * self.se(x))
        return self.classifier(x.mean((2, 3)))


class UNetish(nn.Module):
    """Reflect-padded convs, an asymmetric replicate pad, max pooling, ConvTranspose2d up,
    skip concatenation and bilinear align_corners=True up-sampling."""

    def __init__(self):
        super().__init__()
        self.e1 = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
        self.e2 = nn.Conv2d(8, 16, 3, padding=1, padding_mode="reflect")
        self.pad = nn.ReplicationPad2d((1, 0, 2, 1))  # left, right, top, bottom
        self.mid = nn.Conv2d(16, 16, (4, 2))
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.d1 = nn.Conv2d(16, 8, 3, padding=1, padding_mode="reflect")
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        s1 = F.relu(self.e1(x))
        x = F.relu(self.e2(F.max_pool2d(s1, 2)))
        x = F.relu(self.mid(self.pad(x)))
        x = torch.cat([self.up(x), s1], 1)
        x = F.relu(self.d1(x))
        x = F.interpolate(self.out(x), scale_factor=2, mode="bilinear", align_corners=True)
        return x


class TCN(nn.Module):
    """1-D causal convs (left pad, dilation 1, 2, 4) with residuals and GELU; the last step
    (`x[:, :, -1]`, a Gather)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Conv1d(4, 8, 1)
        self.convs = nn.ModuleList(nn.Conv1d(8, 8, 3, dilation=d) for d in (1, 2, 4))
        self.act = nn.GELU()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.inp(x)
        for conv in self.convs:
            x = x + self.act(conv(F.pad(x, (2 * conv.dilation[0], 0))))
        return self.fc(x[:, :, -1])


class Net3D(nn.Module):
    """Conv3d with strides, grouped dilated Conv3d, BatchNorm3d, AvgPool3d, nearest
    up-sampling and a Flatten -> Linear head over a channels-last tensor."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv3d(2, 8, 3, stride=(1, 2, 2), padding=1)
        self.bn = nn.BatchNorm3d(8)
        self.c2 = nn.Conv3d(8, 8, 3, padding=2, dilation=2, groups=2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fc = nn.Linear(8 * 2 * 4 * 4, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.c1(x)))
        x = F.avg_pool3d(torch.tanh(self.c2(x)), 2)
        x = F.avg_pool3d(self.up(x), 2)
        return self.fc(torch.flatten(x, 1))


class ConvNeXtish(nn.Module):
    """A ConvNeXt block: depthwise 7x7, permute to channels-last, LayerNorm, Linear-GELU-
    Linear, layer scale, permute back, residual; SiLU and a mean over space. The
    permutes are relabelings: the Keras model has no Permute."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 4, stride=4)
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.ln = nn.LayerNorm(c)
        self.fc1, self.fc2 = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.rand(c))
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        x = self.stem(x)
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.ln(y)))) * self.gamma
        x = F.silu(x + y.permute(0, 3, 1, 2))
        return self.head(x.mean((2, 3)))


MODELS = {  # name -> (module, input shape NCHW-style)
    "resnet18ish": (ResNetish, (2, 3, 32, 32)),
    "mobilenetv2ish": (MobileNetish, (2, 3, 32, 32)),
    "unet": (UNetish, (2, 3, 16, 16)),
    "tcn1d": (TCN, (2, 4, 32)),
    "conv3d": (Net3D, (2, 2, 4, 16, 16)),
    "convnext_block": (ConvNeXtish, (2, 3, 32, 32)),
}


def export_models(folder):
    """Each model of MODELS exported to `folder` (seeded): name -> (path, input, PyTorch
    output). benchmarks/import_models.py measures the same files."""
    out = {}
    for i, (name, (cls, shape)) in enumerate(MODELS.items()):
        torch.manual_seed(i)
        module = randomize(cls(), i)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(100 + i))
        path = os.path.join(folder, f"{name}.onnx")
        # BatchNorm kept as a node (no folding into the convs) for the ResNet: both paths run
        torch.onnx.export(module, x, path, dynamo=False, opset_version=OPSET,
                          do_constant_folding=name != "resnet18ish")
        with torch.no_grad():
            out[name] = (path, x.numpy(), module(x).numpy())
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each model exported once: name -> (path, input, PyTorch output)."""
    return export_models(str(tmp_path_factory.mktemp("torch_onnx")))


@pytest.fixture(scope="module")
def imported(exported):
    return {name: kc.import_onnx(path, verify=False) for name, (path, _, _) in exported.items()}


def _nhwc(x):
    return np.transpose(x, (0,) + tuple(range(2, x.ndim)) + (1,))


@pytest.mark.parametrize("name", list(MODELS))
def test_import_matches_pytorch(name, exported, imported):
    _, x, expected = exported[name]
    model = imported[name]
    y = keras.ops.convert_to_numpy(model(_nhwc(x), training=False))
    if y.ndim > 2:  # channels-last back to PyTorch's order
        y = np.transpose(y, (0, y.ndim - 1) + tuple(range(1, y.ndim - 1)))
    assert_close(y, expected, RTOL_SCALE)
    assert float(np.std(expected)) > 1e-3  # the outputs are informative


@pytest.mark.parametrize("name", ["unet", "convnext_block"])
def test_every_intermediate_tensor_matches_onnxruntime(name, exported):
    rows = kc.importer.diagnose_import(str(exported[name][0]))
    assert len(rows) >= 10
    worst = max(rows, key=lambda r: r[3].rel)
    assert worst[3].rel <= RTOL_SCALE and not any(r[3].failed(RTOL_SCALE) for r in rows), worst


@pytest.mark.parametrize("name", list(MODELS))
def test_import_is_native_keras_without_transposes(name, imported):
    model = imported[name]
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Lambda" not in kinds and "Permute" not in kinds, kinds
    assert all(type(layer).__module__.startswith(("keras.", "keras_convx."))
               for layer in model.layers)


def test_layers_named_after_nodes_and_pads_fused(imported):
    unet = imported["unet"]
    names = [layer.name for layer in unet.layers]
    assert "e1_Conv" in names and "up_ConvTranspose" in names
    # reflect-padded convs and the replicate pad became padding_mode of the conv itself
    modes = {layer.name: layer.padding_mode for layer in unet.layers
             if isinstance(layer, kc.Conv2D)}
    assert modes["e1_Conv"] == "reflect" and modes["mid_Conv"] == "replicate", modes
    assert not any(isinstance(layer, kc.Padding2D) for layer in unet.layers)
    tcn_kinds = [type(layer).__name__ for layer in imported["tcn1d"].layers]
    assert "Padding1D" not in tcn_kinds and "Activation" in tcn_kinds  # pad fused, GELU fused
    mobile = [type(layer).__name__ for layer in imported["mobilenetv2ish"].layers]
    assert "DepthwiseConv2D" in mobile


@pytest.mark.parametrize("name", ["resnet18ish", "unet"])
def test_pytorch_weights_fine_tune_in_keras(name, exported):
    if name == "resnet18ish" and keras.backend.backend() == "jax":
        pytest.skip("JAX compiles each train step (CI time): the U-Net's runs on JAX")
    path, x, _ = exported[name]
    model = kc.import_onnx(path, verify=False)
    inputs = _nhwc(x)
    target = np.zeros(tuple(model.output.shape[1:]), np.float32)[None].repeat(len(x), 0) + 0.1
    before = [np.array(w) for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    history = model.fit(inputs, target, epochs=1, batch_size=len(x), verbose=0)
    after = model.get_weights()
    assert np.isfinite(history.history["loss"][0])
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))


def test_channels_first_import_matches(exported):
    path, x, expected = exported["mobilenetv2ish"]
    model = kc.import_onnx(path, data_format="channels_first", verify=False)
    assert_close(model(x, training=False), expected, RTOL_SCALE)


class ViewHead(nn.Module):
    """`x.view(x.size(0), -1)` before a Linear: a Shape/Gather/Concat/Reshape subgraph."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.fc = nn.Linear(4 * 7 * 7, 3)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


def test_dynamic_batch_export_with_view_flatten(tmp_path):
    module = ViewHead().eval()
    path = str(tmp_path / "view.onnx")
    torch.onnx.export(module, torch.randn(2, 3, 16, 16), path, dynamo=False, opset_version=OPSET,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    model = kc.import_onnx(path, verify=False)
    x = torch.randn(5, 3, 16, 16)  # another batch size than exported with
    with torch.no_grad():
        expected = module(x).numpy()
    assert_close(model(_nhwc(x.numpy())), expected, RTOL_SCALE)
    # the flatten reads NHWC; the Linear's rows were permuted instead of the activations
    assert not any(isinstance(layer, keras.layers.Permute) for layer in model.layers)

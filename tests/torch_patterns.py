"""PyTorch modules made of the patterns torchvision and timm nets are built from (issue
24), for the import tests and `benchmarks/import_models.py`: CSP/Res2Net splits, ECA's
`expand_as`, ShuffleNet's channel shuffle, timm's TF-style "same" padding computed from
runtime sizes, a U-Net for any height and width, and self-attention."""

import torch
from torch import nn
from torch.nn import functional as F


class CSPBlock(nn.Module):
    """CSPNet: `chunk` the channels, convolve one half, concatenate; then a Res2Net-style
    `split` into unequal groups, each added to the next group's input."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.part = nn.Sequential(nn.Conv2d(c // 2, c // 2, 3, padding=1), nn.BatchNorm2d(c // 2),
                                  nn.SiLU())
        self.res2 = nn.ModuleList(nn.Conv2d(n, n, 3, padding=1) for n in (2, 2, 4))
        self.out = nn.Conv2d(c, 6, 1)

    def forward(self, x):
        x = F.silu(self.stem(x))
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, self.part(b)], dim=1)
        groups = torch.split(x, [2, 2, 4], dim=1)
        outs, prev = [], None
        for conv, g in zip(self.res2, groups):
            y = conv(g if prev is None or prev.shape[1] != g.shape[1] else g + prev)
            outs.append(y)
            prev = y
        return self.out(torch.cat(outs, dim=1))


class ECABlock(nn.Module):
    """ECA-Net's channel attention, twice: a 1-D conv across the pooled channels, a
    sigmoid gate broadcast back with `expand_as` (the second block reads shapes computed
    after the first's gate)."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, stride=2, padding=1)
        self.convs = nn.ModuleList(nn.Conv1d(1, 1, 3, padding=1, bias=False) for _ in range(2))
        self.mid = nn.Conv2d(c, c, 3, padding=1)
        self.head = nn.Conv2d(c, 4, 1)

    def eca(self, x, conv):
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)  # as timm's EcaModule writes it
        y = torch.sigmoid(conv(y)).view(x.shape[0], -1, 1, 1)
        return x * y.expand_as(x)

    def forward(self, x):
        x = self.eca(F.relu(self.stem(x)), self.convs[0])
        return self.head(self.eca(F.relu(self.mid(x)), self.convs[1]))


class ShuffleBlock(nn.Module):
    """ShuffleNetV2's unit: split, a branch, concatenate, channel shuffle with
    `view(b, g, c // g, h, w)` (b read from the input: a dynamic batch)."""

    def __init__(self, c=8, groups=2):
        super().__init__()
        self.groups = groups
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.branch = nn.Sequential(nn.Conv2d(c // 2, c // 2, 1), nn.BatchNorm2d(c // 2),
                                    nn.ReLU(), nn.Conv2d(c // 2, c // 2, 3, padding=1,
                                                         groups=c // 2))

    def shuffle(self, x):
        b, c, h, w = x.size()
        x = x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous()
        return x.view(b, -1, h, w)

    def forward(self, x):
        x = F.relu(self.stem(x))
        a, b = x.chunk(2, dim=1)
        return self.shuffle(torch.cat([a, self.branch(b)], dim=1))


def pad_same(x, kernel, stride):
    """timm's `pad_same`: TF's "same" padding computed from the tensor's runtime size."""
    ih, iw = x.size()[-2:]  # traced: Shape -> Gather, and the arithmetic below as ONNX ops
    clamp = (lambda v: torch.clamp(v, min=0)) if torch.jit.is_tracing() else (
        lambda v: max(v, 0))
    pad_h = clamp(((ih + stride - 1) // stride - 1) * stride + kernel - ih)
    pad_w = clamp(((iw + stride - 1) // stride - 1) * stride + kernel - iw)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


class TFSameNet(nn.Module):
    """Two strided convs with TF-style "same" padding (timm's `tf_*` models): the second
    pads are computed from the first conv's output size."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, stride=2)
        self.c2 = nn.Conv2d(6, 4, 3, stride=2)

    def forward(self, x):
        x = F.relu(self.c1(pad_same(x, 3, 2)))
        return self.c2(pad_same(x, 3, 2))


class UNetAnySize(nn.Module):
    """A U-Net whose convs, pools, transposed convs and up-sampling take any height and
    width divisible by 4."""

    def __init__(self):
        super().__init__()
        self.e1 = nn.Conv2d(3, 8, 3, padding=1)
        self.e2 = nn.Conv2d(8, 12, 3, padding=1)
        self.up = nn.ConvTranspose2d(12, 8, 2, stride=2)
        self.d1 = nn.Conv2d(16, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        s1 = F.relu(self.e1(x))
        x = F.relu(self.e2(F.max_pool2d(s1, 2)))
        x = F.relu(self.d1(torch.cat([self.up(x), s1], 1)))
        return F.interpolate(self.out(x), scale_factor=2, mode="nearest")


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the pixels of a feature map: q, k, v from 1x1 convs,
    scores by matmul and einsum, softmax, weighted sum, projection, residual."""

    def __init__(self, c=8, heads=2):
        super().__init__()
        self.heads = heads
        self.stem = nn.Conv2d(3, c, 3, stride=2, padding=1)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        self.norm = nn.GroupNorm(1, c)

    def forward(self, x):
        x = self.stem(x)
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=1)
        q = q.reshape(b, self.heads, c // self.heads, h * w)
        k = k.reshape(b, self.heads, c // self.heads, h * w)
        v = v.reshape(b, self.heads, c // self.heads, h * w)
        scores = torch.einsum("bhdi,bhdj->bhij", q, k) * (c // self.heads) ** -0.5
        attn = scores.softmax(dim=-1)
        out = torch.matmul(v, attn.transpose(-1, -2)).reshape(b, c, h, w)
        return x + self.proj(out)


# name -> (module class, input shapes: the export's first, then other sizes to check,
#          the dynamic axes of the export)
PATTERNS = {
    "csp_split": (CSPBlock, [(2, 3, 16, 16)], {}),
    "eca_expand_as": (ECABlock, [(2, 3, 16, 16)], {}),
    "eca_expand_as_dynamic_batch": (ECABlock, [(2, 3, 16, 16), (3, 3, 16, 16)], {0: "batch"}),
    "channel_shuffle_dynamic_batch": (ShuffleBlock, [(2, 3, 12, 12), (1, 3, 12, 12),
                                                     (5, 3, 12, 12)], {0: "batch"}),
    "tf_same_padding": (TFSameNet, [(2, 3, 17, 23)], {}),
    "tf_same_padding_dynamic_batch": (TFSameNet, [(2, 3, 17, 23), (3, 3, 17, 23)],
                                      {0: "batch"}),
    "unet_dynamic_hw": (UNetAnySize, [(2, 3, 16, 16), (1, 3, 24, 32), (2, 3, 8, 12)],
                        {0: "batch", 2: "height", 3: "width"}),
    "attention": (AttentionBlock, [(2, 3, 16, 16)], {}),
}


def randomize(module, seed):
    """Non-trivial weights and BatchNorm statistics as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module.eval()


def export_patterns(folder, opset=17):
    """Each module of PATTERNS exported to `folder` (seeded): name -> (path, module,
    input shapes)."""
    import os

    out = {}
    for i, (name, (cls, shapes, dynamic)) in enumerate(PATTERNS.items()):
        torch.manual_seed(50 + i)
        module = randomize(cls(), 50 + i)
        x = torch.randn(shapes[0], generator=torch.Generator().manual_seed(150 + i))
        path = os.path.join(folder, f"{name}.onnx")
        torch.onnx.export(module, x, path, dynamo=False, opset_version=opset,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": dynamic, "y": {0: "batch"} if 0 in dynamic else {}}
                          if dynamic else None)
        out[name] = (path, module, shapes)
    return out

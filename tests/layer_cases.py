"""One representative, non-default configuration per layer class, with what the layer
contract (tests/contract.py) expects of it: weight names and shapes, and the ONNX ops of
its native export (layout moves, Transpose and Reshape, not counted). Input shapes
exclude the batch."""

import collections

import keras_convx as kc

LayerCase = collections.namedtuple("LayerCase", "name make shape weights onnx_ops")

_CASES = [
    ("conv1d-causal", lambda: kc.Conv1D(4, 3, padding="causal", dilation_rate=2), (12, 3)),
    ("conv2d-reflect-s2-d2-g2", lambda: kc.Conv2D(
        4, 3, strides=2, dilation_rate=2, groups=2, padding="same", padding_mode="reflect",
        activation="relu", kernel_regularizer="l2"), (11, 10, 4)),
    ("conv2d-lora", lambda: kc.Conv2D(4, 3, lora_rank=2), (8, 8, 3)),
    ("conv3d-explicit-cf", lambda: kc.Conv3D(
        2, (2, 3, 1), padding=((1, 0), (2, 1), (0, 0)), data_format="channels_first",
        padding_mode="circular"), (3, 5, 6, 4)),
    ("depthwise1d-causal", lambda: kc.DepthwiseConv1D(3, padding="causal",
                                                       depth_multiplier=2), (9, 3)),
    ("depthwise2d", lambda: kc.DepthwiseConv2D(3, strides=2, padding="same",
                                               use_bias=False), (9, 9, 3)),
    ("depthwise3d", lambda: kc.DepthwiseConv3D(3, depth_multiplier=2, padding="same",
                                               padding_mode="replicate"), (5, 5, 5, 2)),
    ("separable1d", lambda: kc.SeparableConv1D(5, 3, padding="causal"), (10, 3)),
    ("separable2d", lambda: kc.SeparableConv2D(5, 3, depth_multiplier=2,
                                               dilation_rate=2, strides=2), (12, 12, 3)),
    ("separable3d", lambda: kc.SeparableConv3D(4, 3, padding="same"), (4, 5, 6, 2)),
    ("convtr1d-g2", lambda: kc.Conv1DTranspose(4, 3, strides=2, groups=2), (7, 4)),
    ("convtr2d-op", lambda: kc.Conv2DTranspose(3, 3, strides=2, padding="same",
                                               output_padding=1, dilation_rate=2), (5, 6, 2)),
    ("convtr2d-size", lambda: kc.Conv2DTranspose(3, 3, strides=2, padding=1,
                                                 output_size=(10, 9)), (5, 5, 2)),
    ("convtr3d", lambda: kc.Conv3DTranspose(2, 2, strides=(1, 2, 2)), (3, 4, 4, 2)),
    ("cropping1d", lambda: kc.Cropping1D((2, 1)), (9, 3)),
    ("cropping2d-cf", lambda: kc.Cropping2D(((1, 0), (2, 2)), data_format="channels_first"),
     (2, 6, 7)),
    ("cropping3d", lambda: kc.Cropping3D(), (4, 5, 6, 2)),
    ("padding2d-reflect", lambda: kc.Padding2D(((2, 1), (0, 3)), mode="reflect"), (5, 6, 2)),
    ("padding3d-constant", lambda: kc.Padding3D(1, mode="constant", constant_value=-1.0),
     (3, 3, 3, 1)),
    ("zeropadding1d", lambda: kc.ZeroPadding1D((2, 0)), (5, 2)),
    ("upsampling1d-linear", lambda: kc.UpSampling1D(1.5, interpolation="linear"), (6, 2)),
    ("upsampling2d-bicubic", lambda: kc.UpSampling2D(2, interpolation="bicubic",
                                                     align_corners=True), (4, 5, 2)),
    ("upsampling2d-bicubic-exclude-outside", lambda: kc.UpSampling2D(
        1.5, interpolation="bicubic", exclude_outside=True), (4, 5, 2)),
    ("upsampling3d-trilinear", lambda: kc.UpSampling3D((1, 2, 2), interpolation="trilinear"),
     (3, 3, 4, 2)),
]

# name -> ([(weight name, shape)], {ONNX op: count})
_EXPECTED = {
    'conv1d-causal': ([('kernel', (3, 3, 4)), ('bias', (4,))], {'Conv': 1}),
    'conv2d-reflect-s2-d2-g2': ([('kernel', (3, 3, 2, 4)), ('bias', (4,))],
        {'Pad': 1, 'Conv': 1, 'Relu': 1}),
    'conv2d-lora': ([('kernel', (3, 3, 3, 4)), ('bias', (4,)), ('lora_kernel_a', (3, 3, 3, 2)), ('lora_kernel_b', (2, 4))],
        {'Conv': 1}),
    'conv3d-explicit-cf': ([('kernel', (2, 3, 1, 3, 2)), ('bias', (2,))],
        {'Slice': 3, 'Concat': 2, 'Conv': 1}),
    'depthwise1d-causal': ([('kernel', (3, 3, 2)), ('bias', (6,))], {'Conv': 1}),
    'depthwise2d': ([('kernel', (3, 3, 3, 1))], {'Conv': 1}),
    'depthwise3d': ([('kernel', (3, 3, 3, 2, 2)), ('bias', (4,))], {'Pad': 1, 'Conv': 1}),
    'separable1d': ([('depthwise_kernel', (3, 3, 1)), ('pointwise_kernel', (1, 3, 5)), ('bias', (5,))],
        {'Conv': 2}),
    'separable2d': ([('depthwise_kernel', (3, 3, 3, 2)), ('pointwise_kernel', (1, 1, 6, 5)), ('bias', (5,))],
        {'Conv': 2}),
    'separable3d': ([('depthwise_kernel', (3, 3, 3, 2, 1)), ('pointwise_kernel', (1, 1, 1, 2, 4)), ('bias', (4,))],
        {'Conv': 2}),
    'convtr1d-g2': ([('kernel', (3, 2, 4)), ('bias', (4,))], {'ConvTranspose': 1}),
    'convtr2d-op': ([('kernel', (3, 3, 3, 2)), ('bias', (3,))], {'ConvTranspose': 1}),
    'convtr2d-size': ([('kernel', (3, 3, 3, 2)), ('bias', (3,))], {'ConvTranspose': 1}),
    'convtr3d': ([('kernel', (2, 2, 2, 2, 2)), ('bias', (2,))], {'ConvTranspose': 1}),
    'cropping1d': ([], {'Slice': 1}),
    'cropping2d-cf': ([], {'Slice': 1}),
    'cropping3d': ([], {'Slice': 1}),
    'padding2d-reflect': ([], {'Pad': 1}),
    'padding3d-constant': ([], {'Pad': 1}),
    'zeropadding1d': ([], {'Pad': 1}),
    'upsampling1d-linear': ([], {'Resize': 1}),
    'upsampling2d-bicubic': ([], {'Resize': 1}),
    'upsampling2d-bicubic-exclude-outside': ([], {'Resize': 1}),
    'upsampling3d-trilinear': ([], {'Resize': 1}),
}

CASES = [LayerCase(name, make, shape, *_EXPECTED[name]) for name, make, shape in _CASES]

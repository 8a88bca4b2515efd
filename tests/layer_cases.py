"""One representative, non-default configuration per layer class (used by the
serialization and shape tests). Input shapes exclude the batch."""

import keras_convx as kc

CASES = [
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
    ("upsampling3d-trilinear", lambda: kc.UpSampling3D((1, 2, 2), interpolation="trilinear"),
     (3, 3, 4, 2)),
]

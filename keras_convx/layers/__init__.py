"""keras_convx layers: drop-in replacements for the Keras convolution family, and more."""

from keras_convx.layers.base import WindowedLayer  # noqa: F401
from keras_convx.layers.conv import (
    BaseConv, Conv1D, Conv2D, Conv3D, Convolution1D, Convolution2D, Convolution3D,
)
from keras_convx.layers.depthwise import (
    BaseDepthwiseConv, BaseSeparableConv, DepthwiseConv1D, DepthwiseConv2D,
    DepthwiseConv3D, SeparableConv1D, SeparableConv2D, SeparableConv3D,
    SeparableConvolution1D, SeparableConvolution2D, SeparableConvolution3D,
)
from keras_convx.layers.transpose import (
    BaseConvTranspose, Conv1DTranspose, Conv2DTranspose, Conv3DTranspose,
    Convolution1DTranspose, Convolution2DTranspose, Convolution3DTranspose,
    Deconv2D, Deconv3D, Deconvolution2D, Deconvolution3D,
)
from keras_convx.layers.reshaping import (
    BaseCropping, BasePadding, BaseUpSampling, BaseZeroPadding, CropToMatch, Cropping1D,
    Cropping2D, Cropping3D, Padding1D, Padding2D, Padding3D, UpSampling1D, UpSampling2D,
    UpSampling3D, ZeroPadding1D, ZeroPadding2D, ZeroPadding3D,
)

__all__ = [name for name in dir() if name[0].isupper()]

# the tensor-operation layers (ConstantOperation, Slice, Einsum...) register with Keras
# too: `.keras` files of imported models hold them
from keras_convx.layers.tensor_ops import CONFIG_TYPES  # noqa: E402,F401

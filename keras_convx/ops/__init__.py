"""Functional core of keras_convx, written on backend-agnostic `keras.ops`.

The layers call these functions and users can too. They run unchanged on the
TensorFlow, JAX and PyTorch backends. Spatial arguments (`strides`, `pads`,
...) always refer to the spatial axes only, whatever the `data_format`.

One module per family: `padding` (pad, crop), `convolution` (conv, depthwise_conv,
separable_conv), `transposed` (conv_transpose), `resampling` (resize); `common` holds
the axis and argument helpers they share. Every name stays importable from here.
"""

# the private helpers too: `from keras_convx.ops import _static_shape` keeps working
from keras_convx.ops.common import (  # noqa: F401
    _channel_axis, _effective_dilation, _is_tensorflow, _prepare, _spatial_axes, _static_shape,
    _take, _via_channels_last,
)
from keras_convx.ops.convolution import (  # noqa: F401
    _ONE_CHANNEL_BUG, _guarded_conv, _windowed, conv, depthwise_conv, separable_conv,
)
from keras_convx.ops.padding import (  # noqa: F401
    _NATIVE_PAD_MODES, _normalize_pads, _pad_axis, check_pad_fits, crop, pad,
)
from keras_convx.ops.resampling import (  # noqa: F401
    _CUBIC_A, INTERPOLATIONS, _lanczos_taps, resize, resize_taps,
)
from keras_convx.ops.transposed import (  # noqa: F401
    _backend_transpose_matches, _conv_transpose_as_conv, _zero_insert, conv_transpose,
    transpose_crops,
)

"""What keras-hub's vision models need beyond tracing: a substitute for DepthAnything's
`interpolate`, whose code is backend-specific (`tf.compat.v1.image.resize`,
`torch.nn.functional.interpolate`, `jax.image.scale_and_translate`), all three a bilinear
resize with aligned corners to a given size."""

import keras

from keras_convx.exporter.trace import substitute


def align_corners_resize(x, size, data_format=None):
    """Bilinear resize of 4-D `x` to `size` with aligned corners, as keras_convx's
    UpSampling2D (one ONNX Resize)."""
    from keras_convx.layers import UpSampling2D

    data_format = data_format or keras.config.image_data_format()
    lengths = x.shape[1:3] if data_format == "channels_last" else x.shape[2:4]
    if tuple(lengths) == tuple(size):
        return x
    scale = tuple(int(s) / int(n) for s, n in zip(size, lengths))
    return UpSampling2D(scale, data_format=data_format, interpolation="bilinear",
                        align_corners=True)(x)


substitute("keras_hub.src.models.depth_anything.depth_anything_layers", "interpolate",
           align_corners_resize)

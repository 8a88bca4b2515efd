"""Importing this package registers every lowering (modules follow Keras's layer packages)."""

from keras_convx.exporter.lowerings import (  # noqa: F401
    activations, applications, attention_ops, conv, core, keras_hub, merging, normalization,
    operations, pooling, preprocessing, recurrent, reshaping, shape_ops, tensor_ops,
)

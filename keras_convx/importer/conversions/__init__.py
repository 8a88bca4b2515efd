"""Conversions, one module per family (following the exporter's lowerings/ map);
importing this package registers them."""

from keras_convx.importer.conversions import (activations, conv, core, merging,  # noqa: F401
                                              normalization, pooling, recurrent, reshaping,
                                              resizing, tensors)

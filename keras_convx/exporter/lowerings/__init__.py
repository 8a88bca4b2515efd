"""Importing this package registers every lowering."""

from keras_convx.exporter.lowerings import conv, keras_layers, reshaping  # noqa: F401

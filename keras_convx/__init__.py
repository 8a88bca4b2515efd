"""keras_convx: the convolution family as Keras 3 layers, on any backend."""

from keras_convx import constraints, ops, regularizers, weights
from keras_convx.layers import *  # noqa: F401,F403

__version__ = "0.1.0"

"""Models from YAML: a safe, validated, readable config format (see configs/README.md)."""

from keras_convx.model_config.builder import (
    Plan, build_model, layer_types, register_layer, validate,
)
from keras_convx.model_config.loader import ConfigError
from keras_convx.model_config.to_yaml import to_dict, to_yaml

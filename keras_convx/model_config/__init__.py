"""Models from YAML: a safe, validated, readable config format (see configs/README.md).

The namespace is lazy: `keras_convx.model_config.precheck` and the loader run without
Keras (the CLI checks a config before it imports a backend); each name below loads its
module on first use.
"""

_TABLE = {"Plan": "builder", "build_model": "builder", "layer_types": "builder",
          "register_layer": "builder", "validate": "builder", "ConfigError": "loader",
          "to_dict": "writer", "to_yaml": "writer", "load_source": "source"}

__all__ = sorted(_TABLE)


def __getattr__(name):
    module = _TABLE.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_convx.model_config' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"keras_convx.model_config.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

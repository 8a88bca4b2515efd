"""Resolving constraints/regularizers given by name, `{"Name": {args}}` or instance."""

import sys


def resolve(identifier, keras_module, kind, module_name):
    """keras_convx classes first (by class name), then Keras's own `get`."""
    if identifier is None:
        return None
    ours = sys.modules[module_name]
    base = getattr(keras_module, kind.capitalize())

    def lookup(name):
        cls = getattr(ours, name, None)
        return cls if isinstance(cls, type) and issubclass(cls, base) else None

    if isinstance(identifier, str) and lookup(identifier):
        return lookup(identifier)()
    if isinstance(identifier, dict) and len(identifier) == 1:
        (name, args), = identifier.items()
        if isinstance(name, str) and lookup(name):
            if args is None:
                args = {}
            if not isinstance(args, dict):
                raise TypeError(f"{kind} {name}: arguments must be a mapping, got {args!r}")
            return lookup(name)(**args)
    try:
        return keras_module.get(identifier)
    except (ValueError, TypeError) as err:
        raise ValueError(f"unknown {kind} {identifier!r}: {err}") from None

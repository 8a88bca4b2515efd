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
    if isinstance(identifier, dict) and len(identifier) == 1 and "class_name" not in identifier:
        (name, args), = identifier.items()
        identifier = {"class_name": name, "config": args or {}}
    try:
        return keras_module.get(identifier)
    except (ValueError, TypeError):
        name = identifier.get("class_name") if isinstance(identifier, dict) else identifier
        import difflib

        options = [n for n in dir(ours) if lookup(n)] + [
            n for n in dir(keras_module) if isinstance(getattr(keras_module, n), type)]
        close = difflib.get_close_matches(str(name), options, n=1, cutoff=0.6)
        raise ValueError(f"unknown {kind} {name!r}"
                         + (f"; did you mean {close[0]}?" if close else "")) from None

"""The lowering registry: one function per exact layer class."""

LOWERINGS = {}


def lowering(*classes):
    """Registers `fn(builder, layer, args, kwargs) -> Value or list of Values` for `classes`.

    Keyed by exact class: a subclass may change `call`, so it is not assumed to lower
    like its parent. Registering a class twice is an error.
    """
    def decorate(fn):
        for cls in classes:
            if cls in LOWERINGS:
                raise ValueError(
                    f"exporter: {cls.__module__}.{cls.__name__} already has a lowering "
                    f"({LOWERINGS[cls].__name__})"
                )
            LOWERINGS[cls] = fn
        return fn
    return decorate


def find(layer):
    return LOWERINGS.get(type(layer))

"""What a trace changes in Keras and the backends while it runs, and the session state
that says when: random ops refused outside `build`, Keras variables deferring to a
KerasTensor operand, sublayers Keras can't record run inline, and the functions
`substitute` replaces. `trace_call` installs and removes them (`_patch`), with its own
patch beside the traces it reads: composite sublayers' output specs."""

import functools
import inspect
import sys

import keras


# A flatten (or a lone trace) is a session: the trace's patches are installed on its
# first trace and removed when it ends; nested traces share them.
_SESSION = {"depth": 0, "patched": False, "building": 0,
            "lowerable": lambda op: False}  # `flatten`'s: which sublayers are lowered by class


class _RandomAtInference(Exception):
    pass


def _random_guard(draw_seed):
    """A backend's `draw_seed` that refuses random ops in a traced `call`, and lets
    through a sublayer's `build` the trace runs (a subclassed model exported before its
    first call: its initializers draw seeds)."""
    def guarded(seed=None):
        if _SESSION["building"]:
            return draw_seed(seed)
        raise _RandomAtInference("a random op runs at inference")
    return guarded


def _building(original):
    def maybe_build(self, *args, **kwargs):
        _SESSION["building"] += 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _SESSION["building"] -= 1
    return maybe_build


@functools.lru_cache(maxsize=1024)
def _parameters(function):
    """The parameters of a `call` (by its function: every instance of a class shares it)."""
    params = inspect.signature(function).parameters
    return {k: v for k, v in params.items() if k != "self"} if "self" in params else params


def _call_kwargs(layer, kwargs, inference=False):
    """`kwargs` as `layer.call` takes them (as Layer.__call__ passes them): `training` and
    `mask` only where its signature has them; `training=False` for `inference`."""
    params = _parameters(getattr(layer.call, "__func__", layer.call))
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kwargs = dict(kwargs)
    if inference and ("training" in params or (
            takes_any and getattr(layer, "_call_has_training_arg", False))):
        kwargs["training"] = False
    for name in ("training", "mask"):
        if name in kwargs and name not in params and not takes_any:
            del kwargs[name]
    return kwargs


_SAVED_SEEDS = {}
_SWAPPED = {}


def _swap(on, cls, name, wrap):
    """Replaces `cls.name` by `wrap(original)`, or puts the original back."""
    if on:
        _SWAPPED[cls, name] = cls.__dict__[name]
        setattr(cls, name, wrap(cls.__dict__[name]))
    else:
        setattr(cls, name, _SWAPPED.pop((cls, name)))


SUBSTITUTES = {}  # (module name, attribute) -> replacement, while tracing
_SAVED_SUBSTITUTES = {}


def substitute(module, name, replacement):
    """While tracing, `module.name` is `replacement`: the way through a function whose
    code is backend-specific (a `tf.`/`torch.`/`jax.` call), replaced by one written with
    `keras.ops` or layers that have lowerings. Outside tracing nothing changes, and the
    model's own outputs stay the reference verification compares with.

    Args:
        module: the name of the module whose global the layer's `call` reads (where the
            function is used, not where it is defined).
        name: the attribute.
        replacement: a function with the same signature.
    """
    SUBSTITUTES[module, name] = replacement


def _substitutes(on):
    if on:
        for (module, name), replacement in SUBSTITUTES.items():
            loaded = sys.modules.get(module)
            if loaded is not None and hasattr(loaded, name):
                _SAVED_SUBSTITUTES[module, name] = getattr(loaded, name)
                setattr(loaded, name, replacement)
    else:
        for (module, name), original in _SAVED_SUBSTITUTES.items():
            setattr(sys.modules[module], name, original)
        _SAVED_SUBSTITUTES.clear()


def _spec_from_shape(layer, args, kwargs):
    """Layer.compute_output_spec for a call on one tensor (or one list of them), straight
    from `compute_output_shape` (Keras's CallSpec checks each argument against
    TensorFlow's tensor protocols, which Python 3.11 doesn't cache); None otherwise."""
    from keras.src import tree

    if len(args) != 1 or any(k not in ("training", "mask") for k in kwargs):
        return None
    x = args[0]
    if isinstance(x, keras.KerasTensor):
        shape = layer.compute_output_shape(tuple(x.shape))
    elif isinstance(x, (list, tuple)) and x and all(isinstance(t, keras.KerasTensor) for t in x):
        shape = layer.compute_output_shape([tuple(t.shape) for t in x])
    else:
        return None
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (int, type(None))):
        return keras.KerasTensor(tuple(shape), dtype=layer.compute_dtype)
    return tree.map_shape_structure(lambda s: keras.KerasTensor(s, dtype=layer.compute_dtype),
                                    shape)


_BINARY = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul")
_DUNDERS = [f"__{p}{op}__" for op in _BINARY for p in ("", "r")] + \
    [f"__{op}__" for op in ("lt", "le", "gt", "ge")]


def _defer(method):
    def dunder(self, other):
        if isinstance(other, keras.KerasTensor):
            return NotImplemented  # Python then asks the KerasTensor: a graph node
        return method(self, other)
    return dunder


def _variable_dunders():
    """(class, name) of the arithmetic methods of Keras's Variable classes (the backends'
    subclasses may define their own): while tracing they defer to a KerasTensor operand,
    so `self.scale * x` makes an operation node with the variable as a constant argument,
    as `x * self.scale` does, where Keras's Variable would hand the symbolic tensor to the
    backend."""
    from keras.src.backend.common.variables import Variable

    classes, todo = [], [Variable]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    return [(cls, name) for cls in classes for name in _DUNDERS if name in cls.__dict__]


def _inline_untraceable(original):
    """While tracing, a sublayer Keras can't record as a node runs its `call` inline: its
    operations join the trace. (It returns None or () beside its tensors, or its output
    spec can't be inferred symbolically: JAX turns its int arguments into tracers.)"""
    from keras.src.ops.node import Node

    def call(self, *args, **kwargs):
        if not self.built or not any(isinstance(t, keras.KerasTensor)
                                     for t in keras.tree.flatten((args, kwargs))):
            return original(self, *args, **kwargs)
        kwargs = _call_kwargs(self, kwargs)
        try:
            # what Layer.__call__ does symbolically, without its eager-call machinery
            # (on TensorFlow, its argument checks cost more than the whole export)
            outputs = self.compute_output_spec(*args, **kwargs)
            Node(operation=self, call_args=args, call_kwargs=kwargs, outputs=outputs)
            return outputs
        except Exception:  # noqa: BLE001 (inline, and let its own error speak if it fails)
            pass
        return self.call(*args, **_call_kwargs(self, kwargs, inference=True))
    return call

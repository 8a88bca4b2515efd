"""Moving whole models between `keras.layers` and keras_convx layers."""

import keras

from keras_convx import layers as kcl

# keras.layers classes keras_convx shadows, by class name (the names are the same)
SHADOWED = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
            "SeparableConv1D", "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose",
            "Conv3DTranspose", "Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D",
            "ZeroPadding2D", "ZeroPadding3D", "UpSampling1D", "UpSampling2D", "UpSampling3D")


def _exact(layer, names):
    """The shadowed class name of `layer` if it is exactly that class (not a subclass)."""
    name = type(layer).__name__
    return name if name in names else None


def convert(model, to="keras_convx"):
    """Returns `model` with its convolution-family and reshaping layers swapped.

    `to="keras_convx"` replaces every `keras.layers` class keras_convx shadows (the conv
    family, cropping, zero padding, up-sampling) by its keras_convx equivalent;
    `to="keras"` does the reverse, for layers whose configuration Keras can express.
    Names, arguments, constraints, regularizers and weights are carried over, so the
    outputs are identical. Works on Functional and Sequential models (nested models
    included, through `keras.models.clone_model`); other layers are cloned as they are.

    Args:
        model: a built Functional or Sequential Keras model.
        to: `"keras_convx"` (default) or `"keras"`.

    Returns:
        A new model; `model` is not changed.

    Raises:
        ValueError: `to="keras"` and some layers use what `keras.layers` lacks (e.g.
            `padding_mode`, `groups` on a transposed conv): all of them are listed.
    """
    if to not in ("keras_convx", "keras"):
        raise ValueError(f"convert: to must be 'keras_convx' or 'keras', got {to!r}")
    if isinstance(model, keras.Model) and not isinstance(model, keras.Sequential) and \
            not hasattr(model, "_nodes_by_depth"):
        raise ValueError(f"convert: model must be a Functional or Sequential model, got "
                         f"{type(model).__name__} (a subclassed model has no graph to rebuild)")
    refused = []

    def swap(layer):
        if to == "keras_convx":
            name = _exact(layer, SHADOWED) if type(layer).__module__.startswith("keras.") else None
            target = getattr(kcl, name) if name else None
        else:
            ours = type(layer).__module__.startswith("keras_convx.")
            name = _exact(layer, SHADOWED) if ours else None
            target = getattr(keras.layers, name) if name else None
            if ours and target is None:
                refused.append(f"{layer.name} ({type(layer).__name__}): no keras.layers "
                               f"equivalent")
        if target is None:
            return layer.__class__.from_config(layer.get_config())
        try:
            return target.from_config(layer.get_config())
        except (TypeError, ValueError) as err:
            refused.append(f"{layer.name} ({type(layer).__name__}): {str(err).splitlines()[0]}")
            return layer.__class__.from_config(layer.get_config())

    inputs = None
    if not isinstance(model, keras.Sequential):  # keep the input layers' names too
        inputs = [keras.Input(batch_shape=kt.shape, dtype=kt.dtype,
                              name=kt._keras_history[0].name) for kt in model.inputs]
        inputs = inputs if len(inputs) > 1 else inputs[0]
    new = keras.models.clone_model(model, input_tensors=inputs, clone_function=swap)
    if refused:
        raise ValueError("convert: keras.layers can't express these layers' arguments: "
                         + "; ".join(refused))
    _copy_weights(model, new)
    return new


def _copy_weights(source, target):
    """Copies weights layer by layer (same names, same weight shapes by design)."""
    by_name = {layer.name: layer for layer in target._flatten_layers(include_self=False)}
    for layer in source._flatten_layers(include_self=False):
        twin = by_name.get(layer.name)
        if twin is not None and layer.weights and not isinstance(layer, keras.Model):
            twin.set_weights(layer.get_weights())

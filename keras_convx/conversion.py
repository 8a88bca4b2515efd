"""Moving whole models between `keras.layers` and keras_convx layers."""

import json
import os
import tempfile

import keras

from keras_convx import layers as kcl

# keras.layers classes keras_convx shadows, by class name (the names are the same)
SHADOWED = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
            "SeparableConv1D", "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose",
            "Conv3DTranspose", "Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D",
            "ZeroPadding2D", "ZeroPadding3D", "UpSampling1D", "UpSampling2D", "UpSampling3D")


def ours(layer):
    """The unbuilt keras_convx twin of a `keras.layers` class keras_convx shadows (from its
    config), else `layer` itself."""
    name = _exact(layer, SHADOWED) if type(layer).__module__.startswith("keras.") else None
    return getattr(kcl, name).from_config(layer.get_config()) if name else layer


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

    A path to a whole-model `.h5` file is loaded first (`load_h5`), so a Keras 2 user's
    `model.save("m.h5")` converts in one call: `kc.convert("m.h5")`.

    Args:
        model: a built Functional or Sequential Keras model, or the path of a `.h5` file.
        to: `"keras_convx"` (default) or `"keras"`.

    Returns:
        A new model; `model` is not changed.

    Raises:
        ValueError: `to="keras"` and some layers use what `keras.layers` lacks (e.g.
            `padding_mode`, `groups` on a transposed conv): all of them are listed.
    """
    if to not in ("keras_convx", "keras"):
        raise ValueError(f"convert: to must be 'keras_convx' or 'keras', got {to!r}")
    if isinstance(model, (str, os.PathLike)):
        model = load_h5(model)
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
            is_ours = type(layer).__module__.startswith("keras_convx.")
            name = _exact(layer, SHADOWED) if is_ours else None
            target = getattr(keras.layers, name) if name else None
            if is_ours and target is None:
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
    if not isinstance(model, keras.Sequential):
        # keep the input layers' names, and the inputs' structure: a model loaded from a
        # Keras 2 file takes a list of one input (its config lists `input_layers`)
        inputs = keras.tree.map_structure(
            lambda kt: keras.Input(batch_shape=kt.shape, dtype=kt.dtype,
                                   name=kt._keras_history[0].name), model.input)
    new = keras.models.clone_model(model, input_tensors=inputs, clone_function=swap,
                                   recursive=True)  # into nested models' layers too
    if refused:
        raise ValueError("convert: keras.layers can't express these layers' arguments: "
                         + "; ".join(refused))
    copy_weights(model, new)
    return new


def copy_weights(source, target):
    """Copies the weights of every layer of `source` to the layer of `target` with the
    same name, nested models' layers included (as `convert` and `to_yaml` keep names:
    e.g. a model rebuilt from `to_yaml` text by `build_model`). Layers of `source` that
    `target` lacks are skipped."""
    by_name = {layer.name: layer for layer in target._flatten_layers(include_self=False)}
    for layer in source._flatten_layers(include_self=False):
        twin = by_name.get(layer.name)
        if twin is not None and layer.weights and not isinstance(layer, keras.Model):
            twin.set_weights(layer.get_weights())


# classes whose Keras 2 config had `"groups": 1` (inherited from Conv) and whose Keras 3
# constructor takes no `groups` (keras-team/keras#19441)
_NO_GROUPS = ("DepthwiseConv1D", "DepthwiseConv2D", "Conv1DTranspose", "Conv2DTranspose",
              "Conv3DTranspose")


def _upgrade_keras2_layers(layers, sequential):
    """Rewrites, in place, what Keras 2 wrote and Keras 3.15's h5 loader mishandles."""
    for i, entry in enumerate(list(layers)):
        config = entry.get("config", {})
        if entry.get("class_name") in ("Sequential", "Functional", "Model") and \
                isinstance(config.get("layers"), list):
            _upgrade_keras2_layers(config["layers"], entry["class_name"] == "Sequential")
        if entry.get("class_name") in _NO_GROUPS and config.get("groups") == 1:
            del config["groups"]  # tf.keras 2.3+ wrote it; Keras 3 refuses the argument
        shape = config.get("batch_input_shape")
        if sequential and i == 0 and shape is not None and entry["class_name"] != "InputLayer":
            # Keras 3 takes a Sequential's first-layer batch_input_shape as input_shape,
            # adding a second batch dimension: give it the InputLayer Keras 2 implied
            del config["batch_input_shape"]
            layers.insert(0, {"class_name": "InputLayer", "config": {
                "batch_shape": shape, "dtype": config.get("dtype", "float32"),
                "name": config.get("name", "input") + "_input"}})


def load_h5(path):
    """Loads a whole-model `.h5` file, including those Keras 2 wrote (`model.save("m.h5")`,
    standalone Keras 2.x or tf.keras), uncompiled.

    Keras 3 reads these files itself (`keras.models.load_model`) except for two things
    Keras 2 wrote that it mishandles, which are rewritten first: `groups` in a depthwise
    or transposed conv's config (tf.keras 2.3 and later wrote `"groups": 1`; Keras 3
    raises "Unrecognized keyword arguments"), and `batch_input_shape` on the first layer of a
    Sequential model (Keras 3 adds a second batch dimension); the latter becomes the
    `InputLayer` Keras 2 implied. Weights load as Keras does, layer by layer in order.

    Args:
        path: the `.h5` / `.hdf5` file.

    Returns:
        The Keras model (keras.layers classes; `convert` then moves it onto keras_convx).
    """
    import h5py

    path = os.fspath(path)
    if not path.endswith((".h5", ".hdf5")):
        raise ValueError(f"convert: a model path must be a .h5 or .hdf5 file (a .keras file "
                         f"loads with keras.models.load_model), got {path!r}")
    with h5py.File(path, "r") as f:
        text = f.attrs.get("model_config")
        if text is None:
            raise ValueError(f"convert: {path!r} has no model config (a weights-only file? "
                             f"build the model, then model.load_weights)")
        config = json.loads(text.decode("utf8") if hasattr(text, "decode") else text)
        original = json.dumps(config)
        if isinstance(config.get("config", {}).get("layers"), list):
            _upgrade_keras2_layers(config["config"]["layers"],
                                   config.get("class_name") == "Sequential")
        if json.dumps(config) == original:
            return keras.models.load_model(path, compile=False)
        with tempfile.TemporaryDirectory() as folder:  # Keras reads the rewritten copy
            copy = os.path.join(folder, "model.h5")
            with h5py.File(copy, "w") as out:
                for key, value in f.attrs.items():
                    out.attrs[key] = value
                out.attrs["model_config"] = json.dumps(config).encode("utf8")
                for key in f:
                    f.copy(f[key], out, name=key)
            return keras.models.load_model(copy, compile=False)

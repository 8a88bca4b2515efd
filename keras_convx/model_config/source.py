"""Loading a model from what a user names: a YAML config, a `.keras` file or a zoo name."""

from pathlib import Path


def load_source(source, weights=None, overrides=None, scale=None):
    """A Keras model from a YAML config, a `.keras` file or a zoo name: (model, name).

    Args:
        source: a `.yaml`/`.yml` config, a `.keras` file, or a zoo name (`configs/`).
        weights: a `.weights.h5` file to load into the model.
        overrides: config variables, `{name: value}` (YAML configs only).
        scale: a scale preset of the config (YAML configs only).

    Raises:
        ValueError: a missing or unloadable file, a folder, overrides for a `.keras` file
            (one line naming the source); `ConfigError` for a bad config.
    """
    import keras

    from keras_convx.model_config import build_model

    from keras_convx.model_config.loader import resolve

    if Path(source).is_dir():
        raise ValueError(f"{source}: is a directory, not a model file")
    resolved = resolve(source, also=(".keras",))
    path = Path(resolved)
    if path.suffix == ".keras":
        if not path.exists():
            raise ValueError(f"{source}: no such file")
        if overrides or scale:
            raise ValueError("--set/--scale apply to YAML configs, not .keras files")
        try:
            model = keras.saving.load_model(path, safe_mode=True)
        except Exception as err:  # a truncated or foreign file can fail in many ways
            raise ValueError(f"{source}: not a loadable .keras file ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''})") from None
    else:
        model = build_model(path, scale=scale, **(overrides or {}))
    name = path.stem
    if weights:
        if not Path(weights).is_file():
            raise ValueError(f"{weights}: no such weights file")
        try:
            model.load_weights(weights)
        except Exception as err:
            raise ValueError(f"{weights}: can't load into {name} ({str(err).splitlines()[0]})") from None
    return model, name

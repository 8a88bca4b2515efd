"""Calibration data for INT8 export: whatever form the user has, as lists of arrays in
Keras layout, split into a calibration part and a held-out part for verification.

Accepted: a NumPy array (one input), a tuple/list/dict of arrays (one per input), a list of
such batches, a generator or iterator of batches, a `keras.utils.PyDataset`, a
`tf.data.Dataset`; batches may be `(x, y)` or `(x, y, sample_weight)` as in `fit`. On the CLI:
a `.npz` file or a folder of images (`load`).
"""

import os

import numpy as np

# what stays out of calibration to verify on: a fifth of the samples, at most this many
HELD_OUT_MAX = 64
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


class CalibrationError(ValueError):
    """Calibration data that can't be used (its form, its shapes, too few samples)."""


def samples(data, model):
    """The calibration data as one array per model input (Keras layout, float32)."""
    n_in = len(model.inputs)
    names = [kt.name for kt in model.inputs]
    if data is None:
        raise CalibrationError(
            "export: precision='int8' needs calibration data (calibration=arrays, batches, a "
            "generator, a PyDataset or a tf.data.Dataset; CLI --calibration FILE.npz or an "
            "image folder). calibration='random' quantizes for random inputs and says so in "
            "the report: not representative of real data")
    batches = [_inputs_of(b, n_in, names) for b in _batches(data, n_in)]
    if not batches:
        raise CalibrationError("export: the calibration data is empty")
    arrays = [np.concatenate([b[i] for b in batches]).astype(np.float32, copy=False)
              for i in range(n_in)]
    count = arrays[0].shape[0]
    for kt, a in zip(model.inputs, arrays):
        want = tuple(kt.shape)
        if a.ndim != len(want) or any(w is not None and w != g
                                      for w, g in zip(want[1:], a.shape[1:])):
            raise CalibrationError(
                f"export: calibration data for input {kt.name!r} has shape {a.shape}; the model "
                f"takes {want}")
        if a.shape[0] != count:
            raise CalibrationError(
                f"export: calibration inputs have different sample counts "
                f"({[x.shape[0] for x in arrays]})")
        if not np.isfinite(a).all():
            raise CalibrationError(f"export: calibration data for input {kt.name!r} holds "
                                   f"NaN or Inf")
    if count < 2:
        raise CalibrationError(f"export: {count} calibration sample(s); at least 2 are needed "
                               f"(some are held out to verify the INT8 graph on)")
    return arrays


def split(arrays):
    """(calibration, held_out): the last fifth of the samples (at most `HELD_OUT_MAX`, at
    least one) is held out, so the INT8 graph is judged on data it was not calibrated on."""
    count = arrays[0].shape[0]
    held = min(HELD_OUT_MAX, max(1, count // 5))
    return [a[:count - held] for a in arrays], [a[count - held:] for a in arrays]


def batched(arrays, size):
    """Lists of arrays of `size` samples (the last may be smaller)."""
    count = arrays[0].shape[0]
    return [[a[i:i + size] for a in arrays] for i in range(0, count, size)]


def _batches(data, n_in):
    if isinstance(data, np.ndarray) or isinstance(data, dict):
        return [data]
    if isinstance(data, (list, tuple)):
        if n_in > 1 and len(data) == n_in and all(isinstance(d, np.ndarray) for d in data) \
                and len({d.shape[0] for d in data}) == 1:
            return [data]  # one array per input
        return list(data)
    try:
        import keras

        if isinstance(data, keras.utils.PyDataset):
            return [data[i] for i in range(len(data))]
    except ImportError:
        pass
    module = type(data).__module__
    if module.startswith("tensorflow") and hasattr(data, "as_numpy_iterator"):
        return list(data.as_numpy_iterator())
    if hasattr(data, "__iter__") or hasattr(data, "__next__"):
        return list(data)
    raise CalibrationError(
        f"export: calibration data of type {type(data).__name__} is not understood; pass "
        f"arrays, a list of batches, a generator, a keras.utils.PyDataset or a "
        f"tf.data.Dataset")


def _inputs_of(batch, n_in, names):
    """One batch's input arrays, dropping `(x, y[, w])` targets."""
    if isinstance(batch, dict):
        missing = [n for n in names if n not in batch]
        if missing:
            raise CalibrationError(f"export: a calibration batch (dict) lacks inputs {missing}; "
                                   f"it has {sorted(batch)}")
        return [np.asarray(batch[n]) for n in names]
    if isinstance(batch, (tuple, list)):
        if n_in == 1:
            batch = batch[0] if not isinstance(batch[0], (int, float)) else batch
            return _inputs_of(batch, n_in, names) if isinstance(batch, (tuple, list, dict)) \
                else [np.asarray(batch)]
        if len(batch) == n_in and all(hasattr(b, "shape") for b in batch):
            return [np.asarray(b) for b in batch]
        return _inputs_of(batch[0], n_in, names)
    if n_in != 1:
        raise CalibrationError(f"export: the model has {n_in} inputs {names}; each calibration "
                               f"batch must give one array per input")
    return [np.asarray(batch)]


def load(path, model):
    """CLI calibration data: a `.npz` file (arrays named after the model's inputs, or saved
    positionally, `arr_0`...) or a folder of images, resized to the model's input size and
    kept in 0..255 (the model's own preprocessing layers are in the graph)."""
    if os.path.isdir(path):
        return _images(path, model)
    if not path.endswith(".npz"):
        raise CalibrationError(f"--calibration: {path!r} is neither a .npz file nor a folder "
                               f"of images")
    with np.load(path, allow_pickle=False) as f:
        keys = list(f.keys())
        names = [kt.name for kt in model.inputs]
        if all(n in keys for n in names):
            return [f[n] for n in names]
        positional = [f"arr_{i}" for i in range(len(names))]  # np.savez(path, a, b)
        if keys == positional:
            return [f[k] for k in keys] if len(names) > 1 else f[keys[0]]
        # a misnamed array is refused: taking it anyway could calibrate on the wrong data
        raise CalibrationError(f"--calibration: {path} holds arrays {keys}; expected one per "
                               f"model input named {names} (np.savez(path, "
                               f"{'=..., '.join(names)}=...)) or saved positionally "
                               f"({positional})")


def _images(folder, model):
    import keras

    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise CalibrationError("--calibration: an image folder needs a model with one image "
                               "input (batch, height, width, channels)")
    _, height, width, channels = model.inputs[0].shape
    if height is None or width is None:
        raise CalibrationError("--calibration: the model's input size is unknown; pass a .npz "
                               "or export with --input-shape")
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise CalibrationError(f"--calibration: no images ({', '.join(IMAGE_SUFFIXES)}) in "
                               f"{folder}")
    mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
    if mode is None:
        raise CalibrationError(f"--calibration: images can't fill {channels} channels")
    images = [keras.utils.img_to_array(keras.utils.load_img(
        os.path.join(folder, f), color_mode=mode, target_size=(height, width)))
        for f in files]
    return np.stack(images).astype(np.float32)

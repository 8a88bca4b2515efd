"""The one place where convolution arguments are normalized and validated.

Every function takes `owner` (the layer or op name used as the message prefix)
and raises `ValueError`/`TypeError` whose text names the argument, the value
received and what is accepted, e.g. `Conv2D: strides must be positive ints,
got (0, 1)`.
"""

import numbers

import keras

PADDING_MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")
PAD_MODES = ("constant",) + PADDING_MODES
PADDING_STRINGS = ("valid", "same", "causal")
DATA_FORMATS = ("channels_last", "channels_first")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def normalize_tuple(value, n, name, owner, min_value=1):
    """Turns an int or an iterable of `n` ints into a tuple of `n` ints >= `min_value`."""
    kind = "positive ints" if min_value == 1 else f"ints >= {min_value}"
    if _is_int(value):
        result = (int(value),) * n
    else:
        try:
            result = tuple(value)
        except TypeError:
            raise TypeError(
                f"{owner}: {name} must be an int or a tuple of {n} {kind}, "
                f"got {value!r}"
            ) from None
        if len(result) != n or not all(_is_int(v) for v in result):
            raise ValueError(
                f"{owner}: {name} must be an int or a tuple of {n} {kind}, "
                f"got {value!r}"
            )
        result = tuple(int(v) for v in result)
    if any(v < min_value for v in result):
        raise ValueError(f"{owner}: {name} must be {kind}, got {result}")
    if any(v >= 2**31 for v in result):  # backends keep these in int32 attributes
        raise ValueError(f"{owner}: {name} must be below 2**31, got {result}")
    return result


def normalize_positive_int(value, name, owner):
    if not _is_int(value) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return int(value)


def normalize_data_format(data_format, owner):
    if data_format is None:
        return keras.config.image_data_format()
    value = str(data_format).lower() if isinstance(data_format, str) else data_format
    if value not in DATA_FORMATS:
        raise ValueError(
            f"{owner}: data_format must be one of {DATA_FORMATS}, got {data_format!r}"
        )
    return value


def normalize_pairs(value, rank, name, owner):
    """Normalizes per-axis (before, after) amounts.

    Accepts an int (all sides), a tuple of `rank` ints (symmetric per axis) or
    a tuple of `rank` (before, after) pairs; for rank 1 a pair of ints is
    (before, after), as in Keras's 1D layers. Returns a tuple of `rank` pairs
    of non-negative ints.
    """
    if rank == 1 and not _is_int(value) and not isinstance(value, str):
        try:
            items = tuple(value)
        except TypeError:
            items = None
        if items is not None and len(items) == 2 and all(_is_int(v) for v in items):
            value = (items,)
    accepted = (
        f"a non-negative int, a tuple of {rank} non-negative ints or "
        f"{rank} (before, after) pairs"
    )
    if _is_int(value):
        pairs = ((value, value),) * rank
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(f"{owner}: {name} must be {accepted}, got {value!r}") from None
        if len(items) != rank:
            raise ValueError(f"{owner}: {name} must be {accepted}, got {value!r}")
        pairs = []
        for item in items:
            if _is_int(item):
                pairs.append((item, item))
                continue
            try:
                pair = tuple(item)
            except TypeError:
                raise TypeError(
                    f"{owner}: {name} must be {accepted}, got {value!r}"
                ) from None
            if len(pair) != 2 or not all(_is_int(v) for v in pair):
                raise ValueError(f"{owner}: {name} must be {accepted}, got {value!r}")
            pairs.append(pair)
    pairs = tuple((int(a), int(b)) for a, b in pairs)
    if any(a < 0 or b < 0 for a, b in pairs):
        raise ValueError(f"{owner}: {name} must not be negative, got {pairs}")
    return pairs


def normalize_padding(padding, rank, owner, allow_causal=True):
    """Returns 'valid', 'same', 'causal' or a tuple of `rank` (before, after) pairs."""
    if isinstance(padding, str):
        value = padding.lower()
        allowed = PADDING_STRINGS if allow_causal else PADDING_STRINGS[:2]
        if value not in allowed:
            raise ValueError(
                f"{owner}: padding must be one of {allowed}, an int, a tuple of "
                f"{rank} ints or {rank} (before, after) pairs, got {padding!r}"
            )
        return value
    return normalize_pairs(padding, rank, "padding", owner)


def normalize_padding_mode(mode, owner, allowed=PADDING_MODES, name="padding_mode"):
    value = mode.lower() if isinstance(mode, str) else mode
    if value not in allowed:
        raise ValueError(f"{owner}: {name} must be one of {allowed}, got {mode!r}")
    return value


def pairs_to_config(pairs):
    """Keras's config form: (before, after) for rank 1, nested pairs otherwise."""
    return tuple(pairs[0]) if len(pairs) == 1 else tuple(tuple(p) for p in pairs)


def normalize_scale(size, rank, owner, name="size"):
    """Positive up-sampling factors per axis; ints stay ints, others become floats."""
    accepted = f"a positive number or a tuple of {rank} positive numbers"
    values = (size,) * rank if isinstance(size, numbers.Real) else size
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(f"{owner}: {name} must be {accepted}, got {size!r}") from None
    if len(values) != rank or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0
        and v == v and v != float("inf") for v in values
    ):
        raise ValueError(f"{owner}: {name} must be {accepted}, got {size!r}")
    return tuple(int(v) if float(v).is_integer() else float(v) for v in values)


def padding_to_config(padding):
    """JSON-friendly form of a normalized padding (lists of pairs)."""
    if isinstance(padding, str):
        return padding
    return [list(p) for p in padding]


def check_divisible(value, groups, name, owner):
    if value % groups:
        raise ValueError(
            f"{owner}: {name} must be divisible by groups={groups}, got {name}={value}"
        )


def check_input_shape(input_shape, rank, data_format, owner, channels_known=True):
    """Checks the input rank and (where weights depend on it, `channels_known`) a known
    channel dim; returns the channel count (None when unknown and not required)."""
    shape = tuple(input_shape)
    if len(shape) != rank + 2:
        layout = (
            "(batch, spatial..., channels)"
            if data_format == "channels_last"
            else "(batch, channels, spatial...)"
        )
        raise ValueError(
            f"{owner}: expected an input of rank {rank + 2} {layout}, "
            f"got shape {shape}"
        )
    channels = shape[-1] if data_format == "channels_last" else shape[1]
    if channels is None:
        if not channels_known:
            return None
        raise ValueError(
            f"{owner}: the channel dimension of the input must be known, got shape {shape}"
        )
    return int(channels)

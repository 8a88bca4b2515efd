"""Lowerings of Keras's recurrent layers: LSTM, GRU and Bidirectional over either, to ONNX's
own LSTM and GRU ops (time-major inside, batch-first outside), with Keras's weights in ONNX's
gate order.

Keras's LSTM kernels hold the gates as [i, f, c, o], ONNX's as [i, o, f, c]; GRU's order
[z, r, h] is the same in both, and Keras's `reset_after=True` (its default) is ONNX's
`linear_before_reset=1`. An `initial_state` given in the call becomes initial_h/initial_c.
What ONNX's ops can't express is refused by name: masks, stateful layers, activations other
than tanh and sigmoid.
"""

import keras
import numpy as np

from keras_convx.exporter.graph import Unsupported, float_array
from keras_convx.exporter.registry import KERAS_ORDER, lowering

L = keras.layers
_ACTIVATIONS = {"activation": "tanh", "recurrent_activation": "sigmoid"}


def _check(layer, ctx):
    """Refuses, by name, what ONNX's LSTM/GRU can't run as Keras does."""
    kind = type(layer).__name__
    if ctx.kwargs.get("mask") is not None:
        raise Unsupported(f"{kind} with a mask: ONNX's {kind} takes sequence lengths, not a "
                          f"mask")
    if getattr(layer, "stateful", False):
        raise Unsupported(f"a stateful {kind}: its state lives between calls")
    for attr, name in _ACTIVATIONS.items():
        fn = getattr(layer, attr, None)
        if fn is not None and getattr(fn, "__name__", "") != name:
            raise Unsupported(f"{kind} {attr}={getattr(fn, '__name__', fn)!r}: only "
                              f"{name!r}, ONNX's default, is lowered")
    if ctx.x.ndim != 3 or ctx.x.shape[2] is None:
        raise Unsupported(f"{kind} needs a (batch, time, features) input with known features, "
                          f"got {ctx.x.shape}")


def _weights(layer):
    """(W, R, B) of one direction in ONNX's layout and gate order; B None without bias."""
    cell = layer.cell
    units = cell.units
    kernel, recurrent = float_array(cell.kernel), float_array(cell.recurrent_kernel)
    bias = float_array(cell.bias) if cell.use_bias else None
    if isinstance(layer, L.LSTM):
        order = [0, 3, 1, 2]  # Keras [i, f, c, o] -> ONNX [i, o, f, c]

        def gates(a):
            return np.concatenate([a[..., g * units:(g + 1) * units] for g in order], -1)

        w, r = gates(kernel).T, gates(recurrent).T
        b = None if bias is None else np.concatenate([gates(bias), np.zeros_like(bias)])
        return w, r, b
    w, r = kernel.T, recurrent.T  # GRU: [z, r, h] in both
    if bias is None:
        return w, r, None
    if cell.reset_after:  # (2, 3H): input and recurrent biases
        return w, r, np.concatenate([bias[0], bias[1]])
    return w, r, np.concatenate([bias, np.zeros_like(bias)])


def _initial_states(b, layers, ctx):
    """ONNX's initial_h (and initial_c), (directions, batch, units), from the call's
    `initial_state` (Keras: [h, c] or [h] per direction, forward first, each (batch,
    units)); [] without one."""
    if ctx.kwargs.get("initial_state") is None:
        return []
    states = list(ctx.inputs)[1:]  # after the sequence, in the call's order
    per = 2 if isinstance(layers[0], L.LSTM) else 1
    if len(states) != per * len(layers) or any(s.ndim != 2 for s in states):
        raise Unsupported(f"{type(layers[0]).__name__} initial_state: expected {per} (batch, "
                          f"units) tensor(s) per direction, got {len(states)}")
    out = []
    for k in range(per):  # (batch, directions, units), then the batch moved to axis 1
        parts = [b.node("Unsqueeze", [states[d * per + k].name, b.ints([1], "axes")])
                 for d in range(len(layers))]
        both = parts[0] if len(parts) == 1 else b.node("Concat", parts, axis=1)
        out.append(b.node("Transpose", [both], perm=[1, 0, 2]))
    return out


def _rnn(b, layers, x, direction, states=()):
    """One ONNX LSTM/GRU node over `layers` (one, or forward and backward), from the
    initial `states` if given; returns its (Y, Y_h, Y_c) names as ONNX gives them: Y
    (time, directions, batch, units), the states (directions, batch, units); Y_c None for
    a GRU."""
    first = layers[0]
    parts = [_weights(layer) for layer in layers]
    w = np.stack([p[0] for p in parts]).astype(np.float32)
    r = np.stack([p[1] for p in parts]).astype(np.float32)
    # time-major (layout 0): onnxruntime's CPU kernels refuse the batch-first layout 1
    inputs = [b.node("Transpose", [x.name], perm=[1, 0, 2]), b.const(w, "W"), b.const(r, "R")]
    if parts[0][2] is not None or states:
        gates = 4 if isinstance(first, L.LSTM) else 3
        bias = [p[2] if p[2] is not None else np.zeros(2 * gates * int(first.cell.units))
                for p in parts]
        inputs.append(b.const(np.stack(bias).astype(np.float32), "B"))
    if states:
        inputs += [""] + list(states)  # no sequence_lens: every sequence runs in full
    attrs = dict(hidden_size=int(first.cell.units), direction=direction)
    if isinstance(first, L.LSTM):
        return b.node("LSTM", inputs, n_outputs=3, **attrs)
    attrs["linear_before_reset"] = int(bool(first.cell.reset_after))
    return b.node("GRU", inputs, n_outputs=2, **attrs) + [None]


def _squeeze(b, name, axis):
    return b.node("Squeeze", [name, b.ints([axis], "axes")])


def _reverse_time(b, name):
    """Keras returns a `go_backwards` layer's sequence in the order it ran: reversed."""
    big = np.iinfo(np.int64).max
    return b.node("Slice", [name, b.ints([-1], "starts"), b.ints([-big], "ends"),
                            b.ints([1], "axes"), b.ints([-1], "steps")], suffix="Reverse")


@lowering(L.LSTM, L.GRU, layout=KERAS_ORDER)
def lower_rnn(b, layer, ctx):
    """keras.layers.LSTM/GRU -> ONNX LSTM/GRU (forward, or reverse for `go_backwards`)."""
    _check(layer, ctx)
    y, h, c = _rnn(b, [layer], ctx.x, "reverse" if layer.go_backwards else "forward",
                   _initial_states(b, [layer], ctx))
    last = _squeeze(b, h, 0) if layer.return_state or not layer.return_sequences else None
    if layer.return_sequences:  # (time, 1, batch, units) -> (batch, time, units)
        out = b.node("Transpose", [_squeeze(b, y, 1)], perm=[1, 0, 2])
        if layer.go_backwards:
            out = _reverse_time(b, out)
    else:
        out = last
    if not layer.return_state:
        return out
    return [out, last] + ([_squeeze(b, c, 0)] if c is not None else [])


@lowering(L.Bidirectional, layout=KERAS_ORDER)
def lower_bidirectional(b, layer, ctx):
    """Bidirectional(LSTM/GRU) -> one ONNX node with direction="bidirectional"; merge modes
    concat, sum, mul, ave and None (both outputs)."""
    fwd, bwd = layer.forward_layer, layer.backward_layer
    for part in (fwd, bwd):
        if type(part) not in (L.LSTM, L.GRU):
            raise Unsupported(f"Bidirectional over {type(part).__name__}: only LSTM and GRU "
                              f"are lowered")
        _check(part, ctx)
    if type(fwd) is not type(bwd) or fwd.go_backwards or not bwd.go_backwards or \
            fwd.return_sequences != bwd.return_sequences:
        raise Unsupported("Bidirectional whose layers differ in kind or order")
    if layer.return_state or layer.merge_mode not in ("concat", "sum", "mul", "ave", None):
        raise Unsupported(f"Bidirectional with merge_mode={layer.merge_mode!r} or "
                          f"return_state: only the outputs are lowered")
    y, h, _ = _rnn(b, [fwd, bwd], ctx.x, "bidirectional", _initial_states(b, [fwd, bwd], ctx))
    units = int(fwd.cell.units)
    if fwd.return_sequences:  # -> (batch, time, 2, units); the backward half in time order
        both, axis = b.node("Transpose", [y], perm=[2, 0, 1, 3]), 2
    else:  # -> (batch, 2, units)
        both, axis = b.node("Transpose", [h], perm=[1, 0, 2]), 1
    if layer.merge_mode == "concat":
        shape = [0, 0, 2 * units] if fwd.return_sequences else [0, 2 * units]
        return b.node("Reshape", [both, b.ints(shape, "shape")])
    halves = b.node("Split", [both, b.ints([1, 1], "split")], n_outputs=2, axis=axis)
    first, second = (_squeeze(b, half, axis) for half in halves)
    if layer.merge_mode is None:  # the two directions' outputs, forward first
        return [first, second]
    if layer.merge_mode == "sum":
        return b.node("Add", [first, second])
    if layer.merge_mode == "mul":
        return b.node("Mul", [first, second])
    total = b.node("Add", [first, second])
    return b.node("Mul", [total, b.const(np.float32(0.5), "half")])

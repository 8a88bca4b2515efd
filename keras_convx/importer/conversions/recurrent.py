"""ONNX LSTM and GRU -> `keras.layers.LSTM`/`GRU` (in `Bidirectional` for both directions),
the mirror of the exporter's `lowerings/recurrent.py`.

ONNX runs time-major (`layout=0`: X is (seq, batch, input)) or batch-major (`layout=1`).
A Keras tensor is always batch-first, so a time-major X is the Keras tensor
(batch, seq, input) seen through the axis order (1, 0, 2): the Transpose that made it
(PyTorch's export of `batch_first=True`) moved no data. The outputs are given the same
way: Y (seq, directions, batch, hidden) is the Keras tensor (batch, seq, directions,
hidden) in the order (2, 0, 1, 3).
"""

import keras
import numpy as np

from keras_convx.importer.context import Value
from keras_convx.importer.errors import Unsupported
from keras_convx.importer.registry import ANY, conversion
from keras_convx.layers.shape_ops import Slice

# Keras's gate order from ONNX's: LSTM iofc -> ifco; GRU zrh is the same in both
_LSTM_GATES = (0, 2, 3, 1)
_GRU_GATES = (0, 1, 2)
_DEFAULTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


@conversion("LSTM", since=7, layout=ANY)  # (14 added `layout`, default 0)
def convert_lstm(ctx):
    return _recurrent(ctx, "LSTM", _LSTM_GATES)


@conversion("GRU", since=7, layout=ANY)
def convert_gru(ctx):
    return _recurrent(ctx, "GRU", _GRU_GATES)


def _recurrent(ctx, op, gates):
    layout = ctx.flag("layout")
    x = ctx.x
    if ctx.inputs[0] is not x:
        raise Unsupported("X must be a computed tensor")
    wanted = (0, 1, 2) if layout else (1, 0, 2)  # Keras (batch, seq, input) in ONNX order
    if x.flat is not None or x.ndim != 3:
        raise Unsupported(f"X must be a rank-3 tensor, got rank {x.ndim}")
    if x.perm[0] != wanted[0]:
        raise Unsupported(f"X is {'batch' if layout else 'time'}-major (layout={int(layout)}), "
                          f"but its axis {wanted[0]} is not the model's batch (axis "
                          f"{x.perm[0]} is): Keras's layers would have to run over the batch")
    x = ctx.x = ctx.move(x, wanted, "to_batch_seq_input")
    _refuse_what_keras_lacks(ctx, op)
    direction = ctx.attr("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    w, r = ctx.const(1, "W"), ctx.const(2, "R")
    dirs, units = int(w.shape[0]), int(ctx.attr("hidden_size", r.shape[-1]))
    if (dirs == 2) != (direction == "bidirectional") or direction not in (
            "forward", "reverse", "bidirectional"):
        raise Unsupported(f"direction={direction!r} with W for {dirs} direction(s)")
    b = ctx.const(3, "B", optional=True)
    b = np.zeros((dirs, 2 * len(gates) * units), np.float32) if b is None else b
    _check_full_sequences(ctx, x)
    initial = _initial_states(ctx, op, layout, dirs, units)
    call = {"initial_state": initial} if initial else None
    # PyTorch's export names Y_h/Y_c even when nothing reads them: states only when used
    wants_state = any(o and (ctx.consumers(o) or ctx.is_graph_output(o))
                      for o in ctx.node.outputs[1:])
    kwargs = dict(units=units, return_sequences=True, return_state=wants_state)
    if op == "GRU":
        kwargs["reset_after"] = ctx.flag("linear_before_reset")
    cls = keras.layers.LSTM if op == "LSTM" else keras.layers.GRU
    weights = [_weights(op, w[d], r[d], b[d], gates, units, kwargs.get("reset_after"))
               for d in range(dirs)]
    if dirs == 2 and not wants_state:  # Y's directions side by side: Keras's own concat
        found = ctx.layer(keras.layers.Bidirectional, cls(**kwargs), merge_mode="concat",
                          call_kwargs=call)
        ctx.last_layer.set_weights(weights[0] + weights[1])
        seqs, states = [found], []
    elif dirs == 2:
        found = ctx.layer(keras.layers.Bidirectional, cls(**kwargs), merge_mode=None,
                          call_kwargs=call)
        ctx.last_layer.set_weights(weights[0] + weights[1])
        # [y_fw, y_bw, *states_fw, *states_bw]: each state paired across the directions
        seqs, states = found[:2], found[2:]
        states = [list(pair) for pair in zip(states[:len(states) // 2],
                                             states[len(states) // 2:])]
    else:
        found = ctx.layer(cls, go_backwards=direction == "reverse", call_kwargs=call, **kwargs)
        ctx.last_layer.set_weights(weights[0])
        found = found if isinstance(found, (list, tuple)) else [found]
        seq = found[0]
        if direction == "reverse":  # Keras gives go_backwards' outputs in its own order
            seq = ctx.layer(Slice, [-1, 0], [None, None], [-1, 1], inputs=seq,
                            suffix="in_time_order")
        seqs = [seq]
        states = [[s] for s in found[1:]]
    return _outputs(ctx, seqs, states, layout, units, dirs)


def _refuse_what_keras_lacks(ctx, op):
    """Attributes and inputs Keras's layers have no form of, refused by name."""
    activations = ctx.attr("activations")
    if activations is not None:
        names = [a.decode() if isinstance(a, bytes) else a for a in activations]
        default = _DEFAULTS[op]
        if any(n != default[i % len(default)] for i, n in enumerate(names)):
            raise Unsupported(f"activations={names}: Keras's {op} computes the ONNX defaults "
                              f"{default} only")
    if ctx.attr("clip") is not None:
        raise Unsupported(f"clip={ctx.attr('clip')}: Keras's {op} does not clip its cell")
    if op == "LSTM" and ctx.attr("input_forget", 0):
        raise Unsupported("input_forget=1 (coupled input and forget gates): Keras's LSTM "
                          "has no such form")
    if op == "LSTM" and len(ctx.inputs) > 7 and ctx.inputs[7] is not None:
        p = ctx.const(7, "P (peepholes)")
        if np.any(p != 0):
            raise Unsupported("peephole weights (input P): Keras's LSTM has no peepholes")


def _check_full_sequences(ctx, x):
    """`sequence_lens`, when given, must be every sequence's full length."""
    if len(ctx.inputs) <= 4 or ctx.inputs[4] is None:
        return
    if isinstance(ctx.inputs[4], Value):
        raise Unsupported("sequence_lens is a computed tensor: Keras's layers run every "
                          "sequence to its full length")
    lens = np.asarray(ctx.inputs[4]).reshape(-1)
    seq = x.tensor.shape[1]
    if seq is None or np.any(lens != seq):
        raise Unsupported(f"sequence_lens={lens.tolist()}: Keras's layers run every "
                          f"sequence to its full length ({seq})")


def _initial_states(ctx, op, layout, dirs, units):
    """Keras's `initial_state` ([h, c] or [h] per direction, forward first) from initial_h
    (and initial_c), each (batch, hidden); None when they are absent or zeros."""
    given = [ctx.inputs[i] if len(ctx.inputs) > i else None
             for i in ((5, 6) if op == "LSTM" else (5,))]
    if all(g is None or not isinstance(g, Value) and not np.any(np.asarray(g) != 0)
           for g in given):
        return None
    names = ("initial_h", "initial_c")
    if not all(isinstance(g, Value) for g in given):
        raise Unsupported(f"{' and '.join(names[:len(given)])} must all be computed tensors or "
                          f"all zeros: a constant non-zero state is not imported")
    want = (0, 1, 2) if layout else (1, 0, 2)  # Keras (batch, directions, hidden)
    per_direction = [[] for _ in range(dirs)]
    for state, what in zip(given, names):
        if state.ndim != 3 or state.flat is not None or state.perm[0] != want[0]:
            raise Unsupported(f"{what} must be (directions, batch, hidden) (batch-major "
                              f"with layout=1), with the model's batch on ONNX axis {want[0]}")
        state = ctx.move(state, want, what)
        for d in range(dirs):
            one = ctx.layer(Slice, [d, 0], [d + 1, None], inputs=state.tensor,
                            suffix=f"{what}_{d}")
            per_direction[d].append(ctx.layer(keras.layers.Reshape, (units,), inputs=one,
                                              suffix=f"{what}_{d}_flat"))
    return [s for states in per_direction for s in states]


def _weights(op, w, r, b, gates, units, reset_after):
    """Keras's [kernel, recurrent_kernel, bias] of one direction from ONNX's W, R, B."""
    def keras_order(matrix):
        blocks = np.split(np.asarray(matrix, np.float32), len(gates), axis=0)
        return np.concatenate([blocks[g] for g in gates], axis=0)

    kernel, recurrent = keras_order(w).T, keras_order(r).T
    wb, rb = np.split(np.asarray(b, np.float32), 2)
    wb, rb = keras_order(wb[:, None])[:, 0], keras_order(rb[:, None])[:, 0]
    if op == "GRU" and reset_after:
        bias = np.stack([wb, rb])  # Keras keeps the input and recurrent biases apart
    else:
        bias = wb + rb  # (GRU without reset_after: ONNX adds both inside the same sum)
    return [kernel, recurrent, bias]


def _outputs(ctx, seqs, states, layout, units, dirs):
    """Y, Y_h(, Y_c) as Values: Keras (batch, seq, directions, hidden) and
    (batch, directions, hidden) tensors in ONNX's order for `layout`. `seqs`: one sequence
    (the directions already side by side) or one per direction."""
    seq = seqs[0] if len(seqs) == 1 else ctx.layer(keras.layers.Concatenate, axis=-1,
                                                   inputs=list(seqs), suffix="y")
    y = ctx.layer(keras.layers.Reshape, (-1, dirs, units), inputs=seq, suffix="y_dirs")
    results = [Value(y, (0, 1, 2, 3) if layout else (2, 0, 1, 3))]
    for i, per_dir in enumerate(states):
        state = per_dir[0] if dirs == 1 else ctx.layer(
            keras.layers.Concatenate, axis=-1, inputs=list(per_dir), suffix=f"{'hc'[i]}")
        state = ctx.layer(keras.layers.Reshape, (dirs, units), inputs=state,
                          suffix=f"{'hc'[i]}_dirs")
        results.append(Value(state, (0, 1, 2) if layout else (1, 0, 2)))
    return results

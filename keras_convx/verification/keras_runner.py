"""The Keras side of verification: the model's outputs and every mapped tensor.

A `KerasRunner` is what the verifier runs: the model's forward pass, and, in a runner that
knows the model's flat graph (the exporter's `tensor_map.TracedRunner`: composite layers
traced through `call`, nested models inlined), any tensor inside it. This package imports
neither the exporter nor the importer: the runner comes from the caller.
"""

import weakref

import keras
import numpy as np

from keras_convx.verification import rules
from keras_convx.verification.inputs import nudge


_JAX_FORWARD = weakref.WeakKeyDictionary()  # model -> its jitted stateless forward pass
# Functional model -> {the probed tensors: the probe model}: verifying the same model again
# (export then verify_onnx, float then INT8, a test suite's parity checks) reuses the
# probe, and on JAX its compiled forward pass
_PROBES = weakref.WeakKeyDictionary()


def _jax_forward(model):
    """The model's forward pass (`call`, training=False) compiled once per model by
    `jax.jit` (and once per input shape by JAX): the weights are arguments, so a model
    whose weights change between calls is run as it is now. Not `predict_on_batch`: task
    models override `predict_step` to decode (keras-hub's detectors unpack `(x, y)`)."""
    fn = _JAX_FORWARD.get(model)
    if fn is None:
        import jax

        @jax.jit
        def fn(trainable, non_trainable, x):
            return model.stateless_call(trainable, non_trainable, x, training=False)[0]

        _JAX_FORWARD[model] = fn
    return fn


def run_keras(model, arrays):
    """The model's outputs on `arrays` (one per input), as float32 arrays: its forward pass,
    never `predict_step`."""
    x = arrays if len(arrays) > 1 else arrays[0]
    if keras.backend.backend() == "jax":
        # one XLA compilation of the whole graph per input shape instead of one per
        # operation in eager mode: DenseNet121 at 32x32, 3.9 s instead of 17 s
        outs = _jax_forward(model)([v.value for v in model.trainable_variables],
                                   [v.value for v in model.non_trainable_variables], x)
    else:
        outs = model(x, training=False)
    # a dict of outputs flattens in key order, as the Functional model's `outputs` do
    return [np.asarray(keras.ops.convert_to_numpy(o), np.float32)
            for o in keras.tree.flatten(outs)]


class KerasRunner:
    """Runs a Keras model for verification: its outputs only.

    The forward pass is the model's `call` (training=False; on JAX compiled once per
    model), never `predict_on_batch`/`predict_step`, which task models override to decode.
    A subclass that knows the model's flat graph sets `maps_tensors` and implements
    `functional`, `flat_graph`, `resolve` and `run_flat`; then every mapped tensor of an
    exported file is compared, not only the outputs.

    Args:
        model: the Keras model.
    """

    maps_tensors = False

    def __init__(self, model):
        self.model = model

    def outputs(self, arrays):
        """The model's outputs on `arrays` (one per input), as float32 arrays."""
        return run_keras(self.model, arrays)

    def functional(self):
        """The Functional graph whose tensors the probe exposes."""
        return self.model

    def flat_graph(self, batch=None):
        raise NotImplementedError(f"{type(self).__name__} runs the outputs only")

    def resolve(self, keys, batch=None):
        """{key: (KerasTensor, node)} for the keys naming a tensor of the flat graph."""
        return {}

    def run_flat(self, flat, arrays, forced=None):
        raise NotImplementedError(f"{type(self).__name__} runs the outputs only")


def runner_for(model, runner=None):
    """`runner` checked against `model`, or an outputs-only `KerasRunner` of it."""
    if runner is None:
        return KerasRunner(model)
    if not isinstance(runner, KerasRunner):
        raise TypeError(f"runner must be a KerasRunner, got {type(runner).__name__}")
    if runner.model is not model:
        raise ValueError(f"runner runs model {runner.model.name!r}, not {model.name!r}")
    return runner


def _probe(fmodel, wanted):
    """The Functional model of `fmodel`'s outputs and the `wanted` tensors ({id: tensor}),
    made once per model and set of tensors."""
    probes = _PROBES.setdefault(fmodel, {})
    key = tuple(wanted)
    if key not in probes:
        inputs = fmodel.inputs if len(fmodel.inputs) > 1 else fmodel.inputs[0]
        probes[key] = keras.Model(inputs, list(fmodel.outputs) + list(wanted.values()))
    return probes[key]


def without_activation(layer, inputs):
    """The layer's output before its fused activation, computed by Keras itself."""
    saved = layer.activation
    layer.activation = keras.activations.linear
    try:
        out = layer(*inputs, training=False)
    finally:
        layer.activation = saved
    return np.asarray(keras.ops.convert_to_numpy(out), np.float32)


class Reference:
    """Keras's values of the model outputs and of the mapped tensors, for given runs.

    Computed once per model and reused for any number of graphs (the fault-injection
    tests check hundreds of mutants against one reference). Two more views are computed
    on demand, when a graph disagrees with Keras: `sensitivity()` (how far Keras's own
    tensors move when its inputs move by one float32 rounding) and `teacher_forced()`
    (each layer applied to the graph's values of its inputs).
    """

    def __init__(self, runner, entries, runs, inspect_run=0, batch=None):
        self.runner, self.model = runner, runner.model
        self.runs, self.inspect_run = runs, inspect_run
        self.tensors = {}  # ("out" | "pre", key) -> reference array on runs[inspect_run]
        self._sensitivity = None
        entries = entries if runner.maps_tensors else []  # no flat graph: outputs only
        self._fmodel = runner.functional()
        self._flat = runner.flat_graph(batch) if entries else None
        found = runner.resolve([e.key for e in entries], batch) if entries else {}
        self.skipped = [e.key for e in entries if e.key not in found]
        self._live = [e for e in entries if e.key in found and e.live]
        self._found = found
        self._probe = None
        # tensors inside traced layers or nested models are not reachable from the
        # model's inputs in Keras's graph: the flat graph runs eagerly instead
        self._eager = any("/" in e.key for e in self._live)
        if self._live and not self._eager:
            wanted = {}
            for e in self._live:
                kt = found[e.key][0]
                for t in (self._node(e).input_tensors if is_pre(e) else [kt]):
                    wanted.setdefault(id(t), t)
            self._probe_ids = list(wanted)
            self._probe = _probe(self._fmodel, wanted)
        # the inspected run's outputs come from the probe, and runs that are its leading
        # samples are slices of them: forward passes saved
        self.outputs = [None] * len(runs)
        if self._probe is not None or self._eager:
            self.outputs[inspect_run], self.tensors = self._values(runs[inspect_run])
        elif runs:
            self.outputs[inspect_run] = runner.outputs(runs[inspect_run])
        for i, arrays in enumerate(runs):
            if self.outputs[i] is None:
                n = self._prefix_of_inspected(arrays)
                self.outputs[i] = ([o[:n] for o in self.outputs[inspect_run]] if n
                                   else runner.outputs(arrays))

    def _prefix_of_inspected(self, arrays):
        """The batch size of `arrays` if they are the inspected run's leading samples."""
        inspected = self.runs[self.inspect_run]
        n = arrays[0].shape[0]
        same = len(arrays) == len(inspected) and all(
            a.shape[1:] == b.shape[1:] and a.shape[0] <= b.shape[0] and np.array_equal(a, b[:n])
            for a, b in zip(arrays, inspected))
        return n if same else 0

    def _node(self, entry):
        return self._found[entry.key][1].node

    def _layer(self, entry):
        return self._found[entry.key][1].operation

    def _values(self, arrays):
        """(model outputs, {ref key: value}) on `arrays`, one forward pass."""
        if self._eager:
            # the outputs from the model itself; the traced graph gives the tensors inside
            values, _ = self.runner.run_flat(self._flat, arrays)
            outputs = self.runner.outputs(arrays)
        else:
            results = run_keras(self._probe, arrays)
            n_out = len(self._fmodel.outputs)
            values = dict(zip(self._probe_ids, results[n_out:]))
            outputs = results[:n_out]
        tensors = {}
        for e in self._live:
            if is_pre(e):
                tensors[("pre", e.key)] = without_activation(
                    self._layer(e), [values[id(t)] for t in self._node(e).input_tensors])
            else:
                tensors[("out", e.key)] = to_numpy(values[id(self._found[e.key][0])])
        return outputs, tensors

    def sensitivity(self, seed=0):
        """How far Keras's own values move when every input element moves by one float32
        ulp (up or down at random): {("output", run, index) | ref key: error/scale}.

        A well-conditioned net moves by ~1e-6 of its scale; deep nets whose
        squeeze-and-excitation gates saturate move by 1e-3 and more, so float32 rounding
        alone (ours or onnxruntime's) moves them that much too.
        """
        if self._sensitivity is None:
            rng = np.random.default_rng(seed)
            sens = {}
            inspected = [nudge(a, rng) for a in self.runs[self.inspect_run]]
            if self._probe is not None or self._eager:
                inspected_outs, tensors = self._values(inspected)
                for k, v in tensors.items():
                    sens[k] = rules.tensor_error(v, self.tensors[k]).rel
            else:
                inspected_outs = self.runner.outputs(inspected)
            for i, arrays in enumerate(self.runs):
                n = self._prefix_of_inspected(arrays)
                if i == self.inspect_run or n:  # the same nudge on the same samples
                    outs = [o[:n] for o in inspected_outs] if n else inspected_outs
                else:
                    outs = self.runner.outputs([nudge(a, rng) for a in arrays])
                for j, (o, ref) in enumerate(zip(outs, self.outputs[i])):
                    sens[("output", i, j)] = rules.tensor_error(o, ref).rel
            self._sensitivity = sens
        return self._sensitivity

    def teacher_forced(self, graph_values):
        """Each layer's output computed by Keras from the graph's values of its inputs.

        `graph_values`: {key: the graph's value of that Keras tensor, Keras layout} for
        the mapped tensors of the inspected run. Walks the Functional graph once; a
        tensor the graph does not hold (fused away) is computed by Keras from its own
        inputs, so each mapped tensor is judged on the layers since the previous mapped
        tensors only. Returns {ref key: array}.
        """
        forced = {id(self._found[k][0]): v for k, v in graph_values.items()}
        values, local = self.runner.run_flat(self._flat, self.runs[self.inspect_run],
                                               forced)
        out = {}
        for e in self._live:
            kt = self._found[e.key][0]
            if is_pre(e):
                ins = [values[id(t)] for t in self._node(e).input_tensors]
                out[("pre", e.key)] = without_activation(self._layer(e), ins)
            elif id(kt) in local:
                out[("out", e.key)] = np.asarray(keras.ops.convert_to_numpy(local[id(kt)]),
                                                    np.float32)
        return out


def to_numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value), np.float32)


def is_pre(entry):
    return entry.kind == "preactivation"

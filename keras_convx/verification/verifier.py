"""Verifying ONNX graphs against one Keras model: inputs -> both runtimes -> judge ->
report (the seams of Polygraphy's comparator, with this package's rules).

Two sessions per provider: the file as users deploy it (`optimization_level`, default
`"all"`) checks the graph outputs on every run; an inspection copy that also exposes
every Keras tensor the graph still holds (the exporter's tensor map) runs at
`"disable"` (see `ort_runner.INSPECT_LEVEL`) and checks them all. When the deployed
outputs disagree with Keras but the inspected graph agrees, onnxruntime's optimiser is at
fault (`judge.check_optimiser`); when tensors differ beyond tolerance, `judge.
explain_amplification` decides whether the model merely amplifies float32 rounding.
"""

import dataclasses
import os

import numpy as np

from keras_convx.verification import judge, ort_runner, rules
from keras_convx.verification.inputs import from_graph, integer_pixels, model_inputs, to_graph
from keras_convx.verification.keras_runner import Reference, runner_for
from keras_convx.verification.ort_runner import (
    INSPECT_LEVEL, LEVELS, available_providers, first_line, has_float16, inspection_graph,
)
from keras_convx.verification.signature import Signature
from keras_convx.verification.report import ExportError, TensorCheck, VerifyReport
from keras_convx.verification.rules import DEFAULT_TOLERANCES


@dataclasses.dataclass
class _Call:
    """What one `Verifier.verify` call keeps between its steps."""

    floors: dict  # ONNX tensor -> the least scale its error is taken relative to
    base_dir: str = None  # set for graphs whose weights are external data
    session: object = None  # the deployed-level session of the provider being run
    graph_values: dict = dataclasses.field(default_factory=dict)  # Keras layout, by key


class Verifier:
    """Verifies ONNX graphs against one Keras model; the Keras side is computed once.

    Args:
        model: the Keras model.
        io: the `keras_convx.io` metadata of the graphs (layouts, static batch, shapes).
        entries: the tensor map (`tensor_map.read`); empty for graphs of other exporters.
        samples: optional list of input lists (Keras layout) to check besides random ones.
        batch_sizes: batch sizes of the random inputs (a static batch uses its own).
        seed: seed of the random inputs.
        runner: the Keras side, a `KerasRunner` of `model` (the exporter passes its
            `tensor_map.TracedRunner`, which runs every mapped tensor); by default an
            outputs-only runner, and the graph outputs alone are compared.
        fills: input sizes to draw random runs at when the model's spatial size is unknown.
    """

    def __init__(self, model, io=None, entries=(), samples=None, batch_sizes=(1, 2), seed=0,
                 runner=None, fills=None):
        self.model, self.io = model, Signature.of(io)
        self.runner = runner_for(model, runner)
        self.entries = list(entries) if self.runner.maps_tensors else []
        rng = np.random.default_rng(seed)
        runs = []
        static = self.io.static_batch
        sizes = [static] if static else list(batch_sizes)
        try:
            # Smaller batches are the leading samples of the largest: Keras's values for
            # them are slices of one forward pass (one XLA compilation on JAX, not one per
            # batch size), while onnxruntime still runs each batch size.
            largest = model_inputs(model, self.io, max(sizes), rng)
            runs = [[a[:batch] for a in largest] for batch in sizes]
        except ValueError:
            if fills:  # unknown spatial dims: random runs at the sizes the graph accepts
                runs = [model_inputs(model, self.io, max(sizes), rng, fill) for fill in fills]
            elif samples is None or len(samples) == 0:
                raise  # unknown spatial dims: the user's samples are the runs
        for sample in [] if samples is None else samples:
            sample = sample if isinstance(sample, (list, tuple)) else [sample]
            runs.append(integer_pixels([np.asarray(s, np.float32) for s in sample],
                                       self.io.input_dtypes))
        # the largest random batch shows every tensor (more samples, same single run)
        inspect = max(range(len(runs)), key=lambda i: runs[i][0].shape[0]) if runs else 0
        self.reference = Reference(self.runner, self.entries, runs, inspect, static)

    def verify(self, onnx_model, path="", providers=None, tolerance=None,
               optimization_level="all", inspect=True, serialized=None, base_dir=None):
        """Runs `onnx_model` (a ModelProto; `serialized`: its bytes, if at hand) and
        compares; returns a `VerifyReport`."""
        import time

        start = time.perf_counter()
        if optimization_level not in LEVELS:
            raise ValueError(f"verify: optimization_level must be one of {LEVELS}, got "
                             f"{optimization_level!r}")
        providers = available_providers(providers)
        report = VerifyReport(
            path=str(path),
            opset=max((o.version for o in onnx_model.opset_import
                       if o.domain in ("", "ai.onnx")), default=0),
            node_count=len(onnx_model.graph.node),
            file_size=os.path.getsize(path) if path and os.path.exists(path) else 0,
            providers=providers, level=optimization_level,
        )
        self._check_inputs(onnx_model)
        if self.reference.skipped:
            report.warnings.append(
                f"{len(self.reference.skipped)} mapped tensor(s) are not in this model "
                f"(e.g. {self.reference.skipped[0]}): not compared")
        floor = judge.precision_tolerance(self.model, onnx_model)
        # this call's state: the verifier itself holds only what every call shares
        call = _Call(floors=judge.scale_floors(onnx_model), base_dir=base_dir)
        plain = serialized if serialized is not None else onnx_model.SerializeToString()
        live = [e for e in self.entries if e.live
                and e.ref_key in self.reference.tensors]
        for provider in providers:
            call.graph_values = {}
            tol = tolerance if tolerance is not None else max(
                DEFAULT_TOLERANCES.get(provider, rules.CPU_TOLERANCE), floor)
            baseline = None
            if inspect and self.entries:
                data = inspection_graph(onnx_model, [e.onnx for e in live], plain)
                baseline = self._run_tensors(call, report, data, onnx_model, provider, tol)
            deployed = self._run_outputs(call, report, plain, onnx_model, provider,
                                         optimization_level, tol)
            if deployed is not None and has_float16(onnx_model):
                from keras_convx.verification.half import check_float16_reference

                check_float16_reference(report, self.model, call.session, self.io,
                                        self.reference.runs, provider, optimization_level)
            if baseline is not None:
                judge.explain_amplification(report, provider, tol, self.reference,
                                            call.graph_values, self.entries)
            if baseline is not None and deployed is not None \
                    and optimization_level != INSPECT_LEVEL:
                arrays = self.reference.runs[self.reference.inspect_run]
                judge.check_optimiser(report, onnx_model, live, provider, optimization_level,
                                      deployed, baseline, self.reference,
                                      self._feeds_for(arrays), call.base_dir)
        for c in report.checks + report.tensors:
            if c.status == "uninformative" and c.role == "output":
                report.warnings.append(
                    f"output {c.tensor} is constant to float32 precision (scale {c.scale:.3g}) "
                    f"on these inputs: uninformative")
        report.seconds = time.perf_counter() - start
        return report

    def _check_inputs(self, onnx_model):
        initializers = {t.name for t in onnx_model.graph.initializer}
        graph_inputs = [i.name for i in onnx_model.graph.input if i.name not in initializers]
        want = len(self.model.inputs)
        if len(graph_inputs) != want:
            raise ExportError(
                f"verify: the ONNX graph has {len(graph_inputs)} input(s) {graph_inputs}, the "
                f"Keras model {want} ({[kt.name for kt in self.model.inputs]}); a graph that "
                f"needs inputs the model does not have can't be verified")

    def _feeds(self, session, arrays):
        return dict(zip([i.name for i in session.get_inputs()], self._feeds_for(arrays)))

    def _run(self, report, session, arrays, what):
        try:
            return session.run(None, self._feeds(session, arrays))
        except Exception as err:
            report.errors.append(f"verify: onnxruntime failed running the graph ({what}): "
                                 f"{first_line(err)}")
            return None

    def _run_outputs(self, call, report, data, onnx_model, provider, level, tol):
        session = ort_runner.session(data, provider, level, call.base_dir)
        call.session = session
        names = [o.name for o in onnx_model.graph.output]
        out_perms = self.io.output_perms or [None] * len(names)
        inspected = None
        for i, arrays in enumerate(self.reference.runs):
            got = self._run(report, session, arrays, f"{provider}, level {level}")
            if got is None:
                return None
            got = from_graph(got[:len(names)], out_perms)
            if i == self.reference.inspect_run:
                inspected = got
            for j, (name, g, e) in enumerate(zip(names, got, self.reference.outputs[i])):
                report.checks.append(judge.check(name, "output", provider, level, arrays, g, e, tol,
                                                 cosine=True, run=(i, j),
                                                 scale_floor=call.floors.get(name, 0.0)))
        return inspected

    def _run_tensors(self, call, report, data, onnx_model, provider, tol):
        """Every mapped tensor at INSPECT_LEVEL; returns the graph outputs of that run."""
        session = ort_runner.session(data, provider, INSPECT_LEVEL, call.base_dir)
        arrays = self.reference.runs[self.reference.inspect_run]
        got = self._run(report, session, arrays, f"{provider}, level {INSPECT_LEVEL}, inspection")
        if got is None:
            return None
        values = dict(zip([o.name for o in session.get_outputs()], got))
        call.graph_values = {}  # Keras layout, for the layer-by-layer check
        for e in self.entries:
            role = "preactivation" if e.kind == "preactivation" else "internal"
            ref_key = e.ref_key
            label = e.label + (f" (before {e.activation})" if role == "preactivation" else "")
            if not e.live:
                report.tensors.append(TensorCheck(
                    tensor=label, role=role, provider=provider, level=INSPECT_LEVEL,
                    batch=int(arrays[0].shape[0]), shape=(), tolerance=tol, status="fused",
                    into=e.into, key=e.key, layer=e.label))
                continue
            if ref_key not in self.reference.tensors:
                continue
            g = from_graph([values[e.onnx]], [e.perm])[0]
            if role == "internal":
                call.graph_values[e.key] = g
            report.tensors.append(judge.check(label, role, provider, INSPECT_LEVEL, arrays, g,
                                              self.reference.tensors[ref_key], tol, key=e.key,
                                              layer=e.label,
                                              scale_floor=call.floors.get(e.onnx, 0.0)))
        # the graph outputs themselves, unoptimised: layout moves after the last mapped
        # tensor (an output Transpose) are checked here, and this is what tells an export
        # error from an onnxruntime optimisation problem
        names = [o.name for o in onnx_model.graph.output]
        outputs = from_graph([values[n] for n in names], self.io.output_perms
                              or [None] * len(names))
        expected = self.reference.outputs[self.reference.inspect_run]
        for j, (name, g, e) in enumerate(zip(names, outputs, expected)):
            report.tensors.append(judge.check(name, "output", provider, INSPECT_LEVEL, arrays, g, e,
                                              tol, cosine=True, run=(self.reference.inspect_run, j),
                                              scale_floor=call.floors.get(name, 0.0)))
        return outputs

    def _feeds_for(self, arrays):
        """The input arrays in the graph's layout, in input order."""
        perms = self.io.input_perms or [None] * len(arrays)
        return to_graph(arrays, perms, self.io.input_dtypes)

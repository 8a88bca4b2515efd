"""The two sides of an import's comparison, run on the same inputs: an onnxruntime
session, inputs drawn at the model's scale in both layouts, and what a runtime raised
(`RuntimeFailure`, naming the runtime, the input shapes and the node)."""

import re

import numpy as np

from keras_convx.importer.context import standard_perm
from keras_convx.verification.inputs import input_distribution
from keras_convx.verification.ort_runner import INSPECT_LEVEL
from keras_convx.verification.ort_runner import session as ort_session
from keras_convx.verification.sizes import axis_sizes


def session(onnx_model, provider="CPUExecutionProvider", level=INSPECT_LEVEL):
    """An onnxruntime session of `onnx_model` on `provider` at optimization `level`."""
    return ort_session(onnx_model.SerializeToString(), provider, level)


class RuntimeFailure(Exception):
    """A runtime raised instead of answering; the message names it, the input shapes and
    the node where the runtime said which."""


def node_of(err):
    """" at node 'name'" where onnxruntime's message names the node, else ""."""
    found = re.search(r"(?:node\. Name:|node name:?)\s*'?([^'\s]+)'?", str(err), re.I)
    return f" at node {found.group(1)!r}" if found else ""


def first_line(err):
    """The error's type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}"


def draw_inputs(session, data_format, seed, model=None, perms=None, size=None, step=8):
    """Inputs at the model's scale (as the export draws them: 0..255 before a Rescaling,
    a Normalization's statistics, else N(0, 1)): (ONNX feeds, the same arrays in the Keras
    layout, batch). Symbolic axes after the batch get `size` (see `sizes.axis_sizes`)."""
    rng = np.random.default_rng(seed)
    feeds, keras_inputs = {}, []
    batch = 2
    specs = session.get_inputs()
    perms = perms or [standard_perm(len(spec.shape), data_format) for spec in specs]
    for spec, perm in zip(specs, perms):  # the batch is ONNX axis perm[0] (time-major: 1)
        d = spec.shape[perm[0]] if spec.shape else None
        batch = d if isinstance(d, int) and d > 0 else batch
    for i, spec in enumerate(specs):
        perm = perms[i]
        dynamic = [d for j, d in enumerate(spec.shape)
                   if j != perm[0] and (not isinstance(d, int) or d < 1)]
        fill = iter(axis_sizes(size, step, len(dynamic)) if dynamic else [])
        shape = [batch if j == perm[0] else d if isinstance(d, int) and d > 0 else next(fill)
                 for j, d in enumerate(spec.shape)]
        kind, a, b = ("normal", 0.0, 1.0) if model is None else input_distribution(model, i)
        keras_shape = [shape[p] for p in perm]
        x = rng.uniform(a, b, keras_shape) if kind == "uniform" else \
            a + b * rng.standard_normal(keras_shape)
        x = np.asarray(x, np.float32)
        keras_inputs.append(x)
        feeds[spec.name] = np.ascontiguousarray(np.transpose(x, np.argsort(perm)))
    return feeds, keras_inputs, batch

"""A float16-rounded reference for float16 graphs: the model run by Keras under the
`mixed_float16` policy (float16 activations, as a GPU computes the graph), besides the
float32 comparison the rule makes. onnxruntime's CPU provider computes float16 convolutions
in float32, so without it a float16 graph is only ever compared with float32 values."""

import keras
import numpy as np

from keras_convx.verification import judge
from keras_convx.verification.inputs import from_graph, to_graph
from keras_convx.verification.keras_runner import run_keras
from keras_convx.verification.rules import LOW_PRECISION_TOLERANCES


def mixed_float16_twin(model):
    """The same model, same weights, computing in float16 (`mixed_float16`)."""
    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.InputLayer) or "dtype" not in config:
            return layer.__class__.from_config(config)
        config["dtype"] = "mixed_float16"
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin


def check_float16_reference(report, model, session, io, runs, provider, level):
    """Adds one row per run and output: the graph against Keras's float16 run, at float16
    tolerance. Where Keras's float16 values overflow (the export kept those layers
    float32), that output is not compared, and the report says so."""
    try:
        twin = mixed_float16_twin(model)
        first = run_keras(twin, runs[0]) if runs else None
    except Exception as err:  # a backend without float16 kernels (TF's CPU MaxPool3D)
        text = str(err).strip().splitlines()
        report.warnings.append(
            f"no float16 reference: Keras can't run this model under mixed_float16 on "
            f"{keras.backend.backend()} ({type(err).__name__}: "
            f"{next((t for t in text if 'kernel' in t.lower()), text[0] if text else '')[:160]}"
            f"); compared with float32 only")
        return
    perms = io.input_perms or [None] * len(model.inputs)
    out_perms = io.output_perms
    names = [o.name for o in session.get_outputs()]
    tol = LOW_PRECISION_TOLERANCES["float16"]
    for i, arrays in enumerate(runs):
        expected = first if i == 0 else run_keras(twin, arrays)
        feeds = dict(zip([x.name for x in session.get_inputs()],
                         to_graph(arrays, perms, io.input_dtypes)))
        got = from_graph(session.run(None, feeds), out_perms or [None] * len(names))
        for j, (name, g, e) in enumerate(zip(names, got, expected)):
            if not np.isfinite(e).all():
                report.warnings.append(
                    f"{name}: Keras's float16 run overflows on run {i} (the graph keeps the "
                    f"layers that would in float32): not compared with it")
                continue
            report.checks.append(judge.check(f"{name} (Keras mixed_float16)", "output",
                                             provider, level, arrays, g, e, tol, cosine=True,
                                             run=(i, j)))

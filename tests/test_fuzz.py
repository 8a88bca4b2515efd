"""Hostile input: random layer arguments and input shapes, mutated YAML configs.

Every case either works (output shape == compute_output_shape) or raises
ValueError/TypeError whose message names the offending argument or the input.
"""

import os
import time

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

import keras_convx as kc
from keras_convx.model_config import ConfigError
from helpers import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Examples per family: 6 families x 900 = 5,400 cases on TF and torch; JAX compiles every
# new shape op by op, so it runs a tenth of them.
EXAMPLES = 900 if BACKEND != "jax" else 90
MAX_CALL_ELEMENTS = 200_000

junk = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=4), st.just([]), st.integers(-10**9, 10**9))


def mostly(valid, bad=junk):
    """A valid value 9 times in 10, else junk: most cases get far enough to run."""
    return st.integers(0, 9).flatmap(lambda n: bad if n == 0 else valid)


def small_int(lo=-2, hi=6):
    return mostly(st.integers(1, hi), st.one_of(st.integers(lo, 0), junk))


def per_axis(rank, lo=-1, hi=4):
    valid = st.one_of(st.integers(1, hi), st.tuples(*[st.integers(1, hi)] * rank))
    bad = st.one_of(st.integers(min(lo, 0), 0), st.tuples(*[st.integers(lo, hi)] * rank),
                    st.lists(st.integers(lo, hi), max_size=rank + 2), junk)
    return mostly(valid, bad)


def choice(valid, bad):
    return mostly(st.sampled_from(valid), st.one_of(st.sampled_from(bad), junk))


PADDINGS = ["valid", "same", "causal"]
FAMILIES = {
    "conv": ({1: kc.Conv1D, 2: kc.Conv2D, 3: kc.Conv3D}, lambda r: {
        "filters": small_int(-1, 8), "kernel_size": per_axis(r, -1, 4), "strides": per_axis(r, -1, 3),
        "dilation_rate": per_axis(r, 0, 2), "groups": mostly(st.sampled_from([1, 1, 2])),
        "padding": st.one_of(choice(PADDINGS, ["full", "SAME"]), per_axis(r, -1, 3)),
        "padding_mode": choice(["zeros", "reflect", "circular", "replicate", "symmetric"], ["mirror"])}),
    "depthwise": ({1: kc.DepthwiseConv1D, 2: kc.DepthwiseConv2D, 3: kc.DepthwiseConv3D}, lambda r: {
        "kernel_size": per_axis(r, -1, 4), "strides": per_axis(r, -1, 3),
        "depth_multiplier": small_int(-1, 3), "dilation_rate": per_axis(r, 0, 2),
        "padding": st.one_of(choice(PADDINGS, ["full"]), per_axis(r, -1, 3))}),
    "separable": ({1: kc.SeparableConv1D, 2: kc.SeparableConv2D, 3: kc.SeparableConv3D}, lambda r: {
        "filters": small_int(-1, 6), "kernel_size": per_axis(r, -1, 4),
        "strides": per_axis(r, -1, 3), "depth_multiplier": small_int(-1, 3),
        "padding": st.one_of(choice(PADDINGS, ["full"]), per_axis(r, -1, 3))}),
    "transpose": ({1: kc.Conv1DTranspose, 2: kc.Conv2DTranspose, 3: kc.Conv3DTranspose}, lambda r: {
        "filters": small_int(-1, 6), "kernel_size": per_axis(r, -1, 4),
        "strides": per_axis(r, -1, 3), "dilation_rate": per_axis(r, 0, 2),
        "groups": mostly(st.sampled_from([1, 1, 2])),
        "output_padding": st.one_of(st.none(), per_axis(r, -1, 2)),
        "padding": st.one_of(choice(["valid", "same"], ["causal", "full"]), per_axis(r, -1, 2)),
        "output_size": st.one_of(st.none(), st.none(), per_axis(r, 1, 20))}),
    "crop_pad": ({1: kc.Cropping1D, 2: kc.Padding2D, 3: kc.Cropping3D}, lambda r: {
        ("cropping" if r != 2 else "padding"): per_axis(r, -1, 3),
        **({"mode": choice(["reflect", "symmetric", "circular", "replicate", "constant"], ["edge"])}
           if r == 2 else {})}),
    "upsampling": ({1: kc.UpSampling1D, 2: kc.UpSampling2D, 3: kc.UpSampling3D}, lambda r: {
        "size": mostly(st.one_of(st.integers(1, 3), st.sampled_from([1.5, 2.5])),
                       st.one_of(st.integers(-1, 0), st.floats(allow_nan=True), junk)),
        "interpolation": choice(["nearest", {1: "linear", 2: "bilinear", 3: "trilinear"}[r]],
                                ["bicubic", "lanczos", "linear"]),
        "align_corners": st.booleans()}),
}


@st.composite
def cases(draw, family):
    classes, arg_strategies = FAMILIES[family]
    rank = draw(st.integers(1, 3))
    strategies = arg_strategies(rank)
    required = {"filters", "kernel_size"}
    keys = [k for k in sorted(strategies) if k in required and draw(st.integers(0, 19))
            or k not in required and draw(st.booleans())]
    args = {k: draw(strategies[k]) for k in keys}
    fmt = draw(choice(["channels_last", "channels_first"], ["NHWC"]))
    if family != "crop_pad" or rank != 1:
        args["data_format"] = fmt
    ndim = rank + 2 if draw(st.integers(0, 9)) else draw(st.integers(1, 6))
    shape = tuple(draw(st.integers(1, 8)) for _ in range(ndim))
    return classes[rank], args, (2,) + shape[1:], draw(st.booleans())


def names_something(err, args, cls=None):
    """The message names an argument (given or missing), the input, or its shape."""
    from keras_convx.model_config.builder import signature_params

    text = str(err)
    names = list(args) + (signature_params(cls)[0] if cls is not None else [])
    return any(str(k) in text for k in names) or "input" in text or "shape" in text


def run_case(cls, args, shape, nan):
    try:
        layer = cls(**args)
    except (ValueError, TypeError) as err:
        assert names_something(err, args, cls), f"{cls.__name__}({args}): {err}"
        return f"rejected-args:{type(err).__name__}"
    try:
        expected = layer.compute_output_shape(shape)
    except (ValueError, TypeError) as err:
        assert names_something(err, args, cls), f"{cls.__name__}({args}) on {shape}: {err}"
        with pytest.raises((ValueError, TypeError)):
            layer(np.zeros(shape, "float32"))
        return f"rejected-shape:{type(err).__name__}"
    if np.prod([d for d in expected if d]) * 4 > MAX_CALL_ELEMENTS or \
            getattr(layer, "filters", 1) > 64:
        return "too-big-to-call"
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    if nan:
        x.flat[0] = np.nan
    try:
        y = layer(x)
    except (ValueError, TypeError) as err:
        assert names_something(err, args, cls), f"{cls.__name__}({args}) on {shape}: {err}"
        return f"rejected-call:{type(err).__name__}"
    assert tuple(y.shape) == tuple(expected), (cls.__name__, args, shape)
    return "ran"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_layer_fuzz(family):
    outcomes, longest = {}, [0.0]

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases(family))
    def check(case):
        start = time.perf_counter()
        outcome = run_case(*case)
        longest[0] = max(longest[0], time.perf_counter() - start)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    check()
    print(f"fuzz {family}: {sum(outcomes.values())} cases {outcomes}, longest {longest[0]:.2f} s")
    assert outcomes.get("ran", 0) > EXAMPLES // 20, outcomes  # the fuzz reaches real calls


def _mutations():
    """Deterministic mutations of the zoo configs, as YAML text."""
    rng = np.random.default_rng(0)
    texts = []
    junk_values = [None, "x", -1, 10**12, [1, [2, [3]]], {"a": {"b": 1}}, True, 1.5, "${1/0}",
                   "$nope", "!!python/object/apply:os.system ['true']"]
    for name in sorted(os.listdir(os.path.join(ROOT, "configs"))):
        if not name.endswith(".yaml"):
            continue
        source = open(os.path.join(ROOT, "configs", name)).read()
        data = yaml.safe_load(source)
        for k in range(40):
            mutated = yaml.safe_load(source)
            entry = mutated["layers"][int(rng.integers(len(mutated["layers"])))]
            kind = k % 8
            if kind == 0:
                entry.pop(sorted(entry)[int(rng.integers(len(entry)))])
            elif kind == 1 and entry.get("args"):
                key = sorted(entry["args"])[int(rng.integers(len(entry["args"])))]
                entry["args"][key] = junk_values[int(rng.integers(len(junk_values)))]
            elif kind == 2:
                entry["repeat"] = int(rng.choice([0, -1, 10**9, 1001]))
            elif kind == 3:
                entry["inputs"] = str(rng.choice(["nowhere", "image", entry.get("name", "x")]))
            elif kind == 4:
                mutated.pop(sorted(mutated)[int(rng.integers(len(mutated)))])
            elif kind == 5:
                entry["type"] = str(rng.choice(["Lambda", "Conv9D", "keras.layers.Dense", "", "conv2d"]))
            elif kind == 6:
                mutated["variables"] = {"x": [[[[[[[[1]]]]]]]]}
            texts.append(yaml.safe_dump(mutated) if kind != 7 else
                         source.replace("layers:", "layers: !!python/name:os.system\nx:", 1))
        del data
    texts.append("version: 1\nl: &a [" + ",".join(["x"] * 50) + "]\nm: &b [" + ",".join(["*a"] * 50)
                 + "]\nn: [" + ",".join(["*b"] * 200) + "]\n")
    texts.append("version: 1\nlayers: " + "[" * 500 + "]" * 500)
    texts.append("\x00\x01binary")
    texts.append("version: 1\ninputs: {x: {shape: [4]}}\nlayers: [{type: Dense, args: {units: 1}, repeat: 999999999999}]")
    return texts


MUTATIONS = _mutations()


def test_yaml_fuzz_always_located_error_or_valid_model():
    outcomes, longest = {"error": 0, "valid": 0}, 0.0
    for text in MUTATIONS:
        start = time.perf_counter()
        try:
            kc.validate(text, scale="t") if "scales" in text else kc.validate(text)
            outcomes["valid"] += 1
        except ConfigError as err:
            assert err.source == "<string>" and err.line is not None and err.col is not None, str(err)
            outcomes["error"] += 1
        longest = max(longest, time.perf_counter() - start)
        assert time.perf_counter() - start < 10.0, text[:200]
    print(f"yaml fuzz: {len(MUTATIONS)} cases {outcomes}, longest {longest:.2f} s")
    assert outcomes["error"] > len(MUTATIONS) // 2

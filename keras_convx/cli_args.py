"""The CLI's argument conversions: flag text to the library's arguments, each refusal a
`BadInput` naming the flag (exit code 2)."""

import os

from keras_convx.cli_render import BadInput


def overrides(pairs):
    import yaml

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise BadInput(f"--set expects name=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else value
    return out


def parse_dynamic(text):
    parts = [a.strip() for a in (text or "batch").split(",") if a.strip()]
    bad = [a for a in parts if a not in ("batch", "spatial", "none")]
    if bad or ("none" in parts and len(parts) > 1):
        raise BadInput(f"--dynamic takes batch, spatial (comma-separated) or none, got {text!r}")
    return tuple(a for a in parts if a != "none")


def parse_shape(text, model=None):
    if not text:
        return None
    try:
        shapes = [[None if d in ("", "?", "None") else int(d) for d in part.split(",")]
                  for part in text.split(";")]
    except ValueError:
        raise BadInput(f"--input-shape expects e.g. 224,224,3 (several inputs: ';'), got {text!r}")
    if model is not None:
        wanted = [tuple(kt.shape[1:]) for kt in model.inputs]
        if len(shapes) != len(wanted) or any(len(s) != len(w) for s, w in zip(shapes, wanted)):
            raise BadInput(f"--input-shape {text!r} does not fit the model's inputs "
                           f"{'; '.join(','.join(str(d) for d in w) for w in wanted)} "
                           f"(dims without the batch, ';' between inputs)")
    return shapes if len(shapes) > 1 else shapes[0]


def calibration(value, model):
    """--calibration: a .npz file, an image folder, or 'random'."""
    if value is None or value == "random":
        return value
    from keras_convx.exporter.calibration_data import CalibrationError, load

    if not os.path.exists(value):
        raise BadInput(f"--calibration: {value} does not exist (a .npz file, a folder of "
                       f"images, or 'random')")
    try:
        return load(value, model)
    except CalibrationError as err:
        raise BadInput(str(err)) from None


def keep_float(value):
    if value is None or value == "auto":
        return value
    return [v.strip() for v in value.split(",") if v.strip()]


def sizes(text):
    """--sizes HxW,HxW -> export_onnx/import_onnx's `sizes=` (None when not given)."""
    if text is None:
        return None
    from keras_convx.verification.sizes import parse_sizes

    try:
        return parse_sizes(text)
    except ValueError as err:
        raise BadInput(str(err)) from None


def meta(pairs):
    """--meta KEY=VALUE pairs as a dict of strings."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--meta: {pair!r} must be KEY=VALUE")
        out[key.strip()] = value
    return out or None


def precision(args):
    """--precision, with --fp16 as its older spelling of float16."""
    if not args.fp16:
        return args.precision
    if args.precision not in (None, "float16"):
        raise BadInput(f"--fp16 contradicts --precision {args.precision}")
    return "float16"


def verify_options(args):
    """The verification flags as `VerifyOptions`, or False with --no-verify."""
    if args.no_verify:
        return False
    from keras_convx.verification.options import VerifyOptions

    try:
        # (import has no --providers, --ort-level or --no-diagnose)
        providers = getattr(args, "providers", None)
        return VerifyOptions(
            providers=providers.split(",") if providers else None,
            tolerance=args.tolerance, sizes=sizes(args.sizes),
            diagnose=not getattr(args, "no_diagnose", False),
            optimization_level=getattr(args, "ort_level", "all"))
    except (TypeError, ValueError) as err:
        raise BadInput(str(err)) from None

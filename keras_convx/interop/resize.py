"""Resize coordinate modes: keras_convx up-sampling (`interpolation`, `align_corners`)
<-> ONNX Resize attributes. keras_convx computes, along each axis of length L scaled by
s (output floor(L*s)):

- nearest: source index floor(i / s), ONNX's `asymmetric` + `floor`;
- linear/bicubic, align_corners=False: half-pixel centres (i + 0.5)/s - 0.5, ONNX's
  `half_pixel` (`pytorch_half_pixel` differs only for an output of length 1);
- align_corners=True: ONNX's `align_corners`; cubic with a = -0.75, edge-clamped taps
  (`exclude_outside=0`), 2D only.
"""

LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}
CUBIC_A = -0.75


def resize_attributes(interpolation, align_corners, exclude_outside=False):
    """ONNX Resize attributes computing keras_convx's `resize(interpolation, align_corners,
    exclude_outside=...)`."""
    if interpolation == "nearest":
        return dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor")
    if interpolation in ("linear", "bilinear", "trilinear", "bicubic"):
        attrs = dict(mode="cubic" if interpolation == "bicubic" else "linear",
                     coordinate_transformation_mode="align_corners" if align_corners
                     else "half_pixel")
        if interpolation == "bicubic":
            attrs.update(cubic_coeff_a=CUBIC_A, exclude_outside=int(bool(exclude_outside)))
        return attrs
    raise ValueError(f"interpolation {interpolation!r} has no exact ONNX Resize equivalent")


def upsampling_from_resize(attrs, scales, in_lengths, out_lengths):
    """ONNX Resize attributes and per-axis spatial `scales` -> (interpolation,
    align_corners, exclude_outside) of keras_convx's up-sampling layers, or a ValueError
    saying why the combination has no exact equivalent.

    Args:
        attrs: the Resize node's attributes as a dict (defaults as in the ONNX spec).
        scales: spatial scale per axis (from `scales`, or output/input from `sizes`).
        in_lengths, out_lengths: spatial lengths (None where dynamic).
    """
    rank = len(scales)
    mode = attrs.get("mode", "nearest")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    if attrs.get("antialias", 0) != 0:
        raise ValueError(f"antialias={attrs['antialias']} is not supported (only 0)")
    # exclude_outside renormalizes taps outside the input: only cubic has any (linear and
    # nearest sample inside after clamping; onnxruntime refuses it there)
    exclude = attrs.get("exclude_outside", 0)
    if exclude not in (0, 1):
        raise ValueError(f"exclude_outside={exclude} must be 0 or 1")
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise ValueError("keep_aspect_ratio_policy must be 'stretch'")
    if ctm == "tf_crop_and_resize":
        raise ValueError("coordinate_transformation_mode='tf_crop_and_resize' is not supported")
    for n, s, m in zip(in_lengths, scales, out_lengths):
        if n is not None and int(n * s + 1e-9) != m:
            raise ValueError(f"output length {m} is not floor({n} * {s}) (scales and sizes "
                             f"disagree)")
    if mode == "nearest":
        nearest = attrs.get("nearest_mode", "round_prefer_floor")
        if ctm == "asymmetric" and nearest == "floor":
            return "nearest", False, False
        integer = all(float(s).is_integer() and s >= 1 for s in scales)
        # With an integer up-scale, half-pixel centres round to the same pixel as floor.
        if integer and ctm in ("half_pixel", "pytorch_half_pixel") and nearest in (
                "round_prefer_floor", "round_prefer_ceil"):
            return "nearest", False, False
        raise ValueError(
            f"nearest with coordinate_transformation_mode={ctm!r}, nearest_mode={nearest!r} "
            f"and scales {list(scales)}: accepted are asymmetric+floor, or half_pixel/"
            f"pytorch_half_pixel with round_prefer_* and integer scales")
    if mode not in ("linear", "cubic"):
        raise ValueError(f"mode={mode!r}: accepted are nearest, linear and cubic")
    if ctm == "pytorch_half_pixel" and any(m <= 1 for m in out_lengths):
        raise ValueError("pytorch_half_pixel with an output length of 1 is not supported")
    if ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        raise ValueError(f"{mode} with coordinate_transformation_mode={ctm!r}: accepted are "
                         f"half_pixel, pytorch_half_pixel and align_corners")
    align = ctm == "align_corners"
    if mode == "linear":
        return LINEAR[rank], align, False
    a = attrs.get("cubic_coeff_a", -0.75)
    if rank != 2 or abs(a - CUBIC_A) > 1e-6:
        raise ValueError(f"cubic needs 2 spatial axes and cubic_coeff_a={CUBIC_A}, got "
                         f"{rank} axes and {a}")
    return "bicubic", align, bool(exclude)

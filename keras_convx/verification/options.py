"""`VerifyOptions`: how a file is verified, one group of options for export and import.

`export_onnx(model, path, verify=VerifyOptions(tolerance=1e-4))` and
`import_onnx(path, verify=VerifyOptions(sizes=[(640, 640)]))` take the same object; `True`
is `VerifyOptions()`, `False` skips verification.
"""

import dataclasses
import numbers
import warnings

from keras_convx.verification.ort_runner import LEVELS


@dataclasses.dataclass(frozen=True)
class VerifyOptions:
    """How to verify a graph against its Keras model.

    Args:
        samples: lists of inputs (Keras layout) to check besides random ones.
        providers: onnxruntime providers, e.g. `["cpu", "cuda"]`; default every one
            available.
        tolerance: max abs error allowed, as a fraction of each tensor's max |value|;
            default per provider and precision (`keras_convx.verification.rules`).
        sizes: the sizes dynamic height/width take in random inputs: ints or tuples (one
            per axis), e.g. `[(32, 64)]`; default two derived from the graph.
        diagnose: compare every Keras tensor the graph keeps, not only the outputs, and
            name the first that diverges (`False`: outputs only, faster and blind to
            errors the outputs hide).
        optimization_level: the onnxruntime level the outputs are checked at, as
            deployed: `"all"`, `"extended"`, `"basic"` or `"disable"`.

    Example:

    ```python
    report = kc.export_onnx(model, "m.onnx", verify=kc.VerifyOptions(tolerance=1e-4))
    ```
    """

    samples: object = None
    providers: object = None
    tolerance: object = None
    sizes: object = None
    diagnose: bool = True
    optimization_level: str = "all"

    def __post_init__(self):
        if self.optimization_level not in LEVELS:
            raise ValueError(f"VerifyOptions: optimization_level must be one of {LEVELS}, "
                             f"got {self.optimization_level!r}")
        if self.tolerance is not None and (
                isinstance(self.tolerance, bool) or not isinstance(self.tolerance, numbers.Real)
                or not self.tolerance > 0):
            raise ValueError(f"VerifyOptions: tolerance must be a positive number, got "
                             f"{self.tolerance!r}")
        if not isinstance(self.diagnose, bool):
            raise TypeError(f"VerifyOptions: diagnose must be True or False, got "
                            f"{self.diagnose!r}")
        if self.sizes is not None:
            from keras_convx.verification.sizes import check_sizes

            check_sizes(self.sizes)


FIELDS = tuple(f.name for f in dataclasses.fields(VerifyOptions))


def resolve(verify, legacy, caller, flat=FIELDS):
    """`(run?, VerifyOptions)` from `verify=` and the flat keywords older releases took
    (`flat`: `tolerance=`, `samples=`...), which still work with a DeprecationWarning;
    refuses any other keyword as Python would, and a flat keyword next to a
    `VerifyOptions`."""
    unknown = sorted(set(legacy) - set(flat))
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    if isinstance(verify, VerifyOptions):
        if legacy:
            raise TypeError(f"{caller}: pass {', '.join(sorted(legacy))} inside "
                            f"verify=VerifyOptions(...), not beside it")
        return True, verify
    if not isinstance(verify, bool):
        raise TypeError(f"{caller}: verify must be True, False or a VerifyOptions, got "
                        f"{verify!r}")
    if legacy:
        given = ", ".join(f"{k}=..." for k in sorted(legacy))
        warnings.warn(f"{caller}({given}) is deprecated: pass "
                      f"verify=keras_convx.VerifyOptions({given})",
                      DeprecationWarning, stacklevel=3)
    return verify, VerifyOptions(**legacy)

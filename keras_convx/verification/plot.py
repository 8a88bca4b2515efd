"""`--plot`: the error/scale of every compared tensor along the graph, one PNG."""

import math

from keras_convx.verification.report import ExportError


def plot_report(report, path):
    """Writes a PNG of error/scale (log) for every compared tensor in graph order, with the
    tolerance line: where a divergence starts shows at a glance.

    Args:
        report: a `VerifyReport`.
        path: the .png file to write.

    Raises:
        ExportError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ExportError("--plot needs matplotlib: pip install matplotlib") from None
    rows = [c for c in report.tensors if c.role != "local" and c.status not in
            ("fused", "uninformative")]
    tiny = 1e-12
    values = [max(c.rel, tiny) if math.isfinite(c.rel) else None for c in rows]
    finite = [v for v in values if v is not None]
    top = max(finite + [max((c.tolerance for c in rows), default=1e-3)]) * 10
    figure, axes = plt.subplots(figsize=(max(6.0, min(24.0, len(rows) / 8)), 4))
    xs = range(len(rows))
    axes.semilogy(xs, [v if v is not None else top for v in values], ".-", lw=0.8, ms=3,
                  label="error / scale")
    bad = [i for i, c in enumerate(rows) if c.status == "FAIL"]
    if bad:
        axes.semilogy(bad, [values[i] if values[i] is not None else top for i in bad], "rx",
                      label="fails (NaN/Inf at the top)")
    if rows:
        axes.axhline(rows[0].tolerance, color="tab:red", ls="--",
                     label=f"tolerance {rows[0].tolerance:g}")
    first = report.diagnosis[0].tensor if report.diagnosis else None
    if first is not None:
        axes.set_title(f"first diverging: {first}", fontsize=9)
    axes.set_xlabel("tensor, in graph order")
    axes.set_ylabel("max |onnx - keras| / max |keras|")
    axes.legend(fontsize=8)
    step = max(1, len(rows) // 40)
    axes.set_xticks(list(xs)[::step])
    axes.set_xticklabels([c.tensor[-24:] for c in rows][::step], rotation=90, fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

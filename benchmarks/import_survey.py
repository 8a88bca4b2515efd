"""How many torchvision and timm nets (random weights) import: `torch.onnx.export(...,
dynamo=False)` at opset 17 in an environment that has torchvision and timm, then
`kc.import_onnx` here, compared with PyTorch's output. RESULTS.md section 10b.

    TV_VENV/bin/python benchmarks/import_survey.py --export DIR   # torchvision, timm there
    KERAS_BACKEND=torch python benchmarks/import_survey.py --import DIR --json survey.json
    python benchmarks/import_survey.py --update-results survey.json

torchvision needs its own torch build beside the project's CPU torch 2.13.0 (the machine
notes: `pip install torch==2.14.1 torchvision==0.29.1`, then `pip install timm`), hence two
environments; the export side writes each model's input and PyTorch output next to its
.onnx file.
"""

import argparse
import json
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT]

SECTION = "10b"
OPSET = 17
# family -> [(source, constructor, input size)]; small inputs where the net allows them
MODELS = {
    "ResNet/ResNeXt/Wide": [("tv", "resnet18", 64), ("tv", "resnet50", 64),
                            ("tv", "resnext50_32x4d", 64), ("tv", "wide_resnet50_2", 64)],
    "MobileNet": [("tv", "mobilenet_v2", 64), ("tv", "mobilenet_v3_small", 64),
                  ("tv", "mobilenet_v3_large", 64)],
    "EfficientNet": [("tv", "efficientnet_b0", 64), ("tv", "efficientnet_v2_s", 64),
                     ("timm", "tf_efficientnet_b0", 64)],
    "ShuffleNet": [("tv", "shufflenet_v2_x0_5", 64), ("tv", "shufflenet_v2_x1_0", 64)],
    "RegNet": [("tv", "regnet_x_400mf", 64), ("tv", "regnet_y_400mf", 64)],
    "DenseNet": [("tv", "densenet121", 64)],
    "SqueezeNet/MNASNet": [("tv", "squeezenet1_1", 64), ("tv", "mnasnet0_5", 64)],
    "GoogLeNet/Inception": [("tv", "googlenet", 64), ("tv", "inception_v3", 96)],
    "VGG/AlexNet": [("tv", "vgg11_bn", 64), ("tv", "alexnet", 96)],
    "ConvNeXt": [("tv", "convnext_tiny", 64)],
    "ViT/Swin/MaxViT": [("tv", "vit_b_16", 224), ("tv", "swin_t", 64), ("tv", "maxvit_t", 224)],
    "Segmentation": [("tv_seg", "lraspp_mobilenet_v3_large", 64),
                     ("tv_seg", "deeplabv3_mobilenet_v3_large", 64), ("tv_seg", "fcn_resnet50", 64)],
    "Video": [("tv_video", "r3d_18", 32), ("tv_video", "r2plus1d_18", 32),
              ("tv_video", "mc3_18", 32)],
    "CSP/Res2Net/MixNet": [("timm", "cspresnet50", 64), ("timm", "cspdarknet53", 64),
                           ("timm", "res2net50_14w_8s", 64), ("timm", "mixnet_s", 64)],
    "ECA/ResNeSt/GhostNet": [("timm", "ecaresnet26t", 64), ("timm", "resnest14d", 64),
                             ("timm", "ghostnet_100", 64)],
    "Others (timm)": [("timm", "rexnet_100", 64), ("timm", "dla34", 64),
                      ("timm", "hrnet_w18_small", 64), ("timm", "mobilevit_xs", 64)],
}
DYNAMIC = {"resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "efficientnet_b0",
           "tf_efficientnet_b0", "mixnet_s", "ecaresnet26t", "resnest14d"}


def _build(source, name):
    if source == "timm":
        import timm

        return timm.create_model(name, pretrained=False)
    import torchvision

    module = {"tv": torchvision.models, "tv_seg": torchvision.models.segmentation,
              "tv_video": torchvision.models.video}[source]
    # no backbone weights either (they would be downloaded)
    kwargs = {"weights_backbone": None} if source == "tv_seg" else {}
    if source == "tv_seg" and "lraspp" not in name:
        kwargs["aux_loss"] = False
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=False)
    return getattr(module, name)(weights=None, **kwargs)


def _randomize(module, seed):
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module.eval()


def export(folder):
    import numpy as np
    import torch

    os.makedirs(folder, exist_ok=True)
    rows = []
    for family, models in MODELS.items():
        for i, (source, name, size) in enumerate(models):
            for dynamic in (False, True) if name in DYNAMIC else (False,):
                tag = name + ("-dynbatch" if dynamic else "")
                row = {"family": family, "model": name, "tag": tag, "dynamic_batch": dynamic}
                try:
                    torch.manual_seed(i)
                    module = _randomize(_build(source, name), i)
                    shape = (2, 3, 16, size, size) if source == "tv_video" else (2, 3, size, size)
                    x = torch.randn(shape, generator=torch.Generator().manual_seed(100 + i))
                    with torch.no_grad():
                        y = module(x)
                    y = y["out"] if isinstance(y, dict) else y
                    path = os.path.join(folder, f"{tag}.onnx")
                    torch.onnx.export(module, x, path, dynamo=False, opset_version=OPSET,
                                      input_names=["x"], output_names=["y"],
                                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}} if dynamic
                                      else None)
                    np.savez(os.path.join(folder, f"{tag}.npz"), x=x.numpy(), y=y.numpy())
                    row["exported"] = True
                except Exception as err:  # a net PyTorch's exporter refuses: listed
                    row.update(exported=False, error=f"{type(err).__name__}: {str(err)[:200]}")
                rows.append(row)
                print(tag, row["exported"], row.get("error", ""), flush=True)
    with open(os.path.join(folder, "exported.json"), "w") as f:
        json.dump({"torch": torch.__version__, "rows": rows}, f, indent=1)


def import_all(folder):
    import keras
    import numpy as np
    import onnx

    import keras_convx as kc
    from keras_convx.importer import UnsupportedOps

    with open(os.path.join(folder, "exported.json")) as f:
        exported = json.load(f)
    rows = []
    for row in exported["rows"]:
        row = dict(row)
        if row["exported"]:
            path = os.path.join(folder, row["tag"] + ".onnx")
            data = np.load(os.path.join(folder, row["tag"] + ".npz"))
            row["onnx_nodes"] = len(onnx.load(path, load_external_data=False).graph.node)
            start = time.perf_counter()
            try:
                model = kc.import_onnx(path, verify=False)
                row["import_s"] = time.perf_counter() - start
                got = keras.ops.convert_to_numpy(model(np.moveaxis(data["x"], 1, -1)))
                got = np.moveaxis(got, -1, 1) if got.ndim > 2 else got
                row["error"] = float(np.abs(got - data["y"]).max() / np.abs(data["y"]).max())
                kinds = [type(layer).__name__ for layer in model.layers]
                row.update(imported=True, layers=len(kinds), permutes=kinds.count("Permute"),
                           lambdas=kinds.count("Lambda"))
            except UnsupportedOps as err:
                ops = sorted({op for _, op, _ in err.nodes})
                row.update(imported=False, refused=len(err.nodes), refused_ops=ops,
                           reason=err.nodes[0][2][:160])
            except Exception as err:
                row.update(imported=False, reason=f"{type(err).__name__}: {str(err)[:160]}",
                           trace=traceback.format_exc()[-400:])
            keras.backend.clear_session()
        rows.append(row)
        print(row["tag"], row.get("imported"), row.get("error", row.get("reason", "")),
              flush=True)
    return {"torch_export": exported["torch"], "backend": keras.backend.backend(),
            "rows": rows}


def render(data):
    lines = [f"## {SECTION}. ONNX import: torchvision and timm nets (random weights)", ""]
    for d in data:
        rows = d["rows"]
        ok = [r for r in rows if r.get("imported") and r.get("error", 1) <= 1e-4]
        static = [r for r in rows if not r["dynamic_batch"]]
        dyn = [r for r in rows if r["dynamic_batch"]]
        lines += [
            f"Made by `TV_VENV/bin/python benchmarks/import_survey.py --export DIR` (torch "
            f"{d['torch_export']}, torchvision and timm; `torch.onnx.export(..., dynamo=False)` at "
            f"opset {OPSET}, random weights, BatchNorm statistics set), then `KERAS_BACKEND="
            f"{d['backend']} python benchmarks/import_survey.py --import DIR --json ...` and "
            f"`--update-results`. Error = max |Keras - PyTorch| / max |PyTorch| on the export's "
            f"input. Imported and within 1e-4: **{sum(1 for r in ok if not r['dynamic_batch'])} "
            f"of {sum(1 for r in static if r['exported'])} static exports, "
            f"{sum(1 for r in ok if r['dynamic_batch'])} of "
            f"{sum(1 for r in dyn if r['exported'])} dynamic-batch ones** "
            f"({sum(1 for r in rows if not r['exported'])} the PyTorch exporter itself refused).",
            "", "| family | model | batch | ONNX nodes | imported | error | Keras layers | Permute "
            "| import s | refused (ops) |", "|---|---|---|---:|---|---:|---:|---:|---:|---|"]
        for r in rows:
            batch = "dynamic" if r["dynamic_batch"] else "static"
            if not r["exported"]:
                lines.append(f"| {r['family']} | {r['model']} | {batch} | - | export failed "
                             f"| | | | | {r['error'][:80]} |")
                continue
            if r.get("imported"):
                lines.append(f"| {r['family']} | {r['model']} | {batch} | {r['onnx_nodes']} | "
                             f"yes | {r['error']:.1e} | {r['layers']} | {r['permutes']} | "
                             f"{r['import_s']:.1f} | |")
            else:
                what = (f"{r['refused']} node(s): {', '.join(r['refused_ops'])}"
                        if "refused" in r else r["reason"][:100])
                lines.append(f"| {r['family']} | {r['model']} | {batch} | {r['onnx_nodes']} | "
                             f"no | | | | | {what} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", metavar="DIR")
    parser.add_argument("--import", dest="import_dir", metavar="DIR")
    parser.add_argument("--json")
    parser.add_argument("--update-results", nargs="+", metavar="JSON")
    args = parser.parse_args()
    if args.export:
        export(args.export)
    elif args.import_dir:
        result = import_all(args.import_dir)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    elif args.update_results:
        from benchmarks.sections import update

        update(SECTION, render, args.update_results)
    else:
        parser.error("one of --export, --import, --update-results")


if __name__ == "__main__":
    main()

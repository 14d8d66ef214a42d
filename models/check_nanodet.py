#!/usr/bin/env python3
"""One-time check of models/convert_nanodet.py against a reference conversion (NOT part of the
fetch path: models/fetch.sh never runs this, and nothing here is needed to build or test).

The reference is tf2onnx's own TF.js import, made in a throwaway venv outside the repository
(TensorFlow is 1.4 GB and is deliberately not in the fetch path):

    python3.11 -m venv /tmp/venv-tf
    /tmp/venv-tf/bin/pip install tensorflow-cpu==2.15.1 "numpy<2" tf2onnx==1.17.0 onnx==1.17.0 \\
        "protobuf<5" onnxruntime pillow
    cd ~/.cache/sightline/sources      # nanodet.json + nanodet.bin, extracted by models/fetch.sh
    /tmp/venv-tf/bin/python -m tf2onnx.convert --tfjs nanodet.json --opset 13 --output /tmp/nanodet-ref.onnx

Then, with any Python that has numpy, onnxruntime and pillow (e.g. /tmp/venv-tf/bin/python or
fetch.sh's conversion venv):

    python models/check_nanodet.py ~/.cache/sightline/models/store/nanodet-g.onnx /tmp/nanodet-ref.onnx \\
        [--images /work/shared/data/people/images] [--truth /work/shared/data/people/persons.coco.json]
        [--resize plain|letterbox]

For every image (preprocessed once, identically for both models: Pillow bilinear to 416x416,
BGR, NanoDet mean/std) it runs both models (onnxruntime, one thread) and prints:
  - the max |ours - reference| of each output over all images (the reference's outputs are
    `Identity:0` .. `Identity_5:0`; they are matched to ours by shape);
  - person recall and precision of each model: the boxes of convert_nanodet.persons() (score >
    0.35, NMS 0.5) against the COCO person boxes (category 1, bbox [x, y, w, h]); a hit is
    IoU >= 0.5, matched greedily by score, each truth box at most once; detections that match no
    person but a crowd box (iscrowd = 1) at IoU >= 0.5 are ignored, as COCO does;
  - whether the two models give the same person boxes (within 1e-3 px), and the median run time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_nanodet as nd  # noqa: E402

REF_OUTPUTS = {  # tf2onnx keeps the TF.js signature names
    "scores_8": "Identity:0",
    "scores_16": "Identity_1:0",
    "scores_32": "Identity_2:0",
    "boxes_8": "Identity_3:0",
    "boxes_16": "Identity_4:0",
    "boxes_32": "Identity_5:0",
}


def xyxy(b):
    x, y, w, h = b
    return [x, y, x + w, y + h]


def evaluate(dets_by_image: dict, truth: dict, crowd: dict, thr: float = 0.5):
    tp = fp = ignored = 0
    for img, dets in dets_by_image.items():
        gts = truth.get(img, [])
        used = [False] * len(gts)
        for d in sorted(dets, key=lambda d: -d["score"]):
            best, best_iou = -1, thr
            for k, g in enumerate(gts):
                if not used[k]:
                    v = nd.iou(d["image_box"], g)
                    if v >= best_iou:
                        best, best_iou = k, v
            if best >= 0:
                used[best] = True
                tp += 1
            elif any(nd.iou(d["image_box"], c) >= thr for c in crowd.get(img, [])):
                ignored += 1
            else:
                fp += 1
    n_truth = sum(len(v) for v in truth.values())
    n_det = tp + fp
    return tp / n_truth, (tp / n_det if n_det else 0.0), tp, fp, ignored, n_truth


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ours")
    ap.add_argument("reference")
    ap.add_argument("--images", default="/work/shared/data/people/images")
    ap.add_argument("--truth", default="/work/shared/data/people/persons.coco.json")
    ap.add_argument("--resize", choices=("plain", "letterbox"), default="plain")
    a = ap.parse_args(argv)

    from PIL import Image

    coco = json.load(open(a.truth))
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    truth: dict[str, list] = {f: [] for f in files.values()}
    crowd: dict[str, list] = {}
    for ann in coco["annotations"]:
        if ann["category_id"] != 1:
            continue
        (crowd.setdefault(files[ann["image_id"]], []) if ann.get("iscrowd") else truth[files[ann["image_id"]]]).append(xyxy(ann["bbox"]))

    ours, ref = nd.session(a.ours), nd.session(a.reference)
    ref_in = ref.get_inputs()[0].name
    max_diff = {k: 0.0 for k in nd.OUTPUT_NAMES}
    dets = {"ours": {}, "reference": {}}
    times = {"ours": [], "reference": []}
    same_boxes = 0
    names = sorted(truth)
    for f in names:
        rgb, mapping = nd.prepare(Image.open(os.path.join(a.images, f)), a.resize)
        x = nd.to_tensor(rgb)
        t = time.perf_counter()
        o = nd.run(ours, x)
        times["ours"].append(time.perf_counter() - t)
        t = time.perf_counter()
        r_raw = ref.run(list(REF_OUTPUTS.values()), {ref_in: x})
        times["reference"].append(time.perf_counter() - t)
        r = dict(zip(REF_OUTPUTS, r_raw))
        for k in nd.OUTPUT_NAMES:
            if o[k].shape != r[k].shape:
                raise SystemExit(f"{k}: shape {o[k].shape} != reference {r[k].shape}")
            max_diff[k] = max(max_diff[k], float(np.abs(o[k] - r[k]).max()))
        po, pr = nd.persons(o, mapping), nd.persons(r, mapping)
        dets["ours"][f], dets["reference"][f] = po, pr
        if len(po) == len(pr) and all(np.allclose(p["image_box"], q["image_box"], atol=1e-3) for p, q in zip(po, pr)):
            same_boxes += 1

    print(f"{len(names)} images, resize {a.resize}, person score > {nd.SCORE_THRESHOLD}, NMS IoU > {nd.IOU_THRESHOLD}")
    print("max |ours - reference| per output:")
    for k in nd.OUTPUT_NAMES:
        print(f"  {k:10s} ({REF_OUTPUTS[k]:13s}) {max_diff[k]:.3e}")
    for who in ("ours", "reference"):
        rec, prec, tp, fp, ign, n = evaluate(dets[who], truth, crowd)
        ms = 1e3 * float(np.median(times[who]))
        print(f"{who:9s}: recall {rec:.3f} ({tp}/{n})  precision {prec:.3f} ({tp}/{tp + fp}; {ign} on crowd boxes ignored)"
              f"  median {ms:.1f} ms (1 thread)")
    print(f"identical person boxes (1e-3 px) on {same_boxes}/{len(names)} images")


if __name__ == "__main__":
    main()

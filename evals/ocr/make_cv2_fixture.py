"""Writes tests/fixtures/ocr/cv2.json: what OpenCV (and pyclipper) return for the operations
the Rust OCR pipeline re-implements, on small seeded random inputs. The Rust unit test
`cv2_parity` (shared/vision/tests/cv2_parity.rs) checks every case bit for bit.

Run with the benchmark's venv (evals/ocr/bench.sh creates it):
    ~/.cache/sightline/venv-rapidocr/bin/python evals/ocr/make_cv2_fixture.py
"""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

rng = np.random.default_rng(20261127)
out = {"opencv": cv2.__version__, "pyclipper": pyclipper.__version__}


def hx(a):
    return np.ascontiguousarray(a, dtype=np.uint8).tobytes().hex()


def f32(v):
    return float(np.float32(v))


def blobs(w, h, n):
    m = np.zeros((h, w), np.uint8)
    for _ in range(n):
        kind = rng.integers(0, 3)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        if kind == 0:
            rect = ((cx, cy), (rng.uniform(2, w / 2), rng.uniform(2, h / 3)), rng.uniform(-90, 90))
            pts = cv2.boxPoints(rect).astype(np.int32)
            cv2.fillPoly(m, [pts], 1)
        elif kind == 1:
            cv2.ellipse(m, (int(cx), int(cy)), (int(rng.integers(1, 8)), int(rng.integers(1, 5))), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            m[rng.random((h, w)) < 0.03] = 1
    return m


# contours + minAreaRect + boxPoints (what get_mini_boxes sees)
cases = []
for i in range(10):
    w, h = int(rng.integers(20, 44)), int(rng.integers(12, 28))
    m = blobs(w, h, int(rng.integers(1, 6)))
    if i % 4 == 0:
        m = cv2.dilate(m, np.array([[1, 1], [1, 1]]))
    contours, _ = cv2.findContours(m * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cs = []
    for c in contours:
        rect = cv2.minAreaRect(c)
        box = cv2.boxPoints(rect)
        cs.append({
            "points": c.reshape(-1, 2).tolist(),
            "rect": [f32(rect[0][0]), f32(rect[0][1]), f32(rect[1][0]), f32(rect[1][1]), f32(rect[2])],
            "box": [[f32(x), f32(y)] for x, y in box],
        })
    cases.append({"width": w, "height": h, "mask": ["".join(str(v) for v in row) for row in m], "contours": cs})
out["contours"] = cases

# dilation with the DB kernel
dil = []
for _ in range(4):
    w, h = int(rng.integers(5, 12)), int(rng.integers(4, 9))
    m = (rng.random((h, w)) < 0.2).astype(np.uint8)
    d = cv2.dilate(m, np.array([[1, 1], [1, 1]]))
    dil.append({"width": w, "height": h, "mask": hx(m), "dilated": hx(d)})
out["dilate"] = dil

# fillPoly of a truncated float box (box_score_fast)
fills = []
for _ in range(24):
    w, h = int(rng.integers(6, 30)), int(rng.integers(4, 16))
    rect = ((rng.uniform(0, w), rng.uniform(0, h)), (rng.uniform(2, w), rng.uniform(2, h)), rng.uniform(-90, 90))
    pts = cv2.boxPoints(rect).astype(np.int32)
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, pts.reshape(1, -1, 2), 1)
    fills.append({"width": w, "height": h, "poly": pts.tolist(), "mask": hx(m)})
out["fill"] = fills

# unclip: pyclipper offset of a float box, then minAreaRect of the int64 result
offs = []
for _ in range(24):
    rect = ((rng.uniform(10, 200), rng.uniform(10, 200)), (rng.uniform(3, 120), rng.uniform(3, 30)), rng.uniform(-90, 90))
    box = cv2.boxPoints(rect)
    poly = Polygon(box)
    distance = poly.area * 1.6 / poly.length
    o = pyclipper.PyclipperOffset()
    o.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    ex = np.array(o.Execute(distance)).reshape((-1, 1, 2))
    r = cv2.minAreaRect(ex)
    offs.append({
        "box": [[f32(x), f32(y)] for x, y in box],
        "distance": distance,
        "expanded": ex.reshape(-1, 2).tolist(),
        "rect": [f32(r[0][0]), f32(r[0][1]), f32(r[1][0]), f32(r[1][1]), f32(r[2])],
        "box2": [[f32(x), f32(y)] for x, y in cv2.boxPoints(r)],
    })
out["unclip"] = offs

# resize (INTER_LINEAR) and the crop warp (INTER_CUBIC, BORDER_REPLICATE)
rs = []
for _ in range(10):
    w, h = int(rng.integers(3, 16)), int(rng.integers(3, 12))
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    dw, dh = int(rng.integers(1, 30)), int(rng.integers(1, 20))
    rs.append({"width": w, "height": h, "data": hx(img), "dw": dw, "dh": dh, "out": hx(cv2.resize(img, (dw, dh)))})
out["resize"] = rs

ws = []
for _ in range(8):
    w, h = int(rng.integers(12, 24)), int(rng.integers(8, 16))
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pts = np.array([[rng.uniform(-2, w / 3), rng.uniform(-2, h / 3)], [rng.uniform(w / 2, w + 2), rng.uniform(-2, h / 3)],
                    [rng.uniform(w / 2, w + 2), rng.uniform(h / 2, h + 2)], [rng.uniform(-2, w / 3), rng.uniform(h / 2, h + 2)]], np.float32)
    cw = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
    ch = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
    dst = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float32)
    M = cv2.getPerspectiveTransform(pts, dst)
    crop = cv2.warpPerspective(img, M, (cw, ch), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    ws.append({"width": w, "height": h, "data": hx(img), "points": pts.tolist(), "cw": cw, "ch": ch, "out": hx(crop)})
out["warp"] = ws

target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "tests/fixtures/ocr/cv2.json"
target.write_text(json.dumps(out, separators=(",", ":")))
print(f"wrote {target} ({target.stat().st_size} bytes)")

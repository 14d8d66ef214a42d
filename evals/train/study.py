"""Issue 15, first step: what a head trained on the frozen backbone's features can do for search
by photo, measured before any Rust. Python and numpy only (the venv `models/fetch.sh` makes for
the converter: numpy, onnxruntime, Pillow); no serving code.

    /root/.cache/sightline/venv-convert/bin/python evals/train/study.py \
        --train ../shared/data/train --search ../shared/data/search --out OUT [--views 4] [--seeds 3]

Features: EfficientNet-Lite0 as shipped (`$SIGHTLINE_MODELS/embed/efficientnet-lite0.onnx`), its
`feature_map` [N,1280,7,7] output, on the centre square of each image (the converter's
`centre_square`: shorter side to 224, centre crop; the same input for catalogue and queries, so
the baseline here is whole-image search, not the stage's detect crop + zoom + OCR pipeline, whose
figures are in docs/search.md). Training photos get `--views` views through the backbone:
the photo, its mirror, and random resized crops (40-100 % of the area, aspect 3/4-4/3) with
colour jitter (brightness, contrast, saturation ±20 %) and a random flip, seeded.

Heads compared (all end in an L2 normalisation; retrieval is cosine against the 81 catalogue
images, recall@k by product, for the 69 products with training photos and the 12 without):
- `gap`, `gem`: global average / generalised-mean (p = 3) pooling of the map, no training;
- `pcaw`: PCA-whitening to 256 fitted on the training views (no labels);
- `lw`: learned whitening (Radenović et al., TPAMI 2018): the within-product covariance of the
  training views whitened (shrinkage 0.1 of its mean eigenvalue, after a PCA to 512), then a
  PCA of the whitened product means to 256 (68 at most carry between-product variance, the
  rest is kept as whitened residual): closed form, labels used, no iterations;
- `proxy`: a linear projection 1280 → 256 (initialised by PCA) trained with a normalised-softmax
  (proxy) loss over the 69 products, scale 16, Adam, `--epochs` epochs of mini-batches of 128;
  closed-form gradients in numpy. Seeds vary the views' crops and the batches.
Every head is fitted on the training photos only (never on the search queries or catalogue).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

SIZE = 224


sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))
from convert_efficientnet import centre_square  # noqa: E402  (the embed input the study shares)


def view(img: Image.Image, k: int, rng: np.random.Generator) -> Image.Image:
    """View `k` of a training photo: 0 the photo, 1 its mirror, then random augmentations."""
    if k == 0:
        return img
    if k == 1:
        return img.transpose(Image.FLIP_LEFT_RIGHT)
    w, h = img.size
    for _ in range(10):
        area = rng.uniform(0.4, 1.0) * w * h
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if cw <= w and ch <= h:
            x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            img = img.crop((x, y, x + cw, y + ch))
            break
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhance(img).enhance(rng.uniform(0.8, 1.2))
    if rng.uniform() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def zoom(img: Image.Image, cut: float = 0.25) -> Image.Image:
    """The query's zoomed-in view, as the search stage makes it: `cut` of each side off."""
    w, h = img.size
    return img.crop((round(w * cut), round(h * cut), round(w * (1 - cut)), round(h * (1 - cut))))


class Backbone:
    def __init__(self, model: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 2
        self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])

    def maps(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(["feature_map"], {"input": batch.astype(np.float32)})[0]


def pooled(maps: np.ndarray) -> dict[str, np.ndarray]:
    flat = maps.reshape(maps.shape[0], maps.shape[1], -1)
    gem = (np.maximum(flat, 1e-6) ** 3).mean(axis=2) ** (1 / 3)
    return {"gap": flat.mean(axis=2), "gem": gem}


def embed(backbone: Backbone, images: list[Image.Image], batch: int = 32) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {"gap": [], "gem": []}
    for i in range(0, len(images), batch):
        x = np.stack([centre_square(im) for im in images[i : i + batch]])
        for k, v in pooled(backbone.maps(x)).items():
            out[k].append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pca(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    cov = np.cov((x - mu).T)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:dim]
    return mu, vecs[:, order], vals[order]


def fit_pcaw(x: np.ndarray, dim: int = 256):
    mu, vecs, vals = pca(l2(x), dim)
    reg = 0.01 * vals[:32].mean()
    proj = vecs / np.sqrt(vals + reg)
    return lambda z: l2((l2(z) - mu) @ proj)


def fit_lw(x: np.ndarray, labels: np.ndarray, dim: int = 256, shrink: float = 0.1):
    z = l2(x)
    mu, vecs, _ = pca(z, 512)
    y = (z - mu) @ vecs
    classes = np.unique(labels)
    means = np.stack([y[labels == c].mean(axis=0) for c in classes])
    within = y - means[np.searchsorted(classes, labels)]
    cw = within.T @ within / len(y)
    cw += shrink * np.trace(cw) / cw.shape[0] * np.eye(cw.shape[0])
    vals, v = np.linalg.eigh(cw)
    white = v / np.sqrt(vals)
    m = (means - means.mean(axis=0)) @ white
    wm = within @ white
    # Between-product directions first, then the whitened residual's leading directions.
    _, s, vt = np.linalg.svd(m, full_matrices=False)
    between = vt[s > 1e-6 * s[0]]
    rest = wm - wm @ between.T @ between
    _, _, vt2 = np.linalg.svd(rest[:: max(1, len(rest) // 4000)], full_matrices=False)
    basis = np.concatenate([between, vt2[: max(0, dim - len(between))]])[:dim]
    proj = vecs @ white @ basis.T
    return lambda q: l2((l2(q) - mu) @ proj)


def fit_proxy(x: np.ndarray, labels: np.ndarray, seed: int, dim: int = 256, epochs: int = 30, scale: float = 16.0):
    rng = np.random.default_rng(seed)
    z = l2(x)
    mu, vecs, _ = pca(z, dim)
    w = vecs.copy()
    classes, y = np.unique(labels, return_inverse=True)
    proxies = l2(np.stack([((z[y == c] - mu) @ w).mean(axis=0) for c in range(len(classes))]))
    params = [w, proxies]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    lr, b1, b2, step = 1e-3, 0.9, 0.999, 0
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(z))
        total = 0.0
        for i in range(0, len(order), 128):
            idx = order[i : i + 128]
            xb, yb = z[idx] - mu, y[idx]
            e = xb @ w
            en = np.linalg.norm(e, axis=1, keepdims=True)
            f = e / en
            pn = np.linalg.norm(params[1], axis=1, keepdims=True)
            p = params[1] / pn
            logits = scale * f @ p.T
            logits -= logits.max(axis=1, keepdims=True)
            prob = np.exp(logits)
            prob /= prob.sum(axis=1, keepdims=True)
            total += -np.log(prob[np.arange(len(yb)), yb] + 1e-12).sum()
            g = prob
            g[np.arange(len(yb)), yb] -= 1
            g *= scale / len(yb)
            gf = g @ p
            gp = g.T @ f
            # Through the normalisations.
            ge = (gf - f * (gf * f).sum(axis=1, keepdims=True)) / en
            gpr = (gp - p * (gp * p).sum(axis=1, keepdims=True)) / pn
            grads = [xb.T @ ge, gpr]
            step += 1
            for j, (pj, gj) in enumerate(zip(params, grads)):
                m[j] = b1 * m[j] + (1 - b1) * gj
                v[j] = b2 * v[j] + (1 - b2) * gj * gj
                mh, vh = m[j] / (1 - b1**step), v[j] / (1 - b2**step)
                pj -= lr * mh / (np.sqrt(vh) + 1e-8)
        losses.append(total / len(z))
    w = params[0]
    return (lambda q: l2((l2(q) - mu) @ w)), losses


def recall(cat: np.ndarray, qry: np.ndarray, cat_names: list[str], truth: list[str], ks=(1, 5)) -> dict:
    sims = qry @ cat.T
    order = np.argsort(-sims, axis=1)
    out = {}
    for k in ks:
        hits = [truth[i] in {cat_names[j] for j in order[i, :k]} for i in range(len(truth))]
        out[k] = np.array(hits)
    return out


def recall_views(gallery: np.ndarray, owners: list[str], qry: np.ndarray, truth: list[str], ks=(1, 5)) -> dict:
    """Recall@k by product when a product has several gallery views: products ranked by their
    best view's similarity."""
    sims = qry @ gallery.T
    names = sorted(set(owners))
    col = np.array([names.index(o) for o in owners])
    best = np.full((len(qry), len(names)), -np.inf)
    for j in range(len(names)):
        best[:, j] = sims[:, col == j].max(axis=1)
    order = np.argsort(-best, axis=1)
    return {k: np.array([truth[i] in {names[j] for j in order[i, :k]} for i in range(len(truth))]) for k in ks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", default="../shared/data/train")
    ap.add_argument("--search", default="../shared/data/search")
    ap.add_argument("--out", required=True)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--exclude-near-queries", type=float, default=0.95,
                    help="leave out training photos whose cosine (GAP) to a query is at least this (0: keep all)")
    ap.add_argument("--anchors", type=int, default=0, help="also train with each catalogue image repeated N times")
    ap.add_argument("--models", default=os.environ.get("SIGHTLINE_MODELS", str(Path.home() / ".cache/sightline/models")))
    a = ap.parse_args()
    out = Path(a.out)
    (out / "cache").mkdir(parents=True, exist_ok=True)
    backbone = Backbone(Path(a.models) / "embed/efficientnet-lite0.onnx")

    search = Path(a.search)
    cat_files = sorted((search / "catalog").iterdir())
    cat_names = [f.stem for f in cat_files]
    rows = [l.split(",") for l in (search / "truth.csv").read_text().splitlines()[1:] if l.strip()]
    q_files = [search / "queries" / r[0] for r in rows]
    q_truth = [r[1] for r in rows]
    train = Path(a.train)
    products = sorted(p.name for p in train.iterdir() if p.is_dir())
    seen = np.array([t in products for t in q_truth])

    cache = out / "cache" / "search.npz"
    if cache.exists():
        d = np.load(cache)
        cat, qry = {k: d["cat_" + k] for k in ("gap", "gem")}, {k: d["q_" + k] for k in ("gap", "gem")}
        qzoom = {k: d["qz_" + k] for k in ("gap", "gem")}
    else:
        load = lambda f: Image.open(f).convert("RGB")
        cat = embed(backbone, [load(f) for f in cat_files])
        qry = embed(backbone, [load(f) for f in q_files])
        qzoom = embed(backbone, [zoom(load(f)) for f in q_files])
        np.savez(cache, **{"cat_" + k: v for k, v in cat.items()}, **{"q_" + k: v for k, v in qry.items()},
                 **{"qz_" + k: v for k, v in qzoom.items()})

    results: dict[str, dict] = {}

    def score(name: str, f_cat: np.ndarray, f_q: np.ndarray, extra: dict | None = None, owners=None):
        r = recall(f_cat, f_q, cat_names, q_truth) if owners is None else recall_views(f_cat, owners, f_q, q_truth)
        results[name] = {
            "seen_r1": float(r[1][seen].mean()), "seen_r5": float(r[5][seen].mean()),
            "unseen_r1": float(r[1][~seen].mean()), "unseen_r5": float(r[5][~seen].mean()),
            "all_r1": float(r[1].mean()), "all_r5": float(r[5].mean()), **(extra or {}),
        }
        x = results[name]
        print(f"{name:28s} seen r@1 {x['seen_r1']:.3f} r@5 {x['seen_r5']:.3f} | unseen r@1 {x['unseen_r1']:.3f} "
              f"r@5 {x['unseen_r5']:.3f} | all r@5 {x['all_r5']:.3f}", flush=True)

    for pool in ("gap", "gem"):
        score(pool, l2(cat[pool]), l2(qry[pool]))
        score(pool + " zoomed query", l2(cat[pool]), l2(l2(qry[pool]) + l2(qzoom[pool])))

    for seed in range(a.seeds):
        cache = out / "cache" / f"train-v{a.views}-s{seed}.npz"
        if cache.exists():
            d = np.load(cache)
            feats, labels = {k: d[k] for k in ("gap", "gem")}, d["labels"]
        else:
            rng = np.random.default_rng(1000 + seed)
            started = time.time()
            feats_l: dict[str, list] = {"gap": [], "gem": []}
            labels_l = []
            for pi, p in enumerate(products):
                imgs = []
                for f in sorted((train / p).iterdir()):
                    img = Image.open(f).convert("RGB")
                    imgs += [view(img, k, rng) for k in range(a.views)]
                for k, v in embed(backbone, imgs).items():
                    feats_l[k].append(v)
                labels_l += [p] * len(imgs)
                print(f"\rseed {seed}: embedded {pi + 1}/{len(products)} products ({time.time() - started:.0f} s)",
                      end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            feats = {k: np.concatenate(v) for k, v in feats_l.items()}
            labels = np.array(labels_l)
            np.savez(cache, labels=labels, **feats)
        if a.exclude_near_queries > 0:
            # Training photos that are near copies of a search query (the same shot, a frame
            # apart) are left out with all their views: the queries are never trained on.
            nearest = (l2(feats["gap"][:: a.views]) @ l2(qry["gap"]).T).max(axis=1)
            keep = np.repeat(nearest < a.exclude_near_queries, a.views)
            if seed == 0:
                print(f"left out {int((~keep).sum()) // a.views} of {len(keep) // a.views} training photos "
                      f"at cosine >= {a.exclude_near_queries} to a query", flush=True)
                results["left_out_photos"] = int((~keep).sum()) // a.views
            feats, labels = {k: v[keep] for k, v in feats.items()}, labels[keep]
        # The photos themselves (view 0 of each) as extra catalogue views of their product.
        photos = np.arange(0, len(labels), a.views)
        owners = cat_names + list(labels[photos])
        for pool in ("gap", "gem"):
            x = feats[pool]
            both = lambda f: l2(f(qry[pool]) + f(qzoom[pool]))
            gallery = lambda f: np.concatenate([f(cat[pool]), f(x[photos])])
            if seed == 0:
                ident = l2
                score(f"{pool} photos in catalogue", gallery(ident), both(ident), owners=owners)
            if seed == 0:
                f = fit_pcaw(x)
                score(f"{pool}+pcaw", f(cat[pool]), f(qry[pool]))
                f = fit_lw(x, labels)
                score(f"{pool}+lw", f(cat[pool]), f(qry[pool]))
                score(f"{pool}+lw zoomed query", f(cat[pool]), both(f))
            started = time.time()
            f, losses = fit_proxy(x, labels, seed, epochs=a.epochs)
            seconds = time.time() - started
            score(f"{pool}+proxy seed {seed}", f(cat[pool]), f(qry[pool]), {"losses": losses, "train_seconds": seconds})
            score(f"{pool}+proxy zoomed query seed {seed}", f(cat[pool]), both(f))
            score(f"{pool}+proxy photos in catalogue seed {seed}", gallery(f), both(f), owners=owners)
            if a.anchors:
                # The catalogue's iconic images as training samples of their product (the 12
                # products without photos become known classes: not the acceptance setting).
                xa = np.concatenate([x, np.repeat(cat[pool], a.anchors, axis=0)])
                la = np.concatenate([labels, np.repeat(np.array(cat_names), a.anchors)])
                f, _ = fit_proxy(xa, la, seed, epochs=a.epochs)
                score(f"{pool}+proxy+anchors zoomed query seed {seed}", f(cat[pool]), both(f))
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

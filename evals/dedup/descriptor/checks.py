"""The pixel check of the two-step design (verify.py), three ways; one subcommand each.

`probe`: Probe: does pixel verification (verify.py, NCC over mirror x rotation x crop hypotheses at
64 px) separate true copies from the hard negatives the descriptor cannot?

Usage: python evals/dedup/descriptor/checks.py probe --train ../shared/data/train --cache OUT/cache [--seed 16]

Uses study.py's cached train descriptors (128/gem/sym/pcaw) to find the N most similar pairs of
different photos of one product, scores them (both directions, max), and scores PER copies of
each transform, made exactly as study.py makes them (same seeds). Prints JSON.

`train`: The two-step check on the whole train-derived set: every pair of different photos of one
product that the chosen descriptor passes as a candidate (cosine >= its "at target"
threshold) is verified (verify.py, NCC >= --ncc); and --per copies per transform against their
original (candidate step, then NCC).

Usage: python evals/dedup/descriptor/checks.py train --train ../shared/data/train --out OUT [--ncc 0.98]
(OUT: study.py's output folder.) Prints JSON.

`neardup`: The two-step design once on neardup/: flip-aware hash (<= 4), else descriptor candidates
(cosine >= the train-derived recall-first threshold) verified by pixels (verify.py, NCC >=
--ncc, set above the highest hard negative of checks.py probe on the train set).

Usage: python evals/dedup/descriptor/checks.py neardup --neardup ../shared/data/neardup --out OUT [--ncc 0.98]
(OUT is study.py's output folder: its results.json and cache are read.) Originals first, as the
stage sees a collection in name order; prints JSON (recall per transform, precision, distinct
photos merged, verifications run).
"""

import argparse
import csv
import json
import os
import pathlib
import random
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study  # noqa: E402
import verify  # noqa: E402


def probe(args):
    files, prod, names = study.load_train(args.train)
    raw = dict(np.load(os.path.join(args.cache, "train_db_128.npz")))
    d = study.variant(raw, "gem", True)
    D = study.PCAW(d, study.PCA_DIM)(d)
    S = D @ D.T
    iu = np.triu_indices(len(files), 1)
    s, same = S[iu], (prod[:, None] == prod[None, :])[iu]
    order = np.argsort(-(s - 10 * (~same)))[: args.hard]
    grey = {}

    def G(i):
        if i not in grey:
            grey[i] = verify.prepare(study.open_rgb(files[i]), study.trimmed)
        return grey[i]

    hard = []
    for k in order:
        a, b = int(iu[0][k]), int(iu[1][k])
        hard.append({"a": os.path.basename(files[a]), "b": os.path.basename(files[b]), "cos": float(s[k]),
                     "ncc": max(verify.score(G(a), G(b)), verify.score(G(b), G(a)))})
    # the same originals and copies as study.py
    rng = random.Random(args.seed)
    orig_idx = []
    for p in range(len(names)):
        members = [i for i in range(len(files)) if prod[i] == p]
        orig_idx += sorted(rng.sample(members, min(args.per_product, len(members))))
    pick = random.Random(args.seed + 1).sample(orig_idx, args.per)
    pos = {}
    for i in pick:
        r = random.Random(args.seed * 1_000_003 + i)
        base = study.open_rgb(files[i])
        for t in study.TRANSFORMS:
            c = study.transform(base, t, r)
            pos.setdefault(t, []).append(verify.score(verify.prepare(c, study.trimmed), G(i)))
    hn = np.array([h["ncc"] for h in hard])
    out = {
        "hard_top": hard[:30],
        "hard_ncc_quantiles": {q: float(np.quantile(hn, q)) for q in (0.5, 0.9, 1.0)},
        "positives_min": {t: float(min(v)) for t, v in pos.items()},
        "positives_p10": {t: float(np.quantile(v, 0.1)) for t, v in pos.items()},
    }
    thr = float(hn.max())
    out["recall_above_hard_max"] = {t: float(np.mean(np.array(v) > thr)) for t, v in pos.items()}
    print(json.dumps(out, indent=1))


def train(args):
    out = pathlib.Path(args.out)
    res = json.load(open(out / "results.json"))
    key = res["chosen"]["float"]
    t_cand = res["grid"][key]["at_target"]["threshold"]
    size = int(key.split("/")[0])
    files, prod, names = study.load_train(args.train)
    raw_db = dict(np.load(out / "cache" / f"train_db_{size}.npz"))
    raw_q = dict(np.load(out / "cache" / f"train_copies_{size}.npz"))
    desc = study.Descriptor(key, raw_db)
    D, Q = desc(raw_db), desc(raw_q)
    rng = random.Random(args.seed)
    orig_idx = []
    for p in range(len(names)):
        members = [i for i in range(len(files)) if prod[i] == p]
        orig_idx += sorted(rng.sample(members, min(args.per_product, len(members))))
    owner = np.repeat(orig_idx, len(study.TRANSFORMS))
    tnames = np.array(list(study.TRANSFORMS) * len(orig_idx))
    grey = {}

    def G(i):
        if i not in grey:
            grey[i] = verify.prepare(study.open_rgb(files[i]), study.trimmed)
        return grey[i]

    copies = {}

    def C(k):  # copy k, made as study.py makes it
        if k not in copies:
            i, t = int(owner[k]), tnames[k]
            r = random.Random(args.seed * 1_000_003 + i)
            base = study.open_rgb(files[i])
            for tt in study.TRANSFORMS:  # same rng sequence as study.py
                c = study.transform(base, tt, r)
                if tt == t:
                    copies[k] = verify.prepare(c, study.trimmed)
                    break
        return copies[k]

    # hard negatives passing the candidate step
    same = prod[:, None] == prod[None, :]
    Sdd = D @ D.T
    hard_scores = []
    a_idx, b_idx = np.nonzero(np.triu((Sdd >= t_cand) & same, 1))
    for a, b in zip(a_idx, b_idx):
        hard_scores.append(("orig", os.path.basename(files[a]), os.path.basename(files[b]), float(Sdd[a, b]),
                            max(verify.score(G(a), G(b)), verify.score(G(b), G(a)))))
    Sqd = Q @ D.T
    for k in range(len(Q)):
        cand = np.nonzero((Sqd[k] >= t_cand) & (prod == prod[owner[k]]) & (np.arange(len(files)) != owner[k]))[0]
        for b in cand:
            hard_scores.append((str(tnames[k]), os.path.basename(files[owner[k]]), os.path.basename(files[b]),
                                float(Sqd[k, b]), verify.score(C(k), G(b))))
    hn = np.array([h[4] for h in hard_scores])
    # positives: --per copies per transform (seeded), candidate step then NCC
    pick = random.Random(args.seed + 2)
    pos = {}
    for t in study.TRANSFORMS:
        ks = [k for k in range(len(Q)) if tnames[k] == t]
        for k in pick.sample(ks, min(args.per, len(ks))):
            ok_c = Sqd[k, owner[k]] >= t_cand
            v = verify.score(C(k), G(int(owner[k]))) if ok_c else float("nan")
            pos.setdefault(t, []).append((bool(ok_c), v))
    print(json.dumps({
        "descriptor": key, "candidate_threshold": t_cand, "ncc_threshold": args.ncc,
        "hard_candidates": len(hard_scores),
        "hard_accepted": int((hn >= args.ncc).sum()),
        "hard_ncc_max": float(hn.max()) if len(hn) else None,
        "hard_ncc_quantiles": {q: float(np.quantile(hn, q)) for q in (0.5, 0.9, 0.99)} if len(hn) else None,
        "hard_top": sorted(hard_scores, key=lambda h: -h[4])[:15],
        "recall": {t: float(np.mean([c and v >= args.ncc for c, v in v_])) for t, v_ in pos.items()},
        "candidate_recall": {t: float(np.mean([c for c, _ in v_])) for t, v_ in pos.items()},
        "per_transform": args.per,
    }, indent=1))


def neardup(args):
    out = pathlib.Path(args.out)
    res = json.load(open(out / "results.json"))
    key = res["chosen"]["float"]
    t_cand = res["grid"][key]["at_target"]["threshold"]
    cache = out / "cache"
    root = pathlib.Path(args.neardup)
    rows = list(csv.DictReader(open(root / "truth.csv")))
    files = [r["file"] for r in rows]
    group = [r["group"] for r in rows]
    trans = [r["transform"] for r in rows]
    imgs = [study.open_rgb(root / "images" / f) for f in files]
    for k, r in enumerate(list(rows)):  # the same own copies as study.py
        if r["transform"] != "orig":
            continue
        for t in study.NEARDUP_OWN:
            rng = random.Random(args.seed * 7919 + k * 31 + study.NEARDUP_OWN.index(t))
            imgs.append(study.transform(imgs[k], t, rng))
            files.append(f"own:{r['group']}_{t}")
            group.append(r["group"])
            trans.append("own_" + t)
    n = len(files)
    size = key.split("/")[0]
    size = size if size == "embed" else int(size)
    desc = study.Descriptor(key, dict(np.load(cache / f"train_db_{size}.npz")))
    X = desc(dict(np.load(cache / f"neardup_{size}.npz")))
    S = X @ X.T
    h = np.load(cache / "neardup_phash.npz")["h"].astype(np.uint64)
    hm = np.load(cache / "neardup_phash_mirror.npz")["h"].astype(np.uint64)
    H = np.minimum(np.bitwise_count(h[:, None] ^ h[None, :]), np.bitwise_count(hm[:, None] ^ h[None, :])).astype(int)
    H = np.minimum(H, H.T)
    grey = {}

    def G(i):
        if i not in grey:
            grey[i] = verify.prepare(imgs[i], study.trimmed)
        return grey[i]

    order = sorted(range(n), key=lambda i: (trans[i] != "orig", i))
    checks = 0

    def verified(i, originals):
        nonlocal checks
        if args.topk:
            cands = sorted(originals, key=lambda o: -S[i, o])[: args.topk]
        else:
            cands = [o for o in originals if S[i, o] >= t_cand]
        best = (args.ncc, None)
        for o in sorted(cands, key=lambda o: -S[i, o]):
            checks += 1
            v = verify.score(G(i), G(o))
            if v >= best[0]:
                best = (v, o)
        return None if best[1] is None else (best[1], f"verified {best[0]:.3f}")

    root_of, how = study.assign(order, H, verified)
    rec, dup, wrong, merged = study.grouping_scores(root_of, group, trans)
    wrong = [(files[i], files[root_of[i]], how[i]) for i in wrong]
    merged = [files[i] for i in merged]
    print(json.dumps({
        "descriptor": key, "candidate_threshold": None if args.topk else t_cand, "topk": args.topk, "ncc_threshold": args.ncc,
        "recall": rec, "precision": 1 - len(wrong) / max(1, len(dup)), "duplicates": len(dup),
        "wrong": wrong, "distinct_merged": merged, "verifications": checks, "images": n,
    }, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="check", required=True)
    p = study.parser(None, per_product=3, ap=sub.add_parser("probe", help="pixel scores of the hardest pairs and of copies"))
    p.add_argument("--cache", required=True)
    p.add_argument("--hard", type=int, default=120)
    p.add_argument("--per", type=int, default=20)
    p = study.parser(None, per_product=3, ap=sub.add_parser("train", help="the two-step check on the train-derived set"))
    p.add_argument("--out", required=True)
    p.add_argument("--ncc", type=float, default=0.98)
    p.add_argument("--per", type=int, default=30)
    p = study.parser(None, ap=sub.add_parser("neardup", help="the two-step design once on neardup/"))
    p.add_argument("--neardup", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ncc", type=float, default=0.98)
    p.add_argument("--topk", type=int, default=0,
                   help="candidates: the k most similar originals, whatever their cosine (0: cosine >= the threshold)")
    args = ap.parse_args()
    {"probe": probe, "train": train, "neardup": neardup}[args.check](args)


if __name__ == "__main__":
    main()

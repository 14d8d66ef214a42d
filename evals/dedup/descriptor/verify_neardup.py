"""The two-step design once on neardup/: flip-aware hash (<= 4), else descriptor candidates
(cosine >= the train-derived recall-first threshold) verified by pixels (verify.py, NCC >=
--ncc, set above the highest hard negative of verify_probe.py on the train set).

Usage: python evals/dedup/descriptor/verify_neardup.py --neardup ../shared/data/neardup --out OUT [--ncc 0.98]
(OUT is study.py's output folder: its results.json and cache are read.) Originals first, as the
stage sees a collection in name order; prints JSON (recall per transform, precision, distinct
photos merged, verifications run).
"""

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


def main():
    ap = study.parser(__doc__)
    ap.add_argument("--neardup", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ncc", type=float, default=0.98)
    ap.add_argument("--topk", type=int, default=0, help="candidates: the k most similar originals, whatever their cosine (0: cosine >= the threshold)")
    args = ap.parse_args()
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
    originals, root_of, how = [], {}, {}
    checks = 0
    for i in order:
        of = None
        if originals:
            hs = H[i, originals]
            j = int(np.argmin(hs))
            if hs[j] <= 4:
                of, how[i] = originals[j], "hash"
            else:
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
                if best[1] is not None:
                    of, how[i] = best[1], f"verified {best[0]:.3f}"
        if of is None:
            originals.append(i)
            root_of[i] = i
        else:
            root_of[i] = of
    o_of = {group[i]: i for i in range(n) if trans[i] == "orig"}
    rec = {}
    for t in sorted(set(trans) - {"orig", "distinct"}):
        idx = [i for i in range(n) if trans[i] == t]
        rec[t] = float(np.mean([root_of[i] == root_of[o_of[group[i]]] for i in idx]))
    dup = [i for i in range(n) if root_of[i] != i]
    wrong = [(files[i], files[root_of[i]], how[i]) for i in dup if group[root_of[i]] != group[i]]
    distinct = [i for i in range(n) if trans[i] == "distinct"]
    merged = [files[i] for i in distinct if root_of[i] != i or any(root_of[j] == i and j != i for j in range(n))]
    print(json.dumps({
        "descriptor": key, "candidate_threshold": None if args.topk else t_cand, "topk": args.topk, "ncc_threshold": args.ncc,
        "recall": rec, "precision": 1 - len(wrong) / max(1, len(dup)), "duplicates": len(dup),
        "wrong": wrong, "distinct_merged": merged, "verifications": checks, "images": n,
    }, indent=1))


if __name__ == "__main__":
    main()

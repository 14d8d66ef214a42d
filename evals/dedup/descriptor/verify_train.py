"""The two-step check on the whole train-derived set: every pair of different photos of one
product that the chosen descriptor passes as a candidate (cosine >= its "at target"
threshold) is verified (verify.py, NCC >= --ncc); and --per copies per transform against their
original (candidate step, then NCC).

Usage: python evals/dedup/descriptor/verify_train.py --train ../shared/data/train --out OUT [--ncc 0.98]
(OUT: study.py's output folder.) Prints JSON.
"""

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
    ap = study.parser(__doc__, per_product=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ncc", type=float, default=0.98)
    ap.add_argument("--per", type=int, default=30)
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()

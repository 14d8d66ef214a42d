"""Probe: does pixel verification (verify.py, NCC over mirror x rotation x crop hypotheses at
64 px) separate true copies from the hard negatives the descriptor cannot?

Usage: python evals/dedup/descriptor/verify_probe.py --train ../shared/data/train --cache OUT/cache [--seed 16]

Uses study.py's cached train descriptors (128/gem/sym/pcaw) to find the N most similar pairs of
different photos of one product, scores them (both directions, max), and scores PER copies of
each transform, made exactly as study.py makes them (same seeds). Prints JSON.
"""

import json
import os
import random
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study  # noqa: E402
import verify  # noqa: E402


def main():
    ap = study.parser(__doc__, per_product=3)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--hard", type=int, default=120)
    ap.add_argument("--per", type=int, default=20)
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()

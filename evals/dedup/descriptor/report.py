"""Markdown tables of a study.py results.json (the tables of docs/dedup-descriptor.md).

Usage: python evals/dedup/descriptor/report.py OUT/results.json > OUT/report.md
"""

import json
import sys

HARD = ["crop90", "crop80_95", "hflip", "rot5", "rot2_10", "text", "logo", "aspect", "hflip_crop90"]
EASY = ["resize50", "jpeg_q20", "blur1.5", "gray", "bright130", "dark70", "pad_border"]


def pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


def main():
    r = json.load(open(sys.argv[1]))
    p = print
    p(f"Train-derived set: {r['n_db']} database photos, {r['n_originals']} originals, {r['n_copies']} copies.\n")

    p("### Perceptual hash alone, and with the mirror's hash (train-derived set)\n")
    p("| hash | max distance | " + " | ".join(HARD) + " | min easy | hard merges | easy merges | pair precision |")
    p("|---" * (len(HARD) + 6) + "|")
    for label, key in (("pHash", "phash"), ("pHash or its mirror's", "phash_mirror")):
        for T, e in r.get(key, {}).items():
            rec = e["recall"]
            p(f"| {label} | {T} | " + " | ".join(pct(rec.get(t)) for t in HARD) + f" | {pct(min(rec[t] for t in EASY))} | {e['hard_fp']} | {e['easy_fp']} | {pct(e['precision'])} |")
    p(f"\nClosest pair of different photos of one product: {r['phash_hard_min']} bits.\n")

    rule = r["chosen"]["rule"]
    other = "strict" if rule == "excl" else "excl"
    names = {"strict": "no pair of different photos of one product", "excl": "no pair of different photos of one product except the near-identical frames the hash (<= 4) already merges"}
    p(f"{r['burst_pairs']} pairs of different train photos of one product are within 4 bits of the hash (near-identical frames): {r['burst_pairs_list']}\n")

    def table(entries, label, fmt, rule):
        p("| " + label + " | threshold | closest hard neg. (all / excl.) | precision | hard merges | " + " | ".join(HARD) + " | min easy |")
        p("|---" * (len(HARD) + 6) + "|")
        for k, e in entries.items():
            x = e.get(rule)
            hb = f"{fmt(e['hard_best'])} / {fmt(e['hard_best_excl'])}"
            if not x:
                p(f"| {k} | none | {hb} | | | " + " | ".join("" for _ in HARD) + " | |")
                continue
            rec = x["recall"]
            p(f"| {k} | {fmt(x['threshold'])} | {hb} | {pct(x['precision'])} | {x['hard_fp']} | "
              + " | ".join(pct(rec.get(t)) for t in HARD) + f" | {pct(min(rec[t] for t in EASY))} |")

    def tradeoff(entries, label, fmt):
        p("| " + label + " | threshold | hard merges (all / excl. frames) | easy merges | precision | " + " | ".join(HARD) + " | min easy |")
        p("|---" * (len(HARD) + 6) + "|")
        for k, e in entries.items():
            x = e["at_target"]
            rec = x["recall"]
            p(f"| {k} | {fmt(x['threshold'])} | {x['hard_fp']} / {x['hard_fp_excl']} of {e['n_hard']} | {x['easy_fp']} | {pct(x['precision'])} | "
              + " | ".join(pct(rec.get(t)) for t in HARD) + f" | {pct(min(rec[t] for t in EASY))} |")

    f3 = lambda v: f"{v:.3f}"
    fi = lambda v: f"{v:.0f}"
    kinds = (
        ("grid", "descriptor", f3, "Float descriptors", f"; and pair precision >= 0.99", ": what it merges"),
        ("binary", "code / bits", fi, "Binary codes (sign of the PCA projection), Hamming threshold", "", ""),
    )
    for n, (key, column, f, title, note, merges) in enumerate(kinds):
        if n:
            p("")
        for rl in (rule, other):
            p(f"### {title}, rule `{rl}`" + (f" ({names[rl]}{note})" if note else "") + "\n")
            table(r[key], column, f, rl)
            p("")
        p(f"### {title.split(' (')[0].split(',')[0]} at the threshold that reaches recall 0.9 on crop90, hflip and rot5{merges}\n")
        tradeoff(r[key], column, f)

    p(f"\n### Multi-index retrieval of the positives within the `{rule}` threshold (m blocks)\n")
    p("| code | bits | threshold | m | block bits | found by an exact block | found within 1 bit of a block | probes (radius 1) | mean candidates (exact blocks) |")
    p("|---" * 9 + "|")
    for k, e in r["binary"].items():
        base, nb = k.rsplit("/", 1)
        for m, mi in e.get("multi_index", {}).items():
            p(f"| {base} | {nb} | {e[rule]['threshold']:.0f} | {m} | {mi['block_bits']} | {pct(mi['found_exact_block'])} | {pct(mi['found_radius1'])} | {mi['probes_radius1']} | {mi['mean_candidates_exact']:.1f} of {r['n_db']} |")

    p(f"\nChosen (by the train-derived set only): {r['chosen']}\n")

    nd = r.get("neardup")
    if nd:
        p("### neardup/ (evaluation): pair level\n")
        ts = nd["transforms"]
        p("| config | threshold | pair precision | false pairs | " + " | ".join(ts) + " |")
        p("|---" * (len(ts) + 4) + "|")
        for label, e in nd["configs"].items():
            p(f"| {label} | {e['threshold']:.3f} | {pct(e['pair_precision'])} | {e['n_false_pairs']} | " + " | ".join(pct(e["pair_recall"].get(t)) for t in ts) + " |")
        p("\n### neardup/ (evaluation): the stage (hash <= 4 first, then the descriptor), originals first / min over 5 random orders\n")
        p("| config | precision | distinct merged | " + " | ".join(ts) + " |")
        p("|---" * (len(ts) + 3) + "|")
        for label, e in nd["configs"].items():
            st = e["stage"]
            first = st["originals first"]
            rnd = [v for k, v in st.items() if k != "originals first"]
            prec = f"{pct(first['precision'])} / {pct(min(v['precision'] for v in rnd))}"
            merged = f"{first['distinct_merged']} / {max(v['distinct_merged'] for v in rnd)}"
            cells = [f"{pct(first['recall'][t])} / {pct(min(v['recall'][t] for v in rnd))}" for t in ts]
            p(f"| {label} | {prec} | {merged} | " + " | ".join(cells) + " |")
        for label, e in nd["configs"].items():
            if e["false_pairs"]:
                p(f"\nFalse pairs of {label} (first {len(e['false_pairs'])} of {e['n_false_pairs']}): " + "; ".join(f"{a} ~ {b} ({s:.3f})" for a, b, s in e["false_pairs"][:8]))

    if r.get("timing"):
        p("\n### Time per image, CPU, one thread (ms, median of 3 passes over 40 neardup photos)\n")
        p("| step | ms |")
        p("|---|---:|")
        for k, v in r["timing"].items():
            p(f"| {k} | {v:.2f} |")


if __name__ == "__main__":
    main()

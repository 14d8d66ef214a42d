"""The OCR benchmark in one run: our engine (evals/examples/ocr_bench.rs) and RapidOCR (same
model files, same settings) as two long-lived processes, each image sent to one then the other,
ROUNDS times with the order alternating, so that both see the same machine load. Reports, per
image and overall: seconds (the fastest of the rounds, for each side), the speed ratio, and the
character-level agreement of the two outputs (1 - edit distance / length of the longer text, on
the lines joined with newlines; overall from the summed distances and lengths), identical lines
and the largest box-corner difference.

    python bench.py OURS_CMD RAPIDOCR_CMD OUT_DIR ROUNDS FILE...

OURS_CMD and RAPIDOCR_CMD are shell commands that speak the stdin/stdout protocol.
"""
import json
import shlex
import subprocess
import sys
from pathlib import Path


def lev(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


class Side:
    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, f):
        self.p.stdin.write(f + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise SystemExit(f"runner died on {f}")
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def main():
    ours_cmd, ref_cmd, out_dir, rounds, files = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
    out_dir.mkdir(parents=True, exist_ok=True)
    ours, ref = Side(ours_cmd), Side(ref_cmd)
    ours.ask(files[0])  # warm-up (model loading, first-run allocations)
    ref.ask(files[0])
    res = {f: {"ours": [], "ref": []} for f in files}
    for r in range(rounds):
        for f in files:
            pair = [("ours", ours), ("ref", ref)] if r % 2 == 0 else [("ref", ref), ("ours", ours)]
            for name, side in pair:
                res[f][name].append(side.ask(f))
    ours.close()
    ref.close()

    rows, dist, length, same_lines, all_lines, t_ours, t_ref = [], 0, 0, 0, 0, 0.0, 0.0
    for f in files:
        o, r = res[f]["ours"][0], res[f]["ref"][0]
        so = min(x["seconds"] for x in res[f]["ours"])
        sr = min(x["seconds"] for x in res[f]["ref"])
        a = "\n".join(l["text"] for l in o["lines"])
        b = "\n".join(l["text"] for l in r["lines"])
        d, n = lev(a, b), max(len(a), len(b))
        dist, length = dist + d, length + n
        same = sum(1 for x, y in zip(o["lines"], r["lines"]) if x["text"] == y["text"])
        same_lines += same
        all_lines += max(len(o["lines"]), len(r["lines"]))
        box = max((abs(p - q) for x, y in zip(o["lines"], r["lines"]) for pp, qq in zip(x["box"], y["box"]) for p, q in zip(pp, qq)), default=0.0)
        t_ours, t_ref = t_ours + so, t_ref + sr
        rows.append({"file": Path(f).name, "agreement": 1 - d / n if n else 1.0, "lines_ours": len(o["lines"]),
                     "lines_rapidocr": len(r["lines"]), "identical_lines": same, "max_box_diff_px": box,
                     "seconds_ours": so, "seconds_rapidocr": sr, "ours": o, "rapidocr": r})
    k = len(rows)
    summary = {"images": k, "rounds": rounds, "agreement": 1 - dist / length if length else 1.0,
               "identical_lines": same_lines, "lines": all_lines, "seconds_per_image_ours": t_ours / k,
               "seconds_per_image_rapidocr": t_ref / k, "speedup": t_ref / t_ours if t_ours else None}
    out = ["| image | agreement | lines ours/RapidOCR | identical | max box diff (px) | s ours | s RapidOCR | RapidOCR/ours |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r['file']} | {r['agreement']:.4f} | {r['lines_ours']}/{r['lines_rapidocr']} | {r['identical_lines']} | "
                   f"{r['max_box_diff_px']:.0f} | {r['seconds_ours']:.3f} | {r['seconds_rapidocr']:.3f} | "
                   f"{r['seconds_rapidocr'] / r['seconds_ours']:.2f} |")
    out.append(f"| **all {k}** | **{summary['agreement']:.4f}** | | {same_lines}/{all_lines} | | "
               f"**{summary['seconds_per_image_ours']:.3f}** | **{summary['seconds_per_image_rapidocr']:.3f}** | "
               f"**{summary['speedup']:.2f}** |")
    text = "\n".join(out)
    print(text)
    (out_dir / "report.md").write_text(text + "\n")
    (out_dir / "results.json").write_text(json.dumps({"summary": summary, "images": rows}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

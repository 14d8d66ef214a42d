"""RapidOCR side of the benchmark. Reads one image path per line from stdin and answers each
with one JSON line: {"file", "seconds", "lines": [{"text", "score", "box"}]}.

    python rapidocr_run.py PARAMS_JSON < paths

With DUMP_NPY=DIR it also saves, per file, the BGR array RapidOCR decoded (DIR/<name>.npy), so
that our side can be run on the very same pixels (`bench --npy-dir DIR`).
"""
import json
import os
import sys
import time
from pathlib import Path

from rapidocr import RapidOCR


def main():
    params = json.loads(sys.argv[1])
    params["Global.log_level"] = "error"
    engine = RapidOCR(params=params)
    dump = os.environ.get("DUMP_NPY")
    for line in sys.stdin:
        f = line.strip()
        if not f:
            continue
        if dump:
            import numpy as np
            from rapidocr.utils.load_image import LoadImage

            Path(dump).mkdir(parents=True, exist_ok=True)
            np.save(Path(dump) / (Path(f).name + ".npy"), np.ascontiguousarray(LoadImage()(f)))
        t = time.perf_counter()
        r = engine(f)
        seconds = time.perf_counter() - t
        lines = []
        if r.txts:
            for box, text, score in zip(r.boxes.tolist(), r.txts, r.scores):
                lines.append({"text": text, "score": float(score), "box": box})
        print(json.dumps({"file": f, "seconds": seconds, "lines": lines}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()

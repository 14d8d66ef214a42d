#!/usr/bin/env bash
# The OCR benchmark, in one run: Sightline's OCR engine against RapidOCR 3.10.0 (Python,
# onnxruntime 1.31.1) on the same model files with the same settings, on the images of
# DATA/lines and DATA/unlabeled. Reports seconds per image for each (fastest of ROUNDS
# alternating rounds), their ratio, and the character-level agreement of the two outputs.
#
#   evals/ocr/bench.sh [DATA]          # DATA defaults to ../shared/data/ocr
#   ROUNDS=3 THREADS=2 OUT=target/ocr-bench evals/ocr/bench.sh
#
# RapidOCR goes into a throwaway venv ($SIGHTLINE_CACHE/venv-rapidocr, pinned by
# requirements.txt); the models come from models/fetch.sh. Writes OUT/report.md and
# OUT/results.json (both sides' lines per image), and, for the decoder-independent check,
# OUT/same-pixels/ (our side fed RapidOCR's decoded pixels).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
DATA="${1:-../shared/data/ocr}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-$(nproc)}"
(( THREADS > 4 )) && THREADS=4
OUT="${OUT:-target/ocr-bench}"
CACHE="${SIGHTLINE_CACHE:-$HOME/.cache/sightline}"
VENV="$CACHE/venv-rapidocr"

eval "$(models/fetch.sh)"
if ! "$VENV/bin/python" -c 'import rapidocr, cv2, onnxruntime' 2>/dev/null; then
    echo "creating $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$here/requirements.txt"
    wheel="$CACHE/downloads/rapidocr-3.10.0-py3-none-any.whl"
    if [[ -f "$wheel" ]]; then "$VENV/bin/pip" install -q --no-deps "$wheel"; else "$VENV/bin/pip" install -q --no-deps rapidocr==3.10.0; fi
fi
cargo build -q --release -p sightline-evals --example ocr_bench
ours="${CARGO_TARGET_DIR:-target}/release/examples/ocr_bench"

# Our configuration as RapidOCR params, on our model files, with the same thread count.
params="$("$ours" --params | "$VENV/bin/python" -c '
import json, os, sys
p = json.load(sys.stdin)
m = os.environ["SIGHTLINE_MODELS"]
p["Det.model_path"] = m + "/ocr/PP-OCRv6_det_small.onnx"
p["Rec.model_path"] = m + "/ocr/PP-OCRv6_rec_small.onnx"
p["Cls.model_path"] = m + "/ocr/ch_ppocr_mobile_v2.0_cls_mobile.onnx"
p["EngineConfig.onnxruntime.intra_op_num_threads"] = int(sys.argv[1])
print(json.dumps(p))' "$THREADS")"

shopt -s nullglob
files=("$DATA"/lines/*.jpg "$DATA"/lines/*.png "$DATA"/unlabeled/*.jpg "$DATA"/unlabeled/*.jpeg "$DATA"/unlabeled/*.png)
(( ${#files[@]} )) || { echo "no images under $DATA" >&2; exit 1; }
echo "== $(date -u +%FT%TZ), ${#files[@]} images, $ROUNDS rounds, $THREADS threads, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$VENV/bin/python" "$here/bench.py" "OCR_THREADS=$THREADS $ours 2>/dev/null" \
    "DUMP_NPY=$OUT/npy $VENV/bin/python $here/rapidocr_run.py '$params'" "$OUT" "$ROUNDS" "${files[@]}"

echo "== same pixels (our side fed the arrays RapidOCR decoded: pipeline parity without the JPEG decoders)" >&2
"$VENV/bin/python" "$here/bench.py" "OCR_THREADS=$THREADS $ours --npy-dir $OUT/npy 2>/dev/null" \
    "$VENV/bin/python $here/rapidocr_run.py '$params'" "$OUT/same-pixels" 1 "${files[@]}"

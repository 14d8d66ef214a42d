#!/usr/bin/env bash
# Exact density peaks in Rust against the Python reference (pydpc) on the same 20,000 x 512
# points, in one run; prints both times and the ratio (docs/clustering.md, "Speed").
# Usage: evals/cluster/python_reference.sh [N] [DIM]
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-20000}"
DIM="${2:-512}"
VENV="${HOME}/.cache/sightline/dpc-venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q numpy==2.4.6 pydpc==0.2.1
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cargo build -q -p sightline-evals --example dpc_bench
BENCH=target/debug/examples/dpc_bench
"$BENCH" --n "$N" --dim "$DIM" --write "$WORK/points.f32" --method none
"$BENCH" --read "$WORK/points.f32" --dim "$DIM" --method exact --kernel gaussian --percent 2 \
    --dump "$WORK/rust.csv" --json "$WORK/rust.json"
read -r RUST_S RUST_CPU < <("$VENV/bin/python" -c "import json,sys; j=json.load(open(sys.argv[1])); print(j['stats']['total_s'], j['cpu_s'])" "$WORK/rust.json")
"$VENV/bin/python" evals/cluster/python_reference.py "$WORK/points.f32" "$DIM" "$WORK/rust.csv" "$RUST_S" "$RUST_CPU"

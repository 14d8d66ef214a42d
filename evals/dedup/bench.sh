#!/usr/bin/env bash
# Dedup throughput, in one run on the same images: Sightline's dedup stage (read, exact claim,
# decode, pixel hash, perceptual hash, near-duplicate index; `evals/examples/dedup_bench.rs`) against
# imagededup's PHash from PyPI (encode_images + find_duplicates; `imagededup_phash.py`),
# on all cores and on one, and the ratio. See docs/dedup.md.
#
#   evals/dedup/bench.sh [DATA]     (default: ../shared/data/neardup/images)
#
# Environment: THREADS (default: nproc), REPEAT (best of, default 3), SIGHTLINE_CACHE
# (default ~/.cache/sightline; the throwaway venv is $SIGHTLINE_CACHE/venv-imagededup).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
data="$(cd "${1:-$repo/../shared/data/neardup/images}" && pwd)"
threads="${THREADS:-$(nproc)}"
repeat="${REPEAT:-3}"
cache="${SIGHTLINE_CACHE:-$HOME/.cache/sightline}"
venv="$cache/venv-imagededup"

# imagededup and what its PHash imports, pinned (torch, torchvision and matplotlib are only
# for its CNN method and plots: not installed, see imagededup_phash.py).
requirements=(
  imagededup==0.3.3.post2 numpy==2.4.6 scipy==1.17.1 PyWavelets==1.9.0 pillow==13.0.0 tqdm==4.70.1
  scikit-learn==1.9.1 joblib==1.6.0 threadpoolctl==3.8.0 narwhals==2.29.0 cloudpickle==3.1.3
)
marker="$venv/.sightline-requirements"
if [ "$(cat "$marker" 2>/dev/null)" != "${requirements[*]}" ]; then
  echo "bench: installing imagededup into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "${requirements[@]}" >&2
  echo "${requirements[*]}" > "$marker"
fi

echo "bench: building the Sightline benchmark (release)" >&2
(cd "$repo" && cargo build --quiet --release -p sightline-evals --example dedup_bench)
sightline="${CARGO_TARGET_DIR:-$repo/target}/release/examples/dedup_bench"

count="$(find "$data" -type f ! -name '.*' | wc -l)"
echo "bench: $count files in $data, $threads thread(s), best of $repeat" >&2

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
results=()
for n in "$threads" 1; do
  ours="$("$sightline" "$data" --threads "$n" --repeat "$repeat" --json)"
  theirs="$("$venv/bin/python" "$here/imagededup_phash.py" "$data" "$n" "$repeat" 2>>"$log")"
  results+=("$(printf '{"threads": %s, "sightline": %s, "imagededup": %s}' "$n" "$ours" "$theirs")")
  [ "$threads" = 1 ] && break
done

printf '%s\n' "${results[@]}" | python3 "$here/report.py"

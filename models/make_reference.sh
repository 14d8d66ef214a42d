#!/usr/bin/env bash
# Regenerate tests/fixtures/models/ (reference inputs + outputs for the Rust
# parity and preprocessing tests) with Python onnxruntime 1.31.1, the same
# ONNX Runtime release the Rust crate loads.
#
#   models/make_reference.sh [MODEL...]     # default: every model in the manifest
#
# Needs the models (models/fetch.sh). Uses a throwaway venv in
# ${SIGHTLINE_CACHE:-~/.cache/sightline}/venv-reference.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SIGHTLINE_CACHE:-$HOME/.cache/sightline}"
export SIGHTLINE_MODELS="${SIGHTLINE_MODELS:-$cache/models}"
py="${PYTHON:-python3}"
venv="$cache/venv-reference"
pins="onnxruntime==1.31.1 numpy==2.4.6 pillow==13.0.0"

"$here/fetch.sh" --verify >/dev/null || {
  echo "make_reference.sh: models missing or corrupt in $SIGHTLINE_MODELS: run models/fetch.sh" >&2; exit 1; }

if [[ ! -f "$venv/.sightline-pins" || "$(cat "$venv/.sightline-pins")" != "$pins" ]]; then
  echo "make_reference.sh: creating $venv ($pins)" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pins >&2
  echo "$pins" >"$venv/.sightline-pins"
fi
exec "$venv/bin/python" "$here/make_reference.py" "$@"

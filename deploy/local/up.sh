#!/usr/bin/env bash
# Start the Sightline worker binaries as background processes against the local services.
#
#   deploy/local/up.sh
#
# Environment:
#   PROFILE=debug            binaries are $CARGO_TARGET_DIR/$PROFILE/sightline-<stage> (target/ by default)
#   STAGES="ingest dedup"    which stages (default: ingest dedup detect ocr face embed cluster index track)
#   REPLICAS=2               replicas of every stage (default 1)
#   REPLICAS_<STAGE>=3       replicas of one stage, e.g. REPLICAS_OCR=3 (overrides REPLICAS)
#   ADMIN_PORT_BASE=9100     first admin port; each replica gets the next free one
#
# Each replica runs with the `services.sh env` variables plus ADMIN_ADDR=127.0.0.1:<port> and
# SIGHTLINE_REPLICA=<n> (1-based); pid and log files are in $SIGHTLINE_STATE/workers/<stage>-<n>.{pid,log}.
# A replica whose pid file points at a live process is left alone. Stop everything with down.sh.
# ingest and detect run ffprobe/ffmpeg (Debian package ffmpeg) for store jobs' videos: without
# them those workers still start and this script prints a note; their video items then fail as
# transient errors (retried, dead-lettered after MAX_ATTEMPTS).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

ALL_STAGES="ingest dedup detect ocr face embed cluster index track"
PROFILE="${PROFILE:-debug}"
[[ "$PROFILE" == dev ]] && PROFILE=debug   # cargo's dev profile builds into target/debug
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
STAGES="${STAGES:-$ALL_STAGES}"
ADMIN_PORT_BASE="${ADMIN_PORT_BASE:-9100}"
WORKERS_DIR="$SIGHTLINE_STATE/workers"
case "$PROFILE" in
    debug) build_flag="" ;;
    release) build_flag=" --release" ;;
    *) build_flag=" --profile $PROFILE" ;;
esac

for stage in $STAGES; do
    [[ " $ALL_STAGES " == *" $stage "* ]] || die "unknown stage '$stage' (stages: $ALL_STAGES)"
done

# the same variables `eval "$(services.sh start)"` gives
# (a variable already set in the caller's environment wins, e.g. AMQP_URL naming a test vhost)
while IFS= read -r line; do
    name="${line#export }"
    name="${name%%=*}"
    if [[ -z "${!name:-}" ]]; then
        eval "$line"
    fi
done < <("$SCRIPT_DIR/services.sh" env)
if ! "$SCRIPT_DIR/services.sh" status >/dev/null 2>&1; then
    log "warning: not every service is up (deploy/local/services.sh status); start them with deploy/local/services.sh start"
fi

mkdir -p "$WORKERS_DIR"

# admin ports already claimed by live replicas (they may not listen yet)
claimed=" "
for addr_file in "$WORKERS_DIR"/*.addr; do
    [[ -e "$addr_file" ]] || continue
    base="${addr_file%.addr}"
    pid="$(read_pid "$base.pid")"
    name="$(basename "$base")"
    if [[ -n "$pid" ]] && pid_matches "$pid" "sightline-${name%-*}"; then
        claimed+="$(sed 's/.*://' "$addr_file") "
    fi
done

next_port="$ADMIN_PORT_BASE"
# alloc_port: the next port from next_port upward that nobody listens on or has claimed
alloc_port() {
    while port_listening "$next_port" || [[ "$claimed" == *" $next_port "* ]]; do
        next_port=$((next_port + 1))
        (( next_port < 65536 )) || die "no free admin port above $ADMIN_PORT_BASE"
    done
    claimed+="$next_port "
    ALLOCATED="$next_port"
    next_port=$((next_port + 1))
}

rows=()        # "stage n pid addr status log"
started=()     # "stage n pid" of the replicas started now
notes=()

# store jobs: ingest probes videos (ffprobe), detect decodes their segments (ffmpeg)
if [[ " $STAGES " == *" ingest "* || " $STAGES " == *" detect "* ]]; then
    missing_tools=""
    for tool in ffprobe ffmpeg; do
        command -v "$tool" >/dev/null 2>&1 || missing_tools+=" $tool"
    done
    if [[ -n "$missing_tools" ]]; then
        notes+=("not on PATH:$missing_tools; ingest and detect fail store jobs' videos until the Debian package ffmpeg is installed")
    fi
fi

for stage in $STAGES; do
    var="REPLICAS_${stage^^}"
    count="${!var:-${REPLICAS:-1}}"
    [[ "$count" =~ ^[0-9]+$ ]] || die "$var/REPLICAS must be a number, got '$count'"
    bin="$TARGET_DIR/$PROFILE/sightline-$stage"
    if [[ ! -x "$bin" ]]; then
        notes+=("skipped $stage: no ${bin#"$ROOT"/} (cargo build -p sightline-$stage$build_flag)")
        continue
    fi
    for ((n = 1; n <= count; n++)); do
        base="$WORKERS_DIR/$stage-$n"
        pid="$(read_pid "$base.pid")"
        if [[ -n "$pid" ]] && pid_matches "$pid" "sightline-$stage"; then
            rows+=("$stage $n $pid $(cat "$base.addr" 2>/dev/null || echo '?') running-already $base.log")
            continue
        fi
        rm -f "$base.pid" "$base.addr"
        alloc_port
        addr="127.0.0.1:$ALLOCATED"
        printf '\n=== %s start %s replica %s admin %s (%s) ===\n' "$(date -Is)" "$stage" "$n" "$addr" "$bin" >>"$base.log"
        # setsid: own session, so the worker outlives this shell and its terminal
        ADMIN_ADDR="$addr" SIGHTLINE_REPLICA="$n" setsid nohup "$bin" >>"$base.log" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$base.pid"
        echo "$addr" >"$base.addr"
        rows+=("$stage $n $pid $addr started $base.log")
        started+=("$stage $n $pid")
    done
    # replicas above the requested count from an earlier run are not touched
    for pid_file in "$WORKERS_DIR/$stage"-*.pid; do
        [[ -e "$pid_file" ]] || continue
        n="${pid_file##*-}"; n="${n%.pid}"
        if (( n > count )); then
            pid="$(read_pid "$pid_file")"
            if [[ -n "$pid" ]] && pid_matches "$pid" "sightline-$stage"; then
                notes+=("$stage-$n (pid $pid) is still running from an earlier run; down.sh stops it")
            fi
        fi
    done
done

# a worker that dies at once (bad config, no services) should not look started
failed=0
if (( ${#started[@]} > 0 )); then
    sleep "${UP_SETTLE_SECONDS:-1}"
    for i in "${!rows[@]}"; do
        read -r stage n pid addr status logf <<<"${rows[$i]}"
        if [[ "$status" == started ]] && ! pid_alive "$pid"; then
            rows[i]="$stage $n $pid $addr EXITED $logf"
            rm -f "$WORKERS_DIR/$stage-$n.pid" "$WORKERS_DIR/$stage-$n.addr"
            failed=$((failed + 1))
            log "$stage-$n exited at once; last lines of $logf:"
            tail -n 15 "$logf" >&2 || true
        fi
    done
fi

{
    printf '%-8s %-7s %-8s %-16s %-16s %s\n' STAGE REPLICA PID ADMIN_ADDR STATUS LOG
    for row in ${rows[@]+"${rows[@]}"}; do
        read -r stage n pid addr status logf <<<"$row"
        printf '%-8s %-7s %-8s %-16s %-16s %s\n' "$stage" "$n" "$pid" "$addr" "$status" "$logf"
    done
}
for note in ${notes[@]+"${notes[@]}"}; do
    echo "note: $note"
done
if (( failed > 0 )); then
    die "$failed replica(s) exited at once (see the logs above)"
fi

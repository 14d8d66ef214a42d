#!/usr/bin/env bash
# Stop the workers that up.sh started: SIGTERM to all, wait up to DOWN_GRACE seconds (default 30)
# for them to drain and exit, then SIGKILL what is left. Removes their pid files.
#
#   deploy/local/down.sh                  all workers
#   STAGES="ocr face" deploy/local/down.sh   only these stages
#
# The backing services keep running: stop them with services.sh stop [--all].
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

WORKERS_DIR="$SIGHTLINE_STATE/workers"
GRACE="${DOWN_GRACE:-30}"
STAGES="${STAGES:-}"

[[ "$GRACE" =~ ^[0-9]+$ ]] || die "DOWN_GRACE must be a number of seconds, got '$GRACE'"

names=()   # <stage>-<n>
pids=()
for pid_file in "$WORKERS_DIR"/*.pid; do
    [[ -e "$pid_file" ]] || continue
    name="$(basename "$pid_file" .pid)"
    stage="${name%-*}"
    if [[ -n "$STAGES" && " $STAGES " != *" $stage "* ]]; then
        continue
    fi
    pid="$(read_pid "$pid_file")"
    if [[ -n "$pid" ]] && pid_matches "$pid" "sightline-$stage"; then
        names+=("$name")
        pids+=("$pid")
    else
        log "$name: not running (stale pid file removed)"
        rm -f "$pid_file" "$WORKERS_DIR/$name.addr"
    fi
done

if (( ${#pids[@]} == 0 )); then
    log "no workers running"
    exit 0
fi

log "sending SIGTERM to ${#pids[@]} worker(s): ${names[*]}"
for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
done

deadline=$((SECONDS + GRACE))
while :; do
    alive=0
    for pid in "${pids[@]}"; do
        pid_alive "$pid" && alive=$((alive + 1))
    done
    (( alive == 0 )) && break
    if (( SECONDS >= deadline )); then
        for i in "${!pids[@]}"; do
            if pid_alive "${pids[$i]}"; then
                log "${names[$i]} (pid ${pids[$i]}) still running after ${GRACE}s: SIGKILL"
                kill -KILL "${pids[$i]}" 2>/dev/null || true
            fi
        done
        sleep 0.5
        break
    fi
    sleep 0.2
done

rc=0
for i in "${!pids[@]}"; do
    if pid_alive "${pids[$i]}"; then
        log "${names[$i]} (pid ${pids[$i]}) did not exit"
        rc=1
    else
        rm -f "$WORKERS_DIR/${names[$i]}.pid" "$WORKERS_DIR/${names[$i]}.addr"
        log "${names[$i]} stopped"
    fi
done
exit "$rc"

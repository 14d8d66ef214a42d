#!/usr/bin/env bash
# The object-store drill at full size, as an operator would run it: an annotate job of a real
# collection folder through one worker per stage (deploy/local/up.sh, debug build), with the
# local SeaweedFS stopped AFTER seconds into the job and started again OUTAGE seconds later.
# Prints one JSON line: images, outcomes, this job's dead letters per stage (and how many are
# `exhausted`, i.e. spent on the outage), the seconds from the restart to the job's end, and
# each worker's peak resident memory.
#
#   tests/drills/store-outage.sh [COLLECTIONS]     default ../shared/data/annotate/collections
#
# Environment: AFTER=25 OUTAGE=30 TIMEOUT=1800; OUTAGE=0 runs the same job without a fault (the
# baseline); RECORDS=FILE writes the job's records there (to compare two runs). Needs `cargo build --workspace --bins` and
# `models/fetch.sh`; stops the workers it started (down.sh) at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
DATA="${1:-$ROOT/../shared/data/annotate/collections}"
AFTER="${AFTER:-25}" OUTAGE="${OUTAGE:-30}" TIMEOUT="${TIMEOUT:-1800}"
STAGES="ingest dedup detect embed cluster index"
[[ -d "$DATA" ]] || { echo "no folder $DATA" >&2; exit 2; }

eval "$(deploy/local/services.sh start)"
eval "$(models/fetch.sh)"
export SIGHTLINE_STATE="${SIGHTLINE_STATE:-$HOME/.local/state/sightline}"
SL="${CARGO_TARGET_DIR:-$ROOT/target}/debug/sightline"
STAGES="$STAGES" deploy/local/up.sh >&2
trap 'deploy/local/down.sh >&2 || true; deploy/local/services.sh start >/dev/null 2>&1 || true' EXIT

job="$("$SL" submit annotate "$DATA" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"])')"
echo "job $job submitted; the object store goes down in ${AFTER}s for ${OUTAGE}s" >&2
sleep "$AFTER"
at_stop="$("$SL" status "$job" --json)"
if (( OUTAGE > 0 )); then
    deploy/local/services.sh stop >&2
    sleep "$OUTAGE"
    deploy/local/services.sh start >/dev/null
fi
restarted=$SECONDS
while :; do
    status="$("$SL" status "$job" --json 2>/dev/null || echo '{}')"
    if python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1]).get("complete") else 1)' "$status"; then
        break
    fi
    (( SECONDS - restarted < TIMEOUT )) || { echo "job not complete ${TIMEOUT}s after the restart: $status" >&2; break; }
    sleep 2
done
recover=$((SECONDS - restarted))
[[ -z "${RECORDS:-}" ]] || "$SL" results "$job" --json >"$RECORDS"
# Peak resident memory of each worker so far (VmHWM), in MiB.
peaks="{"
for pidfile in "$SIGHTLINE_STATE"/workers/*.pid; do
    w="$(basename "$pidfile" .pid)"
    kb="$(awk '/^VmHWM:/ {print $2}' "/proc/$(cat "$pidfile")/status" 2>/dev/null || echo 0)"
    peaks+="\"$w\": $(( ${kb:-0} / 1024 )),"
done
peaks="${peaks%,}}"
letters="{"
for s in $STAGES; do
    letters+="\"$s\": $("$SL" dlq list "$s" --json --limit 100000 | python3 -c 'import json,sys; l=[x for x in json.load(sys.stdin) if x.get("job")==sys.argv[1]]; print(json.dumps({"dead": len(l), "exhausted": sum(1 for x in l if x.get("failure_kind") in ("exhausted","timeout"))}))' "$job"),"
done
letters="${letters%,}}"
python3 - "$at_stop" "$status" "$letters" "$recover" "$AFTER" "$OUTAGE" "$peaks" <<'PY'
import json, sys
at_stop, status, letters, recover, after, outage, peaks = sys.argv[1:]
s = json.loads(status)
print(json.dumps({
    "after_s": int(after), "outage_s": int(outage),
    "finished_at_stop": json.loads(at_stop)["status"]["finished"],
    "complete": s.get("complete"), "status": s.get("status"),
    "dead_letters": json.loads(letters),
    "seconds_from_restart_to_done": int(recover),
    "peak_rss_mib": json.loads(peaks),
}))
PY

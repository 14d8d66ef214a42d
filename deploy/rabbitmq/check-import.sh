#!/usr/bin/env bash
# Import deploy/rabbitmq/definitions.json into a RUNNING RabbitMQ, under a
# throwaway vhost, and check that the broker ended up with exactly the
# exchanges, queues (durability, type, every argument), bindings and policies
# the file declares. The vhost is deleted on exit; `/` is never touched.
#
#   deploy/rabbitmq/check-import.sh
#
# Environment:
#   DEFS_VHOST       throwaway vhost (default sightline-defs-test); must not exist yet
#   RABBITMQCTL      rabbitmqctl to use (default rabbitmqctl; the node must be local)
#   IMPORT_TIMEOUT   seconds to wait for the asynchronous import (default 30)
#
# RabbitMQ older than 3.12 does not know the `consumer-timeout` policy key and
# rejects the whole import; on such a broker the key is removed from the temp
# copy (and said so) so that everything else is still checked.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
defs="$here/definitions.json"
vhost="${DEFS_VHOST:-sightline-defs-test}"
ctl="${RABBITMQCTL:-rabbitmqctl}"
timeout="${IMPORT_TIMEOUT:-30}"

die() { echo "check-import.sh: ERROR: $*" >&2; exit 1; }
log() { echo "check-import.sh: $*" >&2; }

[[ "$vhost" != "/" ]] || die "refusing to use the default vhost /"
command -v "$ctl" >/dev/null || die "$ctl not found"
command -v python3 >/dev/null || die "python3 not found"
version="$("$ctl" version 2>/dev/null)" || die "cannot reach the local RabbitMQ node with $ctl"
if "$ctl" -q list_vhosts name | grep -qxF "$vhost"; then
  die "vhost $vhost already exists (left over from an earlier run?); delete it with: $ctl delete_vhost $vhost"
fi

tmp="$(mktemp -d)"
created=0
cleanup() {
  if (( created )); then
    "$ctl" -q delete_vhost "$vhost" >/dev/null 2>&1 || echo "check-import.sh: could not delete vhost $vhost" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The temp copy: every object moved to the throwaway vhost.
python3 - "$defs" "$tmp/defs.json" "$vhost" "$version" <<'PY'
import json, sys
src, dst, vhost, version = sys.argv[1:]
d = json.load(open(src))
d["vhosts"] = [{"name": vhost}]
for key in ("exchanges", "queues", "bindings", "policies"):
    for obj in d.get(key, []):
        obj["vhost"] = vhost
major, minor = (int(x) for x in version.split(".")[:2])
if (major, minor) < (3, 12):
    for p in d.get("policies", []):
        if p["definition"].pop("consumer-timeout", None) is not None:
            print(f"check-import.sh: NOTE: RabbitMQ {version} has no consumer-timeout policy key (3.12+); "
                  f"removed it from policy {p['name']} in the temp copy", file=sys.stderr)
    d["policies"] = [p for p in d.get("policies", []) if p["definition"]]
json.dump(d, open(dst, "w"), indent=1)
PY

# rabbitmqctl may run as the rabbitmq user (Debian's wrapper does): let it read the copy.
chmod 0755 "$tmp"
chmod 0644 "$tmp/defs.json"
log "RabbitMQ $version: importing into throwaway vhost $vhost"
"$ctl" -q add_vhost "$vhost" >/dev/null
created=1
"$ctl" -q import_definitions "$tmp/defs.json" >/dev/null || die "import_definitions refused $defs (see above)"

want_queues="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["queues"]))' "$tmp/defs.json")"
# The import is asynchronous: wait until every queue is there.
for ((i = 0; i < timeout * 2; i++)); do
  have="$("$ctl" -q list_queues -p "$vhost" name 2>/dev/null | grep -c . || true)"
  [[ "$have" -ge "$want_queues" ]] && break
  sleep 0.5
done

"$ctl" -q list_queues -p "$vhost" name durable auto_delete type arguments --formatter json >"$tmp/queues.json"
"$ctl" -q list_exchanges -p "$vhost" name type durable auto_delete internal --formatter json >"$tmp/exchanges.json"
"$ctl" -q list_bindings -p "$vhost" source_name destination_name destination_kind routing_key --formatter json >"$tmp/bindings.json"
"$ctl" -q list_policies -p "$vhost" --formatter json >"$tmp/policies.json"

python3 - "$tmp" <<'PY'
import json, os, sys
tmp = sys.argv[1]
load = lambda name: json.load(open(os.path.join(tmp, name)))
want, errors = load("defs.json"), []

# Queues: name, durability, type, and every argument with its AMQP type.
types = {str: "longstr", int: "long", bool: "bool"}
got_q = {q["name"]: q for q in load("queues.json")}
want_q = {q["name"]: q for q in want["queues"]}
if set(got_q) != set(want_q):
    errors.append(f"queues differ: missing {sorted(set(want_q) - set(got_q))}, extra {sorted(set(got_q) - set(want_q))}")
for name, w in sorted(want_q.items()):
    g = got_q.get(name)
    if g is None:
        continue
    args = {k: (t, v) for k, t, v in g["arguments"]}
    expect = {k: (types[type(v)], v) for k, v in w["arguments"].items()}
    if args != expect:
        errors.append(f"queue {name}: broker has arguments {args}, file says {expect}")
    if g["durable"] != w["durable"] or g["auto_delete"] != w["auto_delete"]:
        errors.append(f"queue {name}: durable/auto_delete {g['durable']}/{g['auto_delete']}")
    if g["type"] != w["arguments"].get("x-queue-type", "classic"):
        errors.append(f"queue {name}: broker made it a {g['type']} queue")

# Exchanges (the broker's own amq.* and default exchange are ignored).
got_x = {x["name"]: x for x in load("exchanges.json") if x["name"] and not x["name"].startswith("amq.")}
want_x = {x["name"]: x for x in want["exchanges"]}
if set(got_x) != set(want_x):
    errors.append(f"exchanges differ: broker {sorted(got_x)}, file {sorted(want_x)}")
for name, w in want_x.items():
    g = got_x.get(name)
    if g and any(g[k] != w[k] for k in ("type", "durable", "auto_delete", "internal")):
        errors.append(f"exchange {name}: broker {g}, file {w}")

# Bindings (the implicit default-exchange bindings are ignored).
got_b = {(b["source_name"], b["destination_name"], b["destination_kind"], b["routing_key"])
         for b in load("bindings.json") if b["source_name"]}
want_b = {(b["source"], b["destination"], b["destination_type"], b["routing_key"]) for b in want["bindings"]}
if got_b != want_b:
    errors.append(f"bindings differ: missing {sorted(want_b - got_b)}, extra {sorted(got_b - want_b)}")

# Policies.
got_p = {p["name"]: p for p in load("policies.json")}
for w in want.get("policies", []):
    g = got_p.get(w["name"])
    if g is None:
        errors.append(f"policy {w['name']} missing")
        continue
    definition = g["definition"] if isinstance(g["definition"], dict) else json.loads(g["definition"])
    if g["pattern"] != w["pattern"] or definition != w["definition"] or g["apply-to"] != w["apply-to"]:
        errors.append(f"policy {w['name']}: broker {g}, file {w}")

if errors:
    print("check-import.sh: FAILED", *errors, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"check-import.sh: ok: {len(want_x)} exchanges, {len(want_q)} queues, {len(want_b)} bindings, "
      f"{len(want.get('policies', []))} policies imported as declared", file=sys.stderr)
PY

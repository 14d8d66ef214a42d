# shellcheck shell=bash
# Helpers shared by services.sh, up.sh and down.sh. Source it; do not run it.

SIGHTLINE_STATE="${SIGHTLINE_STATE:-$HOME/.local/state/sightline}"
SIGHTLINE_CACHE="${SIGHTLINE_CACHE:-$HOME/.cache/sightline}"

# log MESSAGE...: progress to stderr (stdout is reserved for machine-readable output)
log() { printf '%s %s\n' "[$(date +%H:%M:%S)]" "$*" >&2; }

# die MESSAGE...: print an error to stderr and exit 1
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# port_listening PORT: true when something listens on TCP PORT (any address)
port_listening() {
    local port="$1"
    if command -v ss >/dev/null 2>&1; then
        [[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]
    else
        tcp_open 127.0.0.1 "$port"
    fi
}

# port_listeners PORT: the ss lines (with processes) of the listeners on PORT
port_listeners() {
    ss -Hltnp "sport = :$1" 2>/dev/null || true
}

# tcp_open HOST PORT: true when a TCP connection to HOST:PORT succeeds within 1 s
tcp_open() {
    # shellcheck disable=SC2016 # $1/$2 expand in the child shell
    timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# pid_alive PID: true when PID is a running (non-zombie) process
pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ "$state" != "Z" ]]
}

# read_pid FILE: print the pid stored in FILE, or nothing
read_pid() {
    [[ -f "$1" ]] || return 0
    local pid
    pid="$(tr -dc '0-9' <"$1")"
    printf '%s' "$pid"
}

# pid_matches PID PATTERN: true when the command line of PID contains PATTERN
# (guards against a pid file whose pid was reused by another process)
pid_matches() {
    local pid="$1" pattern="$2" cmdline
    pid_alive "$pid" || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$pattern"* ]]
}

# stop_pid PID NAME [GRACE_SECONDS]: SIGTERM, wait up to GRACE_SECONDS (default 30), then SIGKILL
stop_pid() {
    local pid="$1" name="$2" grace="${3:-30}" waited=0
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do
        if (( waited >= grace * 10 )); then
            log "$name (pid $pid) still running after ${grace}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    if pid_alive "$pid"; then
        log "$name (pid $pid) did not exit"
        return 1
    fi
    return 0
}

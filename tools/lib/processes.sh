# Shared by the load tools (tools/*-load.sh): processes started in the background and
# stopped on exit, bounded waits, and /proc readings. Source it after setting `tmp` (the
# temporary directory), `KEEP` (1: keep it) and a `log` function; add each background
# process's PID to `pids`.

pids=()

stop_pid() { # PID: SIGTERM, up to 15 s, then SIGKILL
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "process $pid did not stop after SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        stop_pid "$pid"
    done
    if [[ $KEEP == 1 ]]; then
        log "kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s, fails after SECONDS.
wait_for() {
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 5; i++)); do
        if "$@" 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    echo "error: timed out after ${seconds}s waiting for $what" >&2
    return 1
}

alive() { kill -0 "$1" 2>/dev/null; }

# A free loopback port (the kernel's choice; released just before use).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

cpu_ticks() { # PID → utime+stime in clock ticks (fields 14 and 15; comm may hold spaces)
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    awk '{print $12 + $13}' <<<"$stat"
}
status_kb() { awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/status"; } # PID KEY
now() { date +%s.%N; }
calc() { awk "BEGIN {printf \"%.${2:-1}f\", ($1)}"; } # EXPR [DECIMALS]
# The whole machine's busy and idle ticks (/proc/stat), to show what else was running.
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit}' /proc/stat; }

#!/usr/bin/env bash
# Alert-ingest load measurement: how many alerts a second incidentd's `POST /api/v2/alerts`
# takes, and how many the real Alertmanager's takes, pushed the same way by the same
# generator (examples/alert_load.rs) on the same machine. A measurement, not a test: it
# prints one table and asserts nothing.
#
#   tools/alert-load.sh                    # 10 s per case, about 2 minutes
#   SECONDS_PER_CASE=30 tools/alert-load.sh
#   CASES="64:1" ALERTMANAGER=0 tools/alert-load.sh        # incidentd at 64 connections only
#
# Environment:
#   SECONDS_PER_CASE  how long the generator pushes in each case (10)
#   CASES             space-separated CONNECTIONS:BATCH cases ("1:1 8:1 64:1 8:256")
#   KEYS              0: every alert is a new label set; N > 0: the generator cycles over N
#                     label sets, so that after the first round each alert refreshes one the
#                     server holds, as Prometheus re-sending its firing alerts does (0)
#   ALERTMANAGER      1: measure prometheus-alertmanager too; 0: incidentd only (1)
#   BIN               a directory with incidentd and examples/alert_load, built elsewhere (an
#                     older commit, to compare): nothing is built then
#   KEEP=1            keep the temp dir (configs, logs, stores)
#   STORES            incidentd's stores to measure, in the same run: "redb" (the default),
#                     "postgres", or "redb postgres" (a fresh database per case on the server
#                     named by INCIDENTD_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres)
#
# Each case runs against a server started for it (incidentd: a temp config and store, open
# mode on 127.0.0.1, release build; Alertmanager: a temp --storage.path, clustering off, one
# receiver with no integrations), so no case inherits the alerts of the one before. A case
# pushes for SECONDS_PER_CASE with CONNECTIONS workers, each on its own keep-alive connection
# sending its next request when the last is answered (a closed loop), every request a JSON
# array of BATCH alerts. The server's CPU (utime+stime from /proc/PID/stat) is read around
# the case. Everything listens on 127.0.0.1 only, every wait is bounded, and every process
# started here is stopped on exit.
set -euo pipefail

SECONDS_PER_CASE=${SECONDS_PER_CASE:-10}
CASES=${CASES:-"1:1 8:1 64:1 8:256"}
KEYS=${KEYS:-0}
ALERTMANAGER=${ALERTMANAGER:-1}
BIN=${BIN:-}
KEEP=${KEEP:-0}
STORES=${STORES:-redb}
PGADMIN=${INCIDENTD_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
for store in $STORES; do
    [[ $store == redb || $store == postgres ]] || { echo "error: STORES holds redb and/or postgres (got '$store')" >&2; exit 2; }
done

for name in SECONDS_PER_CASE KEYS ALERTMANAGER; do
    if ! [[ ${!name} =~ ^[0-9]+$ ]] || { [[ $name == SECONDS_PER_CASE ]] && ((${!name} < 1)); }; then
        echo "error: $name must be a non-negative integer, SECONDS_PER_CASE at least 1 (got '${!name}')" >&2
        exit 2
    fi
done
for case in $CASES; do
    if ! [[ $case =~ ^[1-9][0-9]*:[1-9][0-9]*$ ]]; then
        echo "error: CASES holds CONNECTIONS:BATCH pairs of positive integers (got '$case')" >&2
        exit 2
    fi
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
release=${BIN:-$repo/target/release}
examples=${BIN:-$release/examples}
tick_hz=$(getconf CLK_TCK)

log() { printf '[alert-load %s] %s\n' "$(date +%T)" "$*" >&2; }

# ---------------------------------------------------------------------------------------
# Processes and cleanup.

tmp=$(mktemp -d "${TMPDIR:-/tmp}/alert-load.XXXXXX")
# shellcheck source=lib/processes.sh
source "$repo/tools/lib/processes.sh"

# ---------------------------------------------------------------------------------------
# Build and install.

if [[ -z $BIN ]]; then
    log "building (cargo build --release --example alert_load --bin incidentd)"
    cargo build --release --example alert_load --bin incidentd
fi

alertmanager=$(command -v prometheus-alertmanager || true)
if ((ALERTMANAGER)) && [[ -z $alertmanager ]]; then
    log "installing prometheus-alertmanager with apt"
    sudo=()
    ((EUID != 0)) && sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-alertmanager >"$tmp/apt.log" 2>&1 || {
        "${sudo[@]}" apt-get update >>"$tmp/apt.log" 2>&1
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-alertmanager >>"$tmp/apt.log" 2>&1
    }
    alertmanager=$(command -v prometheus-alertmanager)
fi
if ((ALERTMANAGER)); then
    alertmanager_version=$("$alertmanager" --version 2>&1 | head -n1)
fi
incidentd_version=$("$release/incidentd" --version 2>/dev/null | head -n1 || echo incidentd)

# ---------------------------------------------------------------------------------------
# The servers: start_SERVER DIR sets server_pid and server_url.

start_incidentd() { start_incidentd_on redb "$1"; }
start_incidentd-pg() { start_incidentd_on postgres "$1"; }

# Each case's database is dropped after the case (drop_database) and, should the script
# stop early, at exit (with FORCE: whatever still holds a connection).
databases=()
drop_databases() {
    for db in "${databases[@]}"; do
        psql -q "$PGADMIN" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    databases=()
}
trap 'status=$?; drop_databases; (exit $status); cleanup' EXIT

start_incidentd_on() {
    local store=$1 dir=$2 port db
    mkdir -p "$dir"
    # Open mode (no tokens) is allowed on loopback only; no rules: alerts are the load.
    if [[ $store == postgres ]]; then
        db="incidentd_load_$$_${#databases[@]}"
        psql -q "$PGADMIN" -c "CREATE DATABASE $db" >/dev/null
        databases+=("$db")
        export INCIDENTD_LOAD_DATABASE_URL="${PGADMIN%/*}/$db"
        printf '%s\n' "listen: 127.0.0.1:0" "storage: {postgres: {url_env: INCIDENTD_LOAD_DATABASE_URL}}" \
            "rule_files: []" >"$dir/incidentd.yaml"
    else
        printf '%s\n' "listen: 127.0.0.1:0" "storage: {path: data/incidentd.redb}" "rule_files: []" \
            >"$dir/incidentd.yaml"
    fi
    RUST_LOG=info "$release/incidentd" serve --config "$dir/incidentd.yaml" >"$dir/incidentd.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    wait_for 60 "incidentd to start" grep -q 'incidentd started' "$dir/incidentd.log" || {
        tail -n 20 "$dir/incidentd.log" >&2
        exit 1
    }
    port=$(sed -n 's/.*incidentd started.*listen=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/incidentd.log" | head -n1)
    server_url="http://127.0.0.1:$port"
}

start_alertmanager() {
    local dir=$1 port
    mkdir -p "$dir"
    # One receiver with no integrations: Alertmanager groups and dispatches, sends nothing.
    printf '%s\n' "route: {receiver: blackhole}" "receivers: [{name: blackhole}]" >"$dir/alertmanager.yml"
    port=$(free_port)
    "$alertmanager" --config.file="$dir/alertmanager.yml" --storage.path="$dir/data" \
        --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >"$dir/alertmanager.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    server_url="http://127.0.0.1:$port"
    wait_for 30 "alertmanager to start" curl -fsS --max-time 1 -o /dev/null "$server_url/-/ready" || {
        tail -n 20 "$dir/alertmanager.log" >&2
        exit 1
    }
}

# ---------------------------------------------------------------------------------------
# The cases: run_case SERVER CONNECTIONS BATCH prints one table row.

results=()
run_case() {
    local server=$1 connections=$2 batch=$3 dir out cpu0 cpu1 t0 t1 busy0 idle0 busy1 idle1
    dir="$tmp/$server-$connections-$batch"
    "start_$server" "$dir"
    log "$server: $connections connection(s), $batch alert(s) a request, ${SECONDS_PER_CASE}s (pid $server_pid, $server_url)"
    cpu0=$(cpu_ticks "$server_pid")
    read -r busy0 idle0 < <(machine_ticks)
    t0=$(now)
    out=$(timeout $((SECONDS_PER_CASE + 60)) "$examples/alert_load" "$server_url/api/v2/alerts" \
        "$connections" "$batch" "$SECONDS_PER_CASE" "$KEYS" "$server-$connections-$batch" 2>"$dir/generator.err") || {
        echo "error: the generator failed against $server:" >&2
        cat "$dir/generator.err" >&2
        exit 1
    }
    t1=$(now)
    read -r busy1 idle1 < <(machine_ticks)
    cpu1=$(cpu_ticks "$server_pid")
    kill -0 "$server_pid" 2>/dev/null || { echo "error: $server exited during the case; see $dir" >&2; KEEP=1; exit 1; }
    stop_pid "$server_pid"
    drop_databases
    [[ -s $dir/generator.err ]] && sed "s/^/  [$server] /" "$dir/generator.err" >&2
    field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$out"; }
    local generator_ticks
    generator_ticks=$(field cpu_ticks)
    [[ $generator_ticks =~ ^[0-9]+$ ]] || generator_ticks=0
    results+=("$(printf '  %-13s %5s %6s %12s %12s %9s %9s %9s %8s %9s %8s' \
        "$server" "$connections" "$batch" \
        "$(calc "$(field alerts_per_s)" 0)" "$(calc "$(field requests_per_s)" 0)" \
        "$(field p50_ms)" "$(field p99_ms)" "$(field errors)" \
        "$(calc "100 * ($cpu1 - $cpu0) / $tick_hz / ($t1 - $t0)" 0)" \
        "$(calc "100 * $generator_ticks / $tick_hz / ($t1 - $t0)" 0)" \
        "$(calc "100 * $(nproc) * ($busy1 - $busy0) / ($busy1 - $busy0 + $idle1 - $idle0)" 0)")")
}

for case in $CASES; do
    for store in $STORES; do
        if [[ $store == redb ]]; then
            run_case incidentd "${case%%:*}" "${case##*:}"
        else
            run_case incidentd-pg "${case%%:*}" "${case##*:}"
        fi
    done
done
if ((ALERTMANAGER)); then
    for case in $CASES; do
        run_case alertmanager "${case%%:*}" "${case##*:}"
    done
fi

# ---------------------------------------------------------------------------------------
# Report (stdout).

echo
echo "alert load: POST /api/v2/alerts for ${SECONDS_PER_CASE}s per case, $( ((KEYS)) && echo "cycling over $KEYS label sets" || echo "every alert a new label set"), a fresh server per case, $(nproc) CPUs"
echo "  incidentd: $incidentd_version (release, open mode; incidentd: redb store, incidentd-pg: PostgreSQL on loopback, one replica)"
((ALERTMANAGER)) && echo "  alertmanager: $alertmanager_version (clustering off, a receiver with no integrations)"
echo
printf '  %-13s %5s %6s %12s %12s %9s %9s %9s %8s %9s %8s\n' server conns batch "alerts/s" "requests/s" "p50 ms" "p99 ms" errors "CPU %" "generator" "machine"
printf '%s\n' "${results[@]}"
echo
echo "  CPU %: the server's utime+stime over the case (100 = one core busy); generator: the load"
echo "  generator's (one thread), likewise; machine: the whole machine busy, % of $(($(nproc) * 100)), both"
echo "  and anything else running included. Server and generator share the machine's CPUs."

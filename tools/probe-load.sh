#!/usr/bin/env bash
# Probe-load measurement: what N HTTP probes at a 10 s interval cost incidentd, and what the
# same probes cost prometheus-blackbox-exporter, in the same run against the same loopback
# target. A measurement, not a test: it prints figures and asserts nothing.
#
#   tools/probe-load.sh                     # 10,000 probes; windows at 30 s and 210 s, 60 s each
#   PROBES=2000 STEADY=0 WINDOW=30 tools/probe-load.sh     # quick: one window after the warm-up
#   PROBES=100000 INTERVAL=60 WARMUP=75 STEADY=0 BLACKBOX=0 tools/probe-load.sh   # 100,000 at 60 s
#
# Environment (seconds unless noted):
#   PROBES       probes, one rule each (10000)
#   INTERVAL     probe interval (10)
#   WARMUP       start of the first incidentd window, after incidentd started (30: every probe
#                has run at least once, its first run being jittered within one interval)
#   STEADY       start of the steady-state window (21 × INTERVAL; 0: measure only at WARMUP).
#                A new probe's detector is written to the store on each of its first 20
#                results (the default flap window fills), so the window at WARMUP shows that
#                start-up cost and the one at STEADY what every later interval costs.
#   WINDOW       length of each measurement window (60)
#   BB_WARMUP    blackbox_exporter warm-up before its window (5)
#   CONCURRENCY  blackbox requests in flight at most (256)
#   SCRAPE       scrape incidentd's /metrics this often while it runs, as Prometheus would
#                (15; 0: never, except the two reads around each window)
#   BLACKBOX     1: phase 2 runs blackbox_exporter for comparison; 0: incidentd only (1)
#   RULES        1: one rule per probe; 0: probes only, to tell the rules' share (1)
#   READS        timed GETs of /metrics after the last window (5)
#   BIN          a directory with incidentd and the two examples, built elsewhere (an older
#                commit, to compare): nothing is built then
#   KEEP=1       keep the temp dir (configs, logs)
#
# Phase 1: the target and incidentd (N probes, one rule `[STATUS] != 200` each). First the
# time `incidentd check` takes on the same files (loading the configuration, the first part
# of start-up), then the time from `incidentd serve` to its "incidentd started" log line
# (ready: listening, every probe scheduled) and its RSS then. In each window: incidentd's CPU
# (utime+stime of /proc/PID/stat), its RSS (VmRSS, once a second, peak), the probes it ran
# (delta of incidentd_probe_duration_seconds_count on /metrics, summed over its series; the
# scrapes are outside the CPU window) and how late runs started against their schedule (the
# window's increase of incidentd_probe_schedule_lag_seconds: mean, and the bucket holding
# the 99th percentile). After the last window, READS timed GETs of /metrics: size, median
# and slowest time. incidentd is then stopped.
# Phase 2: blackbox_exporter (module http_2xx) on the same target, driven at N/INTERVAL
# probes per second by examples/blackbox_driver.rs (blackbox only probes when scraped: the
# driver plays Prometheus), for one window; its CPU and RSS are sampled the same way, and
# a probe is a /probe request answered.
# Everything listens on 127.0.0.1 only, every wait is bounded, and every process started
# here is stopped on exit.
set -euo pipefail

PROBES=${PROBES:-10000}
INTERVAL=${INTERVAL:-10}
WARMUP=${WARMUP:-30}
STEADY=${STEADY:-$((21 * INTERVAL))}
WINDOW=${WINDOW:-60}
BB_WARMUP=${BB_WARMUP:-5}
CONCURRENCY=${CONCURRENCY:-256}
SCRAPE=${SCRAPE:-15}
BLACKBOX=${BLACKBOX:-1}
RULES=${RULES:-1}
READS=${READS:-5}
BIN=${BIN:-}
KEEP=${KEEP:-0}

for name in PROBES INTERVAL WARMUP STEADY WINDOW BB_WARMUP CONCURRENCY SCRAPE BLACKBOX RULES READS; do
    if ! [[ ${!name} =~ ^[0-9]+$ ]] || { [[ ! $name =~ ^(STEADY|SCRAPE|BLACKBOX|RULES)$ ]] && ((${!name} < 1)); }; then
        echo "error: $name must be a positive integer (got '${!name}')" >&2
        exit 2
    fi
done
if ((WARMUP < INTERVAL + 2)); then
    echo "warning: WARMUP=${WARMUP}s is shorter than one interval (${INTERVAL}s) plus the first-run jitter; some probes may not have started" >&2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
release=${BIN:-$repo/target/release}
examples=${BIN:-$release/examples}
tick_hz=$(getconf CLK_TCK)

log() { printf '[probe-load %s] %s\n' "$(date +%T)" "$*" >&2; }

# ---------------------------------------------------------------------------------------
# Processes and cleanup.

tmp=$(mktemp -d "${TMPDIR:-/tmp}/probe-load.XXXXXX")
# shellcheck source=lib/processes.sh
source "$repo/tools/lib/processes.sh"

# window_begin PID / window_end PID: CPU ticks of PID and of the target, the machine's
# ticks and the time, at both ends of a measurement window.
window_begin() {
    w_t0=$(now)
    w_target0=$(cpu_ticks "$target_pid")
    read -r w_busy0 w_idle0 < <(machine_ticks)
    w_cpu0=$(cpu_ticks "$1")
}
window_end() {
    w_cpu1=$(cpu_ticks "$1")
    read -r w_busy1 w_idle1 < <(machine_ticks)
    w_target1=$(cpu_ticks "$target_pid")
    w_t1=$(now)
}

# figures PREFIX RUNS RSS_PEAK_KB PID: sets PREFIX_{wall,cpu_s,rate,cpu_pct,us,rss,hwm,
# target_pct,machine_pct,runs} from the last window.
figures() {
    local p=$1 runs=$2 rss=$3 pid=$4 wall cpu_s
    wall=$(calc "$w_t1 - $w_t0" 3)
    cpu_s=$(calc "($w_cpu1 - $w_cpu0) / $tick_hz" 2)
    printf -v "${p}_runs" '%s' "$runs"
    printf -v "${p}_wall" '%s' "$wall"
    printf -v "${p}_cpu_s" '%s' "$cpu_s"
    printf -v "${p}_rate" '%s' "$(calc "$runs / $wall" 1)"
    printf -v "${p}_cpu_pct" '%s' "$(calc "100 * $cpu_s / $wall" 1)"
    printf -v "${p}_us" '%s' "$(calc "$runs > 0 ? 1e6 * $cpu_s / $runs : 0" 1)"
    printf -v "${p}_rss" '%s' "$(calc "$rss / 1024" 1)"
    printf -v "${p}_hwm" '%s' "$(calc "$(status_kb "$pid" VmHWM) / 1024" 1)"
    printf -v "${p}_target_pct" '%s' "$(calc "100 * ($w_target1 - $w_target0) / $tick_hz / $wall" 1)"
    printf -v "${p}_machine_pct" '%s' "$(calc "100 * $(nproc) * ($w_busy1 - $w_busy0) / ($w_busy1 - $w_busy0 + $w_idle1 - $w_idle0)" 0)"
}

# sample_rss PID SECONDS [WHILE_PID]: samples VmRSS once a second for SECONDS (or while
# WHILE_PID lives, at most SECONDS); prints the peak in kB.
sample_rss() {
    local pid=$1 seconds=$2 while_pid=${3:-} peak=0 rss i
    for ((i = 0; i < seconds; i++)); do
        [[ -n $while_pid ]] && ! alive "$while_pid" && break
        rss=$(status_kb "$pid" VmRSS)
        ((rss > peak)) && peak=$rss
        sleep 1
    done
    rss=$(status_kb "$pid" VmRSS)
    ((rss > peak)) && peak=$rss
    echo "$peak"
}

# ---------------------------------------------------------------------------------------
# Build and install.

if [[ -z $BIN ]]; then
    log "building (cargo build --release --examples --bin incidentd)"
    cargo build --release --examples --bin incidentd
fi

blackbox=$(command -v prometheus-blackbox-exporter || true)
if ((BLACKBOX)) && [[ -z $blackbox ]]; then
    log "installing prometheus-blackbox-exporter with apt"
    sudo=()
    ((EUID != 0)) && sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-blackbox-exporter >"$tmp/apt.log" 2>&1 || {
        "${sudo[@]}" apt-get update >>"$tmp/apt.log" 2>&1
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-blackbox-exporter >>"$tmp/apt.log" 2>&1
    }
    blackbox=$(command -v prometheus-blackbox-exporter)
fi
if ((BLACKBOX)); then
    blackbox_version=$("$blackbox" --version 2>&1 | head -n1)
fi

# ---------------------------------------------------------------------------------------
# The target.

"$examples/load_target" 0 $((WARMUP + STEADY + 4 * WINDOW + 600)) >"$tmp/target.log" 2>&1 &
target_pid=$!
pids+=("$target_pid")
wait_for 10 "the load target" grep -q 'listening on' "$tmp/target.log"
target_port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/target.log")
curl -fsS --max-time 2 "http://127.0.0.1:$target_port/health?n=0" >/dev/null
log "target on 127.0.0.1:$target_port (pid $target_pid)"

# ---------------------------------------------------------------------------------------
# Phase 1: incidentd.

mkdir -p "$tmp/incidentd/rules"
cat >"$tmp/incidentd/incidentd.yaml" <<EOF
listen: 127.0.0.1:0
storage:
  path: data/incidentd.redb
rule_files:
  - rules/*.yaml
EOF
"$repo/tools/load-rules.sh" "$PROBES" "$target_port" "$INTERVAL" "$RULES" >"$tmp/incidentd/rules/load.yaml"

rule_file_mb=$(calc "$(stat -c %s "$tmp/incidentd/rules/load.yaml") / 1048576" 1)
# Loading the configuration is the first part of start-up: `check` does only that.
check_t0=$(now)
"$release/incidentd" check --config "$tmp/incidentd/incidentd.yaml" >&2
config_load_s=$(calc "$(now) - $check_t0" 2)
log "incidentd check: ${config_load_s}s for a ${rule_file_mb} MB rule file"

started_at=$(now)
RUST_LOG=info "$release/incidentd" serve --config "$tmp/incidentd/incidentd.yaml" >"$tmp/incidentd.log" 2>&1 &
incidentd_pid=$!
pids+=("$incidentd_pid")
wait_for 300 "incidentd to start" grep -q 'incidentd started' "$tmp/incidentd.log"
# Ready: the log line's own timestamp (RFC 3339), not when the poll above saw it.
ready_at=$(date -d "$(grep -m1 'incidentd started' "$tmp/incidentd.log" | awk '{print $1}' | sed 's/\x1b\[[0-9;]*m//g')" +%s.%N)
ready_s=$(calc "$ready_at - $started_at" 2)
ready_rss=$(calc "$(status_kb "$incidentd_pid" VmRSS) / 1024" 1)
incidentd_port=$(sed -n 's/.*incidentd started.*listen=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/incidentd.log" | head -n1)
metrics_url="http://127.0.0.1:$incidentd_port/metrics"
log "incidentd on 127.0.0.1:$incidentd_port (pid $incidentd_pid), $PROBES probes every ${INTERVAL}s; ready after ${ready_s}s with ${ready_rss} MB RSS"

# Prometheus scrapes incidentd: its /metrics holds a histogram per probe, and building that
# answer costs CPU and memory, so it is part of the measurement (SCRAPE=0 leaves it out).
if ((SCRAPE > 0)); then
    (
        child=
        trap '[[ -n $child ]] && kill "$child" 2>/dev/null; exit 0' TERM
        for ((i = 0; i < (WARMUP + STEADY + 3 * WINDOW) / SCRAPE + 10; i++)); do
            sleep "$SCRAPE" &
            child=$!
            wait "$child" || true
            curl -fsS --max-time 30 -o /dev/null "$metrics_url" &
            child=$!
            wait "$child" || true
        done
    ) &
    pids+=("$!")
    scraper_pid=$!
fi

# scrape FILE: incidentd's /metrics into FILE. The scrapes are outside the CPU window (a
# scrape of N probes is not free).
scrape() { curl -fsS --max-time 60 -o "$1" "$metrics_url"; }

# probes_run FILE → "<runs> <failing probes>": incidentd_probe_duration_seconds_count summed
# over its series (one per probe, or one in all) and the probes whose last run failed.
probes_run() {
    awk '
        /^incidentd_probe_duration_seconds_count/ {runs += $NF}
        /^incidentd_probe_success\{/ && $NF == 0 {failing++}
        END {printf "%d %d\n", runs, failing}' "$1"
}

# lag FILE0 FILE1 → "<mean ms> <p99 bucket ms>": how late runs started between the two
# scrapes, from incidentd_probe_schedule_lag_seconds; "n/a n/a" where it does not exist.
lag() {
    awk '
        function bound(line) { sub(/.*le="/, "", line); sub(/".*/, "", line); return line }
        FNR == NR && /^incidentd_probe_schedule_lag_seconds_bucket/ {b0[bound($0)] = $NF}
        FNR == NR && /^incidentd_probe_schedule_lag_seconds_sum/ {s0 = $NF}
        FNR == NR && /^incidentd_probe_schedule_lag_seconds_count/ {c0 = $NF}
        FNR != NR && /^incidentd_probe_schedule_lag_seconds_bucket/ {le = bound($0); b1[le] = $NF; order[n++] = le}
        FNR != NR && /^incidentd_probe_schedule_lag_seconds_sum/ {s1 = $NF}
        FNR != NR && /^incidentd_probe_schedule_lag_seconds_count/ {c1 = $NF}
        END {
            count = c1 - c0
            if (n == 0 || count <= 0) { print "n/a n/a"; exit }
            p99 = "n/a"
            for (i = 0; i < n; i++) {
                if (b1[order[i]] - b0[order[i]] >= 0.99 * count) {
                    p99 = order[i] == "+Inf" ? ">max" : sprintf("%g", 1000 * order[i]); break
                }
            }
            printf "%.1f %s\n", 1000 * (s1 - s0) / count, p99
        }' "$1" "$2"
}

# measure_incidentd PREFIX: one window of WINDOW seconds.
measure_incidentd() {
    local runs0 runs1 failing rss
    alive "$incidentd_pid" || { echo "error: incidentd exited; see its log:" >&2; tail -n 20 "$tmp/incidentd.log" >&2; exit 1; }
    scrape "$tmp/metrics0.txt" || { echo "error: could not read $metrics_url" >&2; exit 1; }
    read -r runs0 _ < <(probes_run "$tmp/metrics0.txt")
    window_begin "$incidentd_pid"
    rss=$(sample_rss "$incidentd_pid" "$WINDOW")
    window_end "$incidentd_pid"
    scrape "$tmp/metrics1.txt" || { echo "error: could not read $metrics_url" >&2; exit 1; }
    read -r runs1 failing < <(probes_run "$tmp/metrics1.txt")
    figures "$1" $((runs1 - runs0)) "$rss" "$incidentd_pid"
    printf -v "${1}_failing" '%s' "$failing"
    printf -v "${1}_from" '%s' "$(calc "$w_t0 - $started_at" 0)"
    printf -v "${1}_to" '%s' "$(calc "$w_t1 - $started_at" 0)"
    read -r "${1}_lag_mean" "${1}_lag_p99" < <(lag "$tmp/metrics0.txt" "$tmp/metrics1.txt")
}

# time_metrics: READS sequential GETs of /metrics → "<bytes> <median ms> <max ms>".
time_metrics() {
    local i
    for ((i = 0; i < READS; i++)); do
        curl -fsS --max-time 60 -o /dev/null -w '%{size_download} %{time_total}\n' "$metrics_url"
    done | sort -k2 -g | awk '{bytes = $1; t[NR] = $2} END {printf "%d %.0f %.0f\n", bytes, 1000 * t[int((NR + 1) / 2)], 1000 * t[NR]}'
}

sleep_until() { # SECONDS since incidentd started
    local left
    left=$(calc "$1 - ($(now) - $started_at)" 3)
    if awk "BEGIN {exit !($left > 0)}"; then sleep "$left"; fi
}

have_early=0
if ((STEADY > WARMUP)); then
    sleep_until "$WARMUP"
    log "measuring incidentd for ${WINDOW}s (early: detectors still filling their flap window)"
    measure_incidentd early
    have_early=1
fi
sleep_until "$((STEADY > WARMUP ? STEADY : WARMUP))"
log "measuring incidentd for ${WINDOW}s (steady state)"
measure_incidentd inc
read -r metrics_bytes metrics_ms metrics_max_ms < <(time_metrics)
inc_threads=$(status_kb "$incidentd_pid" Threads)
inc_errors=$(grep -c -E ' (WARN|ERROR) ' "$tmp/incidentd.log" || true)

[[ -n ${scraper_pid:-} ]] && stop_pid "$scraper_pid"
stop_pid "$incidentd_pid"
log "incidentd: $inc_runs probe runs in ${inc_wall}s, ${inc_cpu_s}s CPU; stopped"

# ---------------------------------------------------------------------------------------
# Phase 2: blackbox_exporter.

if ((BLACKBOX)); then
    printf '%s\n' "modules:" "  http_2xx:" "    prober: http" "    timeout: 2s" "    http:" \
        "      preferred_ip_protocol: ip4" >"$tmp/blackbox.yml"
    bb_port=$(free_port)
    "$blackbox" --config.file="$tmp/blackbox.yml" --web.listen-address="127.0.0.1:$bb_port" \
        >"$tmp/blackbox.log" 2>&1 &
    bb_pid=$!
    pids+=("$bb_pid")
    wait_for 20 "blackbox_exporter to start" curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$bb_port/-/healthy"
    log "$blackbox_version on 127.0.0.1:$bb_port (pid $bb_pid)"

    bb_rate_target=$(calc "$PROBES / $INTERVAL" 3)
    driver=("$examples/blackbox_driver" "$bb_port" "$target_port" "$bb_rate_target")
    log "warming blackbox up for ${BB_WARMUP}s"
    timeout $((BB_WARMUP + 20)) "${driver[@]}" "$BB_WARMUP" "$PROBES" "$CONCURRENCY" >"$tmp/driver-warmup.out"

    log "measuring blackbox_exporter for ${WINDOW}s at $bb_rate_target probes/s"
    window_begin "$bb_pid"
    timeout $((WINDOW + 30)) "${driver[@]}" "$WINDOW" "$PROBES" "$CONCURRENCY" >"$tmp/driver.out" &
    driver_pid=$!
    pids+=("$driver_pid")
    bb_rss_peak=$(sample_rss "$bb_pid" $((WINDOW + 30)) "$driver_pid")
    wait "$driver_pid" || { echo "error: the blackbox driver failed" >&2; exit 1; }
    window_end "$bb_pid"
    bb_threads=$(status_kb "$bb_pid" Threads)
    read -r bb_completed bb_failing < <(sed -n 's/.*completed=\([0-9]*\) failed=\([0-9]*\).*/\1 \2/p' "$tmp/driver.out")
    figures bb $((bb_completed + bb_failing)) "$bb_rss_peak" "$bb_pid"
fi

# ---------------------------------------------------------------------------------------
# Report (stdout).

row() { # LABEL PREFIX
    local p=$2 v
    printf '  %-34s' "$1"
    for v in rate cpu_pct us rss hwm failing; do
        local name="${p}_$v"
        printf ' %12s' "${!name}"
    done
    printf '\n'
}
expected=$(calc "$PROBES / $INTERVAL" 1)
echo
echo "probe load: $PROBES HTTP probes every ${INTERVAL}s (expected $expected probes/s), $( ((RULES)) && echo "one rule each" || echo "no rules"), windows of ${WINDOW}s, $(nproc) CPUs"
echo "  incidentd: /metrics scraped every ${SCRAPE}s (0: only around the windows)"
if ((BLACKBOX)); then
    echo "  blackbox: $blackbox_version, driven at $bb_rate_target probes/s with at most $CONCURRENCY in flight"
fi
echo
printf '  %-34s %12s %12s %12s %12s %12s %12s\n' "" "probes/s" "CPU % 1 core" "CPU µs/probe" "peak RSS MB" "VmHWM MB" "failing"
if ((have_early)); then
    row "incidentd, t=${early_from}-${early_to}s (early)" early
fi
if ((STEADY > 0)); then
    row "incidentd, t=${inc_from}-${inc_to}s (steady)" inc
else
    row "incidentd, t=${inc_from}-${inc_to}s" inc
fi
if ((BLACKBOX)); then
    row "blackbox_exporter" bb
fi
echo
echo "  start-up: ready ${ready_s}s after \`serve\` (RSS ${ready_rss} MB then); \`check\` alone (config load, ${rule_file_mb} MB rule file) ${config_load_s}s"
echo "  /metrics: ${metrics_bytes} bytes, median ${metrics_ms} ms, slowest ${metrics_max_ms} ms of $READS GETs after the last window"
echo "  schedule lag in the last window: mean ${inc_lag_mean} ms, 99 % within ${inc_lag_p99} ms (bucket bound)"
if ((BLACKBOX)); then
    ratio=$(calc "$inc_us > 0 ? $bb_us / $inc_us : 0" 1)
    echo "  blackbox µs/probe ÷ incidentd µs/probe (steady) = $ratio   (goal: ≥ 5)"
fi
echo "  target CPU % during the last incidentd window: ${inc_target_pct}%$( ((BLACKBOX)) && echo ", blackbox window ${bb_target_pct}%")"
echo "  whole machine busy, % of $(($(nproc) * 100)): incidentd window ${inc_machine_pct}%$( ((BLACKBOX)) && echo ", blackbox window ${bb_machine_pct}%") (incl. the target$( ((BLACKBOX)) && echo " and the driver"))"
echo "  threads: incidentd $inc_threads$( ((BLACKBOX)) && echo ", blackbox $bb_threads"); incidentd log: $inc_errors WARN/ERROR line(s) (1 expected: the open-API warning)"

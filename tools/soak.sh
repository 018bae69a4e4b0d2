#!/usr/bin/env bash
# Soak test: incidentd (release) with PROBES HTTP probes, a steady alert stream and API reads
# for DURATION, printing every REPORT seconds what it costs (RSS, CPU, read latency, probe
# schedule lag) and what it did (alerts, incidents, webhook events), then a summary that
# checks the counts. A measurement with two checks: it exits 1 and says MISMATCH when the
# alerts answered 2xx are not the alerts incidentd counted, or the events the store has are
# not the events the webhook receiver got.
#
#   tools/soak.sh                              # 10,000 probes at 10 s, 30 minutes
#   DURATION=5m tools/soak.sh                  # a quick one
#   PROBES=100000 INTERVAL=60 DURATION=5m tools/soak.sh      # 100,000 probes at 60 s
#
# Environment (seconds unless noted):
#   PROBES       probes, one rule each (10000)
#   INTERVAL     probe interval (10)
#   DURATION     how long the load runs: 300, 300s, 5m, 1h (30m)
#   FLAPPING     how many of the probes point at flapping targets (PROBES / 100)
#   FLAP_PERIOD  a flapping target's cycle (30 × INTERVAL); FLAP_DOWN: the part of it the
#                target answers 503 (6 × INTERVAL), each target at its own phase. A rule
#                `[STATUS] == 503` on each opens an incident, which resolves when the target
#                recovers and reopens at its next outage. The defaults keep a probe's
#                state changes under the default flap detection (4 in 20 results).
#   SERVICES     status-page services: probe i gets the label `service: svc-<i mod SERVICES>`
#                (PROBES / 100); 0: no labels, so every probe is a service of its own
#   RATE         alerts a second to POST /api/v2/alerts, one a request (20)
#   KEYS         alert identities (label sets), round-robin (200)
#   ALERT_CYCLE  an identity fires for 3/4 of it, then is resolved (240)
#   READS        API reads a second, in turn GET /api/v1/incidents, one incident, /status.json (5)
#   SCRAPE       GET /metrics this often, as Prometheus would (15)
#   REPORT       a report line this often, a multiple of SCRAPE (60)
#   SETTLE       at most this long at the end for no rule firing and no event pending
#                (5 × INTERVAL + 60)
#   OUT          where the report, the CSV and incidentd's log are kept
#                (target/soak/<date-time>)
#   BIN          a directory with incidentd and the examples, built elsewhere: nothing is built
#   KEEP=1       keep the temp dir (config, rules, store)
#
# It builds release (`cargo build --release --bin incidentd --examples`), starts
# examples/load_target.rs (GET /health → 200), writes a temporary incidentd.yaml with one
# webhook consumer and the rule files (tools/load-rules.sh for the steady probes, the
# flapping ones beside them), starts incidentd, then examples/soak.rs, which serves the
# flapping targets and the webhook receiver, drives the load and prints the report (its
# header says what every column is; README "Soak test" explains how to read it).
# Everything listens on 127.0.0.1 only, every wait is bounded, and every process started
# here is stopped on exit.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=lib/incidentd.sh
source "$repo/tools/lib/incidentd.sh"

PROBES=${PROBES:-10000}
INTERVAL=${INTERVAL:-10}
DURATION=${DURATION:-30m}
duration=$(duration_seconds "$DURATION") || {
    echo "error: DURATION must be like 300, 300s, 5m or 1h (got '$DURATION')" >&2
    exit 2
}
FLAPPING=${FLAPPING:-$((PROBES / 100))}
FLAP_PERIOD=${FLAP_PERIOD:-$((30 * INTERVAL))}
FLAP_DOWN=${FLAP_DOWN:-$((6 * INTERVAL))}
SERVICES=${SERVICES:-$((PROBES / 100))}
RATE=${RATE:-20}
KEYS=${KEYS:-200}
ALERT_CYCLE=${ALERT_CYCLE:-240}
READS=${READS:-5}
SCRAPE=${SCRAPE:-15}
REPORT=${REPORT:-60}
SETTLE=${SETTLE:-$((5 * INTERVAL + 60))}
OUT=${OUT:-$repo/target/soak/$(date +%Y%m%d-%H%M%S)}
BIN=${BIN:-}
KEEP=${KEEP:-0}

for name in PROBES INTERVAL FLAPPING SERVICES FLAP_PERIOD FLAP_DOWN KEYS ALERT_CYCLE SCRAPE REPORT SETTLE; do
    if ! [[ ${!name} =~ ^[0-9]+$ ]] || { [[ ! $name =~ ^(FLAPPING|SERVICES)$ ]] && ((${!name} < 1)); }; then
        echo "error: $name must be a positive integer (got '${!name}')" >&2
        exit 2
    fi
done
for name in RATE READS; do
    if ! [[ ${!name} =~ ^[0-9]+([.][0-9]+)?$ ]]; then
        echo "error: $name must be a number (got '${!name}')" >&2
        exit 2
    fi
done
if ((FLAPPING > PROBES)); then
    echo "error: FLAPPING ($FLAPPING) cannot exceed PROBES ($PROBES)" >&2
    exit 2
fi
if ((FLAP_DOWN >= FLAP_PERIOD || REPORT % SCRAPE != 0)); then
    echo "error: FLAP_DOWN must be shorter than FLAP_PERIOD, and REPORT a multiple of SCRAPE" >&2
    exit 2
fi

targets=${CARGO_TARGET_DIR:-$repo/target}
release=${BIN:-$targets/release}
examples=${BIN:-$release/examples}

log() { printf '[soak %s] %s\n' "$(date +%T)" "$*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
# shellcheck source=lib/processes.sh
source "$repo/tools/lib/processes.sh"
mkdir -p "$OUT"

if [[ -z $BIN ]]; then
    log "building (cargo build --release --bin incidentd --examples)"
    cargo build --release --bin incidentd --examples
fi

# The steady target.
"$examples/load_target" 0 $((duration + SETTLE + 900)) >"$tmp/target.log" 2>&1 &
target_pid=$!
pids+=("$target_pid")
wait_for 10 "the load target" grep -q 'listening on' "$tmp/target.log"
target_port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/target.log")
log "load target on 127.0.0.1:$target_port (pid $target_pid)"

# The soak driver's port (flapping targets, webhook receiver): chosen now, bound by the
# driver once incidentd runs. Until then a flapping probe cannot connect (status 0, not
# 503: no incident) and a webhook delivery is retried.
driver_port=$(free_port)

mkdir -p "$tmp/incidentd/rules"
cat >"$tmp/incidentd/incidentd.yaml" <<EOF
listen: 127.0.0.1:0
storage:
  path: data/incidentd.redb
rule_files:
  - rules/*.yaml
webhooks:
  - name: soak
    url: http://127.0.0.1:$driver_port/hook
    secret_env: SOAK_WEBHOOK_SECRET
EOF
# labels: a `service` label after each probe's name line (tools/load-rules.sh writes none).
labels() {
    awk -v services="$SERVICES" -v offset="$1" '
        {print}
        services > 0 && /^  - name: [a-z]+-[0-9]+$/ && !rules {
            sub(/.*-/, ""); printf "    labels: {service: svc-%d}\n", ($0 + offset) % services
        }
        /^rules:/ {rules = 1}'
}
"$repo/tools/load-rules.sh" $((PROBES - FLAPPING)) "$target_port" "$INTERVAL" 1 | labels 0 >"$tmp/incidentd/rules/load.yaml"
awk -v n="$FLAPPING" -v port="$driver_port" -v interval="$INTERVAL" 'BEGIN {
    if (n == 0) exit
    print "probes:"
    for (i = 0; i < n; i++) {
        printf "  - name: flap-%d\n    interval: %ds\n    timeout: 2s\n", i, interval
        printf "    http: {url: \"http://127.0.0.1:%d/flap?n=%d\"}\n", port, i
    }
    print "rules:"
    for (i = 0; i < n; i++) {
        printf "  - name: flap-%d-down\n    probe: flap-%d\n    when: \x27[STATUS] == 503\x27\n", i, i
        printf "    incident: {title: \x27flap-%d down\x27, category: availability, impact: medium, urgency: medium}\n", i
    }
}' | labels $((PROBES - FLAPPING)) >"$tmp/incidentd/rules/flap.yaml"

export SOAK_WEBHOOK_SECRET="whsec_c29hay1zb2FrLXNvYWstc29hay1zb2FrLXNvYWstc29haw=="
started_at=$(now)
start_incidentd "$release/incidentd" "$tmp/incidentd/incidentd.yaml" "$tmp/incidentd.log" 600 || exit 1
log "incidentd on $incidentd_url (pid $incidentd_pid), $PROBES probes every ${INTERVAL}s ($FLAPPING flapping); ready after $(calc "$(now) - $started_at" 1)s with $(calc "$(status_kb "$incidentd_pid" VmRSS) / 1024" 1) MB RSS"
log "driving for ${duration}s, then settling for at most ${SETTLE}s; report and CSV in $OUT"

status=0
timeout $((duration + SETTLE + 900)) "$examples/soak" \
    --url "$incidentd_url" --pid "$incidentd_pid" --listen "127.0.0.1:$driver_port" \
    --duration "$duration" --rate "$RATE" --keys "$KEYS" --alert-cycle "$ALERT_CYCLE" \
    --reads "$READS" --scrape "$SCRAPE" --report "$REPORT" \
    --flap-period "$FLAP_PERIOD" --flap-down "$FLAP_DOWN" \
    --probes "$PROBES" --interval "$INTERVAL" --flapping "$FLAPPING" \
    --settle "$SETTLE" --clk-tck "$(getconf CLK_TCK)" --csv "$OUT/soak.csv" \
    | tee "$OUT/report.txt" || status=$?

warnings=$(grep -c -E ' (WARN|ERROR) ' "$tmp/incidentd.log" || true)
hwm="(exited)"
alive "$incidentd_pid" && hwm="$(calc "$(status_kb "$incidentd_pid" VmHWM) / 1024" 1) MB"
echo "  incidentd log: $warnings WARN/ERROR line(s) (1 expected: the open-API warning), kept in $OUT/incidentd.log; its peak RSS (VmHWM) $hwm" | tee -a "$OUT/report.txt"
stop_pid "$incidentd_pid"
cp "$tmp/incidentd.log" "$OUT/incidentd.log"
if ((status != 0)); then
    log "the soak driver exited with status $status"
fi
exit "$status"

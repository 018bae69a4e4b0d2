#!/usr/bin/env bash
# Config-load measurement: what loading PROBES HTTP probes (one rule each, from
# tools/load-rules.sh) costs `incidentd check` — peak resident memory and wall time, from
# /usr/bin/time -v — and how long `incidentd serve` then takes until it says it started.
# A measurement, not a test: it prints figures and asserts nothing.
#
#   tools/check-load.sh              # 100,000 probes (a 29 MB rule file)
#   PROBES=10000 tools/check-load.sh
#
# Environment:
#   PROBES      probes, one rule each (100000)
#   INCIDENTD   the binary to measure (default: target/release/incidentd, built first)
#   SERVE=0     measure `check` only
#   KEEP=1      keep the temp dir (config, rule file, logs)
#
# The rule file is tools/probe-load.sh's, its probes pointing at 127.0.0.1:65535 (outside
# Linux's ephemeral ports; nothing should listen there). `serve` listens on 127.0.0.1:0 with a
# temporary store and is stopped (SIGTERM) as soon as it says it started.
set -euo pipefail

PROBES=${PROBES:-100000}
SERVE=${SERVE:-1}
KEEP=${KEEP:-0}
if ! [[ $PROBES =~ ^[0-9]+$ ]]; then
    echo "error: PROBES must be a number (got '$PROBES')" >&2
    exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${INCIDENTD:-} ]]; then
    (cd "$repo" && cargo build --release --bin incidentd >&2)
    INCIDENTD=$repo/target/release/incidentd
fi
if [[ ! -x /usr/bin/time ]]; then
    echo "error: /usr/bin/time is needed (apt-get install time)" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-load.XXXXXX")
serve_pid=
cleanup() {
    if [[ -n $serve_pid ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -KILL "$serve_pid" 2>/dev/null || true
    fi
    if ((KEEP)); then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

mkdir -p "$tmp/rules"
cat >"$tmp/incidentd.yaml" <<'YAML'
listen: 127.0.0.1:0
storage: {path: data/incidentd.redb}
rule_files: [rules/*.yaml]
YAML
"$repo/tools/load-rules.sh" "$PROBES" 65535 10 >"$tmp/rules/load.yaml"
size_mb=$(awk -v b="$(stat -c %s "$tmp/rules/load.yaml")" 'BEGIN {printf "%.1f", b / 1e6}')

/usr/bin/time -v -o "$tmp/time.txt" "$INCIDENTD" check --config "$tmp/incidentd.yaml" >"$tmp/check.out" 2>&1 || {
    cat "$tmp/check.out" >&2
    exit 1
}
rss_mb=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$tmp/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tmp/time.txt")
cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f", u + s}' "$tmp/time.txt")
echo "incidentd check, $PROBES probes and rules ($size_mb MB): max RSS $rss_mb MB, wall $wall, CPU ${cpu}s"

if ((SERVE)); then
    start=$(date +%s.%N)
    RUST_LOG=info "$INCIDENTD" serve --config "$tmp/incidentd.yaml" >"$tmp/serve.log" 2>&1 &
    serve_pid=$!
    for ((i = 0; i < 6000; i++)); do
        grep -q 'incidentd started' "$tmp/serve.log" 2>/dev/null && break
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.05
    done
    end=$(date +%s.%N)
    if ! grep -q 'incidentd started' "$tmp/serve.log"; then
        echo "error: incidentd did not start within 300 s" >&2
        tail -n 20 "$tmp/serve.log" >&2
        exit 1
    fi
    kill -TERM "$serve_pid"
    for ((i = 0; i < 300; i++)); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=
    echo "incidentd serve, $PROBES probes: started after $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') s"
fi

#!/usr/bin/env bash
# Writes a rule file with PROBES HTTP probes, one rule each, to stdout: the load that
# tools/probe-load.sh runs and tools/check-load.sh loads.
#
#   tools/load-rules.sh PROBES [PORT] [INTERVAL_SECONDS] [RULES] > rules/load.yaml
#
# Probe i is `load-<i>` (`interval`, `timeout: 2s`, GET http://127.0.0.1:PORT/health?n=<i>);
# its rule `load-<i>-down` fires on `[STATUS] != 200` (no rules with RULES=0). 100,000 probes
# make a 29 MB file.
set -euo pipefail

if (($# < 1 || $# > 4)); then
    echo "usage: $0 PROBES [PORT] [INTERVAL_SECONDS] [RULES]" >&2
    exit 2
fi
probes=$1 port=${2:-8080} interval=${3:-10} rules=${4:-1}
for value in "$probes" "$port" "$interval" "$rules"; do
    if ! [[ $value =~ ^[0-9]+$ ]]; then
        echo "error: '$value' is not a number" >&2
        exit 2
    fi
done

awk -v n="$probes" -v port="$port" -v interval="$interval" -v rules="$rules" 'BEGIN {
    print "probes:"
    for (i = 0; i < n; i++) {
        printf "  - name: load-%d\n    interval: %ds\n    timeout: 2s\n", i, interval
        printf "    http: {url: \"http://127.0.0.1:%d/health?n=%d\"}\n", port, i
    }
    if (!rules) exit
    print "rules:"
    for (i = 0; i < n; i++) {
        printf "  - name: load-%d-down\n    probe: load-%d\n    when: \x27[STATUS] != 200\x27\n", i, i
        printf "    incident: {title: \x27load-%d down\x27, category: availability, impact: high, urgency: high}\n", i
    }
}'

#!/usr/bin/env bash
# API fuzzing against the OpenAPI description: starts incidentd on a temporary
# configuration (a redb file in a temp dir, open mode on loopback, one probe, one webhook
# consumer, one status-page service), seeds an incident, a maintenance and a silence so
# that the routes on one of them reach their handlers' logic, then runs Schemathesis
# (`st run`) on every operation of `GET /api/v1/openapi.json` with a fixed seed and a
# bounded number of examples. It fails on any failure: a 5xx, an answer whose status,
# content type or body the description does not allow (every error must be the `Error`
# schema), or a panic in incidentd's log.
#
#   tools/schemathesis.sh                  # 25 examples per operation, seed 1
#   EXAMPLES=100 SEED=7 tools/schemathesis.sh
#
# Environment:
#   EXAMPLES  test cases per operation and phase (25)
#   SEED      Schemathesis's random seed (1)
#   WORKERS   concurrent Schemathesis workers (2)
#   BIN       a directory holding an `incidentd` built elsewhere: nothing is built then
#   KEEP=1    keep the temp dir (config, incidentd's log, Schemathesis's report)
#
# Not fuzzed: the pages for people (the description leaves them out) and
# `GET /api/v1/cluster`'s cluster (this runs on redb: it answers 404). Stateful testing
# (chains of calls through OpenAPI links) is off: the description declares no links; the
# seeded resources stand in for them. Hypothesis's `too_slow` health check is off: it
# times data generation, which a loaded machine slows. Needs `st` (pip install
# schemathesis==4.32.5).
set -euo pipefail

EXAMPLES=${EXAMPLES:-25}
SEED=${SEED:-1}
WORKERS=${WORKERS:-2}
BIN=${BIN:-}
KEEP=${KEEP:-0}

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
log() { printf '%s schemathesis: %s\n' "$(date +%T)" "$*" >&2; }
# shellcheck source=lib/processes.sh
source "$repo/tools/lib/processes.sh"

command -v st >/dev/null || {
    echo "error: Schemathesis's \`st\` is not installed (pip install schemathesis==4.32.5)" >&2
    exit 1
}
if [[ -z $BIN ]]; then
    log "building incidentd"
    # As the integration tests build it (their dev-dependencies' features included), so
    # that after `cargo test` (CI) nothing is compiled again.
    (cd "$repo" && cargo test --locked --quiet --no-run --test it)
    BIN=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug
fi

port=$(free_port)
mkdir -p "$tmp/rules"
cat >"$tmp/incidentd.yaml" <<EOF
listen: 127.0.0.1:$port
storage: {path: $tmp/data/incidentd.redb}
rule_files: [$tmp/rules/*.yaml]
webhooks:
  - name: hook
    url: http://127.0.0.1:9/nobody-listens
    secret_env: FUZZ_WEBHOOK_SECRET
status_page:
  title: Fuzzing
  services:
    - {name: checkout, display: Checkout, match: {service: checkout}}
EOF
cat >"$tmp/rules/self.yaml" <<EOF
probes:
  - name: self
    interval: 1s
    timeout: 1s
    labels: {service: checkout}
    http: {url: "http://127.0.0.1:$port/-/healthy"}
rules:
  - name: self-down
    probe: self
    when: '[STATUS] != 200'
    after: 2
    incident: {title: 'incidentd down', category: availability, impact: high, urgency: high}
EOF
FUZZ_WEBHOOK_SECRET=whsec_ZnV6emluZy1zZWNyZXQtZnV6emluZy1zZWNyZXQ= \
    "$BIN/incidentd" serve --config "$tmp/incidentd.yaml" >"$tmp/incidentd.log" 2>&1 &
pids+=($!)
base=http://127.0.0.1:$port
wait_for 60 "incidentd on $base" curl -fsS --max-time 2 "$base/-/ready" -o /dev/null

post() { # PATH JSON → the answer's body; fails on an error status
    curl -fsS --max-time 10 -H 'content-type: application/json' -d "$2" "$base$1"
}
post /api/v1/incidents \
    '{"title": "Checkout slow", "description": "seed", "reporter": {"name": "Ana", "contact": "ana@example.com"}, "service": "checkout"}' >/dev/null
post /api/v1/maintenances \
    "{\"title\": \"Upgrade\", \"services\": [\"checkout\"], \"starts_at\": \"2030-01-01T00:00:00Z\", \"ends_at\": \"2030-01-01T01:00:00Z\"}" >/dev/null
silence=$(post /api/v1/silences \
    '{"matchers": {"service": "checkout"}, "ends_at": "2030-01-01T00:00:00Z", "comment": "seed"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
log "incidentd on $base: seeded INC-1, MNT-1 and silence $silence"

# Routes on one resource get the seeded one (else every case is a 404 and the handlers'
# logic is never reached); their other parameters and bodies are generated.
cat >"$tmp/schemathesis.toml" <<EOF
[[operations]]
include-path-regex = '^/api/v1/incidents/\{id\}'
parameters = { "path.id" = "INC-1" }

[[operations]]
include-path-regex = '^/api/v1/maintenances/\{id\}'
parameters = { "path.id" = "MNT-1" }

[[operations]]
include-path-regex = '^/api/v1/silences/\{id\}'
parameters = { "path.id" = "$silence" }

[[operations]]
include-path-regex = '^/api/v1/webhooks/\{consumer\}'
parameters = { "path.consumer" = "hook" }
EOF

log "st run: $EXAMPLES examples per operation, seed $SEED, $WORKERS workers"
start=$(date +%s)
status=0
# From the temp dir: Schemathesis keeps a cache in the working directory.
(cd "$tmp" && st --config-file "$tmp/schemathesis.toml" run "$base/api/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" --seed "$SEED" --workers "$WORKERS" \
    --request-timeout 30 --no-color --suppress-health-check too_slow \
    --report junit --report-dir "$tmp/report") || status=$?
log "st run took $(($(date +%s) - start))s (exit $status)"

if grep -n 'panicked' "$tmp/incidentd.log" >&2; then
    log "incidentd panicked (above); its log: $tmp/incidentd.log"
    KEEP=1
    status=1
fi
if ! alive "${pids[0]}"; then
    log "incidentd is no longer running; its log: $tmp/incidentd.log"
    KEEP=1
    status=1
fi
[[ $status == 0 ]] || KEEP=1
exit "$status"

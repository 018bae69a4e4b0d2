#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets/) for a bounded time, one after the other, and
# says per target how many inputs ran, the coverage reached and what it found.
#
#   tools/fuzz.sh                      every target, SECONDS_PER_TARGET (60) each
#   SECONDS_PER_TARGET=300 tools/fuzz.sh when rules
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New inputs that
# reach new code are added to fuzz/corpus/<target>/ (git ignores all but the seed-* files);
# libFuzzer's output goes to fuzz/logs/<target>.log. A crash, a timeout (an input that
# runs 10 s) or an out-of-memory (2 GiB) stops that target with an artifact in
# fuzz/artifacts/<target>/ and makes the script exit 1. Inputs slower than SLOW_SECONDS (1)
# are listed as slow (libFuzzer's slow-unit-* artifacts) and fail only with FAIL_ON_SLOW=1.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${SECONDS_PER_TARGET:-60}
slow=${SLOW_SECONDS:-1}
all=(when config rules alertmanager api_v2 events matchers retry_after)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

# The longest input worth trying: a condition, a header value, a config or a payload.
max_len() {
    case $1 in
        retry_after) echo 256 ;;
        when | matchers) echo 4096 ;;
        *) echo 16384 ;;
    esac
}

cargo +nightly fuzz build || exit 2
mkdir -p fuzz/logs

status=0
printf '%-14s %12s %8s %8s  %s\n' target runs cov corpus found
for target in "${targets[@]}"; do
    artifacts=fuzz/artifacts/$target
    mkdir -p "$artifacts" "fuzz/corpus/$target"
    before=$(ls "$artifacts")
    log=fuzz/logs/$target.log
    cargo +nightly fuzz run "$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" \
        -rss_limit_mb=2048 -timeout=10 -report_slow_units="$slow" \
        -print_final_stats=1 >"$log" 2>&1
    code=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    new=$(comm -13 <(echo "$before") <(ls "$artifacts") | sed "s|^|$artifacts/|")
    bad=$(echo "$new" | grep -E '/(crash|timeout|oom|leak)-' || true)
    slows=$(echo "$new" | grep -E '/slow-unit-' || true)
    found=none
    if [ $code -ne 0 ] || [ -n "$bad" ]; then
        found="FAILED (exit $code): ${bad:-see $log}"
        status=1
    elif [ -n "$slows" ]; then
        found="slow: $(echo "$slows" | wc -l) input(s) over ${slow}s"
        [ "${FAIL_ON_SLOW:-0}" = 1 ] && status=1
    fi
    printf '%-14s %12s %8s %8s  %s\n' "$target" "${runs:-?}" "${cov:-?}" "${corpus:-?}" "$found"
    for file in $bad $slows; do
        echo "    $file  (minimise: cargo +nightly fuzz tmin $target $file)"
    done
done
if [ $status -ne 0 ]; then
    echo "fuzzing found problems: each artifact above replays with" \
        "cargo +nightly fuzz run <target> <artifact>" >&2
fi
exit $status

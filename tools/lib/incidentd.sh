# Starting incidentd for the load tools. Source it after tools/lib/processes.sh.

# start_incidentd BINARY CONFIG LOG [SECONDS]: `incidentd serve` in the background with
# RUST_LOG=info, its PID added to `pids`; waits (at most SECONDS, default 300) for its
# "incidentd started" log line and sets incidentd_pid, incidentd_port and incidentd_url
# (it must listen on 127.0.0.1). On failure it prints the log's tail and returns 1.
start_incidentd() {
    local binary=$1 config=$2 log_file=$3 seconds=${4:-300}
    RUST_LOG=info "$binary" serve --config "$config" >"$log_file" 2>&1 &
    incidentd_pid=$!
    pids+=("$incidentd_pid")
    if ! wait_for "$seconds" "incidentd to start" grep -q 'incidentd started' "$log_file"; then
        tail -n 20 "$log_file" >&2
        return 1
    fi
    incidentd_port=$(sed -n 's/.*incidentd started.*listen=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log_file" | head -n1)
    incidentd_url="http://127.0.0.1:$incidentd_port"
}

# duration_seconds TEXT: 90, 90s, 30m or 2h → seconds; fails on anything else.
duration_seconds() {
    [[ $1 =~ ^([0-9]+)([smh]?)$ ]] || return 1
    local n=$((10#${BASH_REMATCH[1]}))
    case ${BASH_REMATCH[2]} in
    h) echo $((n * 3600)) ;;
    m) echo $((n * 60)) ;;
    *) echo "$n" ;;
    esac
}

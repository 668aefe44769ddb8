#!/usr/bin/env bash
# What metrics and tracing cost on watertight's request path (issue 3).
#
# The core benchmark's setup (bench/proxy-vs-peers.sh: one nginx upstream with a 13-byte body,
# wrk over keep-alive) against three watertight processes that differ only in telemetry:
#   off              metrics.enabled: false, no tracing
#   metrics          metrics.enabled: true,  no tracing
#   metrics+tracing  metrics.enabled: true,  tracing head_ratio 0.01, OTLP/HTTP to a local sink
# each started once, warmed up, then driven in alternating rounds. The sink
# (bench/otlp_sink.py) answers 200 to every POST /v1/traces and counts posts, bytes and spans.
# Prints median req/s, p50, p99 and the req/s loss against `off`, then each process's
# trace/span counters from its /metrics. See bench/README.md. Everything runs on 127.0.0.1
# from a temp dir and is stopped on exit.
#
# Knobs (environment): THREADS=1 CONNS=50 DURATION=10s ROUNDS=5 WARMUP=2s WRK_THREADS=1
#   HEAD_RATIO=0.01 SKIP_BUILD=0 WT_BIN=<path> KEEP_TMP=0 RESULTS_DIR=<dir>
#
# The process, build and measurement helpers are shared with the other benchmarks
# (bench/lib.sh).

set -euo pipefail

THREADS=${THREADS:-1}
CONNS=${CONNS:-50}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-2s}
WRK_THREADS=${WRK_THREADS:-1}
HEAD_RATIO=${HEAD_RATIO:-0.01}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Shared helpers: logging, process bookkeeping and cleanup, build, ports, measurements.
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------------------------------------
# Argument checks
positive_knobs THREADS CONNS ROUNDS WRK_THREADS
(( WRK_THREADS <= CONNS )) || die "WRK_THREADS ($WRK_THREADS) must not exceed CONNS ($CONNS)"
[[ $HEAD_RATIO =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || die "HEAD_RATIO must be a number in 0-1 (got '$HEAD_RATIO')"

DURATION_S=$(to_seconds "$DURATION")
WARMUP_S=$(to_seconds "$WARMUP")
[[ $DURATION_S =~ ^[1-9][0-9]*$ ]] || die "DURATION must look like 10s, 10 or 1m (got '$DURATION')"
[[ $WARMUP_S =~ ^[0-9]+$ ]] || die "WARMUP must look like 2s, 2 or 0 (got '$WARMUP')"

# ---------------------------------------------------------------------------------------------
# Measurements
# run_wrk NAME PORT ROUND PGID : warm-up, measurement, one TSV line appended to rounds.tsv
run_wrk() {
    local name=$1 port=$2 round=$3 pgid=$4 out rps p50 p99 non2xx sockerr reqs t0 t1 w0 w1 cpu
    local url="http://127.0.0.1:$port/"
    if ((WARMUP_S > 0)); then
        : >"$RESULTS/r$round-$name-warmup.txt"
        run_fg "$RESULTS/r$round-$name-warmup.txt" timeout --kill-after=5 $((WARMUP_S + 30)) \
            wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP_S}s" "$url" ||
            log "WARNING: $name warm-up wrk exited non-zero"
    fi
    out="$RESULTS/r$round-$name.txt"
    {
        echo "# loadavg before: $(cat /proc/loadavg)"
        echo "# wrk -t$WRK_THREADS -c$CONNS -d${DURATION_S}s --latency $url"
    } >"$out"
    t0=$(group_ticks "$pgid")
    w0=$(date +%s%N)
    run_fg "$out" timeout --kill-after=5 $((DURATION_S + 30)) \
        wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION_S}s" --latency "$url" ||
        log "WARNING: $name wrk exited non-zero (see $out)"
    t1=$(group_ticks "$pgid")
    w1=$(date +%s%N)
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v ns=$((w1 - w0)) 'BEGIN {printf "%.0f", d / hz / (ns / 1e9) * 100}')
    echo "# target CPU during the run: ${cpu}% of one core" >>"$out"
    echo "# loadavg after: $(cat /proc/loadavg)" >>"$out"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    reqs=$(awk '/ requests in / {print $1}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    sockerr=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
    if [[ -z $rps || -z $p50 || -z $p99 ]]; then
        log "WARNING: could not parse wrk output for $name round $round (see $out)"
        return 0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$rps" "$(to_ms "$p50")" "$(to_ms "$p99")" \
        "${non2xx:-0}" "${sockerr:-0}" "$cpu" >>"$RESULTS/rounds.tsv"
    log "  $name round $round: $rps req/s, p50 $p50, p99 $p99, requests $reqs, non-2xx ${non2xx:-0}, socket errors ${sockerr:-0}, target CPU ${cpu}%"
}

# ---------------------------------------------------------------------------------------------
# Configs

# write_wt_conf NAME PORT ADMIN_PORT UPSTREAM_PORT METRICS(true|false) [SINK_PORT]
# Everything but telemetry as in quick mode (`proxy --listen … --to … --access-log off`).
write_wt_conf() {
    local name=$1 port=$2 admin=$3 up=$4 metrics=$5 sink=${6:-}
    {
        echo "# watertight for telemetry-overhead.sh: config '$name'"
        echo "access_log: \"off\""
        echo "admin: {address: 127.0.0.1:$admin}"
        echo "metrics: {enabled: $metrics}"
        if [[ -n $sink ]]; then
            cat <<EOF
tracing:
  head_ratio: $HEAD_RATIO
  otlp: {endpoint: "http://127.0.0.1:$sink", protocol: http, batch_interval: 1s}
EOF
        fi
        cat <<EOF
listeners:
  - name: main
    address: 127.0.0.1:$port
    routes: [{name: all, cluster: up}]
clusters:
  - name: up
    endpoints: [{address: 127.0.0.1:$up}]
EOF
    } >"$TMP/wt-$name.yaml"
}

# ---------------------------------------------------------------------------------------------
# Main
main() {
    local started=$SECONDS
    install_tools nginx wrk
    command -v curl >/dev/null 2>&1 || die "curl is needed"
    command -v python3 >/dev/null 2>&1 || die "python3 is needed"
    build_watertight
    [[ -x $WT_BIN ]] || die "no watertight binary at $WT_BIN"
    ulimit -n 65536 2>/dev/null || true

    TMP=$(mktemp -d "${TMPDIR:-/tmp}/telemetry-overhead.XXXXXX")
    chmod 755 "$TMP"
    RESULTS=${RESULTS_DIR:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)-telemetry-t$THREADS}
    mkdir -p "$RESULTS"
    : >"$RESULTS/rounds.tsv"

    local names=(off metrics metrics+tracing)
    local up_port sink_port
    local -A wport wadmin wpid
    read -r up_port sink_port wport[off] wadmin[off] wport[metrics] wadmin[metrics] \
        wport[metrics+tracing] wadmin[metrics+tracing] <<<"$(pick_ports 8)"

    {
        echo "date: $(date -Is)"
        echo "host: $(uname -srm), $(nproc) CPUs, loadavg $(cat /proc/loadavg)"
        echo "knobs: THREADS=$THREADS CONNS=$CONNS DURATION=${DURATION_S}s ROUNDS=$ROUNDS WARMUP=${WARMUP_S}s WRK_THREADS=$WRK_THREADS HEAD_RATIO=$HEAD_RATIO"
        echo "watertight: $WT_BIN ($("$WT_BIN" --version 2>/dev/null || echo '?'), built $(date -r "$WT_BIN" -Is))"
        echo "workspace: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
        echo "nginx: $(nginx -v 2>&1)"
        echo "wrk: $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}')"
        echo "python3: $(python3 --version 2>&1)"
        echo "ports: upstream=$up_port sink=$sink_port off=${wport[off]} metrics=${wport[metrics]} metrics+tracing=${wport[metrics+tracing]}"
        echo "other busy processes at start (top 5 by CPU):"
        ps -eo pcpu,pid,comm --sort=-pcpu | sed -n '2,6p' | sed 's/^/  /'
    } >"$RESULTS/env.txt"
    cat "$RESULTS/env.txt" >&2

    # Upstream and OTLP sink
    write_nginx_upstream_conf "$up_port"
    spawn "$TMP/nginx-upstream.log" nginx -p "$TMP" -e "$TMP/nginx-upstream-error.log" -c "$TMP/nginx-upstream.conf"
    local up_pid=$SPAWNED
    wait_port "$up_port" "$up_pid" "upstream nginx"
    spawn "$TMP/otlp-sink.log" python3 "$ROOT/bench/otlp_sink.py" --port "$sink_port"
    local sink_pid=$SPAWNED
    wait_port "$sink_port" "$sink_pid" "OTLP sink"

    # The three watertight processes, each started once
    write_wt_conf off "${wport[off]}" "${wadmin[off]}" "$up_port" false
    write_wt_conf metrics "${wport[metrics]}" "${wadmin[metrics]}" "$up_port" true
    write_wt_conf metrics+tracing "${wport[metrics+tracing]}" "${wadmin[metrics+tracing]}" "$up_port" true "$sink_port"
    cp "$TMP/nginx-upstream.conf" "$TMP"/wt-*.yaml "$RESULTS/"
    : >"$RESULTS/commands.txt"
    echo "nginx -p $TMP -e $TMP/nginx-upstream-error.log -c $TMP/nginx-upstream.conf" >>"$RESULTS/commands.txt"
    echo "python3 $ROOT/bench/otlp_sink.py --port $sink_port" >>"$RESULTS/commands.txt"
    local name
    for name in "${names[@]}"; do
        "$WT_BIN" check --config "$TMP/wt-$name.yaml" >"$RESULTS/check-$name.txt" 2>&1 ||
            die "watertight check rejected the '$name' config: $(cat "$RESULTS/check-$name.txt")"
        spawn "$TMP/watertight-$name.log" env TOKIO_WORKER_THREADS="$THREADS" "$WT_BIN" proxy --config "$TMP/wt-$name.yaml"
        wpid[$name]=$SPAWNED
        echo "TOKIO_WORKER_THREADS=$THREADS $WT_BIN proxy --config $TMP/wt-$name.yaml   # $name" >>"$RESULTS/commands.txt"
    done
    for name in "${names[@]}"; do
        wait_port "${wport[$name]}" "${wpid[$name]}" "watertight ($name)"
        wait_port "${wadmin[$name]}" "${wpid[$name]}" "watertight admin ($name)"
        check_http "$name" "${wport[$name]}"
        log "watertight $name: pid ${wpid[$name]}, $(thread_count "${wpid[$name]}") threads (expected $((THREADS + 1))), port ${wport[$name]}, admin ${wadmin[$name]}"
    done
    check_http upstream "$up_port"

    # Rounds: every config once per round; the starting config rotates from round to round so
    # that none is always measured first (or right after the same neighbour).
    local n=${#names[@]} round k i
    log "running $ROUNDS rounds x $n configs, ~$(( n * (DURATION_S + WARMUP_S) * ROUNDS )) s of load"
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((k = 0; k < n; k++)); do
            i=$(( (round - 1 + k) % n ))
            name=${names[$i]}
            run_wrk "$name" "${wport[$name]}" "$round" "${wpid[$name]}"
            kill -0 "${wpid[$name]}" 2>/dev/null || die "watertight ($name) died during the run (see $RESULTS/watertight-$name.log)"
        done
    done

    # Let the last span batch go out (batch_interval 1s), then read every process's counters.
    sleep 3
    local -A reqs kept discarded exported dropped rss
    for name in "${names[@]}"; do
        curl -sS --max-time 5 "http://127.0.0.1:${wadmin[$name]}/metrics" >"$RESULTS/metrics-$name.txt" ||
            log "WARNING: could not read /metrics of $name"
        reqs[$name]=$(metric watertight_route_requests_total "" "$RESULTS/metrics-$name.txt")
        kept[$name]=$(metric watertight_traces_total 'outcome="kept"' "$RESULTS/metrics-$name.txt")
        discarded[$name]=$(metric watertight_traces_total 'outcome="discarded"' "$RESULTS/metrics-$name.txt")
        exported[$name]=$(metric watertight_trace_spans_exported_total "" "$RESULTS/metrics-$name.txt")
        dropped[$name]=$(metric watertight_trace_spans_dropped_total "" "$RESULTS/metrics-$name.txt")
        rss[$name]=$(rss_kb "${wpid[$name]}")
        # The trace counters exist in every process but only show series once counted.
        if [[ ${exported[$name]} != - ]]; then
            [[ ${kept[$name]} != - ]] || kept[$name]=0
            [[ ${discarded[$name]} != - ]] || discarded[$name]=0
            [[ ${dropped[$name]} != - ]] || dropped[$name]=0
        fi
    done
    grep -h '^watertight_trace_spans_dropped_total' "$RESULTS/metrics-metrics+tracing.txt" >"$RESULTS/dropped-reasons.txt" 2>/dev/null || true
    local sink_stats
    sink_stats=$(curl -sS --max-time 5 "http://127.0.0.1:$sink_port/stats" || echo '{}')
    echo "$sink_stats" >"$RESULTS/sink-stats.json"
    # wrk's own request count for metrics+tracing (measured + warm-up runs), for the kept share
    local wrk_reqs
    wrk_reqs=$(cat "$RESULTS"/r*-metrics+tracing.txt "$RESULTS"/r*-metrics+tracing-warmup.txt 2>/dev/null |
        awk '/ requests in / {s += $1} END {print s + 0}')

    # -----------------------------------------------------------------------------------------
    # Summary
    local summary="$RESULTS/summary.txt" rps p50 p99 n2 nr cpu ratio cpu_us cpu_ratio
    local -A M_RPS
    {
        echo "telemetry-overhead: THREADS=$THREADS CONNS=$CONNS DURATION=${DURATION_S}s ROUNDS=$ROUNDS WARMUP=${WARMUP_S}s WRK_THREADS=$WRK_THREADS HEAD_RATIO=$HEAD_RATIO ($(nproc) CPUs)"
        echo
        printf '%-16s %11s %8s %8s %5s %10s %8s %7s %12s %12s %7s   %s\n' config "req/s(med)" "p50 ms" "p99 ms" "cpu%" \
            "cpu us/req" "vs off" "loss" "paired loss" "paired +cpu" "errors" "req/s per round"
        for name in "${names[@]}"; do
            nr=$(awk -F'\t' -v n="$name" '$1 == n' "$RESULTS/rounds.tsv" | wc -l)
            ((nr > 0)) || { printf '%-16s %11s\n' "$name" "no data"; continue; }
            rps=$(awk -F'\t' -v n="$name" '$1 == n {print $3}' "$RESULTS/rounds.tsv" | median)
            p50=$(awk -F'\t' -v n="$name" '$1 == n {print $4}' "$RESULTS/rounds.tsv" | median)
            p99=$(awk -F'\t' -v n="$name" '$1 == n {print $5}' "$RESULTS/rounds.tsv" | median)
            n2=$(awk -F'\t' -v n="$name" '$1 == n {s += $6 + $7} END {print s + 0}' "$RESULTS/rounds.tsv")
            cpu=$(awk -F'\t' -v n="$name" '$1 == n {print $8}' "$RESULTS/rounds.tsv" | median)
            M_RPS[$name]=$rps
            # paired: median over rounds of (this config's req/s / off's req/s in the same round)
            ratio=$(awk -F'\t' -v n="$name" '$1 == "off" {o[$2] = $3} $1 == n {c[$2] = $3}
                END {for (r in c) if (o[r] > 0) print c[r] / o[r]}' "$RESULTS/rounds.tsv" | median)
            # CPU per request (the target's CPU time / requests), per round; median, and the
            # median over rounds of its same-round ratio to off's
            cpu_us=$(awk -F'\t' -v n="$name" '$1 == n && $3 > 0 {print $8 / 100 / $3 * 1e6}' "$RESULTS/rounds.tsv" | median)
            cpu_ratio=$(awk -F'\t' -v n="$name" '$3 > 0 && $1 == "off" {o[$2] = $8 / $3} $3 > 0 && $1 == n {c[$2] = $8 / $3}
                END {for (r in c) if (o[r] > 0) print c[r] / o[r]}' "$RESULTS/rounds.tsv" | median)
            printf '%-16s %11.0f %8.3f %8.3f %5.0f %10.2f %8s %7s %12s %12s %7s   %s\n' "$name" "$rps" "$p50" "$p99" "$cpu" "$cpu_us" \
                "$(awk -v a="$rps" -v b="${M_RPS[off]:-0}" 'BEGIN {if (b > 0) printf "x%.3f", a / b; else print "-"}')" \
                "$(awk -v a="$rps" -v b="${M_RPS[off]:-0}" 'BEGIN {if (b > 0) printf "%.1f%%", (1 - a / b) * 100; else print "-"}')" \
                "$(awk -v r="$ratio" 'BEGIN {if (r != "nan") printf "%.1f%%", (1 - r) * 100; else print "-"}')" \
                "$(awk -v r="$cpu_ratio" 'BEGIN {if (r != "nan") printf "%+.1f%%", (r - 1) * 100; else print "-"}')" \
                "$n2" \
                "$(awk -F'\t' -v n="$name" '$1 == n {printf "%s%.0f", sep, $3; sep=" "}' "$RESULTS/rounds.tsv")"
        done
        echo "(loss = 1 - median req/s / median req/s of off; paired loss = 1 - median over rounds of the"
        echo " same-round req/s ratio to off; paired +cpu = the same for CPU time per request, as an increase;"
        echo " goals: metrics <= 3%, metrics+tracing <= 5% req/s loss. errors = non-2xx + socket errors)"
        echo
        echo "telemetry counters from each process's /metrics after the rounds (all requests, warm-ups included):"
        printf '  %-16s %10s %9s %10s %14s %13s %8s\n' config requests "kept" discarded "spans exported" "spans dropped" "RSS MB"
        for name in "${names[@]}"; do
            printf '  %-16s %10s %9s %10s %14s %13s %8s\n' "$name" "${reqs[$name]}" "${kept[$name]}" "${discarded[$name]}" \
                "${exported[$name]}" "${dropped[$name]}" "$(kb_to_mb "${rss[$name]:-0}")"
        done
        echo "  (requests: watertight_route_requests_total, '-' with metrics off; kept/discarded: watertight_traces_total)"
        awk -v k="${kept[metrics+tracing]}" -v r="${reqs[metrics+tracing]}" -v w="$wrk_reqs" -v h="$HEAD_RATIO" 'BEGIN {
            if (k ~ /^[0-9]+$/ && r ~ /^[0-9]+$/ && r > 0)
                printf "  metrics+tracing kept %.3f%% of %d requests (head_ratio %s; wrk counted %d)\n", k / r * 100, r, h, w }'
        if [[ -s $RESULTS/dropped-reasons.txt ]]; then
            echo "  spans dropped by reason:"
            sed 's/^/    /' "$RESULTS/dropped-reasons.txt"
        fi
        echo "  OTLP sink received: $sink_stats"
        echo
        echo "raw wrk output, configs and /metrics: $RESULTS"
    } >"$summary"
    echo
    cat "$summary"
    log "done in $((SECONDS - started)) s"
}

main "$@"

#!/usr/bin/env bash
# Compare watertight with nginx and HAProxy as HTTP/1.1 reverse proxies, side by side.
#
# One nginx upstream serves a 13-byte body; watertight, nginx (proxy_pass) and HAProxy
# (mode http) sit in front of it with the same thread/worker count; wrk drives them in
# alternating rounds. Then watertight's RSS is measured idle and with many idle client
# connections. See bench/README.md. Everything runs on 127.0.0.1 from a temp dir and is
# stopped on exit.
#
# Knobs (environment): THREADS=1 CONNS=50 DURATION=10s ROUNDS=3 WARMUP=2s WRK_THREADS=1
#   IDLE_CONNS=10000 BASELINE=1 RSS=1 SKIP_BUILD=0 WT_BIN=<path> KEEP_TMP=0 RESULTS_DIR=<dir>
#   PIN=0 PROXY_CPUS=0 LOAD_CPUS=1: with PIN=1 the proxy under test runs on PROXY_CPUS and wrk
#   and the upstream on LOAD_CPUS (taskset), so the proxies do not share a core with the load.

set -euo pipefail

THREADS=${THREADS:-1}
CONNS=${CONNS:-50}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2s}
WRK_THREADS=${WRK_THREADS:-1}
IDLE_CONNS=${IDLE_CONNS:-10000}
BASELINE=${BASELINE:-1}
RSS=${RSS:-1}
PIN=${PIN:-0}
PROXY_CPUS=${PROXY_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Shared helpers: logging, process bookkeeping and cleanup, build, ports, measurements.
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------------------------------------
# Argument checks
positive_knobs THREADS CONNS ROUNDS WRK_THREADS IDLE_CONNS
(( WRK_THREADS <= CONNS )) || die "WRK_THREADS ($WRK_THREADS) must not exceed CONNS ($CONNS)"

# Command prefixes that pin the proxies and the load (empty unless PIN=1).
PIN_PROXY=()
PIN_LOAD=()
if [[ $PIN == 1 ]]; then
    command -v taskset >/dev/null 2>&1 || die "PIN=1 needs taskset (util-linux)"
    PIN_PROXY=(taskset -c "$PROXY_CPUS")
    PIN_LOAD=(taskset -c "$LOAD_CPUS")
elif [[ $PIN != 0 ]]; then
    die "PIN must be 0 or 1 (got '$PIN')"
fi

DURATION_S=$(to_seconds "$DURATION")
WARMUP_S=$(to_seconds "$WARMUP")
[[ $DURATION_S =~ ^[1-9][0-9]*$ ]] || die "DURATION must look like 10s, 10 or 1m (got '$DURATION')"
[[ $WARMUP_S =~ ^[0-9]+$ ]] || die "WARMUP must look like 2s, 2 or 0 (got '$WARMUP')"

# ---------------------------------------------------------------------------------------------
# Measurements
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
per_conn_kb() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {printf "%.1f", (a - b) / n}'; }
socket_fds() { find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
thread_names() { cat /proc/"$1"/task/*/comm 2>/dev/null | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}'; }

# run_wrk NAME PORT ROUND PGID : warm-up, measurement, one TSV line appended to rounds.tsv
# (PGID: the process group of the target, for its CPU use during the measurement)
run_wrk() {
    local name=$1 port=$2 round=$3 pgid=$4 out rps p50 p99 non2xx sockerr reqs t0 t1 w0 w1 cpu
    local url="http://127.0.0.1:$port/"
    if ((WARMUP_S > 0)); then
        : >"$RESULTS/r$round-$name-warmup.txt"
        run_fg "$RESULTS/r$round-$name-warmup.txt" timeout --kill-after=5 $((WARMUP_S + 30)) \
            "${PIN_LOAD[@]}" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP_S}s" "$url" ||
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
        "${PIN_LOAD[@]}" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION_S}s" --latency "$url" ||
        log "WARNING: $name wrk exited non-zero (see $out)"
    t1=$(group_ticks "$pgid")
    w1=$(date +%s%N)
    # CPU used by the target, in % of one core, over the wrk run (wall clock incl. start-up)
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

write_nginx_proxy_conf() { # PORT UPSTREAM_PORT
    mkdir -p "$TMP/nginx-proxy"
    {
        echo "# nginx as the reverse proxy under test."
        nginx_preamble nginx-proxy "$THREADS"
        cat <<EOF
    upstream backend {
        server 127.0.0.1:$2;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$1 backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    } >"$TMP/nginx-proxy.conf"
}

write_haproxy_conf() { # PORT UPSTREAM_PORT
    cat >"$TMP/haproxy.cfg" <<EOF
# HAProxy as the reverse proxy under test. No 'log' lines: no logging.
global
    nbthread $THREADS
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:$1
    default_backend be

backend be
    server up1 127.0.0.1:$2
EOF
}

# memory_phase LABEL PORT ADMIN_PORT UPSTREAM_PORT [--request]
# Starts a fresh watertight, reads its idle RSS, opens IDLE_CONNS connections with
# idle_conns.py (passing --request on), reads RSS and socket count 2 s after they are all
# ready, closes them, reads RSS again. Sets MP_IDLE MP_HOLD MP_FDS MP_LINE MP_CLOSED MP_HWM (kB).
memory_phase() {
    local label=$1 port=$2 admin=$3 up=$4 wpid cpid i out
    shift 4
    spawn "$TMP/watertight-rss-$label.log" env TOKIO_WORKER_THREADS="$THREADS" "$WT_BIN" proxy \
        --listen "127.0.0.1:$port" --to "http://127.0.0.1:$up" --admin "127.0.0.1:$admin" --access-log off
    wpid=$SPAWNED
    wait_port "$port" "$wpid" "watertight (memory, $label)"
    sleep 1
    MP_IDLE=$(rss_kb "$wpid")
    log "  [$label] idle RSS 1 s after start: $(kb_to_mb "$MP_IDLE") MB"

    out="$RESULTS/idle_conns-$label.txt"
    spawn "$out" timeout --kill-after=5 90 \
        python3 "$ROOT/bench/idle_conns.py" --port "$port" -n "$IDLE_CONNS" --hold 60 "$@"
    cpid=$SPAWNED
    MP_LINE=""
    for ((i = 0; i < 600; i++)); do
        MP_LINE=$(grep -m1 '^READY' "$out" 2>/dev/null || true)
        [[ -n $MP_LINE ]] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $MP_LINE ]] || die "idle_conns.py ($label) did not get ready (see $out)"
    sleep 2
    kill -0 "$wpid" 2>/dev/null || die "watertight died with $IDLE_CONNS connections open"
    MP_HOLD=$(rss_kb "$wpid")
    MP_FDS=$(socket_fds "$wpid")
    log "  [$label] $IDLE_CONNS connections: RSS $(kb_to_mb "$MP_HOLD") MB, proxy sockets $MP_FDS ($MP_LINE)"
    stop_pid "$cpid"
    sleep 2
    MP_CLOSED=$(rss_kb "$wpid")
    MP_HWM=$(hwm_kb "$wpid")
    stop_pid "$wpid"
}

# ---------------------------------------------------------------------------------------------
# Main
main() {
    local started=$SECONDS
    install_tools nginx haproxy wrk
    command -v curl >/dev/null 2>&1 || die "curl is needed"
    command -v python3 >/dev/null 2>&1 || die "python3 is needed"
    build_watertight
    [[ -x $WT_BIN ]] || die "no watertight binary at $WT_BIN"

    # Raise the open-file limit for everything started from here (proxies and the idle client).
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local nofile
    nofile=$(ulimit -n)
    if [[ $nofile != unlimited ]] && ((nofile < IDLE_CONNS + 512)); then
        log "WARNING: open-file limit is $nofile (hard limit $(ulimit -Hn)); IDLE_CONNS lowered from $IDLE_CONNS to $((nofile - 512))"
        IDLE_CONNS=$((nofile - 512))
    fi

    TMP=$(mktemp -d "${TMPDIR:-/tmp}/proxy-vs-peers.XXXXXX")
    chmod 755 "$TMP"
    RESULTS=${RESULTS_DIR:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)-t$THREADS}
    mkdir -p "$RESULTS"
    : >"$RESULTS/rounds.tsv"

    local up_port wt_port wt_admin ng_port ha_port rss_port rss_admin rss_port2 rss_admin2
    read -r up_port wt_port wt_admin ng_port ha_port rss_port rss_admin rss_port2 rss_admin2 <<<"$(pick_ports 9)"

    {
        echo "date: $(date -Is)"
        echo "host: $(uname -srm), $(nproc) CPUs, loadavg $(cat /proc/loadavg)"
        echo "knobs: THREADS=$THREADS CONNS=$CONNS DURATION=${DURATION_S}s ROUNDS=$ROUNDS WARMUP=${WARMUP_S}s WRK_THREADS=$WRK_THREADS IDLE_CONNS=$IDLE_CONNS open-files=$nofile PIN=$PIN${PIN_PROXY[*]:+ (proxies: ${PIN_PROXY[*]}, load: ${PIN_LOAD[*]})}"
        echo "watertight: $WT_BIN ($("$WT_BIN" --version 2>/dev/null || echo '?'), built $(date -r "$WT_BIN" -Is))"
        echo "workspace: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
        echo "nginx: $(nginx -v 2>&1)"
        echo "haproxy: $(haproxy -v 2>/dev/null | head -n1)"
        echo "wrk: $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}')"
        echo "ports: upstream=$up_port watertight=$wt_port nginx=$ng_port haproxy=$ha_port"
    } >"$RESULTS/env.txt"
    cat "$RESULTS/env.txt" >&2

    # Upstream
    write_nginx_upstream_conf "$up_port"
    spawn "$TMP/nginx-upstream.log" "${PIN_LOAD[@]}" nginx -p "$TMP" -e "$TMP/nginx-upstream-error.log" -c "$TMP/nginx-upstream.conf"
    local up_pid=$SPAWNED
    wait_port "$up_port" "$up_pid" "upstream nginx"

    # Proxies
    spawn "$TMP/watertight.log" "${PIN_PROXY[@]}" env TOKIO_WORKER_THREADS="$THREADS" "$WT_BIN" proxy \
        --listen "127.0.0.1:$wt_port" --to "http://127.0.0.1:$up_port" \
        --admin "127.0.0.1:$wt_admin" --access-log off
    local wt_pid=$SPAWNED
    wait_port "$wt_port" "$wt_pid" "watertight"

    write_nginx_proxy_conf "$ng_port" "$up_port"
    spawn "$TMP/nginx-proxy.log" "${PIN_PROXY[@]}" nginx -p "$TMP" -e "$TMP/nginx-proxy-error.log" -c "$TMP/nginx-proxy.conf"
    local ng_pid=$SPAWNED
    wait_port "$ng_port" "$ng_pid" "nginx proxy"

    write_haproxy_conf "$ha_port" "$up_port"
    spawn "$TMP/haproxy.log" "${PIN_PROXY[@]}" haproxy -db -f "$TMP/haproxy.cfg"
    local ha_pid=$SPAWNED
    wait_port "$ha_port" "$ha_pid" "haproxy"

    cp "$TMP/nginx-upstream.conf" "$TMP/nginx-proxy.conf" "$TMP/haproxy.cfg" "$RESULTS/"
    {
        echo "TOKIO_WORKER_THREADS=$THREADS $WT_BIN proxy --listen 127.0.0.1:$wt_port --to http://127.0.0.1:$up_port --admin 127.0.0.1:$wt_admin --access-log off"
        echo "nginx -p $TMP -e $TMP/nginx-upstream-error.log -c $TMP/nginx-upstream.conf"
        echo "nginx -p $TMP -e $TMP/nginx-proxy-error.log -c $TMP/nginx-proxy.conf"
        echo "haproxy -db -f $TMP/haproxy.cfg"
    } >"$RESULTS/commands.txt"

    local wt_threads
    wt_threads=$(thread_count "$wt_pid")
    # One worker: the main thread runs the event loop; more: main + THREADS tokio workers.
    local wt_expected=$((THREADS == 1 ? 1 : THREADS + 1))
    log "watertight pid $wt_pid: $wt_threads threads at start ($(thread_names "$wt_pid")); expected $wt_expected"
    echo "watertight threads at start: $wt_threads ($(thread_names "$wt_pid")), expected $wt_expected" >>"$RESULTS/env.txt"
    log "nginx proxy workers: $(pgrep -c -P "$ng_pid" || true); haproxy threads: $(thread_count "$ha_pid")"

    check_http upstream "$up_port"
    check_http watertight "$wt_port"
    check_http nginx "$ng_port"
    check_http haproxy "$ha_port"

    # Rounds, alternating
    local names=(watertight nginx haproxy) ports_of=("$wt_port" "$ng_port" "$ha_port") round i
    local pgids=("$wt_pid" "$ng_pid" "$ha_pid")
    if [[ $BASELINE == 1 ]]; then
        names+=(direct)
        ports_of+=("$up_port")
        pgids+=("$up_pid")
    fi
    local per_round=$(( ${#names[@]} * (DURATION_S + WARMUP_S) ))
    log "running $ROUNDS rounds x ${#names[@]} targets, ~$((per_round * ROUNDS)) s of load"
    for ((round = 1; round <= ROUNDS; round++)); do
        for i in "${!names[@]}"; do
            run_wrk "${names[$i]}" "${ports_of[$i]}" "$round" "${pgids[$i]}"
            kill -0 "$wt_pid" 2>/dev/null || die "watertight died during the run (see $RESULTS/watertight.log)"
        done
    done
    local wt_rss_after_load
    wt_rss_after_load=$(rss_kb "$wt_pid")
    log "watertight RSS after the load rounds: $(kb_to_mb "$wt_rss_after_load") MB (peak $(kb_to_mb "$(hwm_kb "$wt_pid")") MB)"
    local wt_threads_after
    wt_threads_after=$(thread_count "$wt_pid")

    # Stop the throughput proxies before the memory phase (less noise, fewer sockets).
    stop_pid "$ha_pid"
    stop_pid "$ng_pid"
    stop_pid "$wt_pid"

    # RSS: for each case a fresh watertight: idle, then with IDLE_CONNS idle client connections
    # (first without any request, then each with one request answered), then after they close.
    local rss_idle="" rss_idle2="" rss_open="" rss_req="" closed_open="" closed_req="" hwm_open="" hwm_req=""
    local fds_open="" fds_req="" open_line="" req_line=""
    if [[ $RSS == 1 ]]; then
        log "memory: fresh watertight processes with $IDLE_CONNS idle client connections"
        memory_phase open "$rss_port" "$rss_admin" "$up_port"
        rss_idle=$MP_IDLE rss_open=$MP_HOLD fds_open=$MP_FDS open_line=$MP_LINE closed_open=$MP_CLOSED hwm_open=$MP_HWM
        memory_phase request "$rss_port2" "$rss_admin2" "$up_port" --request
        rss_idle2=$MP_IDLE rss_req=$MP_HOLD fds_req=$MP_FDS req_line=$MP_LINE closed_req=$MP_CLOSED hwm_req=$MP_HWM
    fi

    # -----------------------------------------------------------------------------------------
    # Summary
    local summary="$RESULTS/summary.txt" name rps p50 p99 n2 se nr cpu
    declare -A M_RPS M_P50 M_P99 M_CPU
    {
        echo "proxy-vs-peers: THREADS=$THREADS CONNS=$CONNS DURATION=${DURATION_S}s ROUNDS=$ROUNDS WARMUP=${WARMUP_S}s WRK_THREADS=$WRK_THREADS ($(nproc) CPUs)"
        echo
        printf '%-11s %12s %9s %9s %6s %10s %8s %9s %7s   %s\n' proxy "req/s(med)" "p50 ms" "p99 ms" "cpu%" "req/cpu-s" \
            non-2xx sock-err rounds "req/s per round"
        for name in "${names[@]}"; do
            nr=$(awk -F'\t' -v n="$name" '$1 == n' "$RESULTS/rounds.tsv" | wc -l)
            ((nr > 0)) || { printf '%-11s %12s\n' "$name" "no data"; continue; }
            rps=$(awk -F'\t' -v n="$name" '$1 == n {print $3}' "$RESULTS/rounds.tsv" | median)
            p50=$(awk -F'\t' -v n="$name" '$1 == n {print $4}' "$RESULTS/rounds.tsv" | median)
            p99=$(awk -F'\t' -v n="$name" '$1 == n {print $5}' "$RESULTS/rounds.tsv" | median)
            n2=$(awk -F'\t' -v n="$name" '$1 == n {s += $6} END {print s + 0}' "$RESULTS/rounds.tsv")
            se=$(awk -F'\t' -v n="$name" '$1 == n {s += $7} END {print s + 0}' "$RESULTS/rounds.tsv")
            cpu=$(awk -F'\t' -v n="$name" '$1 == n {print $8}' "$RESULTS/rounds.tsv" | median)
            M_RPS[$name]=$rps M_P50[$name]=$p50 M_P99[$name]=$p99 M_CPU[$name]=$cpu
            printf '%-11s %12.0f %9.3f %9.3f %6.0f %10s %8s %9s %7s   %s\n' "$name" "$rps" "$p50" "$p99" "$cpu" \
                "$(awk -v r="$rps" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", r / (c / 100); else print "-"}')" \
                "$n2" "$se" "$nr" \
                "$(awk -F'\t' -v n="$name" '$1 == n {printf "%s%.0f", sep, $3; sep=" "}' "$RESULTS/rounds.tsv")"
        done
        echo
        local peer
        for peer in nginx haproxy; do
            if [[ -n ${M_RPS[watertight]:-} && -n ${M_RPS[$peer]:-} ]]; then
                awk -v p="$peer" -v r1="${M_RPS[watertight]}" -v r2="${M_RPS[$peer]}" \
                    -v a1="${M_P50[watertight]}" -v a2="${M_P50[$peer]}" \
                    -v b1="${M_P99[watertight]}" -v b2="${M_P99[$peer]}" \
                    -v c1="${M_CPU[watertight]}" -v c2="${M_CPU[$peer]}" \
                    'BEGIN {
                        printf "watertight/%-8s req/s x%.2f   p50 x%.2f   p99 x%.2f", p, r1 / r2, a1 / a2, b1 / b2
                        if (c1 > 0 && c2 > 0) printf "   req/cpu-s x%.2f", (r1 / c1) / (r2 / c2)
                        printf "\n" }'
            fi
        done
        echo "(req/s and req/cpu-s ratios > 1 favour watertight; latency ratios < 1 favour watertight)"
        echo "watertight threads: $wt_threads at start, $wt_threads_after after the load (expected $wt_expected: the main thread alone with one worker, else main + $THREADS workers)"
        echo "watertight RSS after the load rounds: $(kb_to_mb "$wt_rss_after_load") MB"
        if [[ $RSS == 1 ]]; then
            echo
            echo "watertight memory (VmRSS; a fresh process per case, TOKIO_WORKER_THREADS=$THREADS):"
            printf '  %-46s %7s MB   (goal <= 15 MB; second process: %s MB)\n' "idle, 1 s after start" \
                "$(kb_to_mb "$rss_idle")" "$(kb_to_mb "$rss_idle2")"
            printf '  %-46s %7s MB   (goal <= 60 MB)  ~%s kB/conn, proxy sockets %s\n' \
                "$IDLE_CONNS idle connections, no request sent" "$(kb_to_mb "$rss_open")" \
                "$(per_conn_kb "$rss_open" "$rss_idle" "$IDLE_CONNS")" "$fds_open"
            printf '  %-46s %7s MB   (goal <= 60 MB)  ~%s kB/conn, proxy sockets %s\n' \
                "$IDLE_CONNS idle connections, one request each" "$(kb_to_mb "$rss_req")" \
                "$(per_conn_kb "$rss_req" "$rss_idle2" "$IDLE_CONNS")" "$fds_req"
            printf '  %-46s %7s MB / %s MB   (peak %s MB / %s MB)\n' "after the connections closed (no req / req)" \
                "$(kb_to_mb "$closed_open")" "$(kb_to_mb "$closed_req")" "$(kb_to_mb "$hwm_open")" "$(kb_to_mb "$hwm_req")"
            echo "  client, no request:   $open_line"
            echo "  client, one request:  $req_line"
        fi
        echo
        echo "raw wrk output and configs: $RESULTS"
    } >"$summary"
    echo
    cat "$summary"
    log "done in $((SECONDS - started)) s"
}

main "$@"

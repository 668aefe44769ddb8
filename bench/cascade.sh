#!/usr/bin/env bash
# The cascade: a slow upstream behind one route, steady traffic on another route, and what the
# second route's clients see, with watertight (a bulkhead on the slow route) and with nginx
# configured the usual way, side by side in one run.
#
# Upstreams: "slow" (bench/cascade.py serve: answers every request after SLOW_DELAY seconds,
# holding the connection meanwhile) and "fast" (nginx, a 13-byte body from memory). Both
# proxies route /a/ to slow and /b/ to fast. Per round and proxy:
#   baseline: wrk on /b/ alone;
#   cascade:  A_CONNS clients on /a/ (bench/cascade.py load), and once they are all in flight,
#             the same wrk on /b/.
# Prints B's success rate, p50, p99 in baseline vs cascade (and the p99 ratio), and what A's
# clients got (status, x-watertight-reason, latency). See bench/README.md. Everything runs on
# 127.0.0.1 from a temp dir and is stopped on exit.
#
# Knobs (environment): ROUNDS=3 DURATION=20s WARMUP=2s B_CONNS=50 B_DELAY_MS=10 B_TIMEOUT=10s
#   A_CONNS=200 A_MODE=closed A_RAMP=2 SLOW_DELAY=5 BULKHEAD=20 NGINX_WORKER_CONNECTIONS=768
#   A_CPUS=<cpu list> SKIP_BUILD=0 WT_BIN=<path> KEEP_TMP=0 RESULTS_DIR=<dir>
#
# The process, port and build helpers are copies of the ones in proxy-vs-peers.sh (that
# script runs its main when sourced); keep them in step.

set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-2s}
B_CONNS=${B_CONNS:-50}
B_DELAY_MS=${B_DELAY_MS:-10}
B_TIMEOUT=${B_TIMEOUT:-10s}
A_CONNS=${A_CONNS:-200}
A_MODE=${A_MODE:-closed}
A_RAMP=${A_RAMP:-2}
SLOW_DELAY=${SLOW_DELAY:-5}
BULKHEAD=${BULKHEAD:-20}
NGINX_WORKER_CONNECTIONS=${NGINX_WORKER_CONNECTIONS:-768}
A_CPUS=${A_CPUS:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Shared helpers: logging, process bookkeeping and cleanup, build, ports, measurements.
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------------------------------------
# Argument checks
positive_knobs ROUNDS B_CONNS A_CONNS SLOW_DELAY BULKHEAD NGINX_WORKER_CONNECTIONS
whole_knobs B_DELAY_MS A_RAMP
[[ $A_MODE == closed || $A_MODE == retry-after ]] || die "A_MODE must be closed or retry-after (got '$A_MODE')"
((ROUNDS <= 20)) || die "ROUNDS must be at most 20"
[[ -z $A_CPUS || $A_CPUS =~ ^[0-9]+([,-][0-9]+)*$ ]] || die "A_CPUS must be a CPU list like 1 or 2-3 (got '$A_CPUS')"

DURATION_S=$(to_seconds "$DURATION")
WARMUP_S=$(to_seconds "$WARMUP")
B_TIMEOUT_S=$(to_seconds "$B_TIMEOUT")
[[ $DURATION_S =~ ^[1-9][0-9]*$ ]] && ((DURATION_S <= 600)) || die "DURATION must look like 20s, 20 or 1m, at most 10m (got '$DURATION')"
[[ $WARMUP_S =~ ^[0-9]+$ ]] || die "WARMUP must look like 2s, 2 or 0 (got '$WARMUP')"
[[ $B_TIMEOUT_S =~ ^[1-9][0-9]*$ ]] || die "B_TIMEOUT must look like 10s, 10 or 1m (got '$B_TIMEOUT')"

# ---------------------------------------------------------------------------------------------
# Readiness and measurements
# expect NAME URL STATUS BODY : one GET must answer STATUS with BODY (BODY "-": any)
expect() {
    local name=$1 url=$2 status=$3 body=$4 code
    code=$(curl -sS --max-time $((SLOW_DELAY + 5)) -D "$RESULTS/headers-$name.txt" -o "$TMP/body-$name" \
        -w '%{http_code}' "$url") || die "$name: GET $url failed"
    [[ $code == "$status" ]] || die "$name: GET $url: expected $status, got $code"
    [[ $body == - || $(cat "$TMP/body-$name") == "$body" ]] || die "$name: GET $url: unexpected body"
}

# slow_stats [reset] : the slow upstream's counters as JSON
slow_stats() {
    curl -sS --max-time 5 "http://127.0.0.1:$SLOW_PORT/__stats${1:+?reset=1}" 2>/dev/null || echo '{}'
}

# wait_slow_idle : until the slow upstream has nothing in flight (at most SLOW_DELAY + 15 s)
wait_slow_idle() {
    local i
    for ((i = 0; i < (SLOW_DELAY + 15) * 10; i++)); do
        [[ $(slow_stats) == *'"in_flight": 0,'* ]] && return 0
        sleep 0.1
    done
    log "WARNING: the slow upstream still has requests in flight: $(slow_stats)"
}

cpu_pct() { # TICKS_BEFORE TICKS_AFTER NS_BEFORE NS_AFTER -> % of one core
    awk -v d=$(($2 - $1)) -v hz="$CLK_TCK" -v ns=$(($4 - $3)) 'BEGIN {printf "%.0f", d / hz / (ns / 1e9) * 100}'
}

# ---------------------------------------------------------------------------------------------
# Configs

# nginx as the proxy, configured the usual way: one worker, Debian's worker_connections,
# an upstream block with keepalive per service, default proxy timeouts (60 s), no access log.
write_nginx_proxy_conf() { # PORT SLOW_PORT FAST_PORT
    mkdir -p "$TMP/nginx-proxy"
    cat >"$TMP/nginx-proxy.conf" <<EOF
# nginx as the proxy under test, the usual way (Debian's nginx.conf defaults where it has one).
worker_processes 1;
daemon off;
pid $TMP/nginx-proxy.pid;
error_log $TMP/nginx-proxy-error.log warn;
events { worker_connections $NGINX_WORKER_CONNECTIONS; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx-proxy/body;
    proxy_temp_path $TMP/nginx-proxy/proxy;
    fastcgi_temp_path $TMP/nginx-proxy/fastcgi;
    uwsgi_temp_path $TMP/nginx-proxy/uwsgi;
    scgi_temp_path $TMP/nginx-proxy/scgi;
    upstream slow {
        server 127.0.0.1:$2;
        keepalive 32;
    }
    upstream fast {
        server 127.0.0.1:$3;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$1;
        location /a/ {
            proxy_pass http://slow;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /b/ {
            proxy_pass http://fast;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

write_wt_conf() { # PORT ADMIN_PORT SLOW_PORT FAST_PORT
    cat >"$TMP/watertight.yaml" <<EOF
# watertight for cascade.sh: a bulkhead on the slow route only.
access_log: "off"
admin: {address: 127.0.0.1:$2}
listeners:
  - name: edge
    address: 127.0.0.1:$1
    routes:
      - name: a
        match: {prefix: /a/}
        cluster: slow
        timeout: 10s
        bulkhead: {max_concurrent: $BULKHEAD, max_queue: 0}
      - name: b
        match: {prefix: /b/}
        cluster: fast
clusters:
  - name: slow
    endpoints: [{address: "127.0.0.1:$3"}]
  - name: fast
    endpoints: [{address: "127.0.0.1:$4"}]
EOF
}

# The wrk script for B: counts the requests it sends (a request that never gets an answer
# counts as a failure), paces each connection by B_DELAY_MS, and prints one parseable line.
write_wrk_script() {
    {
        cat <<'EOF'
-- generated by bench/cascade.sh
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) sent = 0 end
function request()
    sent = sent + 1
    return wrk.format(nil, "/b/x")
end
EOF
        if ((B_DELAY_MS > 0)); then
            echo "function delay() return $B_DELAY_MS end"
        fi
        cat <<'EOF'
function done(summary, latency, requests)
    -- wrk 4.1 calls request() once more before the run, to check it: not a request sent.
    local s = -1
    for _, t in ipairs(threads) do s = s + t:get("sent") end
    local e = summary.errors
    io.write(string.format(
        "CASCADE sent=%d requests=%d status=%d timeout=%d connect=%d read=%d write=%d p50_us=%d p99_us=%d max_us=%d duration_us=%d\n",
        s, summary.requests, e.status, e.timeout, e.connect, e.read, e.write,
        latency:percentile(50), latency:percentile(99), latency.max, summary.duration))
end
EOF
    } >"$TMP/b.lua"
}

# ---------------------------------------------------------------------------------------------
# One phase: NAME PORT PGID ROUND PHASE(baseline|cascade) ; appends a line to rounds.tsv
# (PGID: the proxy's process group, for its CPU use while wrk measures)
run_phase() {
    local name=$1 port=$2 pgid=$3 round=$4 phase=$5
    local tag="r$round-$name-$phase" out apid=0 ajson="-" peak="-" refused="-" nwarn="-" i
    local metrics_before="$TMP/$tag-metrics-before.txt" metrics_mid="$RESULTS/$tag-metrics.txt"
    out="$RESULTS/$tag-wrk.txt"
    wait_slow_idle
    slow_stats reset >/dev/null
    if [[ $name == watertight ]]; then
        curl -sS --max-time 5 "http://127.0.0.1:$WT_ADMIN/metrics" >"$metrics_before" 2>/dev/null || true
    fi
    local ng_warn_before=0
    [[ -f $TMP/nginx-proxy-error.log ]] && ng_warn_before=$(grep -c 'worker_connections are not enough' "$TMP/nginx-proxy-error.log" || true)

    if [[ $phase == cascade ]]; then
        local a_args=(--port "$port" --path /a/x -c "$A_CONNS" --duration $((A_RAMP + WARMUP_S + DURATION_S + 2))
            --grace $((SLOW_DELAY + 5)) --timeout 30)
        [[ $A_MODE == retry-after ]] && a_args+=(--honour-retry-after)
        ajson="$RESULTS/$tag-a.json"
        spawn "$ajson" "${A_PIN[@]}" timeout --kill-after=5 $((A_RAMP + WARMUP_S + DURATION_S + SLOW_DELAY + 60)) \
            python3 "$ROOT/bench/cascade.py" load "${a_args[@]}"
        apid=$SPAWNED
        # stderr goes to the same file as the JSON; READY is on its own line
        for ((i = 0; i < 150; i++)); do
            grep -q '^READY' "$ajson" 2>/dev/null && break
            kill -0 "$apid" 2>/dev/null || break
            sleep 0.1
        done
        grep -q '^READY' "$ajson" 2>/dev/null ||
            log "WARNING: not all $A_CONNS A clients had sent a request after 15 s (going on)"
        sleep "$A_RAMP"
    fi

    if ((WARMUP_S > 0)); then
        run_fg "$RESULTS/$tag-wrk-warmup.txt" timeout --kill-after=5 $((WARMUP_S + B_TIMEOUT_S + 30)) \
            wrk -t1 -c"$B_CONNS" -d"${WARMUP_S}s" --timeout "${B_TIMEOUT_S}s" -s "$TMP/b.lua" \
            "http://127.0.0.1:$port" || log "WARNING: $tag warm-up wrk exited non-zero"
    fi
    {
        echo "# loadavg before: $(cat /proc/loadavg)"
        echo "# wrk -t1 -c$B_CONNS -d${DURATION_S}s --timeout ${B_TIMEOUT_S}s --latency -s b.lua (B_DELAY_MS=$B_DELAY_MS) http://127.0.0.1:$port/b/x"
    } >"$out"
    local t0 t1 a0=0 a1=0 w0 w1 cpu acpu=-
    t0=$(group_ticks "$pgid")
    ((apid > 0)) && a0=$(group_ticks "$apid")
    w0=$(date +%s%N)
    run_fg "$out" timeout --kill-after=5 $((DURATION_S + B_TIMEOUT_S + 30)) \
        wrk -t1 -c"$B_CONNS" -d"${DURATION_S}s" --timeout "${B_TIMEOUT_S}s" --latency -s "$TMP/b.lua" \
        "http://127.0.0.1:$port" || log "WARNING: $tag wrk exited non-zero (see $out)"
    t1=$(group_ticks "$pgid")
    ((apid > 0)) && a1=$(group_ticks "$apid")
    w1=$(date +%s%N)
    cpu=$(cpu_pct "$t0" "$t1" "$w0" "$w1")
    ((apid > 0)) && acpu=$(cpu_pct "$a0" "$a1" "$w0" "$w1")
    {
        echo "# proxy CPU during the run: ${cpu}% of one core; A load client: ${acpu}%"
        echo "# loadavg after: $(cat /proc/loadavg)"
    } >>"$out"

    # While A's clients are still at it: the proxy's view and the slow upstream's.
    if [[ $name == watertight ]]; then
        curl -sS --max-time 5 "http://127.0.0.1:$WT_ADMIN/metrics" >"$metrics_mid" 2>/dev/null || true
    fi
    local stats
    stats=$(slow_stats)
    echo "$stats" >"$RESULTS/$tag-slow-upstream.json"
    peak=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("peak_in_flight", "-"))' "$stats" 2>/dev/null || echo -)

    if ((apid > 0)); then
        wait "$apid" 2>/dev/null || log "WARNING: the A load client exited non-zero (see $ajson)"
        stop_pid "$apid"
    fi
    if [[ $name == watertight && -s $metrics_mid ]]; then
        local b0 b1
        b0=$(metric watertight_proxy_errors_total 'reason="bulkhead-full"' "$metrics_before")
        b1=$(metric watertight_proxy_errors_total 'reason="bulkhead-full"' "$metrics_mid")
        [[ $b0 == - ]] && b0=0
        [[ $b1 != - ]] && refused=$((b1 - b0))
        log "  watertight mid-run: bulkhead_in_flight $(metric watertight_bulkhead_in_flight 'route="a"' "$metrics_mid")/$(metric watertight_bulkhead_limit 'route="a"' "$metrics_mid"), bulkhead-full so far this phase $refused"
    fi
    if [[ -f $TMP/nginx-proxy-error.log ]]; then
        nwarn=$(($(grep -c 'worker_connections are not enough' "$TMP/nginx-proxy-error.log" || true) - ng_warn_before))
    fi

    local line
    line=$(grep -m1 '^CASCADE' "$out" || true)
    if [[ -z $line ]]; then
        log "WARNING: no result line from wrk for $tag (see $out)"
        line="CASCADE"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$phase" "$line" "$ajson" "$peak" \
        "$refused" "$nwarn" "$cpu" "$acpu" >>"$RESULTS/rounds.tsv"
    log "  $tag: ${line#CASCADE }; proxy CPU ${cpu}%, A client CPU ${acpu}%; slow upstream peak in flight $peak"
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
    # A_CPUS: the A load client runs there, and this script with everything else it starts
    # (proxies, upstreams, wrk) on the other CPUs, so that A's client does not take CPU from them.
    A_PIN=()
    if [[ -n $A_CPUS ]]; then
        command -v taskset >/dev/null 2>&1 || die "A_CPUS needs taskset (util-linux)"
        local others
        others=$(python3 -c 'import os, sys
a = set()
for part in sys.argv[1].split(","):
    lo, _, hi = part.partition("-")
    a.update(range(int(lo), int(hi or lo) + 1))
rest = sorted(os.sched_getaffinity(0) - a)
print(",".join(map(str, rest)))' "$A_CPUS")
        [[ -n $others ]] || die "A_CPUS=$A_CPUS leaves no CPU for the rest"
        taskset -pc "$others" $$ >/dev/null || die "cannot pin the script to CPUs $others"
        A_PIN=(taskset -c "$A_CPUS")
        log "pinned: A load client on CPU(s) $A_CPUS, everything else on $others"
    fi
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

    TMP=$(mktemp -d "${TMPDIR:-/tmp}/cascade.XXXXXX")
    chmod 755 "$TMP"
    RESULTS=${RESULTS_DIR:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)-cascade}
    mkdir -p "$RESULTS"
    : >"$RESULTS/rounds.tsv"

    local fast_port wt_port ng_port
    read -r SLOW_PORT fast_port wt_port WT_ADMIN ng_port <<<"$(pick_ports 5)"
    {
        echo "date: $(date -Is)"
        echo "host: $(uname -srm), $(nproc --all) CPUs, loadavg $(cat /proc/loadavg)"
        echo "knobs: ROUNDS=$ROUNDS DURATION=${DURATION_S}s WARMUP=${WARMUP_S}s B_CONNS=$B_CONNS B_DELAY_MS=$B_DELAY_MS B_TIMEOUT=${B_TIMEOUT_S}s A_CONNS=$A_CONNS A_MODE=$A_MODE A_RAMP=${A_RAMP}s SLOW_DELAY=${SLOW_DELAY}s BULKHEAD=$BULKHEAD NGINX_WORKER_CONNECTIONS=$NGINX_WORKER_CONNECTIONS A_CPUS=${A_CPUS:-none} open-files=$(ulimit -n)"
        echo "watertight: $WT_BIN ($("$WT_BIN" --version 2>/dev/null || echo '?'), built $(date -r "$WT_BIN" -Is))"
        echo "workspace: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
        echo "nginx: $(nginx -v 2>&1)"
        echo "wrk: $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}')"
        echo "python: $(python3 --version 2>&1)"
        echo "ports: slow=$SLOW_PORT fast=$fast_port watertight=$wt_port (admin $WT_ADMIN) nginx=$ng_port"
    } >"$RESULTS/env.txt"
    cat "$RESULTS/env.txt" >&2

    # Upstreams
    spawn "$TMP/slow-upstream.log" python3 "$ROOT/bench/cascade.py" serve --port "$SLOW_PORT" --delay "$SLOW_DELAY"
    local slow_pid=$SPAWNED
    wait_port "$SLOW_PORT" "$slow_pid" "slow upstream"
    write_nginx_upstream_conf "$fast_port" nginx-fast
    spawn "$TMP/nginx-fast.log" nginx -p "$TMP" -e "$TMP/nginx-fast-error.log" -c "$TMP/nginx-fast.conf"
    local fast_pid=$SPAWNED
    wait_port "$fast_port" "$fast_pid" "fast upstream nginx"

    # Proxies
    write_wt_conf "$wt_port" "$WT_ADMIN" "$SLOW_PORT" "$fast_port"
    "$WT_BIN" check --config "$TMP/watertight.yaml" >&2 || die "watertight check rejected the config"
    spawn "$TMP/watertight.log" env TOKIO_WORKER_THREADS=1 "$WT_BIN" proxy --config "$TMP/watertight.yaml"
    local wt_pid=$SPAWNED
    wait_port "$wt_port" "$wt_pid" "watertight"
    write_nginx_proxy_conf "$ng_port" "$SLOW_PORT" "$fast_port"
    spawn "$TMP/nginx-proxy.log" nginx -p "$TMP" -e "$TMP/nginx-proxy-error.log" -c "$TMP/nginx-proxy.conf"
    local ng_pid=$SPAWNED
    wait_port "$ng_port" "$ng_pid" "nginx proxy"
    cp "$TMP/nginx-fast.conf" "$TMP/nginx-proxy.conf" "$TMP/watertight.yaml" "$RESULTS/"
    write_wrk_script
    cp "$TMP/b.lua" "$RESULTS/"
    {
        echo "python3 bench/cascade.py serve --port $SLOW_PORT --delay $SLOW_DELAY"
        echo "nginx -p $TMP -e $TMP/nginx-fast-error.log -c $TMP/nginx-fast.conf"
        echo "TOKIO_WORKER_THREADS=1 $WT_BIN proxy --config $TMP/watertight.yaml"
        echo "nginx -p $TMP -e $TMP/nginx-proxy-error.log -c $TMP/nginx-proxy.conf"
        echo "wrk -t1 -c$B_CONNS -d${DURATION_S}s --timeout ${B_TIMEOUT_S}s --latency -s b.lua http://127.0.0.1:PORT"
        echo "python3 bench/cascade.py load --port PORT --path /a/x -c $A_CONNS ... $([[ $A_MODE == retry-after ]] && echo --honour-retry-after)"
    } >"$RESULTS/commands.txt"

    # Every path answers as expected through both proxies.
    local name port
    for name in watertight nginx; do
        port=$wt_port
        [[ $name == nginx ]] && port=$ng_port
        expect "$name-b" "http://127.0.0.1:$port/b/x" 200 "hello, world"
        expect "$name-a" "http://127.0.0.1:$port/a/x" 200 "slow"
    done
    log "nginx proxy: $(pgrep -c -P "$ng_pid" || true) worker(s), worker_connections $NGINX_WORKER_CONNECTIONS"

    local per_phase=$((WARMUP_S + DURATION_S))
    log "running $ROUNDS rounds x 2 proxies x (baseline + cascade), ~$((ROUNDS * 2 * (2 * per_phase + A_RAMP + SLOW_DELAY + 5))) s"
    local round order pgid
    for ((round = 1; round <= ROUNDS; round++)); do
        order=(watertight nginx)
        ((round % 2 == 0)) && order=(nginx watertight)
        for name in "${order[@]}"; do
            port=$wt_port
            [[ $name == nginx ]] && port=$ng_port
            log "round $round: $name"
            pgid=$wt_pid
            [[ $name == nginx ]] && pgid=$ng_pid
            run_phase "$name" "$port" "$pgid" "$round" baseline
            run_phase "$name" "$port" "$pgid" "$round" cascade
            kill -0 "$wt_pid" 2>/dev/null || die "watertight died (see $RESULTS/watertight.log)"
            kill -0 "$ng_pid" 2>/dev/null || die "nginx died (see $RESULTS/nginx-proxy-error.log)"
        done
    done
    curl -sS --max-time 5 "http://127.0.0.1:$WT_ADMIN/metrics" >"$RESULTS/watertight-metrics-end.txt" 2>/dev/null || true

    python3 "$ROOT/bench/cascade.py" summarize --rounds "$RESULTS/rounds.tsv" \
        --title "cascade: ROUNDS=$ROUNDS B: wrk -c$B_CONNS ${DURATION_S}s B_DELAY_MS=$B_DELAY_MS; A: $A_CONNS clients ($A_MODE${A_CPUS:+, on CPU $A_CPUS}) on a ${SLOW_DELAY}s upstream; watertight bulkhead $BULKHEAD; nginx worker_connections $NGINX_WORKER_CONNECTIONS ($(nproc --all) CPUs)" \
        >"$RESULTS/summary.txt" || die "summary failed (raw data in $RESULTS)"
    echo "raw output and configs: $RESULTS" >>"$RESULTS/summary.txt"
    echo
    cat "$RESULTS/summary.txt"
    log "done in $((SECONDS - started)) s"
}

main "$@"

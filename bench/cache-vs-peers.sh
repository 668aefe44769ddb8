#!/usr/bin/env bash
# Compare watertight's HTTP cache (`proxy --cache`) with Varnish and nginx proxy_cache.
#
# One origin (nginx) serves two cacheable objects (`Cache-Control: public, max-age=3600`,
# ETag, Last-Modified): /small (13 bytes) and /large (100 KiB), and proxies /burst/* to a
# slow, counting origin (bench/cache_burst.py serve). watertight (--cache), Varnish (default
# VCL, malloc storage) and nginx (proxy_cache, proxy_cache_lock) sit in front of it with the
# same thread/worker count and the same CPUs.
#   1. Cache hits: each cache is warmed and checked to answer from cache, then wrk drives
#      /small and /large through each in alternating rounds; the origin's access log shows
#      that no request reached it meanwhile.
#   2. Origin offload: per round and proxy, BURST_N concurrent GETs of one cold URL sent at
#      the same moment (bench/cache_burst.py burst); the slow origin counts how many reached
#      it (goal: exactly one).
# See bench/README.md. Everything runs on 127.0.0.1 from a temp dir and is stopped on exit.
#
# Knobs (environment): THREADS=1 CONNS=50 DURATION=10s ROUNDS=3 WARMUP=2s WRK_THREADS=1
#   OBJECTS="small large" BURST_N=1000 BURST_ROUNDS=3 BURST_DELAY=1 BURST_TIMEOUT=30 PIN=1
#   BASELINE=0 SKIP_BUILD=0 WT_BIN=<path> KEEP_TMP=0 RESULTS_DIR=<dir>

set -euo pipefail

THREADS=${THREADS:-1}
CONNS=${CONNS:-50}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2s}
WRK_THREADS=${WRK_THREADS:-1}
OBJECTS=${OBJECTS:-small large}
BURST_N=${BURST_N:-1000}
BURST_ROUNDS=${BURST_ROUNDS:-3}
BURST_DELAY=${BURST_DELAY:-1}
BURST_TIMEOUT=${BURST_TIMEOUT:-30}
PIN=${PIN:-1}
BASELINE=${BASELINE:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Shared helpers: logging, process bookkeeping and cleanup, build, ports, measurements.
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# ---------------------------------------------------------------------------------------------
# Argument checks
positive_knobs THREADS CONNS ROUNDS WRK_THREADS BURST_N BURST_TIMEOUT
[[ $BURST_ROUNDS =~ ^[0-9]+$ ]] || die "BURST_ROUNDS must be a whole number (got '$BURST_ROUNDS')"
[[ $BURST_DELAY =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BURST_DELAY must be a number of seconds (got '$BURST_DELAY')"
[[ $PIN == 0 || $PIN == 1 ]] || die "PIN must be 0 or 1 (got '$PIN')"
[[ $BASELINE == 0 || $BASELINE == 1 ]] || die "BASELINE must be 0 or 1 (got '$BASELINE')"
((ROUNDS <= 20 && BURST_ROUNDS <= 20)) || die "ROUNDS and BURST_ROUNDS must be at most 20"
((BURST_N <= 20000)) || die "BURST_N must be at most 20000"
((BURST_TIMEOUT <= 300)) || die "BURST_TIMEOUT must be at most 300"
(( WRK_THREADS <= CONNS )) || die "WRK_THREADS ($WRK_THREADS) must not exceed CONNS ($CONNS)"
for obj in $OBJECTS; do
    [[ $obj == small || $obj == large ]] || die "OBJECTS may name only small and large (got '$obj')"
done
[[ -n ${OBJECTS// /} ]] || die "OBJECTS is empty"

DURATION_S=$(to_seconds "$DURATION")
WARMUP_S=$(to_seconds "$WARMUP")
[[ $DURATION_S =~ ^[1-9][0-9]*$ ]] && ((DURATION_S <= 600)) || die "DURATION must look like 10s, 10 or 1m, at most 10m (got '$DURATION')"
[[ $WARMUP_S =~ ^[0-9]+$ ]] || die "WARMUP must look like 2s, 2 or 0 (got '$WARMUP')"

LARGE_BYTES=102400
SMALL_BODY='hello, world'   # plus a newline: 13 bytes

# ---------------------------------------------------------------------------------------------
# Tools: nginx and wrk are named like their packages (lib.sh's install_tools); varnishd is not.
install_varnish() {
    command -v varnishd >/dev/null 2>&1 && return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "missing varnishd and not root (no sudo)"
        sudo=(sudo)
    fi
    log "installing varnish (missing: varnishd)"
    export DEBIAN_FRONTEND=noninteractive
    if ! run_fg - timeout 600 "${sudo[@]}" apt-get install -y varnish; then
        run_fg - timeout 600 "${sudo[@]}" apt-get update || die "apt-get update failed"
        run_fg - timeout 600 "${sudo[@]}" apt-get install -y varnish || die "apt-get install varnish failed"
    fi
    command -v varnishd >/dev/null 2>&1 || die "varnishd still missing after apt-get install varnish"
}

# ---------------------------------------------------------------------------------------------
# Measurements

# origin_lines : requests the origin nginx has logged so far
origin_lines() { wc -l <"$TMP/origin-access.log" 2>/dev/null || echo 0; }

# origin_count PATH : requests for exactly PATH the slow origin has seen
origin_count() {
    curl -sS --max-time 5 "http://127.0.0.1:$SLOW_PORT/__stats?path=$1" 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo "?"
}

# is_hit HEADERS_FILE : the response was answered from the proxy's cache
#   watertight: Cache-Status member with `hit`; nginx: X-Cache-Status: HIT;
#   Varnish: X-Varnish with two transaction ids (this request's and the stored object's)
is_hit() {
    tr -d '\r' <"$1" | grep -qiE '^cache-status:.*;[[:space:]]*hit([;,[:space:]]|$)|^x-cache-status:[[:space:]]*hit$|^x-varnish:[[:space:]]*[0-9]+[[:space:]]+[0-9]+$'
}

# warm NAME PORT OBJ : three GETs; each must be 200 with the right body, the last a hit.
# Sets WARM_HIT (yes/no).
warm() {
    local name=$1 port=$2 obj=$3 i code hdr="$RESULTS/headers-$1-$3.txt"
    for ((i = 1; i <= 3; i++)); do
        code=$(curl -sS --max-time 10 -D "$hdr" -o "$TMP/body-$name-$obj" -w '%{http_code}' \
            "http://127.0.0.1:$port/$obj") || die "$name: GET /$obj failed"
        [[ $code == 200 ]] || die "$name: GET /$obj: expected 200, got $code (headers: $hdr)"
        cmp -s "$TMP/body-$name-$obj" "$TMP/www/$obj" || die "$name: GET /$obj: unexpected body"
    done
    if [[ $name == direct ]]; then
        WARM_HIT=-
    elif is_hit "$hdr"; then
        WARM_HIT=yes
    else
        WARM_HIT=no
        log "WARNING: $name: the third GET /$obj was not answered from the cache (headers: $hdr)"
    fi
}

# run_wrk NAME PORT OBJ ROUND PGID : warm-up, measurement, one TSV line appended to rounds.tsv
run_wrk() {
    local name=$1 port=$2 obj=$3 round=$4 pgid=$5 out rps p50 p99 non2xx sockerr reqs t0 t1 w0 w1 cpu o0 o1
    local url="http://127.0.0.1:$port/$obj"
    if ((WARMUP_S > 0)); then
        : >"$RESULTS/r$round-$name-$obj-warmup.txt"
        run_fg "$RESULTS/r$round-$name-$obj-warmup.txt" timeout --kill-after=5 $((WARMUP_S + 30)) \
            "${LOAD_PIN[@]}" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP_S}s" "$url" ||
            log "WARNING: $name /$obj warm-up wrk exited non-zero"
    fi
    out="$RESULTS/r$round-$name-$obj.txt"
    {
        echo "# loadavg before: $(cat /proc/loadavg)"
        echo "# ${LOAD_PIN[*]} wrk -t$WRK_THREADS -c$CONNS -d${DURATION_S}s --latency $url"
    } >"$out"
    o0=$(origin_lines)
    t0=$(group_ticks "$pgid")
    w0=$(date +%s%N)
    run_fg "$out" timeout --kill-after=5 $((DURATION_S + 30)) \
        "${LOAD_PIN[@]}" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION_S}s" --latency "$url" ||
        log "WARNING: $name /$obj wrk exited non-zero (see $out)"
    t1=$(group_ticks "$pgid")
    w1=$(date +%s%N)
    o1=$(origin_lines)
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v ns=$((w1 - w0)) 'BEGIN {printf "%.0f", d / hz / (ns / 1e9) * 100}')
    {
        echo "# target CPU during the run: ${cpu}% of one core"
        echo "# requests that reached the origin during the run: $((o1 - o0))"
        echo "# loadavg after: $(cat /proc/loadavg)"
    } >>"$out"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    reqs=$(awk '/ requests in / {print $1}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    sockerr=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
    if [[ -z $rps || -z $p50 || -z $p99 ]]; then
        log "WARNING: could not parse wrk output for $name /$obj round $round (see $out)"
        return 0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$obj" "$round" "$rps" "$(to_ms "$p50")" \
        "$(to_ms "$p99")" "${non2xx:-0}" "${sockerr:-0}" "$cpu" "$((o1 - o0))" >>"$RESULTS/rounds.tsv"
    log "  $name /$obj round $round: $rps req/s, p50 $p50, p99 $p99, requests $reqs, non-2xx ${non2xx:-0}, socket errors ${sockerr:-0}, CPU ${cpu}%, origin requests $((o1 - o0))"
}

# run_burst NAME PORT ROUND : BURST_N concurrent GETs of a cold URL; one line to burst.tsv
run_burst() {
    local name=$1 port=$2 round=$3 path="/burst/r$3-$1" out before count logged followup code
    out="$RESULTS/burst-r$round-$name.txt"
    before=$(origin_count "$path")
    [[ $before == 0 ]] || log "WARNING: $path already reached the origin $before times before the burst"
    local l0
    l0=$(grep -c " $path " "$TMP/origin-access.log" 2>/dev/null || true)
    run_fg "$out" timeout --kill-after=5 $((BURST_TIMEOUT + 15)) "${LOAD_PIN[@]}" \
        python3 "$ROOT/bench/cache_burst.py" burst --port "$port" --path "$path" -n "$BURST_N" \
        --timeout "$BURST_TIMEOUT" --expect-body "burst $path\\n" ||
        log "WARNING: $name burst client exited non-zero (see $out)"
    # The origin counts on arrival; anything still on its way arrives within a moment.
    sleep 0.5
    count=$(origin_count "$path")
    logged=$(grep -c " $path " "$TMP/origin-access.log" 2>/dev/null || true)
    logged=$(( ${logged:-0} - ${l0:-0} ))
    # The next GET of the same URL should be a hit: the burst's answer was stored.
    code=$(curl -sS --max-time 10 -D "$RESULTS/headers-$name-burst-r$round.txt" -o /dev/null \
        -w '%{http_code}' "http://127.0.0.1:$port$path" 2>/dev/null || true)
    if [[ $code == 200 ]] && is_hit "$RESULTS/headers-$name-burst-r$round.txt"; then
        followup=hit
    else
        followup="not-hit($code)"
    fi
    python3 - "$name" "$round" "$count" "$logged" "$followup" "$out" >>"$RESULTS/burst.tsv" <<'EOF'
import json, sys
name, rnd, count, logged, followup, path = sys.argv[1:7]
s = {}
for line in open(path, errors="replace"):
    if line.startswith("{"):
        s = json.loads(line)
fmt = lambda d: ",".join(f"{k}:{v}" for k, v in sorted(d.items())) or "-"
print("\t".join(str(x) for x in (
    name, rnd, count, logged, s.get("requested", "?"), s.get("connected", "?"),
    s.get("answered", "?"), s.get("body_ok", "?"), fmt(s.get("statuses", {})),
    fmt(s.get("errors", {})), fmt(s.get("cache", {})), s.get("p50_ms"), s.get("p99_ms"),
    s.get("max_ms"), followup)))
EOF
    log "  $name burst round $round ($path): origin requests $count (origin log: $logged), follow-up $followup; $(grep -m1 '^{' "$out" || echo 'no summary')"
}

# ---------------------------------------------------------------------------------------------
# Configs


write_origin_conf() { # PORT SLOW_PORT
    mkdir -p "$TMP/origin"
    {
        echo "# The origin: two static files with Cache-Control (nginx adds ETag and Last-Modified),"
        echo "# and /burst/ from the slow, counting origin. Every request is logged (unbuffered)."
        nginx_preamble origin 1
        cat <<EOF
    log_format origin '\$msec \$request_uri \$status \$body_bytes_sent';
    upstream slow {
        server 127.0.0.1:$2;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$1 backlog=4096;
        access_log $TMP/origin-access.log origin;
        root $TMP/www;
        location = /small {
            default_type text/plain;
            add_header Cache-Control "public, max-age=3600";
        }
        location = /large {
            default_type application/octet-stream;
            add_header Cache-Control "public, max-age=3600";
        }
        location /burst/ {
            proxy_pass http://slow;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location / {
            return 404;
        }
    }
}
EOF
    } >"$TMP/origin.conf"
}

write_nginx_cache_conf() { # PORT ORIGIN_PORT
    mkdir -p "$TMP/nginx-cache/store"
    {
        echo "# nginx proxy_cache as the cache under test: cache files in the temp dir, one lock per"
        echo "# key (proxy_cache_lock) so concurrent misses wait for the first, keep-alive upstream."
        nginx_preamble nginx-cache "$THREADS"
        cat <<EOF
    proxy_cache_path $TMP/nginx-cache/store levels=1:2 keys_zone=bench:16m max_size=256m
                     inactive=1h use_temp_path=off;
    upstream origin {
        server 127.0.0.1:$2;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$1 backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_valid 200 1h;
            proxy_cache_lock on;
            proxy_cache_lock_timeout $((BURST_TIMEOUT))s;
            proxy_cache_lock_age $((BURST_TIMEOUT))s;
            add_header X-Cache-Status \$upstream_cache_status always;
        }
    }
}
EOF
    } >"$TMP/nginx-cache.conf"
}

# ---------------------------------------------------------------------------------------------
# Main
main() {
    local started=$SECONDS
    install_tools nginx wrk
    install_varnish
    command -v curl >/dev/null 2>&1 || die "curl is needed"
    command -v python3 >/dev/null 2>&1 || die "python3 is needed"
    build_watertight
    [[ -x $WT_BIN ]] || die "no watertight binary at $WT_BIN"
    "$WT_BIN" proxy --help 2>/dev/null | grep -q -- '--cache' || die "$WT_BIN proxy has no --cache option"

    # Open files: BURST_N client sockets, and as many again at the proxy (client + origin side).
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local nofile
    nofile=$(ulimit -n)
    if [[ $nofile != unlimited ]] && ((nofile < 2 * BURST_N + 512)); then
        die "open-file limit is $nofile (hard limit $(ulimit -Hn)); BURST_N=$BURST_N needs $((2 * BURST_N + 512))"
    fi

    # CPUs: the proxy under test gets CPUs 0..THREADS-1, everything else (wrk, the burst client,
    # the origins) the rest, so every proxy has the same CPU budget (Varnish runs a thread per
    # connection whatever its pool settings; only the CPU set bounds it).
    PROXY_PIN=() LOAD_PIN=()
    local ncpu pin_note="none (PIN=0)"
    ncpu=$(nproc)
    if [[ $PIN == 1 ]]; then
        if ((ncpu > THREADS)) && command -v taskset >/dev/null 2>&1; then
            PROXY_PIN=(taskset -c "0-$((THREADS - 1))")
            LOAD_PIN=(taskset -c "$THREADS-$((ncpu - 1))")
            pin_note="proxies on CPUs 0-$((THREADS - 1)), wrk/burst client/origins on $THREADS-$((ncpu - 1))"
        else
            pin_note="none ($ncpu CPUs, THREADS=$THREADS, or no taskset)"
            log "WARNING: not pinning: $pin_note"
        fi
    fi

    TMP=$(mktemp -d "${TMPDIR:-/tmp}/cache-vs-peers.XXXXXX")
    chmod 755 "$TMP"
    RESULTS=${RESULTS_DIR:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)-cache-t$THREADS}
    mkdir -p "$RESULTS"
    : >"$RESULTS/rounds.tsv"
    : >"$RESULTS/burst.tsv"

    mkdir -p "$TMP/www"
    echo "$SMALL_BODY" >"$TMP/www/small"
    head -c "$LARGE_BYTES" /dev/urandom >"$TMP/www/large"
    chmod 644 "$TMP/www/small" "$TMP/www/large"
    : >"$TMP/origin-access.log"

    local origin_port wt_port wt_admin va_port ng_port
    read -r origin_port SLOW_PORT wt_port wt_admin va_port ng_port <<<"$(pick_ports 6)"

    {
        echo "date: $(date -Is)"
        echo "host: $(uname -srm), $ncpu CPUs, loadavg $(cat /proc/loadavg)"
        echo "knobs: THREADS=$THREADS CONNS=$CONNS DURATION=${DURATION_S}s ROUNDS=$ROUNDS WARMUP=${WARMUP_S}s WRK_THREADS=$WRK_THREADS OBJECTS='$OBJECTS' BURST_N=$BURST_N BURST_ROUNDS=$BURST_ROUNDS BURST_DELAY=${BURST_DELAY}s BURST_TIMEOUT=${BURST_TIMEOUT}s PIN=$PIN BASELINE=$BASELINE open-files=$nofile"
        echo "pinning: $pin_note"
        echo "watertight: $WT_BIN ($("$WT_BIN" --version 2>/dev/null || echo '?'), built $(date -r "$WT_BIN" -Is))"
        echo "workspace: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
        echo "varnish: $(varnishd -V 2>&1 | head -n1)"
        echo "nginx: $(nginx -v 2>&1)"
        echo "wrk: $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}')"
        echo "python: $(python3 --version 2>&1)"
        echo "ports: origin=$origin_port slow-origin=$SLOW_PORT watertight=$wt_port varnish=$va_port nginx=$ng_port"
    } >"$RESULTS/env.txt"
    cat "$RESULTS/env.txt" >&2

    # Origins
    spawn "$TMP/slow-origin.log" "${LOAD_PIN[@]}" python3 "$ROOT/bench/cache_burst.py" serve \
        --port "$SLOW_PORT" --delay "$BURST_DELAY"
    local slow_pid=$SPAWNED
    wait_port "$SLOW_PORT" "$slow_pid" "slow origin"
    write_origin_conf "$origin_port" "$SLOW_PORT"
    spawn "$TMP/origin.log" "${LOAD_PIN[@]}" nginx -p "$TMP" -e "$TMP/origin-error.log" -c "$TMP/origin.conf"
    local origin_pid=$SPAWNED
    wait_port "$origin_port" "$origin_pid" "origin nginx"

    # Caches
    spawn "$TMP/watertight.log" env TOKIO_WORKER_THREADS="$THREADS" "${PROXY_PIN[@]}" "$WT_BIN" proxy \
        --listen "127.0.0.1:$wt_port" --to "http://127.0.0.1:$origin_port" \
        --admin "127.0.0.1:$wt_admin" --access-log off --cache
    local wt_pid=$SPAWNED
    wait_port "$wt_port" "$wt_pid" "watertight"

    # Varnish: as root it drops to the varnish/vcache users (its default `-j unix` jail);
    # -T none: no management port (varnishstat still works through -n).
    spawn "$TMP/varnish.log" "${PROXY_PIN[@]}" varnishd -F -a "127.0.0.1:$va_port" \
        -b "127.0.0.1:$origin_port" -s malloc,256m -n "$TMP/varnish" -T none -p thread_pools=1
    local va_pid=$SPAWNED
    wait_port "$va_port" "$va_pid" "varnish"

    write_nginx_cache_conf "$ng_port" "$origin_port"
    spawn "$TMP/nginx-cache.log" "${PROXY_PIN[@]}" nginx -p "$TMP" -e "$TMP/nginx-cache-error.log" -c "$TMP/nginx-cache.conf"
    local ng_pid=$SPAWNED
    wait_port "$ng_port" "$ng_pid" "nginx cache"

    cp "$TMP/origin.conf" "$TMP/nginx-cache.conf" "$RESULTS/"
    {
        echo "${LOAD_PIN[*]} python3 $ROOT/bench/cache_burst.py serve --port $SLOW_PORT --delay $BURST_DELAY"
        echo "${LOAD_PIN[*]} nginx -p $TMP -e $TMP/origin-error.log -c $TMP/origin.conf"
        echo "TOKIO_WORKER_THREADS=$THREADS ${PROXY_PIN[*]} $WT_BIN proxy --listen 127.0.0.1:$wt_port --to http://127.0.0.1:$origin_port --admin 127.0.0.1:$wt_admin --access-log off --cache"
        echo "${PROXY_PIN[*]} varnishd -F -a 127.0.0.1:$va_port -b 127.0.0.1:$origin_port -s malloc,256m -n $TMP/varnish -T none -p thread_pools=1"
        echo "${PROXY_PIN[*]} nginx -p $TMP -e $TMP/nginx-cache-error.log -c $TMP/nginx-cache.conf"
    } >"$RESULTS/commands.txt"

    local wt_threads va_threads
    wt_threads=$(thread_count "$wt_pid")
    va_threads=$(for p in $(pgrep -g "$va_pid"); do thread_count "$p"; done | awk '{s += $1} END {print s + 0}')
    log "watertight: $wt_threads threads (expected $((THREADS + 1)) = main + $THREADS workers); varnish: $va_threads threads; nginx workers: $(pgrep -c -P "$ng_pid" -f 'worker process' || true)"

    # Warm every cache and check it answers from cache
    local names=(watertight varnish nginx) ports_of=("$wt_port" "$va_port" "$ng_port") pgids=("$wt_pid" "$va_pid" "$ng_pid")
    if [[ $BASELINE == 1 ]]; then
        names+=(direct)
        ports_of+=("$origin_port")
        pgids+=("$origin_pid")
    fi
    declare -A HIT
    local i obj round
    for obj in $OBJECTS; do
        for i in "${!names[@]}"; do
            warm "${names[$i]}" "${ports_of[$i]}" "$obj"
            HIT[${names[$i]}-$obj]=$WARM_HIT
        done
    done
    log "origin requests while warming: $(origin_lines) (expected $(( $(wc -w <<<"$OBJECTS") * (3 + 3 * BASELINE) )): one per cache and object$( ((BASELINE == 1)) && echo ', three per object direct'))"

    # Cache-hit throughput, alternating
    local nobj per_round
    nobj=$(wc -w <<<"$OBJECTS")
    per_round=$(( ${#names[@]} * nobj * (DURATION_S + WARMUP_S) ))
    log "cache hits: $ROUNDS rounds x ${#names[@]} targets x $nobj objects, ~$((per_round * ROUNDS)) s of load"
    for ((round = 1; round <= ROUNDS; round++)); do
        for obj in $OBJECTS; do
            for i in "${!names[@]}"; do
                run_wrk "${names[$i]}" "${ports_of[$i]}" "$obj" "$round" "${pgids[$i]}"
                kill -0 "${pgids[$i]}" 2>/dev/null || die "${names[$i]} died during the run (see its log in $RESULTS)"
            done
        done
    done
    local wt_rss_after
    wt_rss_after=$(rss_kb "$wt_pid")

    # Origin offload: bursts of concurrent requests for one cold URL
    if ((BURST_ROUNDS > 0)); then
        log "origin offload: $BURST_ROUNDS rounds x 3 caches, $BURST_N concurrent GETs of a cold URL, origin delay ${BURST_DELAY}s"
        for ((round = 1; round <= BURST_ROUNDS; round++)); do
            for i in 0 1 2; do
                run_burst "${names[$i]}" "${ports_of[$i]}" "$round"
                kill -0 "${pgids[$i]}" 2>/dev/null || die "${names[$i]} died during the burst (see its log in $RESULTS)"
            done
        done
    fi
    curl -sS --max-time 5 "http://127.0.0.1:$wt_admin/metrics" >"$RESULTS/watertight-metrics-end.txt" 2>/dev/null || true
    timeout 10 varnishstat -n "$TMP/varnish" -1 >"$RESULTS/varnishstat-end.txt" 2>&1 || true
    curl -sS --max-time 5 "http://127.0.0.1:$SLOW_PORT/__stats" >"$RESULTS/slow-origin-stats.json" 2>/dev/null || true
    cp "$TMP/origin-access.log" "$RESULTS/origin-access.txt" 2>/dev/null || true

    # -----------------------------------------------------------------------------------------
    # Summary
    local summary="$RESULTS/summary.txt" name rps p50 p99 n2 se nr cpu orig
    declare -A M_RPS M_P50 M_P99 M_CPU
    {
        echo "cache-vs-peers: THREADS=$THREADS CONNS=$CONNS DURATION=${DURATION_S}s ROUNDS=$ROUNDS WARMUP=${WARMUP_S}s WRK_THREADS=$WRK_THREADS ($ncpu CPUs; pinning: $pin_note)"
        echo
        echo "cache hits (wrk on a warm object; medians over rounds):"
        printf '%-11s %-6s %4s %11s %8s %8s %5s %10s %7s %8s %7s %6s   %s\n' cache object hit "req/s(med)" "p50 ms" "p99 ms" \
            "cpu%" "req/cpu-s" non-2xx sock-err origin rounds "req/s per round"
        for obj in $OBJECTS; do
            for name in "${names[@]}"; do
                local sel="\$1 == \"$name\" && \$2 == \"$obj\""
                nr=$(awk -F'\t' "$sel" "$RESULTS/rounds.tsv" | wc -l)
                ((nr > 0)) || { printf '%-11s %-6s %s\n' "$name" "$obj" "no data"; continue; }
                rps=$(awk -F'\t' "$sel {print \$4}" "$RESULTS/rounds.tsv" | median)
                p50=$(awk -F'\t' "$sel {print \$5}" "$RESULTS/rounds.tsv" | median)
                p99=$(awk -F'\t' "$sel {print \$6}" "$RESULTS/rounds.tsv" | median)
                n2=$(awk -F'\t' "$sel {s += \$7} END {print s + 0}" "$RESULTS/rounds.tsv")
                se=$(awk -F'\t' "$sel {s += \$8} END {print s + 0}" "$RESULTS/rounds.tsv")
                cpu=$(awk -F'\t' "$sel {print \$9}" "$RESULTS/rounds.tsv" | median)
                orig=$(awk -F'\t' "$sel {s += \$10} END {print s + 0}" "$RESULTS/rounds.tsv")
                M_RPS[$name-$obj]=$rps M_P50[$name-$obj]=$p50 M_P99[$name-$obj]=$p99 M_CPU[$name-$obj]=$cpu
                printf '%-11s %-6s %4s %11.0f %8.3f %8.3f %5.0f %10s %7s %8s %7s %6s   %s\n' "$name" "$obj" \
                    "${HIT[$name-$obj]}" "$rps" "$p50" "$p99" "$cpu" \
                    "$(awk -v r="$rps" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", r / (c / 100); else print "-"}')" \
                    "$n2" "$se" "$orig" "$nr" \
                    "$(awk -F'\t' "$sel {printf \"%s%.0f\", sep, \$4; sep=\" \"}" "$RESULTS/rounds.tsv")"
            done
        done
        echo
        local peer
        for obj in $OBJECTS; do
            for peer in varnish nginx; do
                if [[ -n ${M_RPS[watertight-$obj]:-} && -n ${M_RPS[$peer-$obj]:-} ]]; then
                    awk -v p="$peer" -v o="$obj" -v r1="${M_RPS[watertight-$obj]}" -v r2="${M_RPS[$peer-$obj]}" \
                        -v a1="${M_P50[watertight-$obj]}" -v a2="${M_P50[$peer-$obj]}" \
                        -v b1="${M_P99[watertight-$obj]}" -v b2="${M_P99[$peer-$obj]}" \
                        -v c1="${M_CPU[watertight-$obj]}" -v c2="${M_CPU[$peer-$obj]}" \
                        'BEGIN {
                            printf "watertight/%-8s %-6s req/s x%.2f   p50 x%.2f   p99 x%.2f", p, o, r1 / r2, a1 / a2, b1 / b2
                            if (c1 > 0 && c2 > 0) printf "   req/cpu-s x%.2f", (r1 / c1) / (r2 / c2)
                            if (p == "varnish")
                                printf "   goal (req/s >= Varnish, p99 no worse): %s",
                                    (r1 >= r2 && b1 <= b2) ? "met" : "NOT met"
                            printf "\n" }'
                fi
            done
        done
        echo "(req/s and req/cpu-s ratios > 1 favour watertight; latency ratios < 1 favour watertight;"
        echo " hit: the third warm-up GET was answered from the cache; origin: requests that reached the"
        echo " origin during the measured runs, summed over rounds, expected 0; direct: every request)"
        echo "watertight: $wt_threads threads at start, $(thread_count "$wt_pid") at the end (expected $((THREADS + 1))); RSS after the hit rounds $(kb_to_mb "$wt_rss_after") MB; varnish: $va_threads threads at start"
        if ((BURST_ROUNDS > 0)); then
            echo
            echo "origin offload ($BURST_N concurrent GETs of one cold URL per round, origin answers after ${BURST_DELAY}s; goal: 1 origin request):"
            printf '%-11s %-16s %6s %9s %8s %9s %9s   %s\n' cache "origin req/round" answered "200+body" "p50 ms" "p99 ms" "max ms" "how the cache answered (all rounds) / errors / follow-up GET"
            for name in watertight varnish nginx; do
                awk -F'\t' -v n="$name" '
                    $1 == n {
                        rounds++; counts = counts sep $3; sep = " "
                        ans += $7; ok += $8
                        p50[rounds] = $12; p99[rounds] = $13; if ($14 + 0 > mx) mx = $14 + 0
                        m = split($11, kv, ",")
                        for (i = 1; i <= m; i++) { split(kv[i], x, ":"); cls[x[1]] += x[2] }
                        if ($10 != "-") { m = split($10, kv, ","); for (i = 1; i <= m; i++) { split(kv[i], x, ":"); errs[x[1]] += x[2] } }
                        fol[$15]++
                    }
                    END {
                        if (!rounds) { printf "%-11s no data\n", n; exit }
                        c = ""; for (k in cls) c = c (c == "" ? "" : ", ") k " " cls[k]
                        e = ""; for (k in errs) e = e (e == "" ? "" : ", ") k " " errs[k]
                        f = ""; for (k in fol) f = f (f == "" ? "" : ", ") k " x" fol[k]
                        # median of the per-round p50 / p99 (rounds are few: sort by insertion)
                        for (i = 1; i <= rounds; i++) for (j = i + 1; j <= rounds; j++) {
                            if (p50[j] + 0 < p50[i] + 0) { t = p50[i]; p50[i] = p50[j]; p50[j] = t }
                            if (p99[j] + 0 < p99[i] + 0) { t = p99[i]; p99[i] = p99[j]; p99[j] = t } }
                        mid = int((rounds + 1) / 2)
                        printf "%-11s %-16s %6d %9d %8.0f %9.0f %9.0f   %s / errors: %s / %s\n", n, counts, ans, ok,
                            p50[mid], p99[mid], mx, c, (e == "" ? "none" : e), f }' "$RESULTS/burst.tsv"
            done
            echo "(origin req/round: requests for the round's URL the slow origin saw, one figure per round;"
            echo " answered / 200+body: summed over rounds, out of $((BURST_N * BURST_ROUNDS)); latencies from the"
            echo " common send moment, median over rounds of each round's p50/p99, max over all)"
        fi
        echo
        echo "raw output and configs: $RESULTS"
    } >"$summary"
    echo
    cat "$summary"
    log "done in $((SECONDS - started)) s"
}

main "$@"

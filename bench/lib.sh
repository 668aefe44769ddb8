# Helpers shared by the benchmark scripts: the knobs they all have, logging, process
# bookkeeping and cleanup, the watertight build, ports, readiness and measurement. Sourced
# after the script sets ROOT (the checkout); sourcing installs the EXIT/INT/TERM traps that
# stop every spawned process.
#
# Every long-running child is started through `spawn` (or `run_fg`), under setsid: its own
# process group, same pid, so stopping it stops what it started.

# Knobs every script has: SKIP_BUILD=1 uses the existing binary, KEEP_TMP=1 keeps the temp
# dir, WT_BIN is the binary under test (the release build by default).
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WT_BIN=${WT_BIN:-$TARGET_DIR/release/watertight}
export PATH="$PATH:/usr/sbin:/sbin"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# positive_knobs NAME... / whole_knobs NAME...: each named variable must hold a positive
# (resp. non-negative) integer, else the script stops saying which and what it held.
positive_knobs() {
    local knob
    for knob; do
        [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer (got '${!knob}')"
    done
}
whole_knobs() {
    local knob
    for knob; do
        [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob must be a whole number (got '${!knob}')"
    done
}

# "10s", "10", "1m" -> seconds
to_seconds() {
    local v=$1
    case $v in
        *m) echo $(( ${v%m} * 60 )) ;;
        *s) echo "${v%s}" ;;
        *) echo "$v" ;;
    esac
}

PIDS=()
TMP=""
RESULTS=""

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    PIDS=()
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ -n $RESULTS && -d $RESULTS ]]; then
            cp -f "$TMP"/*.log "$RESULTS"/ 2>/dev/null || true
        fi
        if [[ $KEEP_TMP == 1 ]]; then
            log "temp dir kept: $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$rc"
}

trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# spawn LOGFILE CMD... ; sets SPAWNED to the pid
SPAWNED=""
spawn() {
    local logfile=$1
    shift
    setsid "$@" >"$logfile" 2>&1 &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

# run_fg OUT CMD... : run CMD to completion like a foreground command, but in the background
# plus `wait`, so SIGTERM/SIGINT to the script take effect at once (the trap stops CMD's
# process group). OUT: a file to append stdout+stderr to, or "-" for the script's stderr.
run_fg() {
    local out=$1 pid rc=0
    shift
    if [[ $out == - ]]; then
        setsid "$@" >&2 &
    else
        setsid "$@" >>"$out" 2>&1 &
    fi
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    stop_pid "$pid"
    return "$rc"
}

# install_tools PACKAGE... : install the Debian packages whose command is missing (the
# package and command names are the same for nginx, haproxy and wrk).
install_tools() {
    local missing=() b sudo=()
    for b in "$@"; do
        command -v "$b" >/dev/null 2>&1 || missing+=("$b")
    done
    ((${#missing[@]} == 0)) && return 0
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]} and not root (no sudo)"
        sudo=(sudo)
    fi
    log "installing $* (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    if ! run_fg - timeout 600 "${sudo[@]}" apt-get install -y "$@"; then
        run_fg - timeout 600 "${sudo[@]}" apt-get update || die "apt-get update failed"
        run_fg - timeout 600 "${sudo[@]}" apt-get install -y "$@" || die "apt-get install failed"
    fi
    for b in "$@"; do
        command -v "$b" >/dev/null 2>&1 || die "$b still missing after apt-get install"
    done
}

binary_is_stale() {
    [[ -x $WT_BIN ]] || return 0
    local newer
    newer=$(cd "$ROOT" && find crates Cargo.toml Cargo.lock -newer "$WT_BIN" \
        \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -print -quit 2>/dev/null)
    [[ -n $newer ]]
}

build_watertight() {
    [[ $SKIP_BUILD == 1 ]] && { [[ -x $WT_BIN ]] || die "SKIP_BUILD=1 but $WT_BIN is missing"; return 0; }
    binary_is_stale || return 0
    local attempt
    for attempt in 1 2 3; do
        log "building watertight (release), attempt $attempt"
        if run_fg - env -C "$ROOT" timeout 1200 cargo build --release -p watertight; then
            return 0
        fi
        if ((attempt < 3)); then
            log "build failed (someone may be mid-edit); retrying in 60 s"
            run_fg - sleep 60
        fi
    done
    [[ -x $WT_BIN ]] || die "release build failed and there is no previous binary"
    log "WARNING: release build failed 3 times; benchmarking the existing (stale) $WT_BIN"
}

# Ports, readiness, measurements
pick_ports() { # pick_ports N -> N free ports below the ephemeral range
    local n=$1 out=() p tries=0
    while ((${#out[@]} < n)); do
        ((tries++ < 1000)) || die "cannot find free ports"
        p=$((20000 + RANDOM % 12000))
        [[ " ${out[*]} " == *" $p "* ]] && continue
        [[ -z $(ss -Htan "sport = :$p") ]] || continue
        out+=("$p")
    done
    echo "${out[@]}"
}

wait_port() { # wait_port PORT PID NAME
    local port=$1 pid=$2 name=$3 i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (its log is copied to $RESULTS)"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "$name did not open 127.0.0.1:$port within 10 s"
}

check_http() { # check_http NAME PORT : a GET through it must answer 200 "hello, world"
    local name=$1 port=$2 code
    code=$(curl -sS --max-time 5 -D "$RESULTS/headers-$name.txt" -o "$TMP/body-$name" \
        -w '%{http_code}' "http://127.0.0.1:$port/") || die "$name: request failed"
    [[ $code == 200 ]] || die "$name: expected 200, got $code"
    [[ $(cat "$TMP/body-$name") == "hello, world" ]] || die "$name: unexpected body"
}

thread_count() { find "/proc/$1/task" -mindepth 1 -maxdepth 1 | wc -l; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
kb_to_mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# wrk value -> milliseconds ("635.91us", "1.46ms", "2.00s", "1.00m")
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        else if (u == "h") n *= 3600000
        printf "%.3f", n }'
}

median() { # numbers on stdin -> median
    sort -g | awk '{a[NR] = $1} END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# CPU time (clock ticks, user + system) used so far by every process in process group $1
group_ticks() {
    local p total=0 t
    for p in $(pgrep -g "$1" 2>/dev/null); do
        # fields after the ")" that ends the command name: utime is the 12th, stime the 13th
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || continue
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

CLK_TCK=$(getconf CLK_TCK)

# metric NAME LABEL_MATCH FILE : sum of the samples of NAME (only lines whose
# label set contains LABEL_MATCH, e.g. 'outcome="kept"', if not empty) in a Prometheus text exposition
# ("-" if there is no such sample: the exposition leaves out families without series)
metric() {
    awk -v n="$1" -v m="${2:-}" '
        $1 == n || index($1, n "{") == 1 {
            if (m != "" && index($1, m) == 0) next
            s += $2; found = 1 }
        END { if (found) printf "%.0f", s; else print "-" }' "$3"
}

# The start of an nginx config, up to the open `http {`: NAME (file prefix) WORKERS. Every
# temp path is in $TMP/NAME, logging is off, keep-alive is long, and `sendfile` is on (nginx's
# Debian default).
nginx_preamble() {
    cat <<EOF
worker_processes $2;
daemon off;
pid $TMP/$1.pid;
error_log $TMP/$1-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/$1/body;
    proxy_temp_path $TMP/$1/proxy;
    fastcgi_temp_path $TMP/$1/fastcgi;
    uwsgi_temp_path $TMP/$1/uwsgi;
    scgi_temp_path $TMP/$1/scgi;
EOF
}

# The benchmarks' upstream: nginx answering a 13-byte body from memory, keep-alive, one
# worker. Writes $TMP/NAME.conf (NAME defaults to nginx-upstream) for PORT.
write_nginx_upstream_conf() { # PORT [NAME]
    local name=${2:-nginx-upstream}
    mkdir -p "$TMP/$name"
    {
        echo "# Upstream for the benchmark: a 13-byte body from memory, keep-alive."
        nginx_preamble "$name" 1
        cat <<EOF
    server {
        listen 127.0.0.1:$1 backlog=4096;
        location / {
            default_type text/plain;
            return 200 "hello, world\n";
        }
    }
}
EOF
    } >"$TMP/$name.conf"
}

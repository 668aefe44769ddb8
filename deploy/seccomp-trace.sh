#!/usr/bin/env bash
# Regenerates deploy/seccomp.json: runs the static watertight binary under `strace -f -c`
# through what it does in production (start-up, HTTP/1.1 and HTTP/2 in and out, a TCP
# listener, active health checks, the cache with a disk tier, a fallback, a SIGHUP reload, a
# SIGTERM drain with a request in flight, `check`, `health`), collects every syscall it made,
# adds a small documented margin (runc's exec, glibc fallbacks on other kernels, the DNS
# resolver), and writes an allow-list profile whose default action is SCMP_ACT_ERRNO.
#
#   deploy/seccomp-trace.sh                  # uses target/static/<host triple>/release/watertight
#   BIN=/path/to/watertight OUT=/tmp/p.json deploy/seccomp-trace.sh
#
# Everything listens on 127.0.0.1 (ports PORT_BASE..PORT_BASE+5, default 24100); every wait
# is bounded. Needs strace, curl, jq.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
triple="$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')"
BIN="${BIN:-$root/target/static/${triple:-x86_64-unknown-linux-gnu}/release/watertight}"
OUT="${OUT:-$here/seccomp.json}"
PORT_BASE="${PORT_BASE:-24100}"

demo_port=$PORT_BASE
demo_admin=$((PORT_BASE + 1))
proxy_port=$((PORT_BASE + 2))
proxy_admin=$((PORT_BASE + 3))
tcp_port=$((PORT_BASE + 4))

log() { printf '[seccomp-trace] %s\n' "$*" >&2; }
die() { printf '[seccomp-trace] error: %s\n' "$*" >&2; exit 1; }

for tool in strace curl jq; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install $tool)"
done
[[ -x "$BIN" ]] || die "no binary at $BIN (run deploy/build-image.sh first)"

work="$(mktemp -d "${TMPDIR:-/tmp}/watertight-seccomp.XXXXXX")"
started=()   # pids we started (watertight processes, then their strace); killed on exit
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local pid
    for pid in "${started[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${started[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then log "kept $work"; else rm -rf -- "$work"; fi
}
trap cleanup EXIT

# Runs "$@" under strace into $work/trace.<label>, in the background (not in a subshell, so
# strace stays our child). Sets tracer (strace's pid) and traced (watertight's pid).
bin_real="$(readlink -f "$BIN")"
traced_bg() {
    local label=$1 i pid
    shift
    strace -f -c -qq -o "$work/trace.$label" "$@" >"$work/out.$label" 2>&1 &
    tracer=$!
    started+=("$tracer")
    traced=""
    for ((i = 0; i < 100; i++)); do
        for pid in $(pgrep -P "$tracer" || true); do
            if [[ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" == "$bin_real" ]]; then
                traced=$pid
                started=("$traced" "${started[@]}")
                return 0
            fi
        done
        sleep 0.05
    done
    die "$label did not start under strace: $(tail -n 5 "$work/out.$label")"
}

# Waits for a traced run to end and forgets its pids; fails on a non-zero exit.
finish() {
    local tracer_pid=$1 traced_pid=$2 label=$3 rest=() p status=0
    wait "$tracer_pid" || status=$?
    for p in "${started[@]}"; do
        [[ "$p" == "$tracer_pid" || "$p" == "$traced_pid" ]] || rest+=("$p")
    done
    started=("${rest[@]}")
    ((status == 0)) || die "$label under strace exited $status (output: $(tail -n 5 "$work/out.$label" 2>/dev/null))"
}

wait_ready() {
    local url=$1 i
    for ((i = 0; i < 150; i++)); do
        if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    die "$url never answered 200"
}

# The short commands, each traced to completion.
log "tracing short commands (--version, --help, check, health)"
strace -f -c -qq -o "$work/trace.version" "$BIN" --version >/dev/null
strace -f -c -qq -o "$work/trace.help" "$BIN" --help >/dev/null

# 1. `watertight demo`: the embedded config, sample services, h1 + h2 in, health checks.
log "tracing: watertight demo on 127.0.0.1:$demo_port (admin $demo_admin)"
traced_bg demo "$BIN" demo --listen "127.0.0.1:$demo_port" \
    --admin-listen "127.0.0.1:$demo_admin" --free-sample-ports
demo_strace=$tracer demo_pid=$traced
wait_ready "http://127.0.0.1:$demo_admin/readyz"

# 2. `watertight proxy --config` in front of the demo: HTTP/1.1 and h2c upstreams, a TCP
# listener, an HTTP health check, a cache with a disk tier, a fallback to a dead cluster,
# DNS resolution of `localhost`.
mkdir -p "$work/cache"
write_config() {
    cat >"$work/proxy.yaml" <<EOF
admin:
  address: 127.0.0.1:$proxy_admin
access_log: $1
drain_timeout: 3s
cache:
  max_bytes: 16777216
  disk: { path: $work/cache, max_bytes: 67108864 }
listeners:
  - name: web
    address: 127.0.0.1:$proxy_port
    routes:
      - name: cached
        match: { prefix: /catalog }
        cluster: demo
        cache: { stale_if_error: 60s }
        retry: { attempts: 2, retry_on: [connect-failure, reset, gateway-error] }
      - name: h2
        match: { prefix: /h2/ }
        cluster: demo-h2
      - name: broken
        match: { prefix: /broken }
        cluster: dead
        fallback: { on: [connect-refused, connect-timeout, connect-failed, no-endpoint], response: { status: 200, body: "fallback" } }
      - name: rest
        cluster: demo
  - name: tcp
    address: 127.0.0.1:$tcp_port
    protocol: tcp
    cluster: demo
clusters:
  - name: demo
    health_check: { interval: 200ms, timeout: 500ms, http: { path: /catalog, expect_status: ["200-499"] } }
    endpoints:
      - address: localhost:$demo_port
  - name: demo-h2
    protocol: http2
    endpoints:
      - address: 127.0.0.1:$demo_port
  - name: dead
    connect_timeout: 200ms
    endpoints:
      - address: 127.0.0.1:1
EOF
}
write_config stdout
strace -f -c -qq -o "$work/trace.check" "$BIN" check --config "$work/proxy.yaml" >/dev/null
log "tracing: watertight proxy --config (127.0.0.1:$proxy_port, tcp $tcp_port, admin $proxy_admin)"
traced_bg proxy "$BIN" proxy --config "$work/proxy.yaml"
proxy_strace=$tracer proxy_pid=$traced
wait_ready "http://127.0.0.1:$proxy_admin/readyz"

if "$BIN" health --help >/dev/null 2>&1; then
    strace -f -c -qq -o "$work/trace.health" "$BIN" health --admin "http://127.0.0.1:$proxy_admin" >/dev/null || true
    strace -f -c -qq -o "$work/trace.health-down" "$BIN" health --admin "http://127.0.0.1:1" >/dev/null 2>&1 || true
else
    log "no 'health' subcommand in this binary: not traced"
fi

log "traffic: HTTP/1.1, h2c, TCP, cache (memory + disk), fallback, admin"
get() { curl -s -o /dev/null --max-time 5 "$@" || true; }
for ((i = 0; i < 20; i++)); do
    get "http://127.0.0.1:$proxy_port/catalog"
    get --http2-prior-knowledge "http://127.0.0.1:$proxy_port/catalog/echo"
    get "http://127.0.0.1:$proxy_port/h2/catalog"
    get "http://127.0.0.1:$demo_port/catalog"
    get --http2-prior-knowledge "http://127.0.0.1:$demo_port/recommendations"
    get -X POST -d '{"item":1}' "http://127.0.0.1:$demo_port/checkout"
    get "http://127.0.0.1:$tcp_port/catalog"
done
get "http://127.0.0.1:$proxy_port/broken"
get -H 'cache-control: max-stale=60' "http://127.0.0.1:$proxy_port/catalog/bytes?n=200000"
for path in healthz readyz clusters metrics config reloads demo; do
    get "http://127.0.0.1:$proxy_admin/$path"
    get "http://127.0.0.1:$demo_admin/$path"
done
get -X POST -d '{"prefix": "http://127.0.0.1:'"$proxy_port"'/catalog/bytes"}' "http://127.0.0.1:$proxy_admin/cache/purge"
# Failover in the demo: stop checkout's primary, then bring it back.
get -X POST "http://127.0.0.1:$demo_admin/demo/checkout/0/stop"
sleep 1.5
get "http://127.0.0.1:$demo_port/checkout"
get -X POST "http://127.0.0.1:$demo_admin/demo/checkout/0/start"
sleep 1.5

log "reload: config change + SIGHUP"
write_config stderr
kill -HUP "$proxy_pid"
sleep 1.5
get "http://127.0.0.1:$proxy_port/catalog"

log "drain: SIGTERM with a slow request in flight"
get -X POST -d '{"latency_ms":1000}' "http://127.0.0.1:$demo_admin/demo/recommendations/0/faults"
curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$proxy_port/recommendations" &
inflight=$!
sleep 0.3
kill -TERM "$proxy_pid"
wait "$inflight" || true
finish "$proxy_strace" "$proxy_pid" proxy

# A second proxy start over the populated disk tier (index rebuild), then drain at once.
log "restart over the disk cache"
traced_bg proxy2 "$BIN" proxy --config "$work/proxy.yaml"
proxy_strace=$tracer proxy_pid=$traced
wait_ready "http://127.0.0.1:$proxy_admin/readyz"
get "http://127.0.0.1:$proxy_port/catalog"
kill -TERM "$proxy_pid"
finish "$proxy_strace" "$proxy_pid" proxy2

curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$demo_port/recommendations" &
inflight=$!
sleep 0.3
kill -TERM "$demo_pid"
wait "$inflight" || true
finish "$demo_strace" "$demo_pid" demo

# Every syscall name in the strace -c tables (last column; not the `total` line).
traced="$(cat "$work"/trace.* | awk '$1 ~ /^[0-9.]+$/ && $NF != "total" && $NF ~ /^[a-z_0-9]+$/ { print $NF }' | sort -u)"
[[ -n "$traced" ]] || die "no syscalls collected"

# The margin, each with its reason (also in docs/containers.md):
#  - runc: after it loads the filter (with no-new-privileges it does so as late as possible,
#    without it before dropping to the user) the Go runtime of runc init still runs until
#    execve of /watertight: it checks /proc/self/fd is procfs (fstatfs; runc 1.1.5 fails
#    with "ensure /proc/self/fd is on procfs" without it), marks fds close-on-exec
#    (close_range in runc >= 1.2, which also opens procfs with openat2), and without
#    no-new-privileges sets the user and capabilities.
runc_margin="execve futex nanosleep sched_yield getpid tgkill rt_sigreturn rt_sigprocmask
  rt_sigaction sigaltstack mmap munmap madvise epoll_pwait epoll_ctl close write read
  fcntl fstat newfstatat statfs fstatfs close_range openat2 getdents64 exit exit_group
  capget capset prctl setgroups setuid setgid setresuid setresgid chdir fchdir
  getcwd getppid faccessat faccessat2"
#  - glibc / tokio / std on other kernels: fallbacks when a newer call is missing (ENOSYS),
#    and calls this kernel happened not to need.
libc_margin="clone clone3 rseq statx fstat stat lstat newfstatat open openat readlink
  epoll_create1 epoll_wait epoll_pwait eventfd2 pipe2 poll ppoll accept accept4 dup dup3
  getrandom sched_getaffinity prlimit64 getrlimit membarrier restart_syscall clock_gettime
  clock_nanosleep gettimeofday getuid geteuid getgid getegid uname sysinfo mremap
  mkdir mkdirat rename renameat renameat2 unlink unlinkat getdents64 fsync fdatasync ftruncate
  pread64 pwrite64 lseek readv writev shutdown setsockopt getsockopt getsockname getpeername"
#  - glibc's DNS resolver (names in endpoint addresses, Docker's 127.0.0.11):
dns_margin="socket connect bind sendto sendmmsg recvfrom recvmsg sendmsg poll ioctl"

# shellcheck disable=SC2086  # the name lists are meant to be split into words
all="$(printf '%s\n' $traced $runc_margin $libc_margin $dns_margin | sort -u)"
names_json() { printf '%s\n' "$@" | jq -R . | jq -s -c .; }
# shellcheck disable=SC2086  # word splitting of the name lists is intended
{
    jq -n \
        --argjson traced "$(names_json $traced)" \
        --argjson margin "$(comm -23 <(printf '%s\n' $all) <(printf '%s\n' $traced) | jq -R . | jq -s -c .)" \
        '{
          defaultAction: "SCMP_ACT_ERRNO",
          defaultErrnoRet: 1,
          architectures: ["SCMP_ARCH_X86_64"],
          syscalls: [
            { names: $traced, action: "SCMP_ACT_ALLOW",
              comment: "traced: strace -f -c of watertight (deploy/seccomp-trace.sh)" },
            { names: $margin, action: "SCMP_ACT_ALLOW",
              comment: "margin: runc exec, glibc/std fallbacks on other kernels, DNS resolver (docs/containers.md)" }
          ]
        }'
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
total="$(jq '[.syscalls[].names[]] | length' "$OUT")"
log "traced $(wc -w <<<"$traced") syscalls, $total allowed in all -> $OUT"
# shellcheck disable=SC2086
printf '%s\n' $traced | column -c 100 >&2 || true

#!/usr/bin/env bash
# Smoke test of the watertight image under the hardened run settings: read-only root, no
# capabilities, no-new-privileges, the seccomp allow-list, a non-root user. Runs `demo`,
# measures docker-run-to-ready, sends HTTP/1.1 and HTTP/2 traffic, checks /clusters and the
# image's HEALTHCHECK, then `docker stop`s it with a slow request in flight and checks the
# drain: the request completes, exit code 0, stopped within the drain timeout.
#
#   deploy/smoke.sh                  # deploy/build-image.sh first, then the test
#   SKIP_BUILD=1 deploy/smoke.sh     # reuse watertight:dev as it is
#
# Environment: IMAGE (watertight:dev), PROXY_PORT (18080), ADMIN_PORT (19901),
# READY_GOAL_MS (1000), DRAIN_TIMEOUT_S (5, the demo config's drain_timeout),
# SECCOMP (deploy/seccomp.json). Ports are published on 127.0.0.1 only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

IMAGE="${IMAGE:-watertight:dev}"
PROXY_PORT="${PROXY_PORT:-18080}"
ADMIN_PORT="${ADMIN_PORT:-19901}"
READY_GOAL_MS="${READY_GOAL_MS:-1000}"
CPUS="${CPUS:-1}"   # the container's CPU quota; the runtime must run that many event loops
DRAIN_TIMEOUT_S="${DRAIN_TIMEOUT_S:-5}"
SECCOMP="${SECCOMP:-$here/seccomp.json}"
name="watertight-smoke-$$"
proxy="http://127.0.0.1:$PROXY_PORT"
admin="http://127.0.0.1:$ADMIN_PORT"

work="$(mktemp -d "${TMPDIR:-/tmp}/watertight-smoke.XXXXXX")"
results=()
failures=0
bg=()

step() { printf '\n== %s\n' "$*"; }
pass() { printf '   PASS %s\n' "$*"; results+=("PASS  $*"); }
fail() { printf '   FAIL %s\n' "$*"; results+=("FAIL  $*"); failures=$((failures + 1)); }
info() { printf '   %s\n' "$*"; }
now_ms() { date +%s%3N; }

summary() {
    printf '\n==== smoke summary (%s)\n' "$IMAGE"
    local r
    for r in "${results[@]}"; do printf '  %s\n' "$r"; done
    if ((failures == 0)); then printf '  all passed\n'; else printf '  %d failed\n' "$failures"; fi
}

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local status=$? pid
    if docker container inspect "$name" >/dev/null 2>&1; then
        if ((status != 0 || failures != 0)); then
            printf '\n---- container logs (last 30 lines)\n'
            docker logs --tail 30 "$name" 2>&1 || true
        fi
        docker rm -f "$name" >/dev/null 2>&1 || true
    fi
    for pid in "${bg[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf -- "$work"
    summary
    if ((status == 0 && failures != 0)); then exit 1; fi
    exit "$status"
}
trap cleanup EXIT

command -v docker >/dev/null || { echo "docker not found" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl not found" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq not found" >&2; exit 1; }
[[ -r "$SECCOMP" ]] || { echo "no seccomp profile at $SECCOMP" >&2; exit 1; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    step "build the image"
    IMAGE="$IMAGE" "$here/build-image.sh"
fi
docker image inspect "$IMAGE" >/dev/null 2>&1 || { echo "no image $IMAGE (run without SKIP_BUILD=1)" >&2; exit 1; }
size="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
info "image $IMAGE: $size bytes ($(awk -v b="$size" 'BEGIN { printf "%.1f MB", b / 1000000 }'))"
has_health=0
if docker image inspect -f '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q health; then
    has_health=1
fi

step "docker run (read-only, cap-drop ALL, no-new-privileges, seccomp, user 65532) and wait for /readyz"
t0="$(now_ms)"
docker run --rm -d --name "$name" \
    --cpus "$CPUS" \
    --read-only --cap-drop ALL \
    --security-opt no-new-privileges \
    --security-opt "seccomp=$SECCOMP" \
    --user 65532:65532 \
    -p "127.0.0.1:$PROXY_PORT:8080" -p "127.0.0.1:$ADMIN_PORT:9901" \
    "$IMAGE" demo --listen 0.0.0.0:8080 --admin-listen 0.0.0.0:9901 >"$work/cid"
t_run="$(now_ms)"
docker logs -f "$name" >"$work/logs" 2>&1 &
bg+=("$!")
ready=0
for ((i = 0; i < 1000; i++)); do   # 10 s at most
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$admin/readyz" || true)"
    if [[ "$code" == 200 ]]; then ready=1; break; fi
    if ! docker container inspect "$name" >/dev/null 2>&1; then break; fi
    sleep 0.01
done
t_ready="$(now_ms)"
ready_ms=$((t_ready - t0))
info "docker run returned after $((t_run - t0)) ms; /readyz 200 after $ready_ms ms"
if ((ready == 0)); then
    fail "container never became ready"
    exit 1
fi
if ((ready_ms < READY_GOAL_MS)); then
    pass "start-to-ready ${ready_ms} ms (goal < ${READY_GOAL_MS} ms)"
else
    fail "start-to-ready ${ready_ms} ms (goal < ${READY_GOAL_MS} ms)"
fi

step "security settings as seen by docker"
docker container inspect -f 'ReadonlyRootfs={{.HostConfig.ReadonlyRootfs}} CapDrop={{.HostConfig.CapDrop}} User={{.Config.User}} SecurityOpt={{len .HostConfig.SecurityOpt}} options' "$name" | sed 's/^/   /'
status_line="$(docker exec "$name" /watertight --version 2>&1 || true)"
info "docker exec /watertight --version: $status_line"
# What the kernel says about the process (when the host shares the container's pid view).
pid="$(docker container inspect -f '{{.State.Pid}}' "$name")"
if [[ -r "/proc/$pid/status" ]]; then
    proc="$(grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$pid/status" | tr -s '\t ' ' ' | tr '\n' ';')"
    info "/proc/$pid/status: $proc"
    if grep -q 'Seccomp: 2' <<<"$proc" && grep -q 'NoNewPrivs: 1' <<<"$proc" \
        && grep -q 'CapEff: 0000000000000000' <<<"$proc" && grep -q 'Uid: 65532 65532 65532 65532' <<<"$proc"; then
        pass "kernel view: seccomp filter on, no_new_privs, no capabilities, uid 65532"
    else
        fail "kernel view of the process differs from the settings: $proc"
    fi
else
    info "cannot read /proc/$pid/status from here; kernel view not checked"
fi
volume="$(docker container inspect -f '{{range .Mounts}}{{if eq .Destination "/var/cache/watertight"}}{{.Source}}{{end}}{{end}}' "$name")"
if [[ -n "$volume" && -d "$volume" ]]; then
    owner="$(stat -c '%u:%g' "$volume")"
    if [[ "$owner" == 65532:65532 ]]; then pass "/var/cache/watertight volume writable by 65532 (owner $owner)"; else fail "/var/cache/watertight volume owned by $owner"; fi
else
    info "cache volume not visible from here; ownership not checked"
fi

step "event-loop threads follow the CPU quota (--cpus $CPUS)"
# One CPU: the main thread runs the event loop (no tokio-rt-worker thread); N CPUs: N workers.
if [[ -d "/proc/$pid/task" ]]; then
    workers="$(cat /proc/"$pid"/task/*/comm 2>/dev/null | grep -c '^tokio-rt-worker' || true)"
    expected=$(( CPUS == 1 ? 0 : CPUS ))
    if [[ "$workers" == "$expected" ]]; then
        pass "$workers tokio worker thread(s) under a quota of $CPUS CPU(s) (expected $expected)"
    else
        fail "$workers tokio worker thread(s) under a quota of $CPUS CPU(s) (expected $expected)"
    fi
else
    info "skipped: the container's process is not visible from here"
fi

step "traffic through the proxy"
ok=0; total=0
for ((i = 0; i < 30; i++)); do
    total=$((total + 1))
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$proxy/catalog")" == 200 ]] && ok=$((ok + 1))
done
if ((ok == total)); then pass "HTTP/1.1 GET /catalog: $ok/$total 200"; else fail "HTTP/1.1 GET /catalog: $ok/$total 200"; fi
ok=0; total=0
for ((i = 0; i < 10; i++)); do
    total=$((total + 1))
    out="$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --max-time 5 --http2-prior-knowledge "$proxy/catalog/echo" || true)"
    [[ "$out" == "200 2" ]] && ok=$((ok + 1))
done
if ((ok == total)); then pass "HTTP/2 (h2c) GET /catalog/echo: $ok/$total 200"; else fail "HTTP/2 (h2c) GET /catalog/echo: $ok/$total 200"; fi
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -d '{"item":42}' "$proxy/checkout" || true)"
if [[ "$code" == 200 ]]; then pass "POST /checkout: 200"; else fail "POST /checkout: $code"; fi
replicas="$(for ((i = 0; i < 12; i++)); do curl -s -D - -o /dev/null --max-time 5 "$proxy/catalog" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-demo-replica" { print $2 }'; done | sort -u | wc -l)"
if ((replicas >= 2)); then pass "catalog spread over $replicas replicas"; else fail "catalog answered by $replicas replica(s)"; fi

step "admin API: /clusters"
if curl -s --max-time 5 "$admin/clusters" >"$work/clusters.json" && jq -e . "$work/clusters.json" >/dev/null 2>&1; then
    names="$(jq -r '[.. | objects | select(has("name")) | .name] | unique | join(",")' "$work/clusters.json" 2>/dev/null || true)"
    if grep -q catalog <<<"$names" && grep -q checkout <<<"$names"; then
        pass "/clusters lists catalog, checkout, recommendations ($names)"
    else
        fail "/clusters lacks the demo clusters: $(head -c 300 "$work/clusters.json")"
    fi
else
    fail "/clusters did not answer JSON"
fi

if ((has_health)); then
    step "the image's HEALTHCHECK (watertight health)"
    health=""
    for ((i = 0; i < 60; i++)); do   # the first check runs after --interval (10 s)
        health="$(docker container inspect -f '{{.State.Health.Status}}' "$name" 2>/dev/null || true)"
        [[ "$health" == healthy || "$health" == unhealthy ]] && break
        sleep 0.5
    done
    if [[ "$health" == healthy ]]; then pass "docker health status: healthy"; else
        fail "docker health status: ${health:-none} ($(docker container inspect -f '{{json .State.Health}}' "$name" 2>/dev/null | head -c 300))"
    fi
else
    info "image has no HEALTHCHECK using 'watertight health'; skipped"
fi

step "docker stop with a slow request in flight (drain)"
curl -s -o /dev/null --max-time 5 -X POST -d '{"latency_ms":1500}' "$admin/demo/recommendations/0/faults" || true
docker wait "$name" >"$work/exit" 2>&1 &
waiter=$!
curl -s -o "$work/inflight.body" -w '%{http_code}' --max-time 10 "$proxy/recommendations" >"$work/inflight.code" 2>/dev/null &
inflight=$!
sleep 0.3
t_stop="$(now_ms)"
docker stop -t $((DRAIN_TIMEOUT_S + 10)) "$name" >/dev/null
t_stopped="$(now_ms)"
wait "$inflight" || true
wait "$waiter" || true
stop_ms=$((t_stopped - t_stop))
exit_code="$(tr -d '[:space:]' <"$work/exit")"
inflight_code="$(cat "$work/inflight.code" 2>/dev/null || true)"
info "docker stop took $stop_ms ms; exit code ${exit_code:-?}; in-flight request answered ${inflight_code:-nothing}"
if [[ "$exit_code" == 0 ]]; then pass "exit code 0 after SIGTERM"; else fail "exit code ${exit_code:-unknown} after SIGTERM"; fi
if ((stop_ms <= DRAIN_TIMEOUT_S * 1000 + 1000)); then
    pass "stopped in $stop_ms ms (drain timeout ${DRAIN_TIMEOUT_S} s)"
else
    fail "stop took $stop_ms ms, over the drain timeout of ${DRAIN_TIMEOUT_S} s"
fi
if [[ "$inflight_code" == 200 ]]; then pass "in-flight request completed (200) during the drain"; else fail "in-flight request: ${inflight_code:-no answer}"; fi
sleep 0.2
if grep -qi 'draining' "$work/logs"; then pass "log shows the drain"; else info "no drain line in the log"; fi
if grep -Eqi 'operation not permitted|EPERM|permission denied' "$work/logs"; then
    fail "EPERM in the logs (a syscall the seccomp profile denies?):"
    grep -Ei 'operation not permitted|EPERM|permission denied' "$work/logs" | head -n 5 | sed 's/^/     /'
else
    pass "no EPERM / permission errors in the logs"
fi

printf '\nstart-to-ready: %s ms   stop: %s ms   image: %s bytes\n' "$ready_ms" "$stop_ms" "$size"

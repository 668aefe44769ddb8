#!/usr/bin/env bash
# Topology test of the watertight image: an edge proxy, and one app (`catalog`) with two
# replicas, each a `watertight demo-service` with a watertight sidecar in front, on docker
# networks this script creates (and removes). Every container runs hardened (read-only,
# cap-drop ALL, no-new-privileges, deploy/seccomp.json, user 65532).
#
#   host ──127.0.0.1:28080/29901──▶ edge ──(wt-back)──▶ sidecar-1 ──▶ app-1 (demo-service)
#                                    │                  sidecar-2 ──▶ app-2 (demo-service)
#                               (wt-front: published ports only)
#
# Steps, each printed with PASS/FAIL:
#   1. requests flow, spread over both replicas;
#   2. `docker kill` of app-1 under load: traffic moves to app-2 with no client-visible
#      error (the edge retries a gateway error on the other replica), then app-1 comes back;
#   3. `docker network disconnect` of the edge from the app network: the route's fallback
#      answers, marked `x-watertight-degraded`; reconnect: real answers return;
#   4. `docker stop` of the edge with requests in flight: they complete, exit code 0.
#
#   deploy/compose/topology.sh               # uses watertight:dev (deploy/build-image.sh)
#   IMAGE=watertight:test EDGE_PORT=28080 ADMIN_PORT=29901 deploy/compose/topology.sh
# check() takes its condition as a string to eval, in single quotes on purpose:
# shellcheck disable=SC2016
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
deploy="$(cd "$here/.." && pwd)"

IMAGE="${IMAGE:-watertight:dev}"
EDGE_PORT="${EDGE_PORT:-28080}"
ADMIN_PORT="${ADMIN_PORT:-29901}"
SECCOMP="${SECCOMP:-$deploy/seccomp.json}"
EDGE_DRAIN_S=10     # edge.yaml's drain_timeout
id="wt-topo-$$"
front="$id-front"
back="$id-back"
edge="http://127.0.0.1:$EDGE_PORT"
admin="http://127.0.0.1:$ADMIN_PORT"

work="$(mktemp -d "${TMPDIR:-/tmp}/watertight-topo.XXXXXX")"
containers=()
networks=()
results=()
failures=0
inflights=()
waited_ms=0

step() { printf '\n== %s\n' "$*"; }
info() { printf '   %s\n' "$*"; }
pass() { printf '   PASS %s\n' "$*"; results+=("PASS  $*"); }
fail() { printf '   FAIL %s\n' "$*"; results+=("FAIL  $*"); failures=$((failures + 1)); }
check() { if eval "$1"; then pass "$2"; else fail "$2"; fi; }
now_ms() { date +%s%3N; }

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local status=$? c n
    if ((status != 0 || failures != 0)); then
        for c in "${containers[@]}"; do
            if docker container inspect "$c" >/dev/null 2>&1; then
                printf '\n---- logs of %s (last 15 lines)\n' "$c"
                docker logs --tail 15 "$c" 2>&1 || true
            fi
        done
    fi
    printf '\n== teardown\n'
    for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    for n in "${networks[@]}"; do docker network rm "$n" >/dev/null 2>&1 || true; done
    info "removed ${#containers[@]} containers, ${#networks[@]} networks"
    rm -rf -- "$work"
    printf '\n==== topology summary (%s)\n' "$IMAGE"
    local r
    for r in "${results[@]}"; do printf '  %s\n' "$r"; done
    if ((failures == 0 && status == 0)); then printf '  all passed\n'; else printf '  %d failed\n' "$failures"; fi
    if ((status == 0 && failures != 0)); then exit 1; fi
    exit "$status"
}
trap cleanup EXIT

for tool in docker curl jq; do command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }; done
docker image inspect "$IMAGE" >/dev/null 2>&1 || { echo "no image $IMAGE: run deploy/build-image.sh" >&2; exit 1; }

hardened=(--read-only --cap-drop ALL --security-opt no-new-privileges
    --security-opt "seccomp=$SECCOMP" --user 65532:65532)

# run NAME ALIAS NETWORK [docker run options...] -- [watertight args...]
run() {
    local name="$id-$1" alias=$2 net=$3
    shift 3
    local opts=()
    while (($#)) && [[ "$1" != -- ]]; do opts+=("$1"); shift; done
    shift
    containers+=("$name")
    docker run -d --name "$name" --network "$net" --network-alias "$alias" \
        "${hardened[@]}" "${opts[@]}" "$IMAGE" "$@" >/dev/null
}

# probe N OUT [curl options]: N sequential requests to the edge's /catalog; one line each:
# "<status> <x-demo-replica or -> <x-watertight-degraded or ->".
probe() {
    local n=$1 out=$2 i
    shift 2
    : >"$out"
    for ((i = 0; i < n; i++)); do
        curl -s -o /dev/null --max-time 6 "$@" \
            -w '%{http_code}|%header{x-demo-replica}|%header{x-watertight-degraded}\n' \
            "$edge/catalog" 2>/dev/null | awk -F'|' '{ printf "%s %s %s\n", $1, ($2 == "" ? "-" : $2), ($3 == "" ? "-" : $3) }' >>"$out" \
            || echo "000 - -" >>"$out"
        sleep 0.02
    done
}
# counts of a probe file: ok (200, not degraded), degraded, errors, and replicas seen.
tally() {
    awk '{ if ($1 == 200 && $3 == "-") ok++; else if ($1 == 200) deg++; else err++; if ($2 != "-") r[$2]++ }
         END { printf "ok=%d degraded=%d errors=%d replicas=", ok, deg, err;
               s = ""; for (k in r) { s = s sep k ":" r[k]; sep = "," } print (s == "" ? "none" : s) }' "$1"
}
count() { awk -v f="$2" '{ if (f == "ok" && $1 == 200 && $3 == "-") c++; else if (f == "degraded" && $1 == 200 && $3 != "-") c++; else if (f == "errors" && $1 != 200) c++ } END { print c + 0 }' "$1"; }

# wait_until SECONDS DESCRIPTION COMMAND: polls COMMAND every 0.1 s; prints the time it took.
wait_until() {
    local limit=$1 what=$2 cmd=$3 t0 i
    t0="$(now_ms)"
    for ((i = 0; i < limit * 10; i++)); do
        if eval "$cmd" >/dev/null 2>&1; then
            waited_ms=$(($(now_ms) - t0))
            return 0
        fi
        sleep 0.1
    done
    waited_ms=$(($(now_ms) - t0))
    fail "$what: not within ${limit} s"
    return 1
}
both_replicas() { probe 10 "$work/both"; [[ "$(awk '$1 == 200 && $3 == "-" { print $2 }' "$work/both" | sort -u | wc -l)" -ge 2 ]]; }
ready() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$admin/readyz")" == 200 ]]; }

step "setup: networks $front, $back; app-1/2 (demo-service), sidecar-1/2, edge"
docker network create "$front" >/dev/null && networks+=("$front")
docker network create "$back" >/dev/null && networks+=("$back")
cp "$here/edge.yaml" "$work/edge.yaml"
chmod 0644 "$work/edge.yaml"
for r in 1 2; do
    run "app-$r" "app-$r" "$back" --no-healthcheck -- \
        demo-service --name catalog --listen 0.0.0.0:9000 --replica "$r"
    run "sidecar-$r" "sidecar-$r" "$back" -- \
        proxy --listen 0.0.0.0:8080 --to "http://app-$r:9000" --admin 0.0.0.0:9901
done
t0="$(now_ms)"
run edge edge "$front" -p "127.0.0.1:$EDGE_PORT:8080" -p "127.0.0.1:$ADMIN_PORT:9901" \
    -v "$work/edge.yaml:/etc/watertight/watertight.yaml:ro" --stop-timeout $((EDGE_DRAIN_S + 10)) --
docker network connect --alias edge "$back" "$id-edge"
for c in "${containers[@]}"; do
    ports="$(docker port "$c" | tr '\n' ' ')"
    info "$c: ${ports:-no published ports}"
done
wait_until 20 "edge ready" ready && info "edge /readyz 200 after $waited_ms ms (from docker run)"

step "1. requests flow through edge -> sidecars -> apps"
wait_until 20 "both replicas answering" both_replicas && info "both replicas seen after $waited_ms ms"
probe 40 "$work/flow"
info "40 requests: $(tally "$work/flow")"
check '[[ $(count "$work/flow" ok) == 40 ]]' "40/40 answered 200 by the app (not degraded)"
check '[[ $(awk "\$2 != \"-\" { print \$2 }" "$work/flow" | sort -u | wc -l) -ge 2 ]]' "spread over both replicas"
check 'curl -s --max-time 2 "$admin/clusters" | jq -e . >/dev/null' "edge /clusters answers JSON"
check '! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:9000/" 2>/dev/null' "apps are not reachable from the host (no published ports)"

step "2. docker kill app-1 under load"
probe 150 "$work/kill" &
prober=$!
sleep 0.7
docker kill "$id-app-1" >/dev/null
info "killed app-1 at request ~$(wc -l <"$work/kill")"
wait "$prober" || true
info "150 requests: $(tally "$work/kill")"
check '[[ $(count "$work/kill" errors) == 0 ]]' "no client-visible errors (retried on the survivor)"
check '[[ $(count "$work/kill" degraded) == 0 ]]' "no fallback answers while a replica survives"
check '[[ $(tail -n 50 "$work/kill" | awk "\$2 != \"-\" { print \$2 }" | sort -u | tr -d "\n") == 2 ]]' "the last 50 requests all went to replica 2"
docker start "$id-app-1" >/dev/null
wait_until 30 "app-1 back in rotation" both_replicas && info "app-1 restarted; both replicas answer again after $waited_ms ms"

step "3. docker network disconnect: the edge loses the app network"
docker network disconnect "$back" "$id-edge"
probe 30 "$work/cut"
info "30 requests: $(tally "$work/cut")"
check '[[ $(count "$work/cut" degraded) == 30 ]]' "30/30 answered by the fallback, marked degraded"
reason="$(curl -s -D - -o /dev/null --max-time 6 "$edge/catalog" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-watertight-degraded" { print $2 }')"
body="$(curl -s --max-time 6 "$edge/catalog")"
info "x-watertight-degraded: ${reason:-none}; body: $body"
check '[[ -n "$reason" && "$body" == *degraded* ]]' "fallback body and x-watertight-degraded header"
docker network connect --alias edge "$back" "$id-edge"
recovered() { probe 3 "$work/rec"; [[ $(count "$work/rec" ok) == 3 ]]; }
wait_until 30 "real answers after reconnect" recovered && pass "real answers again ${waited_ms} ms after reconnect"
wait_until 30 "both replicas after reconnect" both_replicas || true

step "4. docker stop edge with requests in flight"
for i in 1 2 3 4 5; do
    curl -s -o /dev/null --max-time 15 -w '%{http_code}\n' "$edge/catalog/delay?ms=1500" >"$work/inflight.$i" 2>/dev/null &
    inflights+=("$!")
done
docker wait "$id-edge" >"$work/edge.exit" 2>/dev/null &
waiter=$!
sleep 0.4
t_stop="$(now_ms)"
docker stop -t $((EDGE_DRAIN_S + 10)) "$id-edge" >/dev/null
stop_ms=$(($(now_ms) - t_stop))
for pid in "${inflights[@]}"; do wait "$pid" || true; done
wait "$waiter" || true
codes="$(cat "$work"/inflight.* | tr '\n' ' ')"
exit_code="$(tr -d '[:space:]' <"$work/edge.exit")"
info "in-flight answers: $codes; edge exit code ${exit_code:-?}; stop took $stop_ms ms"
check '[[ "$codes" == "200 200 200 200 200 " ]]' "5/5 in-flight requests completed"
check '[[ "$exit_code" == 0 ]]' "edge exited 0"
check '((stop_ms < EDGE_DRAIN_S * 1000))' "edge stopped within its drain timeout (${EDGE_DRAIN_S} s)"
check '! docker logs "$id-edge" 2>&1 | grep -Eqi "operation not permitted|permission denied"' "no EPERM in the edge's log (seccomp)"

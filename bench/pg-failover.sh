#!/usr/bin/env bash
# PostgreSQL leader failover: the client-visible WRITE outage when the leader of a Patroni
# cluster dies hard, as seen through HAProxy configured the canonical way (Patroni's
# documented haproxy.cfg: TCP, `option httpchk OPTIONS /primary`, inter 3s fall 3 rise 2,
# on-marked-down shutdown-sessions) and through watertight (a TCP listener, active health
# checks every 200 ms, on_endpoint_down: close_sessions), side by side in one run.
#
# Setup, all on 127.0.0.1 from a temp dir: one etcd (Patroni's DCS), NODES Patroni nodes
# (PostgreSQL 15, each with its own data dir, PG port and REST port, run as the postgres user),
# HAProxy, and watertight in up to two variants: `pg` (PostgreSQL-native check: role primary)
# and `rest` (HTTP OPTIONS /primary on each endpoint's Patroni REST port, via the endpoint's
# `health_check_port`). A variant whose config watertight rejects (or that does not start) is
# reported as "not measured (...)"; HAProxy is measured regardless.
#
# Per round: wait until the cluster is healthy (a leader, NODES-1 replicas streaming, HAProxy
# sees exactly the leader UP), start one writer per proxy (bench/pg_failover.py write: one
# INSERT every 20 ms, 1 s connect and statement deadlines, reconnect on any error), wait until
# each has had PRE s of continuous success, then crash the leader: SIGKILL (CRASH=kill) or
# SIGSTOP (CRASH=stop) of its Patroni process and of its postmaster and every postmaster child
# at the same instant. Measured: promotion (crash until a survivor's OPTIONS /primary answers
# 200, polled every 100 ms) and, per proxy, the longest gap between two successful writes
# across the crash. The writers stop once they have had STABLE s of continuous success after
# the crash (or MAX_AFTER s after it). Then the crashed node is rebuilt as a fresh replica
# (data dir wiped, Patroni restarted: pg_basebackup from the new leader), like a replaced
# machine. See bench/README.md.
#
# Knobs (environment): ROUNDS=3 NODES=2 CRASH=kill PATRONI_TTL=10 PATRONI_LOOP_WAIT=1
#   PATRONI_RETRY_TIMEOUT=5 PRE=3 STABLE=5 MAX_AFTER=40 WRITE_INTERVAL_MS=20
#   WT_VARIANTS="pg rest" PG_BIN_DIR=<auto> PYTHON=<auto> SKIP_BUILD=0 WT_BIN=<path>
#   KEEP_TMP=0 RESULTS_DIR=<dir>

set -euo pipefail

ROUNDS=${ROUNDS:-3}
NODES=${NODES:-2}
CRASH=${CRASH:-kill}
PATRONI_TTL=${PATRONI_TTL:-10}
PATRONI_LOOP_WAIT=${PATRONI_LOOP_WAIT:-1}
PATRONI_RETRY_TIMEOUT=${PATRONI_RETRY_TIMEOUT:-5}
PRE=${PRE:-3}
STABLE=${STABLE:-5}
MAX_AFTER=${MAX_AFTER:-40}
WRITE_INTERVAL_MS=${WRITE_INTERVAL_MS:-20}
WT_VARIANTS=${WT_VARIANTS:-pg rest}
PG_BIN_DIR=${PG_BIN_DIR:-}
PYTHON=${PYTHON:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Shared helpers: logging, process bookkeeping and cleanup, build, ports, measurements.
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
HELPER=$ROOT/bench/pg_failover.py

# ---------------------------------------------------------------------------------------------
# Argument checks
positive_knobs ROUNDS NODES PATRONI_TTL PATRONI_LOOP_WAIT PATRONI_RETRY_TIMEOUT PRE STABLE MAX_AFTER WRITE_INTERVAL_MS
((ROUNDS <= 20)) || die "ROUNDS must be at most 20"
((NODES >= 2 && NODES <= 3)) || die "NODES must be 2 or 3"
((MAX_AFTER <= 300)) || die "MAX_AFTER must be at most 300"
((STABLE < MAX_AFTER)) || die "STABLE must be less than MAX_AFTER"
[[ $CRASH == kill || $CRASH == stop ]] || die "CRASH must be kill or stop (got '$CRASH')"
for v in $WT_VARIANTS; do
    [[ $v == pg || $v == rest ]] || die "WT_VARIANTS may only name pg and rest (got '$v')"
done

PRE_MAX=30                                  # bound on waiting for PRE s of clean writes
WRITER_CAP=$((PRE_MAX + MAX_AFTER + 15))    # a writer's own hard cap (--max-total)

# ---------------------------------------------------------------------------------------------
# Processes the lib's bookkeeping doesn't know: Patroni starts each postmaster in a session of
# its own (and every postmaster child calls setsid), so stopping Patroni's process group leaves
# PostgreSQL running. The EXIT trap below stops them before the lib's cleanup.

NODE_DIR=()   # per node (index 1..NODES): its directory
NODE_PG=()    #   PostgreSQL port
NODE_REST=()  #   Patroni REST port
NODE_PID=()   #   the Patroni process (own process group), "" when not running
NODE_INC=()   #   incarnation, for log file names
CRASHED=()    # pids of the last crash (stopped ones must still be killed)

forget_pid() { # drop PID from the lib's list (it has exited)
    local keep=() p
    for p in "${PIDS[@]}"; do
        [[ $p == "$1" ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

postmaster_pid() { # NODE -> the live postmaster pid of that node's data dir, or nothing
    local dir=${NODE_DIR[$1]} pid
    [[ -r $dir/data/postmaster.pid ]] || return 0
    pid=$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    # the pid file may be stale (after a crash): it must still be this data dir's postgres
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$dir/data" || return 0
    echo "$pid"
}

# the postmaster and its children (each in a session of its own), by id
postgres_pids() { # NODE
    local pm
    pm=$(postmaster_pid "$1")
    [[ -n $pm ]] || return 0
    echo "$pm"
    ps -o pid= --ppid "$pm" 2>/dev/null | tr -d ' ' || true
}

remove_shm() { # NODE : drop the SysV segment a killed postmaster left (postmaster.pid line 7)
    local f=${NODE_DIR[$1]}/data/postmaster.pid id
    [[ -r $f ]] || return 0
    id=$(sed -n 7p "$f" | awk '{print $2}')
    if [[ $id =~ ^[0-9]+$ ]]; then
        ipcrm -m "$id" 2>/dev/null || true
    fi
}

stop_node() { # NODE : kill Patroni, shut PostgreSQL down (immediate), at most ~5 s
    local n=$1 pid pm i
    pid=${NODE_PID[$n]:-}
    if [[ -n $pid ]]; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        { wait "$pid"; } 2>/dev/null || true
        forget_pid "$pid"
        NODE_PID[n]=""
    fi
    pm=$(postmaster_pid "$n")
    if [[ -n $pm ]]; then
        kill -QUIT "$pm" 2>/dev/null || true
        kill -CONT "$pm" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            [[ -n $(postmaster_pid "$n") ]] || break
            sleep 0.1
        done
        local left
        left=$(postgres_pids "$n")
        if [[ -n $left ]]; then
            # shellcheck disable=SC2086 # a list of pids
            kill -KILL $left 2>/dev/null || true
            sleep 0.2
            remove_shm "$n"
        fi
    fi
}

pgf_cleanup() {
    local rc=$? n p
    set +e
    for p in "${CRASHED[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    for ((n = 1; n <= ${#NODE_DIR[@]}; n++)); do
        stop_node "$n"
        # a node crashed this round (not restored yet) left its SysV segment behind
        [[ -n $(postmaster_pid "$n") ]] || remove_shm "$n"
    done
    (exit "$rc")
    cleanup
}
trap pgf_cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Tools

# The commands and modules this needs, and the Debian package for each one that is missing.
ensure_packages() {
    local pkgs=()
    command -v etcd >/dev/null 2>&1 || pkgs+=(etcd-server)
    command -v patroni >/dev/null 2>&1 || pkgs+=(patroni)
    command -v haproxy >/dev/null 2>&1 || pkgs+=(haproxy)
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || pkgs+=(postgresql)
    /usr/bin/python3 -c 'import psycopg2' 2>/dev/null || pkgs+=(python3-psycopg2)
    command -v setpriv >/dev/null 2>&1 || pkgs+=(util-linux)
    command -v ipcrm >/dev/null 2>&1 || pkgs+=(util-linux)
    ((${#pkgs[@]} == 0)) && return 0
    ((EUID == 0)) || die "missing packages ${pkgs[*]} (install them as root)"
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d in containers keeps the packages' own services (etcd, haproxy) from starting
    if ! run_fg - timeout 600 apt-get install -y "${pkgs[@]}"; then
        run_fg - timeout 600 apt-get update || die "apt-get update failed"
        run_fg - timeout 600 apt-get install -y "${pkgs[@]}" || die "apt-get install failed"
    fi
}

pick_python() { # a python3 that has psycopg2 (pyenv's shim comes first on PATH, without it)
    local p
    for p in ${PYTHON:+"$PYTHON"} /usr/bin/python3 python3; do
        if "$p" -c 'import psycopg2' 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Configs

write_etcd_cmd() { # CLIENT_PORT PEER_PORT -> ETCD_CMD
    ETCD_CMD=(etcd --name wt-bench --data-dir "$TMP/etcd"
        --listen-client-urls "http://127.0.0.1:$1" --advertise-client-urls "http://127.0.0.1:$1"
        --listen-peer-urls "http://127.0.0.1:$2" --initial-advertise-peer-urls "http://127.0.0.1:$2"
        --initial-cluster "wt-bench=http://127.0.0.1:$2" --initial-cluster-state new
        --initial-cluster-token "wt-bench-$$" --log-level warn)
}

write_patroni_conf() { # NODE ETCD_CLIENT_PORT
    local n=$1 dir=${NODE_DIR[$1]}
    cat >"$dir/patroni.yml" <<EOF
# Patroni node $n for bench/pg-failover.sh
scope: wt-bench
namespace: /wt-bench/
name: node$n
log:
  level: INFO
restapi:
  listen: 127.0.0.1:${NODE_REST[$n]}
  connect_address: 127.0.0.1:${NODE_REST[$n]}
etcd3:
  hosts: 127.0.0.1:$2
bootstrap:
  dcs:
    ttl: $PATRONI_TTL
    loop_wait: $PATRONI_LOOP_WAIT
    retry_timeout: $PATRONI_RETRY_TIMEOUT
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: false
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 200
  initdb:
    - encoding: UTF8
    - locale: C
postgresql:
  listen: 127.0.0.1:${NODE_PG[$n]}
  connect_address: 127.0.0.1:${NODE_PG[$n]}
  data_dir: $dir/data
  bin_dir: $PG_BIN_DIR
  pgpass: $dir/pgpass
  authentication:
    superuser: {username: postgres, password: postgres}
    replication: {username: replicator, password: replicator}
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
  basebackup:
    - checkpoint: fast
  parameters:
    unix_socket_directories: $dir
EOF
}

# HAProxy as Patroni documents it (patroni's haproxy.cfg: "listen primary"), plus a stats
# socket the script reads to know HAProxy has settled before a round.
write_haproxy_conf() { # PORT
    local n
    {
        cat <<EOF
# HAProxy for bench/pg-failover.sh: Patroni's documented configuration.
global
    maxconn 100
    stats socket $TMP/haproxy.sock mode 600 level user

defaults
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 4s
    timeout server 30m
    timeout check 5s

listen primary
    bind 127.0.0.1:$1
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
EOF
        for ((n = 1; n <= NODES; n++)); do
            echo "    server node$n 127.0.0.1:${NODE_PG[$n]} maxconn 100 check port ${NODE_REST[$n]}"
        done
    } >"$TMP/haproxy.cfg"
}

write_wt_conf() { # VARIANT PORT ADMIN_PORT -> $TMP/watertight-VARIANT.yaml
    local v=$1 n
    {
        cat <<EOF
# watertight for bench/pg-failover.sh, variant $v
admin: { address: 127.0.0.1:$3 }
access_log: "off"
listeners:
  - name: pg
    address: 127.0.0.1:$2
    protocol: tcp
    cluster: pg-primary
clusters:
  - name: pg-primary
    connect_timeout: 1s
    on_endpoint_down: close_sessions
    endpoints:
EOF
        for ((n = 1; n <= NODES; n++)); do
            echo "      - address: 127.0.0.1:${NODE_PG[$n]}"
            [[ $v == rest ]] && echo "        health_check_port: ${NODE_REST[$n]}"
        done
        cat <<EOF
    health_check:
      interval: 200ms
      timeout: 500ms
      rise: 1
      fall: 1
EOF
        if [[ $v == pg ]]; then
            echo "      postgres: { role: primary, user: postgres, database: postgres }"
        else
            echo "      http: { method: OPTIONS, path: /primary }"
        fi
    } >"$TMP/watertight-$v.yaml"
}

# ---------------------------------------------------------------------------------------------
# Cluster

start_node() { # NODE
    local n=$1 inc
    inc=$((${NODE_INC[$n]:-0} + 1))
    NODE_INC[n]=$inc
    spawn "$TMP/patroni-node$n-$inc.log" setpriv --reuid=postgres --regid=postgres --init-groups \
        env HOME="${NODE_DIR[$n]}" patroni "${NODE_DIR[$n]}/patroni.yml"
    NODE_PID[n]=$SPAWNED
}

rest_ports() { # [EXCEPT_NODE] -> comma-separated REST ports
    local n out=()
    for ((n = 1; n <= NODES; n++)); do
        [[ $n == "${1:-0}" ]] || out+=("${NODE_REST[$n]}")
    done
    (IFS=,; echo "${out[*]}")
}

# cluster_state -> sets LEADER (node number or "") and HEALTHY (1: a running leader with
# NODES-1 streaming replicas, every node running); CLUSTER_LINES: "nodeN role state" each
cluster_state() {
    local port role state streaming _status running=0 lead_streaming=0 n lines
    LEADER=""
    HEALTHY=0
    CLUSTER_LINES=""
    lines=$("$PY" "$HELPER" state --rest-ports "$(rest_ports)" 2>/dev/null || true)
    while read -r port role state streaming _status; do
        [[ -n ${port:-} ]] || continue
        for ((n = 1; n <= NODES; n++)); do
            [[ ${NODE_REST[$n]} == "$port" ]] && break
        done
        CLUSTER_LINES+="node$n $role $state; "
        [[ $state == running || $state == streaming ]] && running=$((running + 1))
        if [[ $role == master || $role == primary ]] && [[ $state == running ]]; then
            LEADER=$n
            lead_streaming=$streaming
        fi
    done <<<"$lines"
    if [[ -n $LEADER ]] && ((running == NODES && lead_streaming == NODES - 1)); then
        HEALTHY=1
    fi
    return 0
}

wait_healthy() { # SECONDS
    local i end=$((SECONDS + $1))
    for ((i = 0; i < $1 * 5 && SECONDS < end; i++)); do
        cluster_state
        ((HEALTHY == 1)) && return 0
        sleep 0.2
    done
    log "cluster state: $CLUSTER_LINES"
    return 1
}

# HAProxy settled: exactly the leader's server UP (it starts every server UP, and needs
# fall x inter to take the replicas out).
wait_haproxy_settled() { # LEADER SECONDS
    local i st end=$((SECONDS + $2))
    for ((i = 0; i < $2 * 5 && SECONDS < end; i++)); do
        st=$("$PY" "$HELPER" haproxy-state --socket "$TMP/haproxy.sock" 2>/dev/null | tr '\n' ' ' || true)
        if [[ $(grep -o ' UP' <<<" $st" | wc -l) == 1 && " $st" == *" node$1 UP"* ]]; then
            return 0
        fi
        sleep 0.2
    done
    log "WARNING: HAProxy did not settle on node$1 within $2 s: $st"
    return 1
}

# ---------------------------------------------------------------------------------------------
# One round

wait_exit() { # PID SECONDS : wait for it to exit by itself, then stop it in any case
    local i end=$((SECONDS + $2))
    for ((i = 0; i < $2 * 10 && SECONDS < end; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$1" 2>/dev/null && log "WARNING: pid $1 still running after $2 s, stopping it"
    stop_pid "$1"
    forget_pid "$1"
}

crash_node() { # NODE : every process of the node at once; sets CRASH_TS
    local n=$1 pat=${NODE_PID[$1]} pg sig=KILL
    [[ $CRASH == stop ]] && sig=STOP
    pg=$(postgres_pids "$n" | tr '\n' ' ')
    [[ -n $pg ]] || log "WARNING: node$n has no running postmaster to crash"
    # shellcheck disable=SC2206 # a list of pids
    CRASHED=($pg)
    CRASH_TS=$EPOCHREALTIME
    kill "-$sig" -- "-$pat" 2>/dev/null || true
    # shellcheck disable=SC2086 # a list of pids
    [[ -n $pg ]] && kill "-$sig" $pg 2>/dev/null
    # reap Patroni at once (and quietly: bash reports a job killed by a signal)
    [[ $CRASH == kill ]] && { wait "$pat"; } 2>/dev/null
    # shellcheck disable=SC2207 # a list of pids
    [[ $CRASH == stop ]] && CRASHED+=($(pgrep -g "$pat" 2>/dev/null || true))
    return 0
}

restore_node() { # NODE : rebuild it as a fresh replica of the new leader
    local n=$1 p pat=${NODE_PID[$1]}
    for p in "${CRASHED[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    kill -KILL -- "-$pat" 2>/dev/null || true
    { wait "$pat"; } 2>/dev/null || true
    forget_pid "$pat"
    NODE_PID[n]=""
    CRASHED=()
    sleep 0.2
    stop_node "$n" # anything of it still alive (shouldn't be)
    remove_shm "$n"
    rm -rf "${NODE_DIR[$n]}/data"
    start_node "$n"
}

# run_round ROUND : appends "round crashed new promotion outage..." to rounds.tsv
run_round() {
    local r=$1 v lead i tag
    wait_healthy 120 || { log "WARNING: cluster not healthy before round $r; stopping the rounds"; return 1; }
    lead=$LEADER
    wait_haproxy_settled "$lead" 30 || true
    log "round $r: leader node$lead; $CLUSTER_LINES"
    local crash_file=$TMP/r$r-crash
    rm -f "$crash_file"

    local wpids=() wvars=()
    for v in "${MEASURED[@]}"; do
        tag="r$r-$v"
        spawn "$TMP/$tag-writer.log" timeout --kill-after=5 $((WRITER_CAP + 5)) "$PY" "$HELPER" write \
            --port "${PROXY_PORT[$v]}" --label "$v" --out "$RESULTS/$tag-writes.tsv" \
            --status "$TMP/$tag.status" --crash-file "$crash_file" --interval-ms "$WRITE_INTERVAL_MS" \
            --connect-timeout 1 --statement-timeout 1 --stable "$STABLE" --max-after "$MAX_AFTER" \
            --max-total "$WRITER_CAP"
        wpids+=("$SPAWNED")
        wvars+=("$v")
    done

    # every writer: PRE s of continuous success (at most PRE_MAX s)
    local ready state since now unready=() end=$((SECONDS + PRE_MAX))
    for ((i = 0; i < PRE_MAX * 10 && SECONDS < end; i++)); do
        ready=0
        unready=()
        now=$EPOCHREALTIME
        for v in "${wvars[@]}"; do
            state="" since=0
            [[ -r $TMP/r$r-$v.status ]] && read -r state since <"$TMP/r$r-$v.status"
            if [[ $state == ok ]] && awk -v n="$now" -v s="$since" -v p="$PRE" 'BEGIN {exit !(n - s >= p)}'; then
                ready=$((ready + 1))
            else
                unready+=("$v")
            fi
        done
        ((ready == ${#wvars[@]})) && break
        sleep 0.1
    done
    ((${#unready[@]} == 0)) || log "WARNING: round $r: no ${PRE}s of clean writes through ${unready[*]} after ${PRE_MAX}s (crashing anyway)"

    spawn "$TMP/r$r-promotion.log" timeout --kill-after=5 90 "$PY" "$HELPER" promotion \
        --rest-ports "$(rest_ports "$lead")" --crash-file "$crash_file" \
        --out "$RESULTS/r$r-promotion.json" --interval-ms 100 --max-wait 60
    local ppid=$SPAWNED
    crash_node "$lead"
    echo "$CRASH_TS" >"$crash_file.tmp"
    mv "$crash_file.tmp" "$crash_file"
    log "round $r: crashed node$lead ($CRASH: Patroni + postmaster + ${#CRASHED[@]} postgres processes)"

    for i in "${!wpids[@]}"; do
        wait_exit "${wpids[$i]}" $((MAX_AFTER + 15))
    done
    wait_exit "$ppid" 70

    local prom="-" newl="-"
    if [[ -s $RESULTS/r$r-promotion.json ]]; then
        read -r prom newl < <("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
ports = dict(zip(sys.argv[2].split(","), range(1, 100)))
p = d.get("promotion_s")
print("-" if p is None else p, "node%d" % ports[str(d["port"])] if d.get("port") else "-")' \
            "$RESULTS/r$r-promotion.json" "$(rest_ports)")
    fi
    local row="$r"$'\t'"node$lead"$'\t'"$newl"$'\t'"$prom" out json
    for v in "${VARIANTS[@]}"; do
        out="-"
        if [[ -s $RESULTS/r$r-$v-writes.tsv ]]; then
            json=$("$PY" "$HELPER" outage --log "$RESULTS/r$r-$v-writes.tsv" --crash "$CRASH_TS")
            echo "$json" >"$RESULTS/r$r-$v-outage.json"
            out=$("$PY" -c 'import json,sys; v=json.loads(sys.argv[1]).get("outage_s"); print("-" if v is None else v)' "$json")
            if [[ $out == - && -z ${NOTE[$v]:-} ]]; then
                NOTE[$v]="round $r not measured: $("$PY" -c 'import json,sys; print(json.loads(sys.argv[1]).get("note", "?"))' "$json")"
            fi
            log "  $v: $json"
        fi
        row+=$'\t'"$out"
    done
    echo "$row" >>"$RESULTS/rounds.tsv"
    log "round $r: promotion ${prom}s (new leader $newl); outage: $(cut -f5- <<<"$row" | tr '\t' ' ') (${VARIANTS[*]})"

    restore_node "$lead"
    return 0
}

# ---------------------------------------------------------------------------------------------
# Main
main() {
    local started=$SECONDS n v
    ensure_packages
    PY=$(pick_python) || die "no python3 with psycopg2 (apt-get install python3-psycopg2, or set PYTHON)"
    if [[ -z $PG_BIN_DIR ]]; then
        PG_BIN_DIR=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
    fi
    [[ -x $PG_BIN_DIR/postgres ]] || die "no PostgreSQL server in '$PG_BIN_DIR' (set PG_BIN_DIR)"
    id postgres >/dev/null 2>&1 || die "no postgres user (the postgresql package creates it)"
    ((EUID == 0)) || die "run as root (PostgreSQL runs as the postgres user via setpriv)"

    # watertight: a missing or unbuildable binary only means it is not measured
    declare -gA NOTE=() PROXY_PORT=()
    local wt_ok=1
    if ! (build_watertight); then
        wt_ok=0
    fi
    [[ -x $WT_BIN ]] || wt_ok=0

    TMP=$(mktemp -d "${TMPDIR:-/tmp}/pg-failover.XXXXXX")
    chmod 755 "$TMP"
    RESULTS=${RESULTS_DIR:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)-pg-failover}
    mkdir -p "$RESULTS"
    : >"$RESULTS/rounds.tsv"

    local ports etcd_c etcd_p hap_port
    read -r -a ports <<<"$(pick_ports $((3 + 2 * NODES + 4)))"
    etcd_c=${ports[0]} etcd_p=${ports[1]} hap_port=${ports[2]}
    for ((n = 1; n <= NODES; n++)); do
        NODE_PG[n]=${ports[$((1 + 2 * n))]}
        NODE_REST[n]=${ports[$((2 + 2 * n))]}
        NODE_DIR[n]=$TMP/node$n
        mkdir -p "${NODE_DIR[$n]}"
        chown postgres:postgres "${NODE_DIR[$n]}"
        chmod 700 "${NODE_DIR[$n]}"
    done
    local wt_pg_port=${ports[$((3 + 2 * NODES))]} wt_pg_admin=${ports[$((4 + 2 * NODES))]}
    local wt_rest_port=${ports[$((5 + 2 * NODES))]} wt_rest_admin=${ports[$((6 + 2 * NODES))]}

    {
        echo "date: $(date -Is)"
        echo "host: $(uname -srm), $(nproc --all) CPUs, loadavg $(cat /proc/loadavg)"
        echo "knobs: ROUNDS=$ROUNDS NODES=$NODES CRASH=$CRASH PATRONI_TTL=$PATRONI_TTL PATRONI_LOOP_WAIT=$PATRONI_LOOP_WAIT PATRONI_RETRY_TIMEOUT=$PATRONI_RETRY_TIMEOUT PRE=$PRE STABLE=$STABLE MAX_AFTER=$MAX_AFTER WRITE_INTERVAL_MS=$WRITE_INTERVAL_MS WT_VARIANTS='$WT_VARIANTS'"
        echo "watertight: $WT_BIN ($("$WT_BIN" --version 2>/dev/null || echo '?'), built $(date -r "$WT_BIN" -Is 2>/dev/null || echo '?'))"
        echo "workspace: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
        echo "postgres: $("$PG_BIN_DIR/postgres" --version)"
        echo "patroni: $(patroni --version 2>&1)"
        echo "etcd: $(etcd --version 2>&1 | head -n1)"
        echo "haproxy: $(haproxy -v 2>&1 | head -n1)"
        echo "python: $PY ($("$PY" --version 2>&1), psycopg2 $("$PY" -c 'import psycopg2; print(psycopg2.__version__)'))"
        echo "ports: etcd=$etcd_c/$etcd_p haproxy=$hap_port watertight pg=$wt_pg_port (admin $wt_pg_admin) rest=$wt_rest_port (admin $wt_rest_admin)"
        for ((n = 1; n <= NODES; n++)); do
            echo "node$n: postgres 127.0.0.1:${NODE_PG[$n]}, Patroni REST 127.0.0.1:${NODE_REST[$n]}"
        done
    } >"$RESULTS/env.txt"
    cat "$RESULTS/env.txt" >&2

    # etcd, then node1 (bootstraps), then the others (clone from it)
    write_etcd_cmd "$etcd_c" "$etcd_p"
    spawn "$TMP/etcd.log" "${ETCD_CMD[@]}"
    wait_port "$etcd_c" "$SPAWNED" "etcd"
    for ((n = 1; n <= NODES; n++)); do
        write_patroni_conf "$n" "$etcd_c"
        chown postgres:postgres "${NODE_DIR[$n]}/patroni.yml"
    done
    log "starting Patroni node1 (initdb)"
    start_node 1
    local i end=$((SECONDS + 60))
    for ((i = 0; i < 300 && SECONDS < end; i++)); do
        kill -0 "${NODE_PID[1]}" 2>/dev/null || die "Patroni node1 exited (see $RESULTS/patroni-node1-1.log)"
        cluster_state
        [[ $LEADER == 1 ]] && break
        sleep 0.2
    done
    [[ $LEADER == 1 ]] || die "node1 did not become leader within 60 s (see $RESULTS/patroni-node1-1.log)"
    for ((n = 2; n <= NODES; n++)); do
        start_node "$n"
    done
    wait_healthy 120 || die "the cluster did not get healthy within 120 s (Patroni logs in $RESULTS)"
    log "cluster up: $CLUSTER_LINES"
    run_fg - "$PY" "$HELPER" setup --port "${NODE_PG[1]}" || die "cannot create the table"

    # Proxies
    write_haproxy_conf "$hap_port"
    haproxy -c -f "$TMP/haproxy.cfg" >&2 || die "haproxy rejected its config"
    spawn "$TMP/haproxy.log" haproxy -db -f "$TMP/haproxy.cfg"
    wait_port "$hap_port" "$SPAWNED" "haproxy"
    PROXY_PORT[haproxy]=$hap_port
    VARIANTS=(haproxy)
    MEASURED=(haproxy)
    local port admin pid msg
    for v in $WT_VARIANTS; do
        VARIANTS+=("wt-$v")
        port=$wt_pg_port admin=$wt_pg_admin
        [[ $v == rest ]] && port=$wt_rest_port admin=$wt_rest_admin
        if ((wt_ok == 0)); then
            NOTE[wt-$v]="not measured (no watertight binary at $WT_BIN)"
            continue
        fi
        write_wt_conf "$v" "$port" "$admin"
        cp "$TMP/watertight-$v.yaml" "$RESULTS/"
        if ! msg=$("$WT_BIN" check --config "$TMP/watertight-$v.yaml" 2>&1); then
            msg=$(grep -m1 -v '^[[:space:]]*$' <<<"$msg" || true)
            NOTE[wt-$v]="not measured (config rejected: ${msg:0:200})"
            log "watertight $v: ${NOTE[wt-$v]}"
            continue
        fi
        spawn "$TMP/watertight-$v.log" "$WT_BIN" proxy --config "$TMP/watertight-$v.yaml"
        pid=$SPAWNED
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.1
        done
        if ! kill -0 "$pid" 2>/dev/null || ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            msg=$(grep -m1 -v '^[[:space:]]*$' "$TMP/watertight-$v.log" 2>/dev/null || echo "no output")
            NOTE[wt-$v]="not measured (did not start: ${msg:0:200})"
            log "watertight $v: ${NOTE[wt-$v]}"
            stop_pid "$pid"
            forget_pid "$pid"
            continue
        fi
        PROXY_PORT[wt-$v]=$port
        MEASURED+=("wt-$v")
    done
    # One write must get through each proxy before the rounds (HAProxy: once it has settled).
    cluster_state
    wait_haproxy_settled "${LEADER:-1}" 30 || true
    local keep=()
    for v in "${MEASURED[@]}"; do
        if msg=$("$PY" "$HELPER" probe --port "${PROXY_PORT[$v]}" --label "$v" --timeout 15 2>&1); then
            keep+=("$v")
            log "$v: a write went through ($msg)"
        elif [[ $v == haproxy ]]; then
            die "no write through HAProxy: $msg"
        else
            NOTE[$v]="not measured (${msg:0:250})"
            log "$v: ${NOTE[$v]}"
        fi
    done
    MEASURED=("${keep[@]}")
    cp "$TMP/haproxy.cfg" "$TMP/node1/patroni.yml" "$RESULTS/"
    {
        echo "${ETCD_CMD[*]}"
        echo "setpriv --reuid=postgres --regid=postgres --init-groups env HOME=$TMP/nodeN patroni $TMP/nodeN/patroni.yml"
        echo "haproxy -db -f $TMP/haproxy.cfg"
        for v in "${MEASURED[@]}"; do
            [[ $v == wt-* ]] && echo "$WT_BIN proxy --config $TMP/watertight-${v#wt-}.yaml"
        done
        echo "$PY bench/pg_failover.py write --port PORT --label NAME --interval-ms $WRITE_INTERVAL_MS --connect-timeout 1 --statement-timeout 1 --stable $STABLE --max-after $MAX_AFTER ..."
    } >"$RESULTS/commands.txt"
    log "measuring: ${MEASURED[*]}"

    local r done_rounds=0
    for ((r = 1; r <= ROUNDS; r++)); do
        run_round "$r" || break
        done_rounds=$r
    done
    wait_healthy 60 || log "WARNING: the cluster did not get healthy again after the last round"
    ((done_rounds > 0)) || die "no round completed (raw output in $RESULTS)"

    local notes="{" sep=""
    for v in "${VARIANTS[@]}"; do
        [[ -n ${NOTE[$v]:-} ]] || continue
        notes+="$sep$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]) + ": " + json.dumps(sys.argv[2]))' "$v" "${NOTE[$v]}")"
        sep=", "
    done
    notes+="}"
    local crash_desc="kill -9 of Patroni + postmaster + its children"
    [[ $CRASH == stop ]] && crash_desc="SIGSTOP of Patroni + postmaster + its children (a hung machine)"
    "$PY" "$HELPER" summarize --rounds "$RESULTS/rounds.tsv" --variants "$(IFS=,; echo "${VARIANTS[*]}")" \
        --notes "$notes" \
        --title "pg-failover: write outage when the Patroni leader dies ($crash_desc); rounds: $done_rounds, $NODES nodes, Patroni ttl=$PATRONI_TTL loop_wait=$PATRONI_LOOP_WAIT retry_timeout=$PATRONI_RETRY_TIMEOUT; one INSERT every ${WRITE_INTERVAL_MS} ms per proxy; outage = longest gap between successful writes" \
        >"$RESULTS/summary.txt" || die "summary failed (raw data in $RESULTS)"
    echo "raw output and configs: $RESULTS" >>"$RESULTS/summary.txt"
    echo
    cat "$RESULTS/summary.txt"
    log "done in $((SECONDS - started)) s"
}

main "$@"

#!/usr/bin/env bash
# What one proxied request costs watertight in user space, measured two ways that the
# machine's load does not move much (unlike req/s on a shared machine). See bench/README.md.
#
# 1. Instructions per request: the proxy runs under callgrind (one worker thread); `ab -k`
#    sends WARMUP requests, the counters are zeroed, REQUESTS more are sent and the counters
#    dumped. Prints the total over REQUESTS and the functions with the most instructions of
#    their own (inlined code counts where it was inlined); then the same for the executed
#    atomic read-modify-write instructions (`lock`-prefixed ones, and `xchg` with memory).
# 2. With ATOMICS=1 (the default): the share of CPU samples that land right after an atomic
#    instruction, where a sampled atomic's cost shows up: the proxy runs normally under wrk
#    for PERF_SECONDS while `perf record` samples it, and each sample's address is looked up
#    in the binary's disassembly.
#
# The upstream is the same nginx as in proxy-vs-peers.sh (13-byte body, keep-alive).
#
# Knobs (environment): REQUESTS=20000 WARMUP=2000 CONNS=50 ATOMICS=1 PERF_SECONDS=10 TOP=25
#   SKIP_BUILD=0 WT_BIN=<path> KEEP_TMP=0 RESULTS_DIR=<dir>
# Needs: valgrind, ab (apache2-utils), nginx, objdump and readelf (binutils); with ATOMICS=1
# also perf (linux-perf) and wrk.

set -euo pipefail

REQUESTS=${REQUESTS:-20000}
WARMUP=${WARMUP:-2000}
CONNS=${CONNS:-50}
ATOMICS=${ATOMICS:-1}
PERF_SECONDS=${PERF_SECONDS:-10}
TOP=${TOP:-25}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

whole_knobs REQUESTS WARMUP CONNS PERF_SECONDS TOP
((REQUESTS > 0 && CONNS > 0)) || die "REQUESTS and CONNS must be positive"
[[ $ATOMICS == 0 || $ATOMICS == 1 ]] || die "ATOMICS must be 0 or 1 (got '$ATOMICS')"
needed=(valgrind callgrind_control ab nginx python3 objdump readelf)
((ATOMICS)) && needed+=(perf wrk)
for tool in "${needed[@]}"; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool is missing (apt-get install valgrind apache2-utils nginx linux-perf wrk binutils)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/request-cost.XXXXXX")
RESULTS=${RESULTS_DIR:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)-request-cost}
mkdir -p "$RESULTS"
build_watertight

read -r up_port wt_port wt_admin <<<"$(pick_ports 3)"
write_nginx_upstream_conf "$up_port"
spawn "$TMP/nginx-upstream.log" nginx -p "$TMP" -e "$TMP/nginx-upstream-error.log" -c "$TMP/nginx-upstream.conf"
wait_port "$up_port" "$SPAWNED" "upstream nginx"

proxy_args=(proxy --listen "127.0.0.1:$wt_port" --to "http://127.0.0.1:$up_port"
    --admin "127.0.0.1:$wt_admin" --access-log off)
url="http://127.0.0.1:$wt_port/"

# ---------------------------------------------------------------------------------------------
# 1. Instructions per request (callgrind)
log "callgrind: $WARMUP warm-up requests, then $REQUESTS counted ($CONNS connections)"
spawn "$RESULTS/callgrind.log" env TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --dump-instr=yes \
    --callgrind-out-file="$RESULTS/callgrind.out" "$WT_BIN" "${proxy_args[@]}"
vg_pid=$SPAWNED
for ((i = 0; i < 600; i++)); do # valgrind starts slowly
    curl -s -o /dev/null --max-time 2 "$url" && break
    kill -0 "$vg_pid" 2>/dev/null || die "watertight under valgrind exited (see $RESULTS/callgrind.log)"
    sleep 0.1
done
check_http watertight "$wt_port"
if ((WARMUP > 0)); then
    : >"$RESULTS/ab-warmup.txt"
    run_fg "$RESULTS/ab-warmup.txt" ab -q -k -c "$CONNS" -n "$WARMUP" "$url"
fi
callgrind_control -z "$vg_pid" >/dev/null
: >"$RESULTS/ab.txt" # run_fg appends: a reused RESULTS_DIR must not keep an earlier run's
run_fg "$RESULTS/ab.txt" ab -q -k -c "$CONNS" -n "$REQUESTS" "$url"
failed=$(awk '/^Failed requests:/ {print $3}' "$RESULTS/ab.txt")
non2xx=$(awk '/^Non-2xx responses:/ {print $3}' "$RESULTS/ab.txt")
[[ ${failed:-0} == 0 && ${non2xx:-0} == 0 ]] ||
    log "WARNING: ab saw failed=${failed:-0} non-2xx=${non2xx:-0} (see $RESULTS/ab.txt)"
callgrind_control -d "$vg_pid" >/dev/null
sleep 1
stop_pid "$vg_pid"
dump=$(find "$RESULTS" -name 'callgrind.out.*' -newer "$RESULTS/ab.txt" | sort | tail -1)
[[ -n $dump ]] || die "callgrind wrote no dump after the counted requests"

# Addresses of atomic read-modify-write instructions (`lock`-prefixed ones, and `xchg` with
# memory, which is atomic without the prefix: SeqCst stores and swaps) and of the ones that
# follow them (where perf's samples of an atomic land), as link-time addresses.
objdump -d --no-show-raw-insn "$WT_BIN" |
    awk '/^ +[0-9a-f]+:/ {a = $1; sub(":", "", a); if (locked) print a > after; locked = ($2 == "lock" || ($2 ~ /^xchg/ && $0 ~ /\(/)); if (locked) print a > lock}' \
        after="$TMP/after-lock.txt" lock="$TMP/lock.txt"

# Own instructions per function (cost lines after `calls=` lines are calls' inclusive costs,
# not the caller's own), and how many of the binary's executed instructions were atomic.
cat >"$TMP/instructions.py" <<'PY'
import collections, re, sys
path, requests, top, locks, binary = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
lock_addresses = set(int(a, 16) for a in open(locks))
names, own, atomics = {}, collections.Counter(), collections.Counter()
function = obj = None
address, call_cost = 0, False
def name(kind, text):
    m = re.match(r'\((\d+)\)(?: (.*))?', text)
    if not m:
        return text
    if m.group(2):
        names[(kind, m.group(1))] = m.group(2)
    return names.get((kind, m.group(1)), text)
for line in open(path):
    line = line.rstrip('\n')
    if line.startswith('fn='):
        function = name('fn', line[3:])
    elif line.startswith('cfn='):
        name('fn', line[4:])
    elif line.startswith('ob='):
        obj = name('ob', line[3:])
    elif line.startswith('cob='):
        name('ob', line[4:])
    elif line.startswith('calls='):
        call_cost = True
    elif line and (line[0].isdigit() or line[0] in '+-*'):
        fields = line.split()
        position = fields[0]
        if position.startswith('0x'):
            address = int(position, 16)
        elif position[0] in '+-':
            address += int(position)
        if call_cost:
            call_cost = False
            continue
        if len(fields) >= 3 and function:
            own[function] += int(fields[2])
            if obj and obj.endswith('/' + binary) and address in lock_addresses:
                atomics[function] += int(fields[2])
total = sum(own.values())
print(f'instructions per request: {total / requests:.0f}')
print(f'atomic instructions per request: {sum(atomics.values()) / requests:.1f}')
print(f'functions with the most instructions of their own (of {top}):')
for f, n in own.most_common(top):
    print(f'  {n / requests:8.0f}  {100 * n / total:5.1f} %  {f[:110]}')
print('functions with the most atomic instructions (inlined ones count where they were inlined):')
for f, n in atomics.most_common(top):
    print(f'  {n / requests:8.2f}  {f[:110]}')
PY
python3 "$TMP/instructions.py" "$dump" "$REQUESTS" "$TOP" "$TMP/lock.txt" "$(basename "$WT_BIN")" \
    >"$RESULTS/instructions.txt"
cat "$RESULTS/instructions.txt"

# ---------------------------------------------------------------------------------------------
# 2. Share of samples right after atomic instructions (perf)
if ((ATOMICS)); then
    log "perf: sampling watertight under wrk for ${PERF_SECONDS}s"
    spawn "$RESULTS/watertight.log" env TOKIO_WORKER_THREADS=1 "$WT_BIN" "${proxy_args[@]}"
    wt_pid=$SPAWNED
    wait_port "$wt_port" "$wt_pid" "watertight"
    : >"$RESULTS/wrk-warmup.txt"
    run_fg "$RESULTS/wrk-warmup.txt" timeout 30 wrk -t1 -c"$CONNS" -d2s "$url"
    spawn "$RESULTS/wrk.txt" timeout $((PERF_SECONDS + 30)) wrk -t1 -c"$CONNS" -d"$((PERF_SECONDS + 2))s" "$url"
    wrk_pid=$SPAWNED
    sleep 1
    : >"$RESULTS/perf-record.log"
    run_fg "$RESULTS/perf-record.log" perf record -F 5000 -p "$wt_pid" -o "$TMP/perf.data" -- sleep "$PERF_SECONDS"
    stop_pid "$wrk_pid"
    # The executable segment's file offset and link-time address, to map sample addresses.
    read -r seg_offset seg_vaddr < <(readelf -lW "$WT_BIN" | awk '$1 == "LOAD" && / E / {print $2, $3; exit}')
    map_line=$(grep -m1 " r-xp .* $(readlink -f "$WT_BIN")\$" "/proc/$wt_pid/maps")
    stop_pid "$wt_pid"
    perf script -i "$TMP/perf.data" -F ip,sym,dso 2>/dev/null >"$TMP/samples.txt"
    cat >"$TMP/atomics.py" <<'PY'
import collections, sys
after = set(int(a, 16) for a in open(sys.argv[1]))
mapping = sys.argv[2].split()
start = int(mapping[0].split('-')[0], 16)
map_offset = int(mapping[2], 16)
seg_offset, seg_vaddr, binary, top = int(sys.argv[3], 16), int(sys.argv[4], 16), sys.argv[5], int(sys.argv[6])
samples = own = locked = 0
by_function = collections.Counter()
for line in sys.stdin:
    fields = line.split(None, 1)
    if len(fields) < 2:
        continue
    samples += 1
    if binary not in fields[1]:
        continue
    own += 1
    vaddr = int(fields[0], 16) - start + map_offset - seg_offset + seg_vaddr
    if vaddr in after:
        locked += 1
        by_function[fields[1].rsplit('(', 1)[0].strip()] += 1
if own == 0:
    sys.exit('no samples in the binary')
print(f'samples: {samples}, in {binary}: {own}; right after an atomic instruction: {locked}'
      f' ({100 * locked / samples:.1f} % of all, {100 * locked / own:.1f} % of the binary\'s own)')
print('by function (where the atomic was inlined):')
for function, n in by_function.most_common(top):
    print(f'  {100 * n / max(locked, 1):5.1f} %  {function[:110]}')
PY
    python3 "$TMP/atomics.py" "$TMP/after-lock.txt" "$map_line" "$seg_offset" "$seg_vaddr" \
        "$(basename "$WT_BIN")" "$TOP" <"$TMP/samples.txt" >"$RESULTS/atomics.txt"
    cat "$RESULTS/atomics.txt"
fi
log "done; results in $RESULTS"

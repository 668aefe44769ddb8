#!/usr/bin/env python3
"""Helpers for bench/cascade.sh: a slow upstream and the load on the slow route.

    python3 bench/cascade.py serve --port 9000 --delay 5
        An HTTP/1.1 server (keep-alive) that answers every request with 200 and a 5-byte body
        after --delay seconds, holding the connection open meanwhile (asyncio: a sleeping
        request costs no CPU). GET /__stats answers at once with JSON: requests served, in
        flight now, and the most in flight at once since the last GET /__stats?reset=1.

    python3 bench/cascade.py load --port 8080 --path /a/x -c 200 --duration 25
        -c clients, each on its own keep-alive connection, send GET --path one after the
        other for --duration seconds: the next request goes out when the previous answer is
        in (closed loop), or, with --honour-retry-after, after a 503 only once the answer's
        Retry-After has passed. Then no new request starts; those in flight get --grace
        seconds to finish. Prints `READY` on stderr once every client has sent its first
        request, and a JSON summary on stdout: outcomes (status, x-watertight-reason),
        latency percentiles per outcome, connection errors and timeouts.

    python3 bench/cascade.py summarize --rounds RESULTS/rounds.tsv
        The summary table cascade.sh prints, from its rounds.tsv and the load's JSON files.

Everything is on 127.0.0.1. Standard library only.
"""

import argparse
import asyncio
import json
import resource
import sys
import time


# ------------------------------------------------------------------------------------------
# Slow upstream

class Stats:
    def __init__(self):
        self.served = 0
        self.in_flight = 0
        self.peak = 0


async def read_head(reader):
    """The request or response head up to the blank line, or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    return head


def header_value(lines, name):
    prefix = name.lower() + b":"
    for line in lines:
        if line.lower().startswith(prefix):
            return line[len(prefix):].strip()
    return None


async def serve_connection(reader, writer, delay, stats):
    try:
        while True:
            head = await read_head(reader)
            if head is None:
                break
            lines = head.split(b"\r\n")
            request_line = lines[0].split(b" ")
            target = request_line[1] if len(request_line) > 1 else b"/"
            length = header_value(lines[1:], b"content-length")
            if length:
                await reader.readexactly(int(length))
            close = (header_value(lines[1:], b"connection") or b"").lower() == b"close"
            if target.startswith(b"/__stats"):
                body = json.dumps({"served": stats.served, "in_flight": stats.in_flight,
                                   "peak_in_flight": stats.peak}).encode() + b"\n"
                if b"reset=1" in target:
                    stats.peak = stats.in_flight
            else:
                stats.in_flight += 1
                stats.peak = max(stats.peak, stats.in_flight)
                try:
                    await asyncio.sleep(delay)
                finally:
                    stats.in_flight -= 1
                stats.served += 1
                body = b"slow\n"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n"
                         + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)
            await writer.drain()
            if close:
                break
    except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
        pass
    finally:
        writer.close()


async def serve(args):
    stats = Stats()
    server = await asyncio.start_server(
        lambda r, w: serve_connection(r, w, args.delay, stats),
        "127.0.0.1", args.port, backlog=4096, limit=65536)
    print(f"listening on 127.0.0.1:{args.port}, delay {args.delay}s", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


# ------------------------------------------------------------------------------------------
# Load on the slow route

class Outcomes:
    def __init__(self):
        self.latencies = {}        # outcome -> [seconds]
        self.errors = {}           # kind -> count
        self.started = 0
        self.first_sent = 0

    def record(self, outcome, seconds):
        self.latencies.setdefault(outcome, []).append(seconds)

    def error(self, kind):
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def read_response(reader):
    """(status, reason header, retry-after) of one response, its body read and dropped."""
    head = await read_head(reader)
    if head is None:
        raise ConnectionResetError("closed before the response")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = lines[1:]
    reason = (header_value(headers, b"x-watertight-reason") or b"").decode()
    retry_after = header_value(headers, b"retry-after")
    length = header_value(headers, b"content-length")
    chunked = b"chunked" in (header_value(headers, b"transfer-encoding") or b"").lower()
    if length is not None:
        await reader.readexactly(int(length))
    elif chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    close = (header_value(headers, b"connection") or b"").lower() == b"close"
    return status, reason, retry_after, close


async def client(args, outcomes, stop_at, ready):
    request = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
               f"User-Agent: cascade-load\r\n\r\n").encode()
    reader = writer = None
    first = True
    while time.monotonic() < stop_at:
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", args.port, limit=65536),
                    timeout=max(0.1, min(args.timeout, stop_at - time.monotonic())))
            except asyncio.TimeoutError:
                outcomes.error("connect-timeout")
                continue
            except OSError:
                outcomes.error("connect-error")
                await asyncio.sleep(0.1)
                continue
        sent = time.monotonic()
        outcomes.started += 1
        try:
            writer.write(request)
            if first:
                first = False
                outcomes.first_sent += 1
                if outcomes.first_sent == args.clients:
                    ready.set()
            status, reason, retry_after, close = await asyncio.wait_for(
                read_response(reader), timeout=args.timeout)
        except asyncio.TimeoutError:
            outcomes.error("timeout")
            writer.close()
            reader = writer = None
            continue
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            outcomes.error("connection-error")
            writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)
            continue
        elapsed = time.monotonic() - sent
        outcomes.record(f"{status} {reason}".strip(), elapsed)
        if close:
            writer.close()
            reader = writer = None
        if args.honour_retry_after and status == 503 and retry_after:
            try:
                pause = float(retry_after)
            except ValueError:
                pause = 1.0
            await asyncio.sleep(max(0.0, min(pause, stop_at - time.monotonic())))
    if writer is not None:
        writer.close()


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    rank = max(1, int(-(-len(sorted_values) * q // 1)))  # ceil(n * q), at least 1
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def load(args):
    outcomes = Outcomes()
    ready = asyncio.Event()
    started = time.monotonic()
    stop_at = started + args.duration
    tasks = [asyncio.create_task(client(args, outcomes, stop_at, ready))
             for _ in range(args.clients)]

    async def announce():
        await ready.wait()
        print(f"READY {args.clients} clients sent their first request after "
              f"{time.monotonic() - started:.2f}s", file=sys.stderr, flush=True)
    announcer = asyncio.create_task(announce())
    # Stop starting requests at --duration; in-flight ones get --grace more seconds.
    done, pending = await asyncio.wait(tasks, timeout=args.duration + args.grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    announcer.cancel()
    summary = {
        "clients": args.clients,
        "duration_s": args.duration,
        "honour_retry_after": args.honour_retry_after,
        "requests_started": outcomes.started,
        "unfinished_at_end": len(pending),
        "errors": outcomes.errors,
        "outcomes": {},
    }
    for outcome, values in sorted(outcomes.latencies.items()):
        values.sort()
        summary["outcomes"][outcome] = {
            "count": len(values),
            "p50_ms": round(percentile(values, 0.5) * 1000, 2),
            "p99_ms": round(percentile(values, 0.99) * 1000, 2),
            "max_ms": round(values[-1] * 1000, 2),
        }
    print(json.dumps(summary, sort_keys=True))


# ------------------------------------------------------------------------------------------
# Summary of a cascade.sh run

def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def parse_wrk_line(line):
    fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    if "requests" not in fields:
        return None
    v = {k: int(x) for k, x in fields.items()}
    # Answers: every response wrk read; a 4xx/5xx (status) or one later than --timeout
    # (timeout) is a failure, and so is a socket error (connect, read, write: no answer).
    # Requests still unanswered when wrk stopped (sent, neither answered nor broken off by a
    # read or write error) are not counted either way: normally those in flight at that
    # moment; B_CONNS of them, with req/s near 0, are connections that hang.
    ok = v["requests"] - v["status"] - v["timeout"]
    tried = v["requests"] + v["connect"] + v["read"] + v["write"]
    return {
        "rps": v["requests"] / (v["duration_us"] / 1e6),
        "ok": ok,
        "failed": tried - ok,
        "ok_pct": 100.0 * ok / tried if tried else 0.0,
        "unanswered": max(0, v["sent"] - v["requests"] - v["read"] - v["write"]),
        "p50_ms": v["p50_us"] / 1000,
        "p99_ms": v["p99_us"] / 1000,
        "max_ms": v["max_us"] / 1000,
    }


def read_a(path):
    if path == "-":
        return None
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("{"):
                    return json.loads(line)
    except OSError:
        pass
    return None


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def summarize(args):
    rows = []
    with open(args.rounds) as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 10:
                continue
            name, rnd, phase, wrk, apath, peak, refused, nwarn, cpu, acpu = cols[:10]
            b = parse_wrk_line(wrk)
            if b:
                b["cpu"] = float(cpu) if cpu not in ("", "-") else None
            rows.append({"proxy": name, "round": int(rnd), "phase": phase, "b": b,
                         "a": read_a(apath), "peak": peak, "refused": refused,
                         "nginx_warnings": nwarn, "a_cpu": acpu})
    proxies = [p for p in ("watertight", "nginx") if any(r["proxy"] == p for r in rows)]
    out = [args.title, ""]
    out.append("B (/b/, the healthy route): medians over rounds")
    out.append(f"{'proxy':<11} {'phase':<9} {'req/s':>8} {'ok %':>8} {'failed':>7} {'at end':>6} "
               f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu%':>5} {'rounds':>6}   p99 ms per round")
    medians = {}
    for proxy in proxies:
        for phase in ("baseline", "cascade"):
            bs = [r["b"] for r in rows if r["proxy"] == proxy and r["phase"] == phase and r["b"]]
            if not bs:
                out.append(f"{proxy:<11} {phase:<9} no data")
                continue
            m = {k: median([b[k] for b in bs]) for k in bs[0]}
            m["cpu"] = median([b["cpu"] for b in bs])
            m["min_ok_pct"] = min(b["ok_pct"] for b in bs)
            m["failed_sum"] = sum(b["failed"] for b in bs)
            m["unanswered_max"] = max(b["unanswered"] for b in bs)
            medians[(proxy, phase)] = m
            per_round = " ".join(f"{b['p99_ms']:.2f}" for b in bs)
            out.append(f"{proxy:<11} {phase:<9} {m['rps']:>8.0f} {m['min_ok_pct']:>8.3f} "
                       f"{m['failed_sum']:>7} {m['unanswered_max']:>6} {m['p50_ms']:>8.2f} "
                       f"{m['p99_ms']:>8.2f} {m['max_ms']:>8.1f} {fmt(m['cpu'], '5.0f')} {len(bs):>6}"
                       f"   {per_round}")
    out.append("(ok %: answers 2xx within B_TIMEOUT over answers + socket errors, the lowest round; "
               "failed: the rest, summed over the rounds;\n at end: requests still unanswered when "
               "wrk stopped, the most in a round: those in flight then, or connections that hang;\n"
               " cpu%: the proxy's CPU while wrk measured, % of one core)")
    out.append("")
    for proxy in proxies:
        ratios = []
        for rnd in sorted({r["round"] for r in rows if r["proxy"] == proxy}):
            pair = {r["phase"]: r["b"] for r in rows if r["proxy"] == proxy and r["round"] == rnd}
            if pair.get("baseline") and pair.get("cascade") and pair["baseline"]["p99_ms"] > 0:
                ratios.append(pair["cascade"]["p99_ms"] / pair["baseline"]["p99_ms"])
        base, casc = medians.get((proxy, "baseline")), medians.get((proxy, "cascade"))
        if not ratios or not base or not casc:
            continue
        line = (f"{proxy:<11} B p99 cascade/baseline x{median(ratios):.2f} (paired, per round: "
                f"{' '.join(f'x{r:.2f}' for r in ratios)}); p50 x{casc['p50_ms'] / base['p50_ms']:.2f}; "
                f"req/s x{casc['rps'] / base['rps']:.2f}; ok {casc['min_ok_pct']:.3f} %")
        out.append(line)
        if proxy == "watertight":
            steady = casc["rps"] >= 0.9 * base["rps"]
            met = casc["failed_sum"] == 0 and max(ratios) <= 1.5 and steady
            out.append(f"{'':<11} goal (B 100 % ok, p99 within x1.5 of baseline in every round, "
                       f"req/s held): {'met' if met else 'NOT met'}")
    out.append("")
    out.append("A (/a/, the slow route) during the cascade phases, per round")
    out.append(f"{'proxy':<11} {'round':>5} {'started':>8}  outcomes: count (p50 / p99 / max ms)"
               f"; client errors; slow upstream peak in flight; proxy's count")
    for proxy in proxies:
        for r in rows:
            if r["proxy"] != proxy or r["phase"] != "cascade":
                continue
            a = r["a"]
            if not a:
                out.append(f"{proxy:<11} {r['round']:>5} no A summary")
                continue
            parts = []
            for outcome, o in sorted(a["outcomes"].items(), key=lambda kv: -kv[1]["count"]):
                parts.append(f"{o['count']} x {outcome} ({o['p50_ms']:.1f} / {o['p99_ms']:.1f} / "
                             f"{o['max_ms']:.1f})")
            errors = ", ".join(f"{k} {v}" for k, v in sorted(a["errors"].items())) or "none"
            if a.get("unfinished_at_end"):
                errors += f", unfinished at the end {a['unfinished_at_end']}"
            extra = ""
            if proxy == "watertight":
                extra = f"; bulkhead-full counted {r['refused']}"
            elif r["nginx_warnings"] not in ("-", "0"):
                extra = f"; 'worker_connections are not enough' x{r['nginx_warnings']}"
            out.append(f"{proxy:<11} {r['round']:>5} {a['requests_started']:>8}  {'; '.join(parts)}; "
                       f"errors: {errors}; upstream peak {r['peak']}{extra}; "
                       f"A client CPU {r['a_cpu']}%")
    print("\n".join(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="the slow upstream")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--delay", type=float, default=5.0, help="seconds before each answer")
    lo = sub.add_parser("load", help="closed-loop clients on one path")
    lo.add_argument("--port", type=int, required=True)
    lo.add_argument("--path", default="/a/x")
    lo.add_argument("-c", "--clients", type=int, default=200)
    lo.add_argument("--duration", type=float, default=25.0, help="seconds of new requests")
    lo.add_argument("--grace", type=float, default=12.0,
                    help="seconds for in-flight requests after --duration")
    lo.add_argument("--timeout", type=float, default=30.0, help="per request, client side")
    lo.add_argument("--honour-retry-after", action="store_true",
                    help="after a 503 with Retry-After, wait that long before the next request")
    su = sub.add_parser("summarize", help="the summary of a cascade.sh run")
    su.add_argument("--rounds", required=True, help="rounds.tsv")
    su.add_argument("--title", default="cascade")
    args = parser.parse_args()
    if args.command == "summarize":
        summarize(args)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 65536), hard))
    try:
        asyncio.run(serve(args) if args.command == "serve" else load(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Helpers for bench/cache-vs-peers.sh: a slow, counting origin and a burst of concurrent
requests for one cold URL.

    python3 bench/cache_burst.py serve --port 9000 --delay 1
        An HTTP/1.1 server (keep-alive) that answers every request after --delay seconds with
        200, a small body naming the path (`burst /the/path\\n`), `Cache-Control: public,
        max-age=3600`, an ETag and a Last-Modified (a request whose If-None-Match matches gets
        304). It counts the requests per path as they arrive. GET /__stats answers at once with
        JSON: {"requests": {path: count}, "total": n, "in_flight": n, "peak_in_flight": n};
        GET /__stats?path=/x answers with the count for /x alone ({"path": "/x", "count": n}).

    python3 bench/cache_burst.py burst --port 8080 --path /burst/x -n 1000
        Opens -n connections to 127.0.0.1:PORT (at most --connect-batch connecting at once),
        and once all are open (or failed) sends `GET --path` on every one of them at the same
        moment (`Connection: close`), then reads every answer (--timeout seconds for the whole
        burst). Prints a JSON summary on stdout: connections opened, connect errors, statuses,
        bodies that matched --expect-body, errors, latency percentiles (from the common send
        moment), and how the proxy said it answered, from its cache headers:
        `Cache-Status` (RFC 9211: hit, hit-collapsed for `hit; collapsed`, collapsed, fwd=...),
        nginx's `X-Cache-Status` (HIT, MISS, ...) or Varnish's `X-Varnish` (two ids: hit, one
        id: miss). nginx and Varnish say HIT / two ids for a request that waited for another's
        fetch too.

Everything is on 127.0.0.1; every request has a timeout, the burst a deadline. Standard
library only.
"""

import argparse
import asyncio
import hashlib
import json
import resource
import sys
import time


# ------------------------------------------------------------------------------------------
# Slow origin

LAST_MODIFIED = b"Sat, 01 Jan 2000 00:00:00 GMT"


class Stats:
    def __init__(self):
        self.requests = {}
        self.total = 0
        self.in_flight = 0
        self.peak = 0


async def read_head(reader):
    """The request or response head up to the blank line, or None at EOF."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None


def header_value(lines, name):
    prefix = name.lower() + b":"
    for line in lines:
        if line.lower().startswith(prefix):
            return line[len(prefix):].strip()
    return None


def stats_body(target, stats):
    query = target.split(b"?", 1)[1] if b"?" in target else b""
    params = dict(p.split(b"=", 1) for p in query.split(b"&") if b"=" in p)
    if b"path" in params:
        path = params[b"path"].decode()
        return {"path": path, "count": stats.requests.get(path, 0)}
    return {"requests": stats.requests, "total": stats.total, "in_flight": stats.in_flight,
            "peak_in_flight": stats.peak}


async def serve_connection(reader, writer, delay, stats):
    try:
        while True:
            head = await read_head(reader)
            if head is None:
                break
            lines = head.split(b"\r\n")
            request_line = lines[0].split(b" ")
            method = request_line[0]
            target = request_line[1] if len(request_line) > 1 else b"/"
            length = header_value(lines[1:], b"content-length")
            if length:
                await reader.readexactly(int(length))
            close = (header_value(lines[1:], b"connection") or b"").lower() == b"close"
            if target.startswith(b"/__stats"):
                body = json.dumps(stats_body(target, stats), sort_keys=True).encode() + b"\n"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Cache-Control: no-store\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n"
                             + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)
            else:
                path = target.decode(errors="replace")
                stats.requests[path] = stats.requests.get(path, 0) + 1
                stats.total += 1
                stats.in_flight += 1
                stats.peak = max(stats.peak, stats.in_flight)
                try:
                    await asyncio.sleep(delay)
                finally:
                    stats.in_flight -= 1
                body = b"burst " + target + b"\n"
                etag = b'"' + hashlib.sha1(body).hexdigest()[:16].encode() + b'"'
                inm = header_value(lines[1:], b"if-none-match")
                not_modified = inm is not None and etag in inm
                head_out = (b"HTTP/1.1 304 Not Modified\r\n" if not_modified
                            else b"HTTP/1.1 200 OK\r\n")
                head_out += (b"Content-Type: text/plain\r\n"
                             b"Cache-Control: public, max-age=3600\r\n"
                             b"ETag: " + etag + b"\r\nLast-Modified: " + LAST_MODIFIED + b"\r\n")
                if not_modified:
                    body = b""
                else:
                    head_out += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                if close:
                    head_out += b"Connection: close\r\n"
                writer.write(head_out + b"\r\n" + (b"" if method == b"HEAD" else body))
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
# Burst

def classify(headers):
    """How the proxy said it answered, from its cache headers."""
    cs = header_value(headers, b"cache-status")
    if cs is not None:
        # the last member is the cache nearest the client, i.e. the proxy under test
        member = cs.split(b",")[-1].strip().lower()
        params = [p.strip() for p in member.split(b";")[1:]]
        if b"hit" in params:
            # a request that waited for another's fetch and was then answered from the store
            return "hit-collapsed" if b"collapsed" in params else "hit"
        if b"collapsed" in params:
            return "collapsed"
        for p in params:
            if p.startswith(b"fwd="):
                return p.decode()
        return "cache-status:" + member.decode(errors="replace")
    xcs = header_value(headers, b"x-cache-status")
    if xcs is not None:
        return xcs.decode(errors="replace").lower()
    xv = header_value(headers, b"x-varnish")
    if xv is not None:
        return "hit" if len(xv.split()) >= 2 else "miss"
    return "unknown"


async def read_response(reader):
    head = await read_head(reader)
    if head is None:
        raise ConnectionResetError("closed before the response")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = lines[1:]
    length = header_value(headers, b"content-length")
    chunked = b"chunked" in (header_value(headers, b"transfer-encoding") or b"").lower()
    if length is not None:
        body = await reader.readexactly(int(length))
    elif chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append((await reader.readexactly(size + 2))[:-2])
            if size == 0:
                break
        body = b"".join(parts)
    else:
        body = await reader.read()
    return status, headers, body


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    rank = max(1, int(-(-len(sorted_values) * q // 1)))  # ceil(n * q), at least 1
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def burst(args):
    deadline = time.monotonic() + args.timeout
    request = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
               f"User-Agent: cache-burst\r\nConnection: close\r\n\r\n").encode()
    expect = args.expect_body.encode().decode("unicode_escape").encode() if args.expect_body else None
    gate = asyncio.Semaphore(args.connect_batch)
    errors = {}

    def error(kind):
        errors[kind] = errors.get(kind, 0) + 1

    async def connect():
        async with gate:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", args.port, limit=1 << 20),
                    timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            except asyncio.TimeoutError:
                error("connect-timeout")
            except OSError:
                error("connect-error")
            return None

    t_connect = time.monotonic()
    conns = [c for c in await asyncio.gather(*(connect() for _ in range(args.n))) if c]
    connect_s = time.monotonic() - t_connect

    statuses, classes, latencies = {}, {}, []
    body_ok = 0
    fire = asyncio.Event()
    sent_at = [0.0]

    async def one(reader, writer):
        nonlocal body_ok
        await fire.wait()
        try:
            writer.write(request)
            status, headers, body = await asyncio.wait_for(
                read_response(reader), timeout=max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            error("timeout")
            return
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            error("connection-error")
            return
        finally:
            writer.close()
        latencies.append(time.monotonic() - sent_at[0])
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        kind = classify(headers)
        classes[kind] = classes.get(kind, 0) + 1
        if status == 200 and (expect is None or body == expect):
            body_ok += 1

    tasks = [asyncio.create_task(one(r, w)) for r, w in conns]
    await asyncio.sleep(0)  # every task is waiting at the gate
    sent_at[0] = time.monotonic()
    fire.set()
    done, pending = await asyncio.wait(tasks, timeout=max(0.1, deadline - time.monotonic()) + 1)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    latencies.sort()

    def ms(v):
        return None if v is None else round(v * 1000, 2)

    print(json.dumps({
        "path": args.path,
        "requested": args.n,
        "connected": len(conns),
        "connect_s": round(connect_s, 3),
        "answered": len(latencies),
        "unfinished": len(pending),
        "statuses": statuses,
        "body_ok": body_ok,
        "cache": classes,
        "errors": errors,
        "p50_ms": ms(percentile(latencies, 0.5)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(latencies[-1] if latencies else None),
    }, sort_keys=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="the slow, counting origin")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--delay", type=float, default=1.0, help="seconds before each answer")
    b = sub.add_parser("burst", help="N concurrent GETs of one URL")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--path", required=True)
    b.add_argument("-n", type=int, default=1000)
    b.add_argument("--connect-batch", type=int, default=200,
                   help="connections being opened at once")
    b.add_argument("--timeout", type=float, default=30.0, help="seconds for the whole burst")
    b.add_argument("--expect-body", default="", help="the body every answer should carry "
                   "(backslash escapes allowed, e.g. '\\n')")
    args = parser.parse_args()
    if args.cmd == "burst":
        if not 1 <= args.n <= 50000:
            parser.error("-n must be between 1 and 50000")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = args.n + 64
        if soft != resource.RLIM_INFINITY and soft < want:
            new = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        asyncio.run(burst(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Open N keep-alive TCP connections to a proxy, optionally send one request on each, and hold them.

Used by bench/proxy-vs-peers.sh to measure the proxy's memory with many idle client
connections. Prints one line to stdout when every connection is open (and, with --request,
has had its response):

    READY open=10000 failed=0 requests=10000 statuses=200:10000 seconds=1.23

then holds the connections for --hold seconds (or until SIGTERM/SIGINT), printing at most
once a second a `CLOSED_BY_PEER n between t=A and t=B after READY` line when the peer has
closed some of them, and finally `DONE ...`. Only ever connects to the host given (default 127.0.0.1).
"""

import argparse
import resource
import selectors
import signal
import socket
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("-n", "--conns", type=int, default=10000, help="connections to open (default 10000)")
    p.add_argument("--request", action="store_true", help="send one GET on each connection and read the response")
    p.add_argument("--path", default="/", help="request path for --request (default /)")
    p.add_argument("--hold", type=float, default=60.0, help="seconds to hold the connections (default 60)")
    p.add_argument("--connect-timeout", type=float, default=5.0)
    return p.parse_args()


def raise_nofile(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def read_response(sock):
    """Reads one HTTP/1.1 response with Content-Length or chunked body; returns the status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before response headers")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        remaining = int(headers[b"content-length"]) - len(body)
        while remaining > 0:
            chunk = sock.recv(min(remaining, 65536))
            if not chunk:
                raise ConnectionError("closed mid-body")
            remaining -= len(chunk)
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-body")
            body += chunk
    return status


def main():
    args = parse_args()
    limit = raise_nofile(args.conns + 256)
    if limit < args.conns + 16:
        print(f"WARNING: open-file limit {limit} is too low for {args.conns} connections", file=sys.stderr)

    stop = False

    def on_signal(_signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
        "User-Agent: idle_conns.py\r\nAccept: */*\r\n\r\n"
    ).encode()
    started = time.monotonic()
    socks = []
    failed = 0
    first_error = None
    for _ in range(args.conns):
        if stop:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(args.connect_timeout)
        try:
            s.connect((args.host, args.port))
            socks.append(s)
        except OSError as e:
            failed += 1
            first_error = first_error or repr(e)
            s.close()

    statuses = {}
    requests = 0
    if args.request:
        for s in list(socks):
            if stop:
                break
            try:
                s.sendall(request)
                code = read_response(s)
                statuses[code] = statuses.get(code, 0) + 1
                requests += 1
            except (OSError, ValueError, IndexError) as e:
                statuses["error"] = statuses.get("error", 0) + 1
                first_error = first_error or repr(e)

    elapsed = time.monotonic() - started
    status_text = ",".join(f"{k}:{v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))) or "-"
    print(
        f"READY open={len(socks)} failed={failed} requests={requests} statuses={status_text} "
        f"seconds={elapsed:.2f}",
        flush=True,
    )
    if first_error:
        print(f"first error: {first_error}", file=sys.stderr, flush=True)

    # Hold; watch for the peer closing connections (readable + EOF, or reset).
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    open_count = len(socks)
    ready_at = time.monotonic()
    deadline = ready_at + args.hold
    closed_pending = 0  # closes not reported yet (reported at most once a second)
    first_close_at = None
    last_report = ready_at

    def report():
        nonlocal closed_pending, last_report
        if closed_pending:
            print(
                f"CLOSED_BY_PEER {closed_pending} between t={first_close_at:.1f}s and "
                f"t={time.monotonic() - ready_at:.1f}s after READY (still open {open_count})",
                flush=True,
            )
            closed_pending = 0
        last_report = time.monotonic()

    while not stop and open_count > 0:
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            break
        closed_now = 0
        for key, _ in sel.select(timeout=min(timeout, 1.0)):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                closed_now += 1
        if closed_now:
            if not closed_pending:
                first_close_at = time.monotonic() - ready_at
            open_count -= closed_now
            closed_pending += closed_now
        if closed_pending and time.monotonic() - last_report >= 1.0:
            report()
    report()
    print(f"DONE still_open={open_count} held={time.monotonic() - ready_at:.1f}s", flush=True)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A do-nothing OTLP/HTTP collector for benchmarks.

Answers every `POST /v1/traces` with 200 and an empty body (an empty protobuf
ExportTraceServiceResponse) and counts what it got: posts, body bytes, and spans (by walking
the protobuf just deep enough: ExportTraceServiceRequest.resource_spans(1) ->
ResourceSpans.scope_spans(2) -> ScopeSpans.spans(2)). `GET /stats` answers with the counts
as one line of JSON; they are also printed on exit (SIGTERM/SIGINT).

    python3 bench/otlp_sink.py --port 4318
"""

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {"posts": 0, "bytes": 0, "spans": 0, "undecodable": 0, "other_requests": 0}


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf):
    """(field number, wire type, payload or value) for each field of one message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        if i > len(buf):
            raise ValueError("truncated")
        yield number, wire, value


def count_spans(body):
    spans = 0
    for n1, w1, resource_spans in fields(body):
        if n1 != 1 or w1 != 2:
            continue
        for n2, w2, scope_spans in fields(resource_spans):
            if n2 != 2 or w2 != 2:
                continue
            spans += sum(1 for n3, w3, _ in fields(scope_spans) if n3 == 2 and w3 == 2)
    return spans


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as an exporter's client expects

    def _answer(self, status, body=b"", content_type="application/x-protobuf"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path != "/v1/traces":
            with LOCK:
                STATS["other_requests"] += 1
            self._answer(404)
            return
        try:
            spans = count_spans(body)
            bad = 0
        except (ValueError, IndexError):
            spans, bad = 0, 1
        with LOCK:
            STATS["posts"] += 1
            STATS["bytes"] += len(body)
            STATS["spans"] += spans
            STATS["undecodable"] += bad
        self._answer(200)

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                body = (json.dumps(STATS) + "\n").encode()
            self._answer(200, body, "application/json")
        else:
            self._answer(404)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def stop(*_):
        with LOCK:
            print("FINAL " + json.dumps(STATS), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"LISTENING {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

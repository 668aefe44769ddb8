#!/usr/bin/env python3
"""Helpers for bench/pg-failover.sh: the writer, the promotion watcher, the Patroni cluster
state, the outage analysis and the summary.

    pg_failover.py write --port P --label L --out FILE --crash-file F [...]
        One short INSERT (autocommit) every --interval-ms through 127.0.0.1:P, each connect and
        each statement bounded by its own client-side deadline (psycopg2 async mode: libpq's
        connect_timeout cannot go below 2 s). Any error closes the connection; the next
        attempt reconnects (at most one attempt per interval). Every attempt is one line in
        FILE: "OK t0 t1" or "ERR t0 t1 phase message" (wall-clock seconds). --status FILE holds
        "ok SINCE" (success streak since SINCE) or "failing T". Once the crash file exists
        (it holds the crash time), the writer stops when it has had --stable s of continuous
        success after the crash, or --max-after s after the crash, or after --max-total s.
    pg_failover.py setup --port P
        Creates the table the writers insert into.
    pg_failover.py probe --port P --label L [--timeout S]
        Tries one INSERT through 127.0.0.1:P every 100 ms until one succeeds (exit 0) or
        --timeout s have passed (exit 1); prints the outcome or the last error.
    pg_failover.py state --rest-ports R1,R2
        Prints one line per node that answers: "REST_PORT ROLE STATE STREAMING_REPLICAS STATUS"
        (Patroni 3.0's GET /patroni does not name the member).
    pg_failover.py haproxy-state --socket PATH
        Prints "SERVER STATUS" for every server of HAProxy's backends (stats socket).
    pg_failover.py promotion --rest-ports R2 --crash-file F --out FILE [...]
        Waits for the crash file, then polls OPTIONS /primary on the given Patroni REST ports
        every --interval-ms; writes JSON with the first time one answered 200.
    pg_failover.py outage --log FILE --crash T
        JSON: the longest gap between two successful writes that ends after the crash, etc.
    pg_failover.py summarize --rounds rounds.tsv --title T [--variants ...]
        The table, medians and goal checks.

Only the standard library is needed, except psycopg2 for write/setup.
"""

import argparse
import json
import os
import select
import statistics
import sys
import time
import http.client

TABLE = "wt_bench_writes"


# ---------------------------------------------------------------------------------------------
# writer

def _wait(conn, deadline, psycopg2):
    """Drive an async psycopg2 connection until its operation completes or the deadline."""
    ext = psycopg2.extensions
    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("client-side deadline")
        if state == ext.POLL_READ:
            select.select([conn.fileno()], [], [], remaining)
        elif state == ext.POLL_WRITE:
            select.select([], [conn.fileno()], [], remaining)
        else:
            raise RuntimeError(f"unexpected poll state {state}")


def _one_line(exc):
    msg = f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("\t", " ").strip()
    return msg[:200]


def _write_status(path, text):
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def cmd_write(a):
    import psycopg2  # noqa: PLC0415 (only this subcommand needs it)
    import psycopg2.extensions  # noqa: F401,PLC0415

    interval = a.interval_ms / 1000.0
    dsn = (f"host=127.0.0.1 port={a.port} user={a.user} dbname={a.database} sslmode=disable "
           f"application_name=wt-bench-{a.label}")
    start_mono = time.monotonic()
    hard_end = start_mono + a.max_total
    max_attempts = int(a.max_total / interval) + 10
    conn = None
    crash = None
    streak_since = None  # wall-clock time of the first success of the current streak
    last_fail = None
    attempts = 0
    out = open(a.out, "w", buffering=1)
    _write_status(a.status, "starting 0")
    next_at = time.monotonic()
    reason = "max-total"
    while attempts < max_attempts:
        now_m = time.monotonic()
        if now_m >= hard_end:
            break
        if crash is None and os.path.exists(a.crash_file):
            try:
                with open(a.crash_file) as f:
                    crash = float(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                crash = None
        if crash is not None:
            now = time.time()
            if now >= crash + a.max_after:
                reason = "max-after"
                break
            if streak_since is not None and now - max(streak_since, crash) >= a.stable \
                    and now >= crash + a.min_after:
                reason = "stable"
                break
        if now_m < next_at:
            time.sleep(next_at - now_m)
        next_at = time.monotonic() + interval
        attempts += 1
        t0 = time.time()
        phase = "connect"
        try:
            if conn is None:
                conn = psycopg2.connect(dsn, async_=True)
                _wait(conn, time.monotonic() + a.connect_timeout, psycopg2)
            phase = "insert"
            cur = conn.cursor()
            cur.execute(f"INSERT INTO {TABLE} (writer) VALUES (%s)", (a.label,))
            _wait(conn, time.monotonic() + a.statement_timeout, psycopg2)
            cur.close()
            t1 = time.time()
            out.write(f"OK\t{t0:.6f}\t{t1:.6f}\n")
            if streak_since is None:
                streak_since = t1
                _write_status(a.status, f"ok {t1:.6f}")
        except Exception as exc:  # noqa: BLE001 (any failure is an outage sample)
            t1 = time.time()
            out.write(f"ERR\t{t0:.6f}\t{t1:.6f}\t{phase}\t{_one_line(exc)}\n")
            last_fail = t1
            if streak_since is not None or attempts == 1:
                _write_status(a.status, f"failing {t1:.6f}")
            streak_since = None
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
    else:
        reason = "max-attempts"
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
    out.write(f"END\t{time.time():.6f}\t{reason}\t{attempts}\n")
    out.close()
    _write_status(a.status, f"done {time.time():.6f}")
    print(f"writer {a.label}: {attempts} attempts, stopped ({reason}), last failure "
          f"{'-' if last_fail is None else f'{last_fail:.3f}'}", file=sys.stderr)
    return 0


def cmd_probe(a):
    import psycopg2  # noqa: PLC0415
    import psycopg2.extensions  # noqa: F401,PLC0415

    dsn = (f"host=127.0.0.1 port={a.port} user={a.user} dbname={a.database} sslmode=disable "
           f"application_name=wt-bench-probe-{a.label}")
    end = time.monotonic() + a.timeout
    last, tries = "no attempt", 0
    while time.monotonic() < end and tries < 1000:
        tries += 1
        conn = None
        try:
            conn = psycopg2.connect(dsn, async_=True)
            _wait(conn, time.monotonic() + 1.0, psycopg2)
            cur = conn.cursor()
            cur.execute(f"INSERT INTO {TABLE} (writer) VALUES (%s)", (a.label,))
            _wait(conn, time.monotonic() + 1.0, psycopg2)
            print(f"ok after {tries} attempt(s)")
            return 0
        except Exception as exc:  # noqa: BLE001
            last = _one_line(exc)
        finally:
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
        time.sleep(0.1)
    print(f"no write got through in {a.timeout:g} s ({tries} attempts); last error: {last}")
    return 1


def cmd_setup(a):
    import psycopg2  # noqa: PLC0415

    conn = psycopg2.connect(host="127.0.0.1", port=a.port, user=a.user, dbname=a.database,
                            sslmode="disable", connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, "
                    "writer text NOT NULL, at timestamptz NOT NULL DEFAULT now())")
    conn.close()
    return 0


# ---------------------------------------------------------------------------------------------
# Patroni REST

def _rest(port, method, path, timeout):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def cmd_state(a):
    for port in [int(p) for p in a.rest_ports.split(",") if p]:
        try:
            status, body = _rest(port, "GET", "/patroni", 1.0)
            d = json.loads(body)
        except Exception:  # noqa: BLE001 (a node that is down just doesn't answer)
            continue
        streaming = sum(1 for r in d.get("replication") or [] if r.get("state") == "streaming")
        print(f"{port} {d.get('role', '?')} {d.get('state', '?')} {streaming} {status}")
    return 0


def cmd_haproxy_state(a):
    import socket  # noqa: PLC0415

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2.0)
    s.connect(a.socket)
    s.sendall(b"show stat\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    lines = data.decode(errors="replace").splitlines()
    if not lines or not lines[0].startswith("# "):
        return 1
    cols = lines[0][2:].split(",")
    for line in lines[1:]:
        row = dict(zip(cols, line.split(",")))
        if row.get("svname") in (None, "", "FRONTEND", "BACKEND"):
            continue
        print(f"{row['svname']} {row.get('status', '?')}")
    return 0


def cmd_promotion(a):
    ports = [int(p) for p in a.rest_ports.split(",") if p]
    interval = a.interval_ms / 1000.0
    end = time.monotonic() + a.max_wait
    crash = None
    while time.monotonic() < end and crash is None:
        try:
            with open(a.crash_file) as f:
                crash = float(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.01)
    result = {"crash": crash, "promoted_at": None, "port": None, "polls": 0}
    end = time.monotonic() + a.max_wait
    while crash is not None and time.monotonic() < end:
        t = time.monotonic()
        for port in ports:
            result["polls"] += 1
            try:
                status, _ = _rest(port, "OPTIONS", "/primary", 0.5)
            except Exception:  # noqa: BLE001
                continue
            if status == 200:
                result["promoted_at"] = time.time()
                result["port"] = port
                break
        if result["promoted_at"] is not None:
            break
        time.sleep(max(0.0, interval - (time.monotonic() - t)))
    if result["promoted_at"] is not None:
        result["promotion_s"] = round(result["promoted_at"] - crash, 3)
    with open(a.out, "w") as f:
        json.dump(result, f)
    return 0 if result["promoted_at"] is not None else 1


# ---------------------------------------------------------------------------------------------
# analysis

def analyse(path, crash):
    oks, errs, end = [], [], None
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if p[0] == "OK" and len(p) >= 3:
                oks.append(float(p[2]))
            elif p[0] == "ERR" and len(p) >= 5:
                errs.append((float(p[2]), p[3], p[4]))
            elif p[0] == "END" and len(p) >= 3:
                end = (float(p[1]), p[2])
    res = {"successes": len(oks), "failures": len(errs), "stopped": end[1] if end else "?",
           "pre_crash_failures_3s": sum(1 for t, _, _ in errs if crash - 3 <= t < crash)}
    after = [t for t in oks if t > crash]
    before = [t for t in oks if t <= crash]
    if not before:
        res["outage_s"] = None
        res["note"] = "no successful write before the crash"
        return res
    if not after:
        last = end[0] if end else max(t for t, _, _ in errs) if errs else crash
        res["outage_s"] = None
        res["note"] = f"no successful write after the crash (>= {last - before[-1]:.1f} s)"
        return res
    seq = [before[-1]] + after
    best, at = 0.0, seq[1]
    for x, y in zip(seq, seq[1:]):
        if y - x > best:
            best, at = y - x, y
    res["outage_s"] = round(best, 3)
    res["back_after_s"] = round(at - crash, 3)
    res["first_ok_after_crash_s"] = round(after[0] - crash, 3)
    res["failures_after_crash"] = sum(1 for t, _, _ in errs if t > crash)
    kinds = {}
    for t, phase, msg in errs:
        if t > crash:
            key = f"{phase}: {msg[:90]}"
            kinds[key] = kinds.get(key, 0) + 1
    res["errors"] = sorted(kinds.items(), key=lambda kv: -kv[1])[:4]
    return res


def cmd_outage(a):
    print(json.dumps(analyse(a.log, a.crash)))
    return 0


def _fmt(v):
    return "-" if v is None else f"{v:.2f}"


def cmd_summarize(a):
    variants = a.variants.split(",")
    rows = []
    with open(a.rounds) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            p = line.rstrip("\n").split("\t")
            rec = {"round": p[0], "crashed": p[1], "new": p[2],
                   "promotion": None if p[3] in ("", "-") else float(p[3])}
            for i, v in enumerate(variants):
                cell = p[4 + i] if 4 + i < len(p) else "-"
                rec[v] = None if cell in ("", "-") else float(cell)
            rows.append(rec)
    labels = {"haproxy": "HAProxy s", "wt-pg": "wt pg-check s", "wt-rest": "wt rest-check s"}
    out = [a.title, ""]
    head = f"{'round':<7}{'crashed':<9}{'new leader':<12}{'promotion s':>12}"
    for v in variants:
        head += f"{labels.get(v, v):>17}"
    out.append(head)
    for r in rows:
        line = f"{r['round']:<7}{r['crashed']:<9}{r['new']:<12}{_fmt(r['promotion']):>12}"
        for v in variants:
            line += f"{_fmt(r[v]):>17}"
        out.append(line)

    def med(key):
        xs = [r[key] for r in rows if r[key] is not None]
        return statistics.median(xs) if xs else None

    line = f"{'median':<28}{_fmt(med('promotion')):>12}"
    for v in variants:
        line += f"{_fmt(med(v)):>17}"
    out.append(line)
    out.append("")
    notes = json.loads(a.notes) if a.notes else {}
    for v in variants:
        if v in notes:
            out.append(f"{labels.get(v, v).rsplit(' ', 1)[0]}: {notes[v]}")
    prom, hap = med("promotion"), med("haproxy")
    for v in variants:
        if not v.startswith("wt"):
            continue
        name = labels.get(v, v).rsplit(" ", 1)[0]
        m = med(v)
        if m is None:
            out.append(f"goal ({name}): not measured")
            continue
        per_round = [r for r in rows if r[v] is not None and r["promotion"] is not None]
        ok_rounds = sum(1 for r in per_round if r[v] <= r["promotion"] + 0.5)
        g1 = prom is not None and m <= prom + 0.5
        out.append(f"goal ({name}): outage <= promotion + 0.5 s: {'MET' if g1 else 'NOT MET'} "
                   f"(median {m:.2f} vs {_fmt(prom)} + 0.5; {ok_rounds}/{len(per_round)} rounds)")
        if hap is not None:
            per_round = [r for r in rows if r[v] is not None and r["haproxy"] is not None]
            ok_rounds = sum(1 for r in per_round if r[v] < r["haproxy"])
            out.append(f"goal ({name}): outage < HAProxy: {'MET' if m < hap else 'NOT MET'} "
                       f"(median {m:.2f} vs {hap:.2f}; {ok_rounds}/{len(per_round)} rounds)")
    print("\n".join(out))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--label", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--status")
    w.add_argument("--crash-file", required=True)
    w.add_argument("--user", default="postgres")
    w.add_argument("--database", default="postgres")
    w.add_argument("--interval-ms", type=float, default=20)
    w.add_argument("--connect-timeout", type=float, default=1.0)
    w.add_argument("--statement-timeout", type=float, default=1.0)
    w.add_argument("--stable", type=float, default=5.0)
    w.add_argument("--min-after", type=float, default=1.0)
    w.add_argument("--max-after", type=float, default=40.0)
    w.add_argument("--max-total", type=float, default=120.0)
    s = sub.add_parser("setup")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--user", default="postgres")
    s.add_argument("--database", default="postgres")
    pr = sub.add_parser("probe")
    pr.add_argument("--port", type=int, required=True)
    pr.add_argument("--label", default="probe")
    pr.add_argument("--timeout", type=float, default=15.0)
    pr.add_argument("--user", default="postgres")
    pr.add_argument("--database", default="postgres")
    st = sub.add_parser("state")
    st.add_argument("--rest-ports", required=True)
    hs = sub.add_parser("haproxy-state")
    hs.add_argument("--socket", required=True)
    p = sub.add_parser("promotion")
    p.add_argument("--rest-ports", required=True)
    p.add_argument("--crash-file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--interval-ms", type=float, default=100)
    p.add_argument("--max-wait", type=float, default=60)
    o = sub.add_parser("outage")
    o.add_argument("--log", required=True)
    o.add_argument("--crash", type=float, required=True)
    m = sub.add_parser("summarize")
    m.add_argument("--rounds", required=True)
    m.add_argument("--title", default="")
    m.add_argument("--variants", default="haproxy,wt-pg,wt-rest")
    m.add_argument("--notes", default="", help="JSON object: variant -> note")
    a = ap.parse_args()
    return {"write": cmd_write, "setup": cmd_setup, "probe": cmd_probe, "state": cmd_state, "promotion": cmd_promotion,
            "haproxy-state": cmd_haproxy_state,
            "outage": cmd_outage, "summarize": cmd_summarize}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())

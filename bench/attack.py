#!/usr/bin/env python3
"""The attack classes of bench/attack.sh, against running facades.

    python3 bench/attack.py run --plain PORT:PID --tenants PORT:PID --out DIR [--classes ...]
    python3 bench/attack.py trickle --port PORT --rate N [--auth USER:PASSWORD]

`run` sends each class in turn to the facade it needs (`--plain`: the
embedded defaults; `--tenants`: the same with tenants configured, for the
password floods), while a `trickle` child process sends ordinary calls at
a steady rate, and prints one Markdown table (also written to
DIR/table.md). `trickle` is that child: it posts
examples/InvoiceService/ClassifyInvoice.xml until its standard input
closes or says `stop`, then prints its calls as JSON. It runs in a process
of its own so the attacking threads here do not delay its clock. See
bench/attack.sh for what each class sends and what each column means.

Python 3 standard library only; run from the repository root.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
INV = "http://erp.example.com/ap/invoice/types/v1"
ACTION = "http://erp.example.com/ap/invoice/v1/ClassifyInvoice"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
ORDINARY_FILE = "examples/InvoiceService/ClassifyInvoice.xml"
TARGET = 9_000_000  # bytes a hostile document grows to (the body cap is 10 MiB)
CODE = re.compile(r"<sg:Code>([A-Z_]+)</sg:Code>")


# --------------------------------------------------------------------------
# Requests


def ordinary_body(auth: str | None) -> bytes:
    """The ordinary call; with `user:password`, a PasswordText UsernameToken."""
    text = open(ORDINARY_FILE, encoding="utf-8").read()
    if auth:
        user, password = auth.split(":", 1)
        text = text.replace("<soapenv:Header/>", "<soapenv:Header>" + token(user, password) + "</soapenv:Header>", 1)
    return text.encode()


def token(user: str, password: str) -> str:
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
        f"<wsse:Username>{user}</wsse:Username>"
        f'<wsse:Password Type="{PROFILE}#PasswordText">{password}</wsse:Password>'
        "</wsse:UsernameToken></wsse:Security>"
    )


HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'}


def answer_of(status: int, data: bytes) -> str:
    """`200`, or the status and the fault code (`500 MALFORMED_XML`)."""
    if status == 200:
        return "200"
    m = CODE.search(data.decode("utf-8", "replace"))
    return f"{status} {m.group(1)}" if m else f"{status}"


def post(port: int, body: bytes, timeout: float, source: str | None = None,
         conn: http.client.HTTPConnection | None = None) -> tuple[float, str]:
    """One POST to /soap/InvoiceService: (seconds, answer). A new connection
    unless `conn` is given; a connection error is the answer `error: ...`."""
    started = time.perf_counter()
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=timeout,
            source_address=(source, 0) if source else None)
    try:
        conn.request("POST", "/soap/InvoiceService", body=body, headers=HEADERS)
        resp = conn.getresponse()
        answer = answer_of(resp.status, resp.read())
    except (OSError, http.client.HTTPException) as e:
        answer = f"error: {type(e).__name__}"
        conn.close()
    finally:
        if own:
            conn.close()
    return time.perf_counter() - started, answer


# --------------------------------------------------------------------------
# The trickle of ordinary calls (a child process)


def trickle(args: argparse.Namespace) -> None:
    """Ordinary calls at a steady rate, two ways at once: each on a new
    connection (a thread per call, sent on time however long the earlier
    ones take), and one after another on one kept-alive connection opened
    before the attack (paced at the same rate). Stops when stdin closes."""
    body = ordinary_body(args.auth)
    period = 1.0 / args.rate
    fresh: list[tuple[float, float | None, str]] = []
    pooled: list[tuple[float, float | None, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    t0 = time.monotonic()

    def one_fresh(at: float) -> None:
        took, answer = post(args.port, body, args.timeout)
        with lock:
            fresh.append((at, took if not answer.startswith("error") else None, answer))

    def fresh_loop() -> None:
        threads = []
        n = 0
        while not stop.is_set():
            at = t0 + n * period
            delay = at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            t = threading.Thread(target=one_fresh, args=(at - t0,), daemon=True)
            t.start()
            threads.append(t)
            n += 1
        for t in threads:
            t.join()

    def pooled_loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)
        n = 0
        while not stop.is_set():
            at = t0 + n * period
            delay = at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            took, answer = post(args.port, body, args.timeout, conn=conn)
            pooled.append((at - t0, took if not answer.startswith("error") else None, answer))
            n += 1
        conn.close()

    workers = [threading.Thread(target=fresh_loop), threading.Thread(target=pooled_loop)]
    for w in workers:
        w.start()
    print("started", flush=True)
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    else:
        os._exit(1)  # the parent is gone: no one to report to
    stop.set()
    for w in workers:
        w.join()
    json.dump({"fresh": fresh, "pooled": pooled}, sys.stdout)
    sys.stdout.flush()


class Trickle:
    """The trickle child, from its start to `stop()`."""

    def __init__(self, port: int, rate: float, timeout: float, auth: str | None):
        cmd = [sys.executable, __file__, "trickle", "--port", str(port), "--rate", str(rate),
               "--timeout", str(timeout)]
        if auth:
            cmd += ["--auth", auth]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # "started"

    def stop(self) -> dict:
        out, _ = self.proc.communicate("stop\n")
        return json.loads(out)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------
# The facade's process


class Facade:
    def __init__(self, spec: str, name: str):
        port, pid = spec.split(":")
        self.port, self.pid, self.name = int(port), int(pid), name

    def status_kb(self, key: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def rss_mb(self) -> float:
        return self.status_kb("VmRSS") / 1024

    def cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def reset_peak(self) -> None:
        """VmHWM starts again from the current RSS (Linux 4.0+)."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5")

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/healthz")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False


class Sampler(threading.Thread):
    """The facade's open file descriptors, every 100 ms."""

    def __init__(self, facade: Facade):
        super().__init__(daemon=True)
        self.facade = facade
        self.stop = threading.Event()
        self.max_fds = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.max_fds = max(self.max_fds, self.facade.fds())
            except OSError:
                return
            self.stop.wait(0.1)


@dataclass
class Row:
    name: str
    sent: str
    answer: str = ""
    timing: str = ""
    cpu: str = ""
    rss: str = ""
    fresh: str = ""
    pooled: str = ""
    notes: list[str] = field(default_factory=list)


def measured(facade: Facade, rate: float, timeout: float, auth: str | None, attack) -> tuple[Row, dict]:
    """Runs `attack()` (which returns a Row) between the RSS and CPU readings,
    with the trickle on from a second before to a second after."""
    time.sleep(1)
    before = facade.rss_mb()
    fds_before = facade.fds()
    facade.reset_peak()
    cpu0 = facade.cpu_s()
    sampler = Sampler(facade)
    sampler.start()
    tr = Trickle(facade.port, rate, timeout, auth)
    try:
        time.sleep(1)
        w0 = time.monotonic()
        row = attack()
        window = time.monotonic() - w0
        time.sleep(1)
        calls = tr.stop()
    finally:
        tr.kill()
    cpu = facade.cpu_s() - cpu0
    peak = facade.status_kb("VmHWM") / 1024
    sampler.stop.set()
    time.sleep(1)
    after = facade.rss_mb()
    row.cpu = f"{cpu:.1f} in {window + 2:.0f} s"
    row.rss = f"{before:.0f} / {peak:.0f} / {after:.0f}"
    row.fresh = summary(calls["fresh"])
    row.pooled = summary(calls["pooled"])
    extra = {"fds_before": fds_before, "fds_peak": sampler.max_fds}
    return row, extra


def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def fmt_ms(seconds: float) -> str:
    if seconds == float("inf"):
        return "no answer"
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.1f}"
    return f"{ms:,.0f}"


def summary(calls: list) -> str:
    """`n, p50 / p95 ms`, unanswered calls counting as slowest; answers
    other than 200 named."""
    if not calls:
        return "none"
    times = sorted(t if t is not None else float("inf") for _, t, _ in calls)
    text = f"{len(calls)}, {fmt_ms(pct(times, 50))} / {fmt_ms(pct(times, 95))}"
    others: dict[str, int] = {}
    for _, _, answer in calls:
        if answer != "200":
            others[answer] = others.get(answer, 0) + 1
    if others:
        text += " (" + ", ".join(f"{n} {a}" for a, n in sorted(others.items())) + ")"
    return text


def counts(answers: list[str]) -> str:
    c: dict[str, int] = {}
    for a in answers:
        c[a] = c.get(a, 0) + 1
    return ", ".join(f"{n:,} × {a}" for a, n in sorted(c.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------
# Hostile documents


def envelope(payload: str, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<soapenv:Envelope xmlns:soapenv="{SOAP}">'
        f"<soapenv:Body>{payload}</soapenv:Body></soapenv:Envelope>"
    ).encode()


def fill(head: str, unit: str, tail: str) -> bytes:
    room = TARGET - len(head) - len(tail) - 200
    return envelope(head + unit * max(1, room // len(unit)) + tail)


def ns_scan() -> bytes:
    head = f'<inv:ClassifyInvoice xmlns:inv="{INV}" xmlns:p="urn:p">'
    for level in range(95):
        head += "<d" + "".join(f' xmlns:d{level}x{j}="urn:decoy:{level}:{j}"' for j in range(100)) + ">"
    child = "<c" + "".join(f' p:a{a}=""' for a in range(499)) + "/>"
    return fill(head, child, "</d>" * 95 + "</inv:ClassifyInvoice>")


def wide() -> bytes:
    group = "<g>" + "<x/>" * 50_000 + "</g>"
    return fill(f'<inv:ClassifyInvoice xmlns:inv="{INV}">', group, "</inv:ClassifyInvoice>")


def deep() -> bytes:
    chain = "<a>" * 97 + "</a>" * 97
    return fill(f'<inv:ClassifyInvoice xmlns:inv="{INV}">', chain, "</inv:ClassifyInvoice>")


def attr_flood() -> bytes:
    el = "<x" + "".join(f' a{a}=""' for a in range(499)) + "/>"
    return fill(f'<inv:ClassifyInvoice xmlns:inv="{INV}">', el, "</inv:ClassifyInvoice>")


def billion_laughs() -> bytes:
    ents = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "' + f"&lol{i - 1};" * 10 + '">' for i in range(1, 10)
    ]
    return envelope(f'<inv:ClassifyInvoice xmlns:inv="{INV}">&lol9;</inv:ClassifyInvoice>',
                    prolog="<!DOCTYPE soapenv:Envelope [" + "".join(ents) + "]>")


DOCUMENTS = {
    "ns-scan": (ns_scan, "95 nested levels of 100 namespace declarations, then children of 499 prefixed attributes"),
    "wide": (wide, "2 M empty `<x/>` in groups of 50,000"),
    "deep": (deep, "chains of 97 nested elements, one after another"),
    "attr-flood": (attr_flood, "elements of 499 attributes each"),
    "billion-laughs": (billion_laughs, "DOCTYPE with 10 levels of 10 entity references (10⁹ `lol`s)"),
}


def document_attack(port: int, body: bytes, copies: int, secs: float, name: str, sent: str) -> Row:
    """`copies` clients post `body` again and again for `secs`."""
    results: list[tuple[float, str]] = []
    lock = threading.Lock()
    end = time.monotonic() + secs

    def client() -> None:
        while time.monotonic() < end:
            r = post(port, body, 120)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = sorted(r[0] for r in results)
    return Row(
        name=name,
        sent=f"{sent}: {len(body):,} bytes, {copies} clients posting it back to back for {secs:.0f} s",
        answer=counts([r[1] for r in results]),
        timing=f"{fmt_ms(statistics.median(times))} ms (max {fmt_ms(times[-1])})",
    )


# --------------------------------------------------------------------------
# Slow body and idle connections


def readable(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """The sockets with bytes or an end to read (poll: no FD_SETSIZE limit)."""
    poller = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    return [by_fd[fd] for fd, _ in poller.poll(timeout * 1000)]


def slow_body(port: int, conns: int, read_timeout: float, name: str) -> Row:
    """`conns` connections send a request head at once, then its body one
    byte a second (Content-Length 10,000) until the facade closes them."""
    head = (
        "POST /soap/InvoiceService HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"{ACTION}\"\r\n"
        "Content-Length: 10000\r\n\r\n"
    ).encode()
    socks: dict[socket.socket, float] = {}
    got: dict[socket.socket, bytes] = {}
    closed: dict[socket.socket, float] = {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(head)
        socks[s] = time.monotonic()
        got[s] = b""
    t1 = time.monotonic()
    give_up = t1 + read_timeout + 30
    next_drip = t1 + 1
    sent_bytes = 0
    while len(closed) < conns and time.monotonic() < give_up:
        open_ = [s for s in socks if s not in closed]
        for s in readable(open_, max(0.0, next_drip - time.monotonic())):
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data:
                got[s] += data
            else:
                closed[s] = time.monotonic() - socks[s]
        if time.monotonic() >= next_drip:
            next_drip += 1
            for s in open_:
                if s in closed:
                    continue
                try:
                    s.send(b"<")
                    sent_bytes += 1
                except OSError:
                    closed[s] = time.monotonic() - socks[s]
    for s in socks:
        s.close()
    answers = [got[s].split(b"\r\n", 1)[0].decode("latin-1") or "closed without an answer" for s in closed]
    if len(closed) < conns:
        answers += ["still open after the give-up"] * (conns - len(closed))
    times = sorted(closed.values())
    return Row(
        name=name,
        sent=(f"{conns} connections: a request head, then its body (Content-Length 10,000) "
              f"at 1 byte/s each ({sent_bytes:,} body bytes sent in all)"),
        answer=counts(answers),
        timing=(f"closed after {times[0]:.1f}–{times[-1]:.1f} s (request_read_timeout {read_timeout:.0f} s)"
                if times else "never closed"),
    )


def idle(facade: Facade, conns: int, cap: int, idle_timeout: float, name: str, extra: dict) -> Row:
    """`conns` connections each send `GET /healthz` and then nothing; they
    are held until every one has been answered and the facade has closed
    some to make room for the others, or until `idle_timeout` + 60 s."""
    socks: dict[socket.socket, float] = {}
    answered: dict[socket.socket, float] = {}
    closed: dict[socket.socket, float] = {}
    t1 = time.monotonic()
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", facade.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        socks[s] = time.monotonic()
    opened = time.monotonic() - t1

    def poll(until: float) -> None:
        while time.monotonic() < until:
            open_ = [s for s in socks if s not in closed]
            if not open_:
                return
            for s in readable(open_, max(0.0, min(1.0, until - time.monotonic()))):
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                now = time.monotonic()
                if data:
                    answered.setdefault(s, now)
                else:
                    closed[s] = now

    poll(time.monotonic() + 5)
    served_at_once = len(answered)
    extra["idle_fds"] = facade.fds()
    # Hold until the facade has closed some idle ones and every one has
    # been answered, or give up (when some are closed unanswered).
    give_up = t1 + idle_timeout + 60
    while time.monotonic() < give_up:
        poll(time.monotonic() + 1)
        if closed and len(answered) == conns:
            poll(time.monotonic() + 5)
            break
    first_close = min(closed.values()) if closed else None
    idle_for = sorted(closed[s] - answered[s] for s in closed if s in answered)
    late = sorted(answered[s] - socks[s] for s in answered if answered[s] - socks[s] > 5)
    for s in socks:
        s.close()
    timing = "no idle connection closed"
    if first_close is not None:
        timing = (f"first closed {first_close - t1:.1f} s after opening, "
                  f"idle {idle_for[0]:.1f}–{idle_for[-1]:.1f} s (idle_timeout {idle_timeout:.0f} s)")
    answer = (f"{served_at_once} answered at once (cap {cap}, less the trickle's connections); "
              f"{conns - served_at_once} were not answered within 5 s")
    if late:
        answer += f" and were answered {late[0]:.1f}–{late[-1]:.1f} s later"
    answer += f"; {len(closed)} closed by the facade"
    return Row(
        name=name,
        sent=f"{conns} connections opened in {opened:.1f} s, each sending one `GET /healthz`, then nothing",
        answer=answer,
        timing=timing,
    )


# --------------------------------------------------------------------------
# Password floods


def flood(port: int, clients: int, secs: float, name: str, sent: str, make) -> Row:
    """`clients` threads post wrong-password calls back to back for `secs`;
    `make(i)` gives the i-th call's (body, source address, keep-alive)."""
    results: list[tuple[float, float, str]] = []
    lock = threading.Lock()
    counter = iter(range(10**9))
    t0 = time.monotonic()
    end = t0 + secs

    def client() -> None:
        conns: dict[str, http.client.HTTPConnection] = {}
        while time.monotonic() < end:
            with lock:
                i = next(counter)
            body, source, keep = make(i)
            conn = None
            if keep:
                conn = conns.get(source)
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
                    conns[source] = conn
            started = time.monotonic() - t0
            took, answer = post(port, body, 60, source=source, conn=conn)
            with lock:
                results.append((started, took, answer))
        for c in conns.values():
            c.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.sort()
    answers = [r[2] for r in results]
    first_limited = next((r for r in results if r[2].endswith("RATE_LIMITED")), None)
    failed_before = sum(1 for r in results if first_limited and r[0] < first_limited[0] and r[2].endswith("AUTHENTICATION_FAILED"))
    times = sorted(r[1] for r in results)
    timing = f"answers in {fmt_ms(statistics.median(times))} ms (p95 {fmt_ms(pct(times, 95))}, max {fmt_ms(times[-1])})"
    if first_limited:
        timing = (f"first RATE_LIMITED at {first_limited[0]:.2f} s, after {failed_before} "
                  f"AUTHENTICATION_FAILED; " + timing)
    return Row(
        name=name,
        sent=f"{sent}; {clients} clients back to back for {secs:.0f} s: {len(results):,} calls, {len(results) / secs:,.0f}/s",
        answer=counts(answers),
        timing=timing,
    )


# --------------------------------------------------------------------------


def run(args: argparse.Namespace) -> None:
    plain = Facade(args.plain, "plain")
    tenants = Facade(args.tenants, "tenants") if args.tenants else None
    classes = args.classes.split()
    rate, timeout = args.rate, args.timeout
    rows: list[Row] = []
    notes: list[str] = []
    steady = "steady-erp:" + args.steady_password

    def check(facade: Facade, after: str) -> None:
        if not facade.alive():
            notes.append(f"**the {facade.name} facade did not answer /healthz after {after}**")
            raise SystemExit(f"the {facade.name} facade is down after {after}")

    def log(msg: str) -> None:
        print(f"[{time.strftime('%T')}] {msg}", file=sys.stderr, flush=True)

    # Warm up, then the baseline: the trickle alone.
    for _ in range(20):
        post(plain.port, ordinary_body(None), timeout)
    log(f"baseline (no tenants), {args.secs:.0f} s")
    row, _ = measured(plain, rate, timeout, None, lambda: (time.sleep(args.secs), Row(
        "baseline", f"nothing: the ordinary calls alone for {args.secs:.0f} s", "—", "—"))[1])
    rows.append(row)

    for name in classes:
        if name in DOCUMENTS:
            make, sent = DOCUMENTS[name]
            body = make()
            with open(os.path.join(args.out, f"{name}.xml"), "wb") as f:
                f.write(body)
            log(f"{name}: {len(body):,} bytes, {args.copies} clients, {args.secs:.0f} s")
            row, _ = measured(plain, rate, timeout, None,
                              lambda: document_attack(plain.port, body, args.copies, args.secs, name, sent))
        elif name == "slow-body":
            log(f"slow-body: {args.slow_conns} connections until closed")
            row, _ = measured(plain, rate, timeout, None,
                              lambda: slow_body(plain.port, args.slow_conns, args.read_timeout_ms / 1000, name))
        elif name == "idle":
            log(f"idle: {args.idle_conns} connections, held until all are answered and some closed, or {args.idle_timeout_ms / 1000:.0f} + 60 s at most")
            extra: dict = {}
            row, fds = measured(plain, rate, timeout, None,
                                lambda: idle(plain, args.idle_conns, args.max_connections,
                                             args.idle_timeout_ms / 1000, name, extra))
            row.answer += (f"; facade's open files {fds['fds_before']} before, {extra.get('idle_fds', '?')} "
                           f"with the connections held, {fds['fds_peak']} at most")
        elif name.startswith("password"):
            if tenants is None:
                continue
            if not any(r.name.startswith("baseline, tenants") for r in rows):
                post(tenants.port, ordinary_body(steady), timeout)  # the hash, once
                for _ in range(20):
                    post(tenants.port, ordinary_body(steady), timeout)
                log(f"baseline (tenants), {args.secs:.0f} s")
                row, _ = measured(tenants, rate, timeout, steady, lambda: (time.sleep(args.secs), Row(
                    "baseline, tenants",
                    f"nothing: the ordinary calls alone, by tenant `steady` (PasswordText, remembered), for {args.secs:.0f} s",
                    "—", "—"))[1])
                rows.append(row)
            log(f"{name}: {args.flood_clients} clients, {args.secs:.0f} s")
            if name == "password-flood":
                def make(i: int):
                    return ordinary_body(f"acme-erp:wrong-{i}"), "127.0.0.2", True
                sent = "tenant `acme`'s user `acme-erp`, a wrong PasswordText each call, from 127.0.0.2 on kept-alive connections"
            elif name == "password-spread":
                def make(i: int):
                    return (ordinary_body(f"guess-{uuid.uuid4().hex[:12]}:wrong-{i}"),
                            f"127.1.{(i // 250) % 250}.{i % 250 + 1}", False)
                sent = "a new unknown user name and a new source address (127.1.x.y) each call, each on a new connection"
            elif name == "password-user":
                def make(i: int):
                    return ordinary_body(f"acme-batch:wrong-{i}"), f"127.2.{(i // 250) % 250}.{i % 250 + 1}", False
                sent = "tenant `acme`'s user `acme-batch`, a wrong PasswordText and a new source address (127.2.x.y) each call"
            else:
                raise SystemExit(f"unknown class {name}")
            row, _ = measured(tenants, rate, timeout, steady,
                              lambda: flood(tenants.port, args.flood_clients, args.secs, name, sent, make))
        else:
            raise SystemExit(f"unknown class {name}")
        rows.append(row)
        check(plain if not name.startswith("password") else tenants, name)

    table = render(rows)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(table)
    print(table)
    for n in notes:
        print(n)


def render(rows: list[Row]) -> str:
    lines = [
        "| class | what is sent | the facade's answers | time to answer or close | facade CPU s | RSS MB before / peak / after "
        "| ordinary calls, new connection each: n, p50 / p95 ms | ordinary calls, one kept-alive connection: n, p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r.name, r.sent, r.answer, r.timing, r.cpu, r.rss, r.fresh, r.pooled]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("trickle")
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--rate", type=float, default=5)
    t.add_argument("--timeout", type=float, default=180)
    t.add_argument("--auth")
    r = sub.add_parser("run")
    r.add_argument("--plain", required=True, help="PORT:PID of the facade on its defaults")
    r.add_argument("--tenants", help="PORT:PID of the facade with tenants")
    r.add_argument("--out", required=True)
    r.add_argument("--classes", default="ns-scan wide deep attr-flood billion-laughs slow-body idle "
                                        "password-flood password-user password-spread")
    r.add_argument("--rate", type=float, default=5, help="ordinary calls a second, each way")
    r.add_argument("--timeout", type=float, default=180, help="an ordinary call's client timeout, s")
    r.add_argument("--secs", type=float, default=20, help="how long a sustained attack (and the baseline) lasts")
    r.add_argument("--copies", type=int, default=2)
    r.add_argument("--slow-conns", type=int, default=100)
    r.add_argument("--idle-conns", type=int, default=600)
    r.add_argument("--flood-clients", type=int, default=8)
    r.add_argument("--max-connections", type=int, default=512)
    r.add_argument("--idle-timeout-ms", type=int, default=120_000)
    r.add_argument("--read-timeout-ms", type=int, default=60_000)
    r.add_argument("--steady-password", default="steady-password")
    args = p.parse_args()
    if args.cmd == "trickle":
        trickle(args)
    else:
        run(args)


if __name__ == "__main__":
    main()

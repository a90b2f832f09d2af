#!/usr/bin/env bash
# Hostile XML against a running facade: what each document costs to refuse,
# in time and memory, and what an ordinary call meanwhile waits.
#
#   bash bench/attack_xml.sh              # from anywhere; builds --release
#   BIN=path/to/soapgate bash bench/attack_xml.sh   # measure that binary
#   COPIES=4 bash bench/attack_xml.sh     # documents posted at once (default 2)
#
# Builds the release binary (`cargo build --release`) unless BIN is set,
# starts `soapgate serve --emulator` on a free loopback port (the example
# contracts and mappings, SQLite in a temporary folder, no job workers),
# generates four documents of about 9 MB, each within every documented cap
# (10 MiB body, depth 100, 500 attributes and 100 namespace declarations an
# element, 50,000 children):
#
#   ns-scan     95 nested levels of 100 unused prefix declarations, then
#               children with 499 attributes in a prefix declared outside
#               them (every name used to be compared with 9,500 bindings)
#   wide        two million `<x/>` in groups of 50,000
#   deep        chains of 97 nested elements, one after another
#   attr-flood  elements of 499 short attributes each
#
# and posts each, $COPIES copies at once, while a client posts
# examples/InvoiceService/ClassifyInvoice.xml to /soap/InvoiceService one
# call after another. For each document it prints the answer (HTTP status
# and fault code), the time to that answer, the facade's CPU time per copy
# (utime + stime from /proc/PID/stat, less what the ordinary calls took at
# the baseline's rate), the ordinary calls made meanwhile (count, median
# and slowest), and the facade's RSS before, at
# its peak (VmHWM, reset before each document through
# /proc/PID/clear_refs) and after (VmRSS, a second later), from
# /proc/PID/status. A baseline of ordinary calls with nothing else in
# flight comes first. Output stays in $OUT (printed at the start).
#
# Needs python3 and a Rust toolchain. Every process started here is
# stopped on exit. Not part of CI.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
COPIES=${COPIES:-2}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-}
OUT=${OUT:-$(mktemp -d /tmp/soapgate-attack.XXXXXX)}
mkdir -p "$OUT"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

if [ -z "$BIN" ]; then
    log "building: cargo build --release"
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet
    BIN=$TARGET_DIR/release/soapgate
    PROFILE=release
else
    PROFILE="given ($BIN)"
fi
log "output in $OUT"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
unset AWS_PROFILE AWS_ENDPOINT_URL
RUST_LOG=${FACADE_LOG:-warn} "$BIN" serve --emulator --no-workers \
    --listen "127.0.0.1:$PORT" --wsdl-dir wsdl --mappings-dir mappings \
    --database-url "sqlite://$OUT/soapgate.db" >"$OUT/facade.log" 2>&1 &
FACADE_PID=$!
PIDS+=("$FACADE_PID")
for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
    sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" || { echo "the facade did not start; see $OUT/facade.log" >&2; exit 1; }

echo "command:    bash bench/attack_xml.sh (COPIES=$COPIES)"
echo "binary:     $BIN, profile $PROFILE"
echo "machine:    $(nproc) cores, $(uname -sr); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "facade:     pid $FACADE_PID on 127.0.0.1:$PORT, serve --emulator --no-workers"

python3 - "$PORT" "$FACADE_PID" "$COPIES" "$OUT" <<'PY'
import http.client
import os
import re
import statistics
import sys
import threading
import time

port, pid, copies, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
INV = "http://erp.example.com/ap/invoice/types/v1"
ORDINARY = open("examples/InvoiceService/ClassifyInvoice.xml", "rb").read()
ACTION = "http://erp.example.com/ap/invoice/v1/ClassifyInvoice"
TARGET = 9_000_000  # bytes a document grows to (the cap is 10 MiB)


def envelope(payload: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}">'
        f"<soapenv:Body>{payload}</soapenv:Body></soapenv:Envelope>"
    ).encode()


def fill(head: str, unit: str, tail: str) -> bytes:
    """head + unit repeated up to TARGET bytes + tail, in the payload."""
    room = TARGET - len(head) - len(tail) - 200
    return envelope(head + unit * max(1, room // len(unit)) + tail)


def ns_scan() -> bytes:
    head = f'<inv:ClassifyInvoice xmlns:inv="{INV}" xmlns:p="urn:p">'
    for level in range(95):
        head += "<d" + "".join(f' xmlns:d{level}x{j}="urn:decoy:{level}:{j}"' for j in range(100)) + ">"
    child = "<c" + "".join(f' p:a{a}=""' for a in range(499)) + "/>"
    tail = "</d>" * 95 + "</inv:ClassifyInvoice>"
    return fill(head, child, tail)


def wide() -> bytes:
    head = f'<inv:ClassifyInvoice xmlns:inv="{INV}">'
    group = "<g>" + "<x/>" * 50_000 + "</g>"
    return fill(head, group, "</inv:ClassifyInvoice>")


def deep() -> bytes:
    head = f'<inv:ClassifyInvoice xmlns:inv="{INV}">'
    chain = "<a>" * 97 + "</a>" * 97
    return fill(head, chain, "</inv:ClassifyInvoice>")


def attr_flood() -> bytes:
    head = f'<inv:ClassifyInvoice xmlns:inv="{INV}">'
    el = "<x" + "".join(f' a{a}=""' for a in range(499)) + "/>"
    return fill(head, el, "</inv:ClassifyInvoice>")


def status_kb(field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak() -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def post(body: bytes, service: str, action: str = "") -> tuple[float, int, str]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    try:
        conn.request("POST", f"/soap/{service}", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read().decode("utf-8", "replace")
        status = resp.status
    except OSError as e:
        data, status = f"<error {e}>", 0
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    m = re.search(r"<sg:Code>([A-Z_]+)</sg:Code>", data)
    return elapsed, status, m.group(1) if m else ("ok" if status == 200 else data[:80])


class Ordinary(threading.Thread):
    """Ordinary calls one after another until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.times: list[float] = []
        self.answers: set[str] = set()

    def run(self):
        while not self.stop.is_set():
            t, status, code = post(ORDINARY, "InvoiceService", ACTION)
            self.times.append(t)
            self.answers.add(f"{status} {code}")


def ms(t: float) -> str:
    return f"{t * 1000:.1f}"


# Warm up, then the baseline.
for _ in range(5):
    post(ORDINARY, "InvoiceService", ACTION)
cpu0 = cpu_seconds()
base = [post(ORDINARY, "InvoiceService", ACTION) for _ in range(200)]
per_call_cpu = (cpu_seconds() - cpu0) / len(base)
times = [b[0] for b in base]
print(
    f"baseline:   {len(base)} ordinary calls alone: median {ms(statistics.median(times))} ms, "
    f"slowest {ms(max(times))} ms, facade CPU {per_call_cpu * 1e6:.0f} us a call, "
    f"answers {sorted({f'{b[1]} {b[2]}' for b in base})}"
)
print(f"            facade RSS idle {status_kb('VmRSS') / 1024:.0f} MB")
print()
cols = f"{'document':<11} {'bytes':>9}  {'answer':<18} {'to answer (s)':<14} {'CPU s/copy':<11} {'ordinary calls meanwhile (ms)':<34} {'RSS MB before/peak/after':<24}"
print(cols)
print("-" * len(cols))

for name, make in [("ns-scan", ns_scan), ("wide", wide), ("deep", deep), ("attr-flood", attr_flood)]:
    body = make()
    with open(f"{out}/{name}.xml", "wb") as f:
        f.write(body)
    time.sleep(1)
    before = status_kb("VmRSS")
    peak_ok = reset_peak()
    cpu_before = cpu_seconds()
    ordinary = Ordinary()
    ordinary.start()
    time.sleep(0.2)
    results: list[tuple[float, int, str]] = [None] * copies  # type: ignore

    def attack(i: int):
        results[i] = post(body, "InvoiceService")

    threads = [threading.Thread(target=attack, args=(i,)) for i in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.2)
    ordinary.stop.set()
    ordinary.join()
    cpu = (cpu_seconds() - cpu_before - per_call_cpu * len(ordinary.times)) / copies
    peak = status_kb("VmHWM") if peak_ok else 0
    time.sleep(1)
    after = status_kb("VmRSS")
    answers = sorted({f"{r[1]} {r[2]}" for r in results})
    durations = "/".join(f"{r[0]:.2f}" for r in results)
    ot = ordinary.times
    calls = f"{len(ot)}, median {ms(statistics.median(ot))}, max {ms(max(ot))}"
    if ordinary.answers != {"200 ok"}:
        calls += f" {sorted(ordinary.answers)}"
    rss = f"{before / 1024:.0f}/{peak / 1024:.0f}/{after / 1024:.0f}" if peak_ok else f"{before / 1024:.0f}/?/{after / 1024:.0f}"
    print(f"{name:<11} {len(body):>9}  {', '.join(answers):<18} {durations:<14} {cpu:<11.2f} {calls:<34} {rss:<24}")
PY
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

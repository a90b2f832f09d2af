#!/usr/bin/env bash
# Workflow benchmark: what running a three-step operation in the facade adds,
# against a client calling the same three steps as single-call operations,
# measured in one run on this machine.
#
#   bash bench/workflow.sh                  # from the repository root
#   PAIRS=5 DURATION=20 bash bench/workflow.sh
#   CONCS="1 16" DELAY_MS=50 bash bench/workflow.sh
#   BIN=path/to/soapgate bash bench/workflow.sh
#
# Needs wrk (`apt-get install -y wrk`, built with LuaJIT as Debian's is),
# python3 and a Rust toolchain (unless BIN is given; else the release binary
# is built into $CARGO_TARGET_DIR or target/). The contract and mapping are
# bench/workflow/ (WorkflowBench): Analyse runs classify, then summarise and
# tag at once (both read only classify); Classify, Summarise and Tag are the
# same prompts as single-call operations. Then:
#
#  1. starts one emulator whose script answers every call after $DELAY_MS
#     (the model's time; the answer is the emulator's default, generated
#     from the offered tool's schema) and one facade serving bench/workflow/
#     over h2c to it;
#  2. at each concurrency in $CONCS (one wrk thread per connection), runs
#     $PAIRS rounds alternating
#       workflow: Analyse, one SOAP call of three steps;
#       chain:    Classify, then Summarise, then Tag, one after another on
#                 the same connection;
#     for each: operations per second, p50/p99 of the operation (for chain:
#     the three calls end to end; and A + max(B, C) from the same calls,
#     what a client running B and C at once would have waited), and the
#     facade's CPU (utime + stime from /proc) per operation;
#  3. prints one line per run and the medians: the workflow's latency
#     against the chain's and against A + max(B, C) (the parallel branch
#     should cost the slower of B and C, not both), and the CPU the facade
#     adds per step: (CPU per workflow - CPU per chain) / 3.
#
# Everything listens on 127.0.0.1 on free ports; every process started here
# is stopped on exit. Raw wrk output and results.jsonl stay in $OUT. Not
# part of CI.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PAIRS=${PAIRS:-3}
CONCS=${CONCS:-1 16}
DELAY_MS=${DELAY_MS:-50}
EMU_THREADS=${EMU_THREADS:-1}   # the emulator's worker threads (as bench/load.sh)
FACADE_LOG=${FACADE_LOG:-info}  # RUST_LOG of the facade (production default: info)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-release}
BIN=${BIN:-}
OUT=${OUT:-$(mktemp -d /tmp/soapgate-workflow.XXXXXX)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL: wait until it answers (any status), up to 30 s
    for _ in $(seq 300); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "no answer from $1" >&2
    exit 1
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS_PER_SEC=$(getconf CLK_TCK)

export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
unset AWS_PROFILE AWS_ENDPOINT_URL

BUILD="BIN=$BIN"
if [ -z "$BIN" ]; then
    BIN=$TARGET_DIR/$PROFILE/soapgate
    BUILD="the $PROFILE profile"
    log "building the $PROFILE binary ($BIN)"
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --profile "$PROFILE" --bin soapgate --quiet
fi
log "output in $OUT"

# --- requests ----------------------------------------------------------------
NS=urn:bench:workflow
TEXT='Invoice No 2026-0815 from Brandt Befestigungstechnik GmbH, 30 November 2026: 200 steel bolts M8, installation labour 3 h, freight. Total due EUR 1,660.05 within 30 days.'
envelope() { # OPERATION EXTRA_XML
    cat <<XML
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:w="$NS">
  <soapenv:Body>
    <w:$1><w:Text>$TEXT</w:Text>$2</w:$1>
  </soapenv:Body>
</soapenv:Envelope>
XML
}
envelope Analyse "" >"$OUT/analyse.xml"
envelope Classify "" >"$OUT/classify.xml"
envelope Summarise "<w:Kind>INVOICE</w:Kind>" >"$OUT/summarise.xml"
envelope Tag "<w:Kind>INVOICE</w:Kind>" >"$OUT/tag.xml"

cat >"$OUT/emulator.yaml" <<EOF
rules:
  - name: model delay $DELAY_MS ms
    delay_ms: $DELAY_MS
EOF

# --- 1. emulator and facade --------------------------------------------------
EMU_PORT=$(free_port)
TOKIO_WORKER_THREADS=$EMU_THREADS "$BIN" emulator --listen "127.0.0.1:$EMU_PORT" --script "$OUT/emulator.yaml" \
    >"$OUT/emulator.log" 2>&1 &
PIDS+=("$!")
EMU=http://127.0.0.1:$EMU_PORT
wait_http "$EMU/_emulator/calls"

FAC_PORT=$(free_port)
SOAPGATE_BEDROCK__HTTP2_PRIOR_KNOWLEDGE=true SOAPGATE_BEDROCK__MAX_IN_FLIGHT=1024 \
AWS_ENDPOINT_URL_BEDROCK_RUNTIME=$EMU RUST_LOG=$FACADE_LOG \
    "$BIN" serve --listen "127.0.0.1:$FAC_PORT" --wsdl-dir bench/workflow --mappings-dir bench/workflow \
    >"$OUT/facade.log" 2>&1 &
FACADE_PID=$!
PIDS+=("$FACADE_PID")
FAC=http://127.0.0.1:$FAC_PORT
wait_http "$FAC/healthz"

# Every call answers as itself before it is measured: 200, not degraded, and
# Analyse made exactly three model calls.
for op in analyse:Analyse classify:Classify summarise:Summarise tag:Tag; do
    file=${op%%:*} name=${op#*:}
    calls0=$(curl -s "$EMU/_emulator/calls" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
    code=$(curl -s -o "$OUT/$file.response.xml" -w '%{http_code}' \
        -H 'Content-Type: text/xml; charset=utf-8' -H "SOAPAction: \"$NS/$name\"" \
        --data-binary @"$OUT/$file.xml" "$FAC/soap/WorkflowBench")
    [ "$code" = 200 ] || { echo "$name: HTTP $code" >&2; cat "$OUT/$file.response.xml" >&2; exit 1; }
    ! grep -q Degraded "$OUT/$file.response.xml" || { echo "$name answered degraded" >&2; exit 1; }
    calls1=$(curl -s "$EMU/_emulator/calls" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
    want=1
    [ "$name" = Analyse ] && want=3
    [ $((calls1 - calls0)) = "$want" ] || { echo "$name made $((calls1 - calls0)) model calls, not $want" >&2; exit 1; }
done

# --- 2. runs -------------------------------------------------------------------
export SOAP_PATH=/soap/WorkflowBench
export WF_BODY=$OUT/analyse.xml WF_ACTION=$NS/Analyse
export A_BODY=$OUT/classify.xml A_ACTION=$NS/Classify
export B_BODY=$OUT/summarise.xml B_ACTION=$NS/Summarise
export C_BODY=$OUT/tag.xml C_ACTION=$NS/Tag

run() { # MODE CONC PAIR
    local mode=$1 conc=$2 pair=$3 raw=$OUT/wrk-$1-c$2-p$3.txt
    MODE=$mode wrk -t"$conc" -c"$conc" -d"${WARMUP}s" --timeout 10s -s bench/workflow.lua "$FAC" >/dev/null
    log "$mode c=$conc round $pair"
    local cpu0 cpu1
    cpu0=$(ticks "$FACADE_PID")
    MODE=$mode wrk -t"$conc" -c"$conc" -d"${DURATION}s" --timeout 10s -s bench/workflow.lua "$FAC" >"$raw"
    cpu1=$(ticks "$FACADE_PID")
    local result
    result=$(sed -n 's/^RESULT //p' "$raw")
    [ -n "$result" ] || { echo "no result in $raw" >&2; cat "$raw" >&2; exit 1; }
    printf '{"mode":"%s","conc":%s,"pair":%s,"cpu_s":%s,"load1":%s,%s\n' "$mode" "$conc" "$pair" \
        "$(awk "BEGIN {print ($cpu1 - $cpu0) / $TICKS_PER_SEC}")" "$(cut -d' ' -f1 /proc/loadavg)" \
        "${result#\{}" >>"$RESULTS"
}

for conc in $CONCS; do
    for pair in $(seq "$PAIRS"); do
        run workflow "$conc" "$pair"
        run chain "$conc" "$pair"
    done
done

# --- 3. summary ----------------------------------------------------------------
{
    echo "machine: $(nproc) cores, $(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)"
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "model delay ${DELAY_MS} ms; ${DURATION}s per run after ${WARMUP}s warm-up; facade RUST_LOG=$FACADE_LOG; emulator on $EMU_THREADS worker thread(s); $BUILD"
    python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def cpu_us(r):
    return r["cpu_s"] / r["ops"] * 1e6 if r["ops"] else float("nan")
print()
print("| mode | conc | round | ops/s | p50 ms | p99 ms | A+max(B,C) p50 ms | A+max(B,C) p99 ms | facade CPU µs/op | errors | load1 |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    par50 = f"{r['par_p50_us']/1000:.2f}" if r["mode"] == "chain" else "-"
    par99 = f"{r['par_p99_us']/1000:.2f}" if r["mode"] == "chain" else "-"
    print(f"| {r['mode']} | {r['conc']} | {r['pair']} | {r['ops_per_s']:.1f} | {r['p50_us']/1000:.2f} | {r['p99_us']/1000:.2f} "
          f"| {par50} | {par99} | {cpu_us(r):.0f} | {r['errors']} | {r['load1']} |")
print()
print("| conc | workflow p50 / p99 ms | chain (A+B+C) p50 / p99 ms | A+max(B,C) p50 / p99 ms | workflow − A+max(B,C) p50 ms | ops/s workflow / chain | facade CPU µs per workflow / chain | added CPU µs per step |")
print("|---|---|---|---|---|---|---|---|")
med = lambda sel, k: statistics.median(k(r) for r in sel)
for conc in sorted({r["conc"] for r in rows}):
    w = [r for r in rows if r["conc"] == conc and r["mode"] == "workflow"]
    c = [r for r in rows if r["conc"] == conc and r["mode"] == "chain"]
    if not w or not c:
        continue
    w50, w99 = med(w, lambda r: r["p50_us"]) / 1000, med(w, lambda r: r["p99_us"]) / 1000
    c50, c99 = med(c, lambda r: r["p50_us"]) / 1000, med(c, lambda r: r["p99_us"]) / 1000
    p50, p99 = med(c, lambda r: r["par_p50_us"]) / 1000, med(c, lambda r: r["par_p99_us"]) / 1000
    wops, cops = med(w, lambda r: r["ops_per_s"]), med(c, lambda r: r["ops_per_s"])
    wcpu, ccpu = med(w, cpu_us), med(c, cpu_us)
    print(f"| {conc} | {w50:.2f} / {w99:.2f} | {c50:.2f} / {c99:.2f} | {p50:.2f} / {p99:.2f} | {w50 - p50:+.2f} "
          f"| {wops:.1f} / {cops:.1f} | {wcpu:.0f} / {ccpu:.0f} | {(wcpu - ccpu) / 3:+.0f} |")
PY
} | tee "$OUT/summary.txt"

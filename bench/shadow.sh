#!/usr/bin/env bash
# Shadow benchmark: the served call's latency with a shadow variant running
# beside it vs without, measured in one run on this machine.
#
#   bash bench/shadow.sh                     # from the repository root
#   BIN=target/release/soapgate bash bench/shadow.sh   # measure this binary
#   SAMPLES="0.2 1.0" CONC=16 PAIRS=3 DURATION=10 bash bench/shadow.sh
#
# Needs wrk (`apt-get install -y wrk`), python3 and a Rust toolchain (unless
# BIN is given; else the release binary is built into $CARGO_TARGET_DIR or
# target/). Then:
#
#  1. starts one emulator whose script delays every call about the
#     benchmark ticket by 50 ms (the model's time), and for each shadow
#     sample in $SAMPLES a facade whose SummarizeTicket mapping has a
#     variant on another model id run as its shadow on that share of the
#     calls, beside one facade with the example mappings as they are (no
#     shadow); all of them call the same emulator;
#  2. runs wrk against each facade in turn, $PAIRS rounds, so every
#     comparison is between runs seconds apart and drift shows as spread;
#  3. prints p50/p99 and throughput per run, the median p99 of each facade
#     and its ratio to the one without a shadow, and the shadow runs each
#     facade counted (soapgate_shadow_calls_total).
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
CONC=${CONC:-16}
SAMPLES=${SAMPLES:-0.2 1.0}
DELAY_MS=${DELAY_MS:-50}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-}
OUT=${OUT:-$(mktemp -d /tmp/soapgate-shadow.XXXXXX)}
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

export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
unset AWS_PROFILE AWS_ENDPOINT_URL

if [ -z "$BIN" ]; then
    BIN=$TARGET_DIR/release/soapgate
    log "building the release binary ($BIN)"
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --bin soapgate --quiet
fi
log "output in $OUT"

# --- the call and the emulator ---------------------------------------------
ACTION=http://helpdesk.example.com/SupportDesk/SummarizeTicket
SUBJECT='<Subject>Duplicate charge on invoice 2024-10-5521</Subject>'
grep -q "$SUBJECT" examples/SupportDesk/SummarizeTicket.xml
sed "s|$SUBJECT|<Subject>Duplicate charge on invoice 2024-10-5521 BENCH-DELAY</Subject>|" \
    examples/SupportDesk/SummarizeTicket.xml >"$OUT/summarize.xml"
cat >"$OUT/emulator.yaml" <<EOF
rules:
  - name: model delay $DELAY_MS ms
    prompt: "BENCH-DELAY"
    delay_ms: $DELAY_MS
EOF

EMU_PORT=$(free_port)
TOKIO_WORKER_THREADS=1 "$BIN" emulator --listen "127.0.0.1:$EMU_PORT" --script "$OUT/emulator.yaml" \
    >"$OUT/emulator.log" 2>&1 &
PIDS+=("$!")
EMU=http://127.0.0.1:$EMU_PORT
wait_http "$EMU/_emulator/calls"

# --- facades -----------------------------------------------------------------
# The example mappings; for a shadow facade, SummarizeTicket gets a variant
# on another model id (the emulator answers it alike, after the same delay)
# run as its shadow on SAMPLE of the calls.
mappings_with_shadow() { # DIR SAMPLE
    mkdir -p "$1"
    cp mappings/*.yaml "$1/"
    python3 - "$1/SupportDesk.yaml" "$2" <<'PY'
import sys
path, sample = sys.argv[1], sys.argv[2]
text = open(path).read()
head = "  SummarizeTicket:\n"
assert head in text, "no SummarizeTicket in SupportDesk.yaml"
block = (
    "    variants:\n"
    "      candidate:\n"
    "        model: { targets: [ { model: candidate-model } ], max_tokens: 600 }\n"
    f"    shadow: {{ sample: {sample}, variant: candidate }}\n"
)
open(path, "w").write(text.replace(head, head + block, 1))
PY
}

NAMES=(off)
declare -A URL PID
start_facade() { # NAME MAPPINGS_DIR
    local port
    port=$(free_port)
    SOAPGATE_BEDROCK__HTTP2_PRIOR_KNOWLEDGE=true SOAPGATE_BEDROCK__MAX_IN_FLIGHT=1024 \
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME=$EMU RUST_LOG=${FACADE_LOG:-info} \
        "$BIN" serve --listen "127.0.0.1:$port" --wsdl-dir wsdl --mappings-dir "$2" \
        >"$OUT/facade-$1.log" 2>&1 &
    PID[$1]=$!
    PIDS+=("$!")
    URL[$1]=http://127.0.0.1:$port
    wait_http "${URL[$1]}/healthz"
}
start_facade off mappings
for s in $SAMPLES; do
    mappings_with_shadow "$OUT/mappings-$s" "$s"
    start_facade "shadow-$s" "$OUT/mappings-$s"
    NAMES+=("shadow-$s")
done

for name in "${NAMES[@]}"; do
    code=$(curl -s -o "$OUT/$name.response.xml" -w '%{http_code}' \
        -H 'Content-Type: text/xml; charset=utf-8' -H "SOAPAction: \"$ACTION\"" \
        --data-binary @"$OUT/summarize.xml" "${URL[$name]}/soap/SupportDesk")
    [ "$code" = 200 ] || { echo "$name: HTTP $code" >&2; cat "$OUT/$name.response.xml" >&2; exit 1; }
done

# --- runs --------------------------------------------------------------------
shadow_counts() { # URL: "agree differ failed skipped" of SummarizeTicket
    curl -s "$1/metrics" | python3 -c '
import re, sys
counts = {"agree": 0.0, "differ": 0.0, "failed": 0.0, "skipped": 0.0}
for line in sys.stdin:
    m = re.match(r"soapgate_shadow_calls_total\{(.*)\} (\S+)", line)
    if m and "operation=\"SummarizeTicket\"" in m.group(1):
        r = re.search(r"result=\"(\w+)\"", m.group(1)).group(1)
        counts[r] += float(m.group(2))
print(" ".join(str(int(counts[k])) for k in ("agree", "differ", "failed", "skipped")))'
}

for pair in $(seq "$PAIRS"); do
    for name in "${NAMES[@]}"; do
        url="${URL[$name]}/soap/SupportDesk"
        BODY_FILE=$OUT/summarize.xml CONTENT_TYPE='text/xml; charset=utf-8' SOAP_ACTION="\"$ACTION\"" \
            wrk -t2 -c"$CONC" -d"${WARMUP}s" --timeout 10s -s bench/post.lua "$url" >/dev/null
        log "$name c=$CONC round $pair"
        raw=$OUT/wrk-$name-p$pair.txt
        BODY_FILE=$OUT/summarize.xml CONTENT_TYPE='text/xml; charset=utf-8' SOAP_ACTION="\"$ACTION\"" \
            wrk -t2 -c"$CONC" -d"${DURATION}s" --timeout 10s -s bench/post.lua "$url" >"$raw"
        result=$(sed -n 's/^RESULT //p' "$raw")
        printf '{"facade":"%s","pair":%s,"load1":%s,%s\n' "$name" "$pair" \
            "$(cut -d' ' -f1 /proc/loadavg)" "${result#\{}" >>"$RESULTS"
    done
done

# Shadow runs still in flight finish within the model's delay.
sleep 1
for name in "${NAMES[@]}"; do
    echo "$name $(shadow_counts "${URL[$name]}")" >>"$OUT/shadow-counts.txt"
done

# --- summary -----------------------------------------------------------------
python3 - "$RESULTS" "$OUT/shadow-counts.txt" "$CONC" "$DELAY_MS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
counts = {l.split()[0]: l.split()[1:] for l in open(sys.argv[2])}
conc, delay = sys.argv[3], sys.argv[4]
print(f"SummarizeTicket, model delay {delay} ms, concurrency {conc}")
print(f"{'facade':<12} {'round':>5} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'load1':>6}")
for r in rows:
    errors = sum(r[k] for k in r if k.startswith("errors_"))
    print(f"{r['facade']:<12} {r['pair']:>5} {r['rps']:>8.1f} {r['p50_us']/1000:>8.2f} "
          f"{r['p99_us']/1000:>8.2f} {errors:>6} {r['load1']:>6}")
names = list(dict.fromkeys(r["facade"] for r in rows))
p99 = {n: statistics.median(r["p99_us"] for r in rows if r["facade"] == n) / 1000 for n in names}
p50 = {n: statistics.median(r["p50_us"] for r in rows if r["facade"] == n) / 1000 for n in names}
spread = {n: [r["p99_us"] / 1000 for r in rows if r["facade"] == n] for n in names}
print()
print(f"{'facade':<12} {'p50 ms':>8} {'p99 ms':>8} {'p99/off':>8}  p99 per round          shadow agree/differ/failed/skipped")
for n in names:
    c = "/".join(counts.get(n, ["-"]))
    print(f"{n:<12} {p50[n]:>8.2f} {p99[n]:>8.2f} {p99[n]/p99['off']:>8.3f}  "
          f"{', '.join(f'{x:.2f}' for x in spread[n]):<22} {c}")
PY

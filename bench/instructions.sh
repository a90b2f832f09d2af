#!/usr/bin/env bash
# Instructions per SOAP call: the facade's user-space instructions per call
# in steady state, counted by valgrind's callgrind. Unlike CPU time, the
# count does not move with what else the machine runs, so two builds can be
# compared from one run each. It leaves out the kernel, and valgrind's CPU
# has no SHA extensions, so SigV4's hashing counts far more than it costs.
#
#   bash bench/instructions.sh                 # the production binary
#   BIN=path/to/soapgate bash bench/instructions.sh
#   SECS=30 CONC=16 bash bench/instructions.sh
#
# Needs valgrind and wrk (`apt-get install -y valgrind wrk`) and python3.
# Starts the emulator (one worker thread) and the facade under callgrind on
# free loopback ports, warms up for 10 s of SummarizeTicket calls (no model
# delay), zeroes the counters, measures $SECS s more, and prints calls,
# instructions per call and where the profile went
# (`callgrind_annotate --inclusive=yes` on it shows the breakdown).
set -euo pipefail

cd "$(dirname "$0")/.."
SECS=${SECS:-20}
CONC=${CONC:-16}
TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
BIN=${BIN:-}
OUT=${OUT:-$(mktemp -d /tmp/soapgate-instructions.XXXXXX)}
mkdir -p "$OUT"

for tool in valgrind callgrind_control callgrind_annotate wrk python3; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
if [ -z "$BIN" ]; then
    BIN=$TARGET_DIR/production/soapgate
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --profile production --quiet
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
unset AWS_PROFILE AWS_ENDPOINT_URL
EMU_PORT=$(free_port)
FAC_PORT=$(free_port)

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

TOKIO_WORKER_THREADS=1 "$BIN" emulator --listen "127.0.0.1:$EMU_PORT" >"$OUT/emulator.log" 2>&1 &
PIDS+=($!)
SOAPGATE_BEDROCK__MAX_IN_FLIGHT=2000 SOAPGATE_BEDROCK__HTTP2_PRIOR_KNOWLEDGE=true \
AWS_ENDPOINT_URL_BEDROCK_RUNTIME=http://127.0.0.1:$EMU_PORT RUST_LOG=info \
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
    "$BIN" serve --listen "127.0.0.1:$FAC_PORT" --wsdl-dir wsdl --mappings-dir mappings \
    >"$OUT/facade.log" 2>&1 &
FAC_PID=$!
PIDS+=("$FAC_PID")
up=false
for _ in $(seq 600); do # valgrind starts the facade slowly
    curl -s -o /dev/null "http://127.0.0.1:$FAC_PORT/healthz" && { up=true; break; }
    sleep 0.2
done
$up || { echo "the facade did not start; see $OUT/facade.log" >&2; exit 1; }

calls() { # SECONDS
    BODY_FILE=examples/SupportDesk/SummarizeTicket.xml CONTENT_TYPE='text/xml; charset=utf-8' \
    SOAP_ACTION='"http://helpdesk.example.com/SupportDesk/SummarizeTicket"' \
        wrk -t1 -c"$CONC" -d"$1s" --timeout 30s -s bench/post.lua \
        "http://127.0.0.1:$FAC_PORT/soap/SupportDesk"
}
calls 10 >/dev/null
callgrind_control --zero "$FAC_PID" >/dev/null 2>&1
calls "$SECS" >"$OUT/wrk.txt"
callgrind_control --dump=measured "$FAC_PID" >/dev/null 2>&1
sleep 1

n=$(sed -n 's/^RESULT {"requests":\([0-9]*\).*/\1/p' "$OUT/wrk.txt")
failed=$(sed -n 's/.*"errors_status":\([0-9]*\).*/\1/p' "$OUT/wrk.txt")
[ "${n:-0}" -gt 0 ] && [ "$failed" = 0 ] || { echo "calls failed: $(cat "$OUT/wrk.txt")" >&2; exit 1; }
profile=$(ls -t "$OUT"/callgrind.out.* | head -1)
total=$(callgrind_annotate "$profile" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "calls: $n; instructions per call: $(( total / n )); profile: $profile"

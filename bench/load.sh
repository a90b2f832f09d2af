#!/usr/bin/env bash
# Load benchmark: SOAP calls through the facade vs the same Converse calls
# sent straight to the emulator, measured in one run on this machine.
#
#   bash bench/load.sh                 # from the repository root
#   DURATION=20 bash bench/load.sh     # seconds per measured run (default 10)
#   PHASES=memory bash bench/load.sh   # only the calls-in-flight memory phase
#   PAIRS=5 bash bench/load.sh         # direct/facade pairs per 50 ms run (default 3)
#   EMU_THREADS=2 bash bench/load.sh   # the emulator's worker threads (default 1)
#   REFERENCE=none bash bench/load.sh  # skip the reference proxy (nginx, when installed)
#
# Needs wrk (`apt-get install -y wrk`), python3 and a Rust toolchain; with
# nginx installed (`apt-get install -y nginx-light`) it also measures a
# reference proxy. Builds the production binary (Cargo.toml's `production`
# profile: release with fat LTO; PROFILE=release for the quicker build) if
# needed, into $CARGO_TARGET_DIR or target/, then:
#
#  1. captures the exact Converse request the facade sends for each sample
#     envelope (facade -> bench/capture_converse.py), so the direct baseline
#     replays the same body on the same model path;
#  2. starts one emulator (script: a 50 ms and a 3 s delay rule, chosen by a
#     marker in the ticket subject) and one facade pointed at it;
#  3. runs wrk at concurrency 1, 16 and 256, direct and through the facade,
#     with no model delay (added latency) and a 50 ms delay (throughput);
#     with the 50 ms delay it alternates direct and facade runs $PAIRS times,
#     so each ratio compares runs seconds apart and drift shows as spread;
#  3b. with nginx installed, measures nginx relaying the same Converse calls
#     (concurrency 256, 50 ms model) as a reference: what a proxy hop that
#     needs little CPU keeps of direct throughput on this machine;
#  4. starts a fresh emulator and facade and holds 1,000 calls in flight
#     against the 3 s rule, sampling the facade's VmRSS (and the emulator's,
#     for reference), for memory per call in flight;
#  5. prints a table and the verdicts against the targets. Raw wrk output,
#     logs and results.jsonl stay in $OUT (printed at the start).
#
# Everything listens on 127.0.0.1 on free ports; every process started here
# is stopped on exit. Not part of CI.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
INFLIGHT=${INFLIGHT:-1000}
PAIRS=${PAIRS:-3}             # alternating direct/facade pairs per 50 ms run
HOLD_DELAY_MS=${HOLD_DELAY_MS:-3000}
FACADE_LOG=${FACADE_LOG:-info} # RUST_LOG for the facade (production default: info)
H2C=${H2C:-true}              # facade -> emulator over HTTP/2 (h2c); false: HTTP/1.1
# The emulator stands in for a model on another machine, yet here it shares
# the two cores with the facade and wrk. On one worker thread it needs a
# quarter less CPU per call (no wakeups across threads) and still answers
# the direct runs at the rate their latency allows; both sides of every
# comparison talk to the same emulator.
EMU_THREADS=${EMU_THREADS:-1}
# A reference proxy measured beside the facade (step 3b); none: skip it.
REFERENCE=${REFERENCE:-$(command -v nginx >/dev/null && echo nginx || echo none)}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-production} # the cargo profile to build (production: the build to deploy)
BIN=${BIN:-}                   # a soapgate binary to measure; unset: build $PROFILE
OUT=${OUT:-$(mktemp -d /tmp/soapgate-load.XXXXXX)}
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

# The facade speaks h2c to the emulator (H2C=false: HTTP/1.1), as it
# speaks HTTP/2 to Bedrock over https.
#
# The facade's overload guard (bedrock.max_in_flight, 256 by default) is
# raised above the calls held in flight and the largest concurrency
# measured (256): the runs measure the call path, not the guard's
# OVERLOADED answers.
start_facade() { # PORT MODEL_URL LOGFILE: starts it, sets FACADE_PID
    SOAPGATE_BEDROCK__MAX_IN_FLIGHT=$(( (INFLIGHT > 256 ? INFLIGHT : 256) * 2 )) SOAPGATE_BEDROCK__HTTP2_PRIOR_KNOWLEDGE=${FACADE_H2C:-$H2C} \
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME=$2 RUST_LOG=$FACADE_LOG \
        "$BIN" serve --listen "127.0.0.1:$1" --wsdl-dir wsdl --mappings-dir mappings \
        >"$3" 2>&1 &
    FACADE_PID=$!
    PIDS+=("$FACADE_PID")
    wait_http "http://127.0.0.1:$1/healthz"
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# --- build ----------------------------------------------------------------
if [ -z "$BIN" ]; then
    BIN=$TARGET_DIR/$PROFILE/soapgate
    log "building the $PROFILE binary ($BIN)"
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --profile "$PROFILE" --quiet
fi
log "output in $OUT"

# --- requests -------------------------------------------------------------
# name|service|SOAPAction|sample envelope
OPS=(
    "summarize|SupportDesk|http://helpdesk.example.com/SupportDesk/SummarizeTicket|examples/SupportDesk/SummarizeTicket.xml"
    "classify|InvoiceService|http://erp.example.com/ap/invoice/v1/ClassifyInvoice|examples/InvoiceService/ClassifyInvoice.xml"
)
# SummarizeTicket variants whose subject carries a marker the emulator
# script delays on; the marker reaches the prompt, so the direct body
# carries it too.
SUBJECT='<Subject>Duplicate charge on invoice 2024-10-5521</Subject>'
for d in 50 "$HOLD_DELAY_MS"; do
    grep -q "$SUBJECT" examples/SupportDesk/SummarizeTicket.xml
    sed "s|$SUBJECT|<Subject>Duplicate charge on invoice 2024-10-5521 BENCH-DELAY-$d</Subject>|" \
        examples/SupportDesk/SummarizeTicket.xml >"$OUT/summarize-d$d.xml"
    OPS+=("summarize-d$d|SupportDesk|http://helpdesk.example.com/SupportDesk/SummarizeTicket|$OUT/summarize-d$d.xml")
done

cat >"$OUT/emulator.yaml" <<EOF
rules:
  - name: model delay 50 ms
    prompt: "BENCH-DELAY-50\\\\b"
    delay_ms: 50
  - name: model delay $HOLD_DELAY_MS ms
    prompt: "BENCH-DELAY-$HOLD_DELAY_MS\\\\b"
    delay_ms: $HOLD_DELAY_MS
EOF

# --- 1. capture the Converse request of each envelope -----------------------
CAP_PORT=$(free_port)
mkdir -p "$OUT/capture"
python3 bench/capture_converse.py "$CAP_PORT" "$OUT/capture" &
CAP_PID=$!
PIDS+=("$CAP_PID")
F0_PORT=$(free_port)
wait_http "http://127.0.0.1:$CAP_PORT/"
# The capture server speaks HTTP/1.1 only.
FACADE_H2C=false start_facade "$F0_PORT" "http://127.0.0.1:$CAP_PORT" "$OUT/facade-capture.log"
# The first request a call makes is the one to replay (a structured
# operation repairs when the capture server's "ok" does not fit).
for op in "${OPS[@]}"; do
    IFS='|' read -r name service action file <<<"$op"
    [ "$file" = "$OUT/$name.xml" ] || cp "$file" "$OUT/$name.xml"
    before=$(find "$OUT/capture" -name '*.json' | wc -l)
    curl -s -o /dev/null -H 'Content-Type: text/xml; charset=utf-8' -H "SOAPAction: \"$action\"" \
        --data-binary @"$OUT/$name.xml" "http://127.0.0.1:$F0_PORT/soap/$service"
    n=$((before + 1))
    [ -f "$OUT/capture/$n.json" ] || { echo "no Converse request captured for $name" >&2; exit 1; }
    cp "$OUT/capture/$n.json" "$OUT/$name.json"
    cp "$OUT/capture/$n.path" "$OUT/$name.path"
done
stop "$FACADE_PID"
stop "$CAP_PID"

# --- 2. emulator and facade -------------------------------------------------
EMU_PORT=$(free_port)
TOKIO_WORKER_THREADS=$EMU_THREADS "$BIN" emulator --listen "127.0.0.1:$EMU_PORT" --script "$OUT/emulator.yaml" >"$OUT/emulator.log" 2>&1 &
EMU_PID=$!
PIDS+=("$EMU_PID")
wait_http "http://127.0.0.1:$EMU_PORT/_emulator/calls"
EMU=http://127.0.0.1:$EMU_PORT
FAC_PORT=$(free_port)
start_facade "$FAC_PORT" "$EMU" "$OUT/facade.log"
FAC=http://127.0.0.1:$FAC_PORT

# Every request must succeed as itself before it is measured: 200 from both
# sides, and no Degraded header (a static fallback would be cheaper than
# the real path).
for op in "${OPS[@]}"; do
    IFS='|' read -r name service action _ <<<"$op"
    [[ $name == summarize-d$HOLD_DELAY_MS ]] && continue
    code=$(curl -s -o "$OUT/$name.direct-response.json" -w '%{http_code}' \
        -H 'Content-Type: application/json' --data-binary @"$OUT/$name.json" "$EMU$(cat "$OUT/$name.path")")
    [ "$code" = 200 ] || { echo "direct $name: HTTP $code" >&2; cat "$OUT/$name.direct-response.json" >&2; exit 1; }
    code=$(curl -s -D "$OUT/$name.facade-headers" -o "$OUT/$name.facade-response.xml" -w '%{http_code}' \
        -H 'Content-Type: text/xml; charset=utf-8' -H "SOAPAction: \"$action\"" \
        --data-binary @"$OUT/$name.xml" "$FAC/soap/$service")
    [ "$code" = 200 ] || { echo "facade $name: HTTP $code" >&2; cat "$OUT/$name.facade-response.xml" >&2; exit 1; }
    if grep -q 'sg:Degraded' "$OUT/$name.facade-headers" "$OUT/$name.facade-response.xml"; then
        echo "facade $name answered degraded" >&2; exit 1
    fi
done

# --- 3. throughput and latency ----------------------------------------------
# CPU ticks (user + system) the given processes have used so far.
ticks() {
    local t=0 pid
    for pid in "$@"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$pid/stat") )); done
    echo "$t"
}
TICKS_PER_SEC=$(getconf CLK_TCK)

run_wrk() { # LABEL DELAY_MS SIDE CONC URL BODY CONTENT_TYPE ACTION PAIR
    local label=$1 delay=$2 side=$3 conc=$4 url=$5 body=$6 ctype=$7 action=$8 pair=$9
    local threads=2 timeout=$(( delay / 1000 + 10 ))s
    [ "$conc" -lt 2 ] && threads=1
    BODY_FILE=$body CONTENT_TYPE=$ctype SOAP_ACTION=$action \
        wrk -t"$threads" -c"$conc" -d"${WARMUP}s" --timeout "$timeout" -s bench/post.lua "$url" >/dev/null
    log "$label delay=${delay}ms $side c=$conc pair $pair"
    local raw=$OUT/wrk-$label-d$delay-$side-c$conc-p$pair.txt
    # The CPU the middle hop (the facade, or the reference proxy; none for
    # direct runs) and the emulator use while measured, for CPU per call.
    local hop=()
    case $side in
        facade) hop=("$FACADE_PID") ;;
        reference) hop=("${REF_PIDS[@]}") ;;
    esac
    local hop0 emu0 hop1 emu1
    hop0=$(ticks "${hop[@]}")
    emu0=$(ticks "$EMU_PID")
    BODY_FILE=$body CONTENT_TYPE=$ctype SOAP_ACTION=$action \
        wrk -t"$threads" -c"$conc" -d"${DURATION}s" --timeout "$timeout" -s bench/post.lua "$url" >"$raw"
    hop1=$(ticks "${hop[@]}")
    emu1=$(ticks "$EMU_PID")
    local result
    result=$(sed -n 's/^RESULT //p' "$raw")
    printf '{"op":"%s","delay_ms":%s,"side":"%s","conc":%s,"pair":%s,"hop_cpu_s":%s,"emu_cpu_s":%s,%s\n' \
        "$label" "$delay" "$side" "$conc" "$pair" \
        "$(awk "BEGIN {print ($hop1 - $hop0) / $TICKS_PER_SEC}")" \
        "$(awk "BEGIN {print ($emu1 - $emu0) / $TICKS_PER_SEC}")" \
        "${result#\{}" >>"$RESULTS"
}

measure() { # NAME LABEL DELAY_MS
    local name=$1 label=$2 delay=$3 service action
    for op in "${OPS[@]}"; do
        IFS='|' read -r n service action _ <<<"$op"
        [ "$n" = "$name" ] && break
    done
    # Throughput runs (a model delay) alternate the sides PAIRS times;
    # latency runs (none) are one pair.
    local pairs=1
    [ "$delay" -gt 0 ] && pairs=$PAIRS
    for conc in 1 16 256; do
        for pair in $(seq "$pairs"); do
            run_wrk "$label" "$delay" direct "$conc" "$EMU$(cat "$OUT/$name.path")" \
                "$OUT/$name.json" application/json "" "$pair"
            run_wrk "$label" "$delay" facade "$conc" "$FAC/soap/$service" \
                "$OUT/$name.xml" 'text/xml; charset=utf-8' "\"$action\"" "$pair"
        done
    done
}

if [ "${PHASES:-all}" != memory ]; then
    measure summarize SummarizeTicket 0
    measure classify ClassifyInvoice 0
    measure summarize-d50 SummarizeTicket 50
fi

# --- 3b. a reference proxy ---------------------------------------------------
# What a proxy hop alone costs on this machine: nginx (when installed), with
# keep-alive connections to the emulator, relaying the direct runs' Converse
# calls at concurrency 256 with the 50 ms model, alternating with direct
# runs as the facade's do. A hop that needs little CPU keeps close to 100 %
# of direct; what separates the facade from it is its CPU per call.
REF_PIDS=()
if [ "${PHASES:-all}" != memory ] && [ "$REFERENCE" = nginx ]; then
    REF_PORT=$(free_port)
    mkdir -p "$OUT/nginx"
    cat >"$OUT/nginx/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $OUT/nginx/body;
    proxy_temp_path $OUT/nginx/proxy;
    upstream model { server 127.0.0.1:$EMU_PORT; keepalive 512; }
    server {
        listen 127.0.0.1:$REF_PORT backlog=1024;
        location / {
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
NGINX
    nginx -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_http "http://127.0.0.1:$REF_PORT/_emulator/calls"
    mapfile -t REF_PIDS < <(pgrep -P "$NGINX_PID")
    REF_PIDS+=("$NGINX_PID")
    path=$(cat "$OUT/summarize-d50.path")
    for pair in $(seq "$PAIRS"); do
        run_wrk reference 50 direct 256 "$EMU$path" "$OUT/summarize-d50.json" \
            application/json "" "$pair"
        run_wrk reference 50 reference 256 "http://127.0.0.1:$REF_PORT$path" \
            "$OUT/summarize-d50.json" application/json "" "$pair"
    done
    stop "$NGINX_PID"
fi

# --- 4. memory with calls in flight ----------------------------------------
# A fresh emulator and facade, so idle is not inflated by memory the
# allocator kept from the runs above. The emulator's own growth is recorded
# too: it is an axum server holding the same calls, a reference for what the
# inbound side alone costs.
stop "$FACADE_PID"
stop "$EMU_PID"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
EMU_PORT=$(free_port)
TOKIO_WORKER_THREADS=$EMU_THREADS "$BIN" emulator --listen "127.0.0.1:$EMU_PORT" --script "$OUT/emulator.yaml" >"$OUT/emulator-hold.log" 2>&1 &
EMU_PID=$!
PIDS+=("$EMU_PID")
wait_http "http://127.0.0.1:$EMU_PORT/_emulator/calls"
HOLD_PORT=$(free_port)
start_facade "$HOLD_PORT" "http://127.0.0.1:$EMU_PORT" "$OUT/facade-hold.log"
HOLD_PID=$FACADE_PID
# Warm the path (contracts touched, SDK client and its first connections up)
# so idle is the facade ready to serve, not the facade just started.
BODY_FILE=$OUT/summarize.xml CONTENT_TYPE='text/xml; charset=utf-8' \
    SOAP_ACTION='"http://helpdesk.example.com/SupportDesk/SummarizeTicket"' \
    wrk -t1 -c4 -d2s -s bench/post.lua "http://127.0.0.1:$HOLD_PORT/soap/SupportDesk" >/dev/null
sleep 1
IDLE_KIB=$(rss_kib "$HOLD_PID")
EMU_IDLE_KIB=$(rss_kib "$EMU_PID")
HOLD_SECS=$(( HOLD_DELAY_MS * 4 / 1000 + 2 ))
log "holding $INFLIGHT calls in flight (model delay ${HOLD_DELAY_MS} ms) for ${HOLD_SECS}s; idle RSS ${IDLE_KIB} KiB"
BODY_FILE=$OUT/summarize-d$HOLD_DELAY_MS.xml CONTENT_TYPE='text/xml; charset=utf-8' \
    SOAP_ACTION='"http://helpdesk.example.com/SupportDesk/SummarizeTicket"' \
    wrk -t2 -c"$INFLIGHT" -d"${HOLD_SECS}s" --timeout "$(( HOLD_DELAY_MS / 1000 + 20 ))s" \
    -s bench/post.lua "http://127.0.0.1:$HOLD_PORT/soap/SupportDesk" >"$OUT/wrk-hold.txt" &
WRK_PID=$!
PIDS+=("$WRK_PID")
PEAK_KIB=$IDLE_KIB
EMU_PEAK_KIB=$EMU_IDLE_KIB
PEAK_UPSTREAM=0
while kill -0 "$WRK_PID" 2>/dev/null; do
    rss=$(rss_kib "$HOLD_PID")
    [ "$rss" -gt "$PEAK_KIB" ] && PEAK_KIB=$rss
    rss=$(rss_kib "$EMU_PID")
    [ "$rss" -gt "$EMU_PEAK_KIB" ] && EMU_PEAK_KIB=$rss
    # The facade's open connections to the model: over HTTP/1.1 one per
    # call in flight (all busy at the peak), over h2c one for all calls.
    up=$(ss -Htn state established "( dport = :$EMU_PORT )" | wc -l)
    [ "$up" -gt "$PEAK_UPSTREAM" ] && PEAK_UPSTREAM=$up
    sleep 0.2
done
wait "$WRK_PID" || true
HWM_KIB=$(awk '/^VmHWM:/ {print $2}' "/proc/$HOLD_PID/status")
hold=$(sed -n 's/^RESULT //p' "$OUT/wrk-hold.txt")
printf '{"op":"hold","delay_ms":%s,"side":"facade","conc":%s,"idle_kib":%s,"peak_kib":%s,"hwm_kib":%s,"emu_idle_kib":%s,"emu_peak_kib":%s,"peak_upstream_conns":%s,%s\n' \
    "$HOLD_DELAY_MS" "$INFLIGHT" "$IDLE_KIB" "$PEAK_KIB" "$HWM_KIB" "$EMU_IDLE_KIB" "$EMU_PEAK_KIB" "$PEAK_UPSTREAM" "${hold#\{}" >>"$RESULTS"
stop "$HOLD_PID"
stop "$EMU_PID"

# --- 5. summary -------------------------------------------------------------
{
    echo "machine: $(nproc) cores, $(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)"
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "duration ${DURATION}s per run after ${WARMUP}s warm-up; facade RUST_LOG=$FACADE_LOG; emulator on $EMU_THREADS worker thread(s)"
    python3 bench/summarize.py "$RESULTS"
} | tee "$OUT/summary.txt"

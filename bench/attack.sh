#!/usr/bin/env bash
# Hostile input against the facade on its embedded defaults: what each
# attack costs it (time, CPU, memory) and what an ordinary call waits
# meanwhile. One Markdown table.
#
#   bash bench/attack.sh                      # everything: about 7 minutes, plus the build
#   BIN=path/to/soapgate bash bench/attack.sh # measure that binary instead
#   CLASSES="wide idle" bash bench/attack.sh  # some classes only
#
# Settings (environment):
#   CLASSES          ns-scan wide deep attr-flood billion-laughs slow-body idle
#                    password-flood password-user password-spread (all, in this order)
#   SECS=20          how long each sustained attack, and each baseline, lasts
#   RATE=5           ordinary calls a second, on each of the two ways below
#   COPIES=2         clients posting each hostile document
#   SLOW_CONNS=100   connections dripping a body
#   IDLE_CONNS=600   idle connections (the cap, max_connections, is 512)
#   FLOOD_CLIENTS=8  clients guessing passwords
#   READ_TIMEOUT_MS=10000  the facade's request_read_timeout_ms (default 60000),
#                    lowered so the slow-body class ends sooner
#   IDLE_TIMEOUT_MS  the facade's idle_timeout_ms; unset: its default (120000)
#   OUT=dir          where the documents, configs, logs and table go (a new
#                    temporary folder by default)
#
# What runs: the release binary (`cargo build --release`, unless BIN is
# set) as `soapgate serve --emulator` (the built-in Converse emulator, the
# example contracts and mappings, SQLite in $OUT, workers on) twice, each
# on a free loopback port with a config holding only what differs from
# the built-in defaults:
#   plain    request_read_timeout_ms = $READ_TIMEOUT_MS, nothing else;
#   tenants  the same and two tenants: `acme` (UsernameToken users
#            acme-erp and acme-batch, Argon2id hashes) and `steady`
#            (steady-erp), the throttle settings at their defaults.
#
# Classes, in order (see bench/attack.py):
#   ns-scan, wide, deep, attr-flood   9 MB documents, each within every
#       documented cap (10 MiB body, depth 100, 500 attributes and 100
#       namespace declarations an element, 50,000 children); COPIES
#       clients post one again and again for SECS, a new connection each
#   billion-laughs   a DOCTYPE with nested entities, posted the same way
#   slow-body        SLOW_CONNS connections send a head, then the body at
#       1 byte/s, until the facade closes them (request_read_timeout)
#   idle             IDLE_CONNS connections send one GET /healthz each and
#       then nothing. At the cap the facade closes an idle connection for
#       each new one (new ones wait in the listen backlog only while every
#       connection is busy). Held until all have been answered and some
#       closed, a few seconds; if some are closed unanswered, until
#       idle_timeout + 60 s (the facade closes the rest at idle_timeout,
#       120 s by default)
#   password-flood   (tenants) wrong passwords for acme-erp from 127.0.0.2
#   password-user    (tenants) wrong passwords for acme-batch, a new source
#       address each call (only the per-user throttle can stop it)
#   password-spread  (tenants) a new unknown user name and a new source
#       address each call (no throttle applies: every call costs a hash)
#
# Meanwhile, in a process of its own, ordinary calls
# (examples/InvoiceService/ClassifyInvoice.xml, answered by the emulator;
# by tenant `steady` on the tenants facade) go at RATE a second two ways:
# each on a new connection, sent on time however slow earlier ones are,
# and one after another on a single connection kept alive from before the
# attack. Baselines: the same calls with no attack, on each facade.
#
# Columns: the facade's answers to the attack (HTTP status and fault code,
# counted); the time to them, or to the facade closing the connections;
# the facade's CPU time (utime + stime) over the window, a second either
# side of the attack included; its RSS before, at the peak (VmHWM, reset
# through /proc/PID/clear_refs before each class) and a second after;
# the ordinary calls: how many, p50 / p95 of their latency in ms (a call
# with no answer counts as the slowest), and any answer other than 200.
#
# Needs python3 (standard library) and curl, and a Rust toolchain unless
# BIN is set. Every process started here is stopped on exit. Not in CI.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CLASSES=${CLASSES:-ns-scan wide deep attr-flood billion-laughs slow-body idle password-flood password-user password-spread}
SECS=${SECS:-20}
RATE=${RATE:-5}
COPIES=${COPIES:-2}
SLOW_CONNS=${SLOW_CONNS:-100}
IDLE_CONNS=${IDLE_CONNS:-600}
FLOOD_CLIENTS=${FLOOD_CLIENTS:-8}
READ_TIMEOUT_MS=${READ_TIMEOUT_MS:-10000}
IDLE_TIMEOUT_MS=${IDLE_TIMEOUT_MS:-}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-}
OUT=${OUT:-$(mktemp -d /tmp/soapgate-attack.XXXXXX)}
mkdir -p "$OUT"

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

hash_of() { printf '%s\n' "$1" | "$BIN" hash-secret; }

export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
unset AWS_PROFILE AWS_ENDPOINT_URL

{
    printf 'request_read_timeout_ms = %s\n' "$READ_TIMEOUT_MS"
    if [ -n "$IDLE_TIMEOUT_MS" ]; then printf 'idle_timeout_ms = %s\n' "$IDLE_TIMEOUT_MS"; fi
} >"$OUT/plain.toml"
{
    cat "$OUT/plain.toml"
    cat <<EOF

[[tenants]]
name = "acme"
allow = ["*"]

[[tenants.credentials]]
scheme = "username_token"
username = "acme-erp"
password_hash = "$(hash_of acme-erp-password)"

[[tenants.credentials]]
scheme = "username_token"
username = "acme-batch"
password_hash = "$(hash_of acme-batch-password)"

[[tenants]]
name = "steady"
allow = ["*"]

[[tenants.credentials]]
scheme = "username_token"
username = "steady-erp"
password_hash = "$(hash_of steady-password)"
EOF
} >"$OUT/tenants.toml"

# start NAME: serve with $OUT/NAME.toml; sets PORT and PID.
start() {
    local name=$1
    PORT=$(free_port)
    RUST_LOG=${FACADE_LOG:-warn} "$BIN" serve --emulator --config "$OUT/$name.toml" \
        --listen "127.0.0.1:$PORT" --wsdl-dir wsdl --mappings-dir mappings \
        --database-url "sqlite://$OUT/$name.db" >"$OUT/$name.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 300); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && return 0
        sleep 0.1
    done
    echo "the $name facade did not start; see $OUT/$name.log" >&2
    exit 1
}

start plain
PLAIN="$PORT:$PID"
TENANTS_ARG=()
case " $CLASSES " in
*" password-"*)
    start tenants
    TENANTS_ARG=(--tenants "$PORT:$PID")
    ;;
esac

echo "command:    bash bench/attack.sh (SECS=$SECS RATE=$RATE COPIES=$COPIES SLOW_CONNS=$SLOW_CONNS IDLE_CONNS=$IDLE_CONNS FLOOD_CLIENTS=$FLOOD_CLIENTS READ_TIMEOUT_MS=$READ_TIMEOUT_MS${IDLE_TIMEOUT_MS:+ IDLE_TIMEOUT_MS=$IDLE_TIMEOUT_MS})"
echo "commit:     $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (with uncommitted changes under src/)')"
echo "binary:     $BIN, profile $PROFILE"
echo "machine:    $(nproc) cores, $(uname -sr); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "facades:    plain $PLAIN, tenants ${TENANTS_ARG[1]:-not started} (port:pid)"
echo

# In the background and waited for, so that a signal reaches the traps
# (and stops everything) at once rather than when the run is over.
python3 bench/attack.py run --plain "$PLAIN" "${TENANTS_ARG[@]}" --out "$OUT" \
    --classes "$CLASSES" --secs "$SECS" --rate "$RATE" --copies "$COPIES" \
    --slow-conns "$SLOW_CONNS" --idle-conns "$IDLE_CONNS" --flood-clients "$FLOOD_CLIENTS" \
    --read-timeout-ms "$READ_TIMEOUT_MS" --idle-timeout-ms "${IDLE_TIMEOUT_MS:-120000}" &
RUN_PID=$!
PIDS+=("$RUN_PID")
wait "$RUN_PID"

echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in plain tenants; do
    [ -f "$OUT/$name.log" ] || continue
    echo "$name facade log: $(grep -c . "$OUT/$name.log" || true) lines," \
        "$(grep -ci 'panic' "$OUT/$name.log" || true) mentioning a panic; the first five:"
    head -n 5 "$OUT/$name.log" | cut -c1-300
done

#!/usr/bin/env bash
# Batch inference against on demand: the same queued jobs through
# `soapgate worker`, once with the example mappings (every job one Converse
# call) and once with InvoiceService.ClassifyInvoice given `batch:` (the
# jobs go to the model as batch-inference jobs), in one run. For each: the
# worker's CPU per job and the store writes per job, counted exactly by
# PostgreSQL.
#
#   bash bench/batch.sh                    # from the repository root
#   JOBS=1000 ROUNDS=3 bash bench/batch.sh # jobs per run (default 5000), rounds (default 2)
#   BIN=path/to/soapgate bash bench/batch.sh
#
# Needs moto_server (`pip install 'moto[server]'`: the S3 batch jobs read and
# write), psql and a PostgreSQL server ($SOAPGATE_TEST_POSTGRES_URL, default
# postgres://postgres@127.0.0.1:5432/test; the user must be able to create
# databases), curl and python3. Builds the release binary if needed
# (PROFILE=production for the build to deploy), into $CARGO_TARGET_DIR or
# target/, then:
#
#  1. starts moto (with a bucket) and one `soapgate emulator` (no model
#     delay; batch jobs take 2 x $BATCH_DELAY_MS, reading their records from
#     and writing their output to moto's S3);
#  2. per round, runs on demand and batch one after the other, each in a
#     database of its own: `soapgate migrate`, `soapgate worker` started on
#     the empty tables and left to settle, then $JOBS soapgate_requests rows
#     for ClassifyInvoice inserted in one statement (as a legacy batch job
#     would) and the worker left to run until every one has its
#     soapgate_results row;
#  3. counts, from the moment the rows are inserted to the last result:
#     - the worker's CPU (utime + stime from /proc, read just before it is
#       stopped: its start-up is not counted);
#     - transactions committed in its database (pg_stat_database
#       xact_commit: read-only ones included, so idle polls and claims that
#       found nothing count, and so does the start of each new connection;
#       the script's own sessions are subtracted);
#     - rows written (pg_stat_user_tables n_tup_ins + n_tup_upd +
#       n_tup_del over every table, the inserted request rows subtracted),
#       also per table;
#  4. checks every result is DONE and not the static fallback, that the
#     batch runs made no on-demand model call and the on-demand runs one per
#     job, and prints one line per run and the medians per mode.
#
# Batch settings: min_records 100, max_records 1000, max_wait_secs 600, the
# driver ticking every $TICK_MS (30 s). The driver cuts at its ticks, taking
# whatever jobs the intake has made by then, so the tick is longer than the
# intake of all the rows takes (one row per transaction: about 20 s for
# 5,000 on the 2-core machine): the first tick after the insert cuts them
# all, 5,000 jobs making 5 batches of 1,000. With a shorter tick the last cut
# can leave fewer than 100 jobs, which then wait out max_wait_secs and run
# on demand; the script refuses such a run (raise TICK_MS). The driver polls
# a submitted batch at its ticks too: a batch run lasts about two ticks, its
# idle polls counted in its transactions. Everything listens on 127.0.0.1
# on free ports; every process and database made here is stopped or dropped
# on exit. Not part of CI.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-5000}
ROUNDS=${ROUNDS:-2}             # on demand, then batch, this many times
BATCH_DELAY_MS=${BATCH_DELAY_MS:-200} # the emulator's batch jobs: Submitted -> InProgress -> Completed
TICK_MS=${TICK_MS:-30000}       # [batch] tick_ms: longer than the intake of $JOBS rows takes
POLL_MS=${POLL_MS:-200}         # [batch] poll_initial_ms (doubling up to 4x)
WORKER_LOG=${WORKER_LOG:-info}  # RUST_LOG of the worker (production default: info)
TIMEOUT=${TIMEOUT:-900}         # seconds a run may take
PG_URL=${SOAPGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-release}
BIN=${BIN:-}
OUT=${OUT:-$(mktemp -d /tmp/soapgate-batch.XXXXXX)}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv

for tool in moto_server psql curl python3; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done

PIDS=()
DBS=()
ADMIN_URL=${PG_URL%/*}/postgres
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for db in "${DBS[@]}"; do psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
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

wait_log() { # FILE PATTERN PID: wait until the log has the line, up to 60 s
    for _ in $(seq 600); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { echo "the process exited; its log:" >&2; tail -20 "$1" >&2; exit 1; }
        sleep 0.1
    done
    echo "no '$2' in $1 after 60 s" >&2
    tail -20 "$1" >&2
    exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# One statement. On the bench database each call commits two transactions:
# the statement's, and the one every new connection commits at its start.
q() { psql -X -q -At "$@"; }

export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_BEDROCK

# --- build ----------------------------------------------------------------
if [ -z "$BIN" ]; then
    BIN=$TARGET_DIR/$PROFILE/soapgate
    log "building the $PROFILE binary ($BIN)"
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --profile "$PROFILE" --bin soapgate --quiet
fi
log "output in $OUT"

# --- 1. moto and the emulator ----------------------------------------------
MOTO_PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$OUT/moto.log" 2>&1 &
PIDS+=("$!")
MOTO=http://127.0.0.1:$MOTO_PORT
wait_http "$MOTO/"
BUCKET=soapgate-bench
curl -sf -X PUT -o /dev/null "$MOTO/$BUCKET" || { echo "moto did not create the bucket" >&2; exit 1; }

printf 'batch: { delay_ms: %s }\n' "$BATCH_DELAY_MS" >"$OUT/emulator.yaml"
EMU_PORT=$(free_port)
"$BIN" emulator --listen "127.0.0.1:$EMU_PORT" --script "$OUT/emulator.yaml" \
    --s3-endpoint-url "$MOTO" >"$OUT/emulator.log" 2>&1 &
PIDS+=("$!")
EMU=http://127.0.0.1:$EMU_PORT
wait_http "$EMU/_emulator/calls"

# --- the two mapping folders -------------------------------------------------
ONDEMAND_MAPPINGS=$ROOT/mappings
BATCH_MAPPINGS=$OUT/mappings-batch
mkdir -p "$BATCH_MAPPINGS"
cp mappings/*.yaml "$BATCH_MAPPINGS/"
python3 - "$BATCH_MAPPINGS/InvoiceService.yaml" "$BUCKET" <<'EOF'
import sys
path, bucket = sys.argv[1], sys.argv[2]
text = open(path).read()
at = "  ClassifyInvoice:\n    mode: sync\n"
assert at in text, "the example mapping has ClassifyInvoice"
batch = (
    "    batch:\n"
    "      min_records: 100\n"
    "      max_records: 1000\n"
    "      max_wait_secs: 600\n"
    "      role_arn: arn:aws:iam::123456789012:role/BedrockBatch\n"
    f"      s3_uri: s3://{bucket}/soapgate\n"
)
open(path, "w").write(text.replace(at, at + batch))
EOF

# The request rows: the example envelope, vendor and total made each row's own.
PAYLOAD=$(cat examples/InvoiceService/ClassifyInvoice.xml)
grep -q '<name>Nordlicht Rechenzentrum GmbH</name>' <<<"$PAYLOAD"
grep -q '<totalAmount>5795.30</totalAmount>' <<<"$PAYLOAD"
INSERT="INSERT INTO soapgate_requests (correlation_id, service, operation, payload)
SELECT 'bench-' || lpad(i::text, 6, '0'), 'InvoiceService', 'ClassifyInvoice',
       replace(replace(:'payload',
           '<name>Nordlicht Rechenzentrum GmbH</name>', '<name>Vendor ' || lpad(i::text, 6, '0') || ' GmbH</name>'),
           '<totalAmount>5795.30</totalAmount>', '<totalAmount>' || (5000 + i) || '.30</totalAmount>')
FROM generate_series(1, $JOBS) AS i"

TABLES_SQL="SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables ORDER BY relname"

# --- 2. one run --------------------------------------------------------------
printf 'mode\tround\twall_s\tcpu_s\tcpu_us_per_job\txact_per_job\trows_per_job\tbatches\tmodel_calls\tload1\n' >"$RESULTS"

run() { # MODE ROUND
    local mode=$1 round=$2
    local db=soapgate_bench_${mode}_${round}_$$
    local url=${PG_URL%/*}/$db
    local dir=$OUT/$mode-$round
    mkdir -p "$dir"
    q "$ADMIN_URL" -c "CREATE DATABASE $db"
    DBS+=("$db")
    "$BIN" migrate --database-url "$url" >"$dir/migrate.log" 2>&1
    curl -sf -X POST -o /dev/null "$EMU/_emulator/reset"

    local mappings=$ONDEMAND_MAPPINGS
    [ "$mode" = batch ] && mappings=$BATCH_MAPPINGS
    RUST_LOG=$WORKER_LOG \
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME=$EMU SOAPGATE_BEDROCK__HTTP2_PRIOR_KNOWLEDGE=true \
    SOAPGATE_BATCH__ENDPOINT_URL=$EMU SOAPGATE_BATCH__S3_ENDPOINT_URL=$MOTO \
    SOAPGATE_BATCH__TICK_MS=$TICK_MS SOAPGATE_BATCH__POLL_INITIAL_MS=$POLL_MS \
    SOAPGATE_BATCH__POLL_MAX_MS=$((POLL_MS * 4)) \
        "$BIN" worker --database-url "$url" --wsdl-dir wsdl --mappings-dir "$mappings" \
        >"$dir/worker.log" 2>&1 &
    local worker=$!
    PIDS+=("$worker")
    wait_log "$dir/worker.log" "workers started" "$worker"
    [ "$mode" = batch ] && wait_log "$dir/worker.log" "batch driver started" "$worker"
    sleep 2 # idle: its start-up's statistics reach the server

    local x0 x1 cpu0 cpu1 t0 t1 polls=0 done=0
    x0=$(q "$ADMIN_URL" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'")
    q "$url" -F $'\t' -c "$TABLES_SQL" >"$dir/tables0.tsv"
    cpu0=$(cpu_ticks "$worker")
    t0=$(date +%s.%N)
    q "$url" -v payload="$PAYLOAD" <<<"$INSERT" # $JOBS rows
    while :; do
        sleep 0.5
        done=$(q "$url" -c "SELECT count(*) FROM soapgate_results")
        polls=$((polls + 1))
        [ "$done" -ge "$JOBS" ] && break
        kill -0 "$worker" 2>/dev/null || { echo "the worker exited" >&2; tail -20 "$dir/worker.log" >&2; exit 1; }
        if [ "$(echo "$(date +%s.%N) - $t0 > $TIMEOUT" | bc)" = 1 ]; then
            echo "$mode round $round: $done of $JOBS results after $TIMEOUT s" >&2
            exit 1
        fi
    done
    cpu1=$(cpu_ticks "$worker")
    t1=$(date +%s.%N)
    kill "$worker"
    wait "$worker" 2>/dev/null || true
    # The worker's connections closed: their statistics are flushed.
    for _ in $(seq 100); do
        [ "$(q "$ADMIN_URL" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'")" = 0 ] && break
        sleep 0.1
    done
    sleep 0.5
    x1=$(q "$ADMIN_URL" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'")
    q "$url" -F $'\t' -c "$TABLES_SQL" >"$dir/tables1.tsv"

    # What the run did, checked.
    local results_ok fallback calls batches
    results_ok=$(q "$url" -c "SELECT count(*) FROM soapgate_results WHERE status = 'DONE' AND payload LIKE '%ClassifyInvoiceResponse%'")
    fallback=$(q "$url" -c "SELECT count(*) FROM soapgate_results WHERE payload LIKE '%Automatic classification unavailable%'")
    calls=$(curl -sf "$EMU/_emulator/calls" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
    batches=$(q "$url" -F ' ' -c "SELECT count(*), coalesce(sum(records), 0), coalesce(sum(answered), 0), coalesce(sum(returned), 0), coalesce(string_agg(records::text, '+' ORDER BY created_at_ms), '-') FROM soapgate_batches WHERE status = 'DONE'")
    q "$url" -F $'\t' -c "SELECT id, status, records, answered, returned, polls, created_at_ms, updated_at_ms FROM soapgate_batches ORDER BY created_at_ms" >"$dir/batches.tsv"
    [ "$results_ok" = "$JOBS" ] || { echo "$mode round $round: $results_ok of $JOBS results DONE" >&2; exit 1; }
    [ "$fallback" = 0 ] || { echo "$mode round $round: $fallback static fallbacks" >&2; exit 1; }
    read -r nb nrec nans nret sizes <<<"$batches"
    if [ "$mode" = batch ]; then
        [ "$nans" = "$JOBS" ] && [ "$nret" = 0 ] && [ "$calls" = 0 ] || {
            echo "batch round $round: $nb batches, $nans answered, $nret returned, $calls on-demand calls (TICK_MS too short for the intake?)" >&2
            exit 1
        }
    else
        [ "$nb" = 0 ] && [ "$calls" = "$JOBS" ] || { echo "on demand round $round: $calls model calls, $nb batches" >&2; exit 1; }
    fi

    # The counts: the script's own statements subtracted (the table snapshot
    # before, the insert, the polls; the rows it inserted).
    python3 - "$mode" "$round" "$JOBS" "$t0" "$t1" "$cpu0" "$cpu1" "$CLK_TCK" "$x0" "$x1" "$polls" \
        "$dir/tables0.tsv" "$dir/tables1.tsv" "$nb" "$sizes" "$calls" "$RESULTS" <<'EOF'
import os, sys
(mode, rnd, jobs, t0, t1, c0, c1, tck, x0, x1, polls, f0, f1, nb, sizes, calls, results) = sys.argv[1:]
jobs = int(jobs)
def tables(path):
    out = {}
    for line in open(path):
        name, ins, upd, dele = line.rstrip("\n").split("\t")
        out[name] = (int(ins), int(upd), int(dele))
    return out
a, b = tables(f0), tables(f1)
per_table = {}
for name, (i1, u1, d1) in b.items():
    i0, u0, d0 = a.get(name, (0, 0, 0))
    ins, upd, dele = i1 - i0, u1 - u0, d1 - d0
    if name == "soapgate_requests":
        ins -= jobs
    if ins or upd or dele:
        per_table[name] = (ins, upd, dele)
rows = sum(sum(v) for v in per_table.values())
# The script's sessions on the database: the table snapshot, the insert and
# the polls, two transactions each.
xact = int(x1) - int(x0) - 2 * (2 + int(polls))
wall = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / int(tck)
load1 = os.getloadavg()[0]
batches = f"{nb} ({sizes})" if mode == "batch" else "-"
with open(results, "a") as f:
    f.write(f"{mode}\t{rnd}\t{wall:.1f}\t{cpu:.2f}\t{cpu / jobs * 1e6:.0f}\t{xact / jobs:.3f}\t{rows / jobs:.3f}\t{batches}\t{calls}\t{load1:.2f}\n")
detail = ", ".join(f"{n} +{i}/~{u}/-{d}" for n, (i, u, d) in sorted(per_table.items()))
print(f"{mode:9} round {rnd}: {wall:6.1f} s, CPU {cpu:6.2f} s = {cpu / jobs * 1e6:5.0f} us/job, "
      f"{xact} transactions = {xact / jobs:.3f}/job, {rows} rows = {rows / jobs:.3f}/job; "
      f"batches {batches}, model calls {calls}, load {load1:.2f}", file=sys.stderr)
print(f"    rows written (insert/update/delete): {detail}", file=sys.stderr)
EOF
    q "$ADMIN_URL" -c "DROP DATABASE $db"
}

for round in $(seq 1 "$ROUNDS"); do
    for mode in ondemand batch; do
        log "round $round: $mode"
        run "$mode" "$round"
    done
done

# --- 3. summary ----------------------------------------------------------------
python3 - "$RESULTS" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print()
print("| mode | round | wall s | worker CPU s | CPU µs per job | transactions per job | rows written per job | batches (records) | model calls | load (1 min) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['mode']} | {r['round']} | {r['wall_s']} | {r['cpu_s']} | {r['cpu_us_per_job']} | {r['xact_per_job']} | {r['rows_per_job']} | {r['batches']} | {r['model_calls']} | {r['load1']} |")
med = {}
for mode in ("ondemand", "batch"):
    sel = [r for r in rows if r["mode"] == mode]
    med[mode] = {k: statistics.median(float(r[k]) for r in sel) for k in ("cpu_us_per_job", "xact_per_job", "rows_per_job")}
print()
print("| median | CPU µs per job | transactions per job | rows written per job |")
print("|---|---|---|---|")
for mode in ("ondemand", "batch"):
    m = med[mode]
    print(f"| {mode} | {m['cpu_us_per_job']:.0f} | {m['xact_per_job']:.3f} | {m['rows_per_job']:.3f} |")
b, o = med["batch"], med["ondemand"]
print(f"| batch / on demand | {b['cpu_us_per_job'] / o['cpu_us_per_job']:.2f} | {b['xact_per_job'] / o['xact_per_job']:.2f} | {b['rows_per_job'] / o['rows_per_job']:.2f} |")
EOF

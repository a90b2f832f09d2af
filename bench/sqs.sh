#!/usr/bin/env bash
# Jobs per second with queue.kind = sqs through fauxqs (an SQS emulator from
# npm), end to end (outbox relay, SQS consumers, the pipeline, the Bedrock SDK,
# the in-process Converse emulator at 0 ms, SQLite) beside a bare
# send/receive/delete loop on the same fauxqs, in one release-build run. The
# e2e row also says which path ran the jobs: `sqs runs` (jobs the SQS
# consumers ran) and `other runs` (model calls made outside them: 0 in SQS
# mode, or the run fails). See benches/sqs.rs; results go in BENCHMARKS.md.
#
#   bench/sqs.sh                       # 5000 jobs, 4 pollers x 10
#   JOBS=20000 POLLERS=8 bench/sqs.sh
#
# fauxqs is installed under $FAUXQS_DIR (default /tmp/soapgate-fauxqs), never
# in the repository, and started on $FAUXQS_PORT (default 4570) for the run.
set -euo pipefail
cd "$(dirname "$0")/.."
FAUXQS_DIR="${FAUXQS_DIR:-/tmp/soapgate-fauxqs}"
FAUXQS_PORT="${FAUXQS_PORT:-4570}"
if [ ! -f "$FAUXQS_DIR/node_modules/fauxqs/dist/cli.js" ]; then
    mkdir -p "$FAUXQS_DIR"
    npm install --prefix "$FAUXQS_DIR" --silent --no-audit --no-fund fauxqs@1.9.2
fi
FAUXQS_PORT="$FAUXQS_PORT" FAUXQS_LOGGER=false \
    node "$FAUXQS_DIR/node_modules/fauxqs/dist/cli.js" >/dev/null 2>&1 &
fauxqs_pid=$!
trap 'kill "$fauxqs_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$FAUXQS_PORT") 2>/dev/null; then break; fi
    sleep 0.2
done
export SQS_URL="http://127.0.0.1:$FAUXQS_PORT" SQS_NAME=fauxqs
export RUST_LOG="${RUST_LOG:-error}"
cargo bench --bench sqs

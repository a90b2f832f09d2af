#!/usr/bin/env bash
# Jobs per second through the database queue: end to end (workers, the
# pipeline, the Bedrock SDK, the in-process Converse emulator at 0 ms) beside
# a bare claim-and-complete loop, on SQLite, PostgreSQL and MariaDB, in one
# release-build run. See benches/jobs.rs; results go in BENCHMARKS.md.
#
#   bench/jobs.sh                      # 5000 jobs, 16 workers, all backends
#   JOBS=20000 CONCURRENCY=32 BACKENDS=sqlite bench/jobs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_LOG="${RUST_LOG:-error}"
exec cargo bench --bench jobs

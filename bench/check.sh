#!/usr/bin/env bash
# What `soapgate check` costs on the UBL-size contract (tests/data/ubl: 417
# named types over six namespaces, DraftInvoice mapped to structured
# output, so check builds its tool schema) against a baseline in the same
# run: the example contracts and mappings (wsdl/, mappings/). Each is run
# $RUNS times, alternating, under /usr/bin/time; the script prints each
# one's wall time and peak RSS (median, min, max) and the ratio of the
# medians. `render` of a DraftInvoice request is timed the same way.
#
#   bash bench/check.sh                      # builds the release binary
#   BIN=path/to/soapgate bash bench/check.sh
#   RUNS=21 bash bench/check.sh
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-11}
TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
BIN=${BIN:-}
if [ -z "$BIN" ]; then
    BIN=$TARGET_DIR/release/soapgate
    CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet --bin soapgate
fi
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install -y time)" >&2; exit 1; }
OUT=$(mktemp -d /tmp/soapgate-check.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

# name, then the command's arguments
cases=(
    "baseline check|check --wsdl-dir wsdl --mappings-dir mappings"
    "UBL check|check --wsdl-dir tests/data/ubl/wsdl --mappings-dir tests/data/ubl/mappings"
    "UBL render|render --wsdl-dir tests/data/ubl/wsdl --mappings-dir tests/data/ubl/mappings --service UblInvoicing --operation DraftInvoice --request tests/data/ubl/request.xml"
)

for run in $(seq 1 "$RUNS"); do
    for i in "${!cases[@]}"; do
        args=${cases[$i]#*|}
        start=$(date +%s%N)
        # shellcheck disable=SC2086 # the arguments are words
        env -u SOAPGATE_CONFIG /usr/bin/time -f "%M" -o "$OUT/t" "$BIN" $args >/dev/null 2>"$OUT/err" \
            || { cat "$OUT/err" >&2; exit 1; }
        end=$(date +%s%N)
        # wall seconds (from date, to the microsecond), peak RSS in KiB
        echo "$(( (end - start) / 1000 ))e-6 $(cat "$OUT/t")" >>"$OUT/case$i"
    done
done

echo "soapgate check / render, $RUNS runs each, alternating; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" "${#cases[@]}" "${cases[@]}" <<'EOF'
import statistics, sys
out, n, names = sys.argv[1], int(sys.argv[2]), [c.split("|")[0] for c in sys.argv[3:]]
medians = []
for i, name in enumerate(names):
    rows = [tuple(map(float, l.split())) for l in open(f"{out}/case{i}") if l.strip()]
    secs = sorted(r[0] for r in rows)
    kib = sorted(r[1] for r in rows)
    medians.append((statistics.median(secs), statistics.median(kib)))
    print(f"{name:16} wall {statistics.median(secs):.3f} s (min {secs[0]:.3f}, max {secs[-1]:.3f})"
          f"   peak RSS {statistics.median(kib)/1024:.1f} MiB (min {kib[0]/1024:.1f}, max {kib[-1]/1024:.1f})")
base = medians[0]
for name, (s, k) in zip(names[1:], medians[1:]):
    print(f"{name} / baseline: wall x{s / base[0]:.2f}, peak RSS x{k / base[1]:.2f}")
EOF

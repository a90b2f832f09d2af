#!/usr/bin/env bash
# The hostile-XML classes of bench/attack.sh alone: four 9 MB documents
# (ns-scan, wide, deep, attr-flood), each within every documented cap,
# posted again and again while ordinary calls go on. Same settings and
# output as bench/attack.sh (see its header), e.g.
#
#   bash bench/attack_xml.sh
#   COPIES=4 BIN=path/to/soapgate bash bench/attack_xml.sh
set -euo pipefail
CLASSES=${CLASSES:-ns-scan wide deep attr-flood} exec bash "$(dirname "$0")/attack.sh" "$@"

#!/usr/bin/env bash
# Serving benchmark: PACS Bridge serving its archive as a PACS (C-FIND, C-GET, WADO-RS,
# WADO-RS metadata, STOW-RS) against Orthanc with its DICOMweb plugin, on the same data, with
# the same client tools (findscu, getscu, curl), alternating, in one run; a ratio per row.
# Usage and variables: bench/serve.sh --help (bench/serve.sh --quick: a smaller, faster run).
# Everything that opens a socket runs inside a private network namespace that has only
# loopback: the script re-executes itself through scripts/in-netns.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_enter_netns "$@"

bench_need_tools "dcmtk, orthanc, orthanc-dicomweb, curl, python3" \
  findscu getscu storescu Orthanc curl python3
bench_exec_driver serve.py "$@"

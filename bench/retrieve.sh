#!/usr/bin/env bash
# Retrieve benchmark: C-GET and C-MOVE from Orthanc, DCMTK (getscu, movescu + storescp) vs PACS
# Bridge's retrieve jobs, alternating, in one run. Usage and variables: bench/retrieve.sh --help.
# Everything that opens a socket runs inside a private network namespace that has only
# loopback: the script re-executes itself through scripts/in-netns.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_enter_netns "$@"

bench_need_tools "dcmtk, orthanc, python3" getscu movescu storescp storescu Orthanc python3
bench_exec_driver retrieve.py "$@"

#!/usr/bin/env bash
# Throttle benchmark: the rate PACS Bridge's C-GET, C-STORE and WADO-RS jobs achieve against
# Orthanc under a node's max_bytes_per_second of 1, 5 and 20 MB/s (10^6 bytes); fails the run
# when a transfer at 5 MB/s (50 MB) misses the limit by more than 10 %. Usage and variables:
# bench/throttle.sh --help.
# Everything that opens a socket runs inside a private network namespace that has only
# loopback: the script re-executes itself through scripts/in-netns.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_enter_netns "$@"

bench_need_tools "dcmtk, orthanc, orthanc-dicomweb, python3" storescu Orthanc python3
bench_exec_driver throttle.py "$@"

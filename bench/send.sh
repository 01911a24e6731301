#!/usr/bin/env bash
# Send benchmark: DCMTK's storescu vs PACS Bridge's send jobs (one and two associations) to the
# same DCMTK storescp, alternating, in one run; storescu and the one-association job also over
# TLS in the same rounds (BENCH_TLS, default on). Usage and variables: bench/send.sh --help.
# Everything that opens a socket runs inside a private network namespace that has only
# loopback: the script re-executes itself through scripts/in-netns.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_enter_netns "$@"

bench_need_tools "dcmtk, python3" storescu storescp python3
bench_exec_driver send.py "$@"

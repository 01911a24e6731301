#!/usr/bin/env bash
# Load benchmark: hostile peers, HTTP readers and a flood of associations against one PACS Bridge
# receiver (see the docstring of bench/load.py). Runs inside a private network namespace that
# has only loopback: the script re-executes itself through scripts/in-netns.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_enter_netns "$@"
bench_need_tools "dcmtk, python3" storescu python3
bench_exec_driver load.py "$@"

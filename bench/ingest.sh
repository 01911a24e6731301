#!/usr/bin/env bash
# Ingest benchmark: storescu -> storescp / Orthanc / PACS Bridge, alternating, in one run.
# See bench/README.md. Everything that opens a socket runs inside a private network namespace
# that has only loopback: the script re-executes itself through scripts/in-netns.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_enter_netns "$@"

case "${1:-}" in
  -h|--help)
    sed -n '/^## Running/,/^## What it measures/p' "$here/README.md" | sed '$d'
    exit 0 ;;
esac

bench_need_tools "dcmtk, python3" storescu storescp python3
bench_exec_driver ingest.py "$@"

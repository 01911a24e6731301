#!/usr/bin/env bash
# Ingest as the index grows, on SQLite and on PostgreSQL: the rate at 0, 100k and 1 M instances
# already indexed (filled straight into the tables), C-FIND STUDY latency at each size, and two
# servers on one PostgreSQL database against one. Targets: the rate within 20 % of the empty
# index's, C-FIND under 20 ms, two servers >= 1.6x one. Usage and variables: bench/scale.sh --help.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_enter_netns "$@"

bench_need_tools "dcmtk, python3, postgresql-15" storescu findscu dump2dcm python3 psql
bench_exec_driver scale.py "$@"

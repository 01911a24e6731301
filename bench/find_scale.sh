#!/usr/bin/env bash
# C-FIND at scale: our receiver's Query/Retrieve answering from an index of 1 M instances (the
# index filled directly, since a C-FIND never reads archive files), STUDY level with 100
# matches and IMAGE level within a series, timed over one association. Target: a STUDY
# C-FIND with 100 matches under 20 ms. Usage and variables: bench/find_scale.sh --help.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_enter_netns "$@"

bench_need_tools "dcmtk, python3" findscu dump2dcm python3
bench_exec_driver find_scale.py "$@"

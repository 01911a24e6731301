#!/usr/bin/env bash
# DICOMweb benchmark: STOW-RS and WADO-RS with Orthanc's DICOMweb plugin, curl vs PACS Bridge's
# send and retrieve jobs, alternating, in one run, and our peak RSS retrieving a 200 MB
# instance (fails the run at 64 MB or more). Usage and variables: bench/dicomweb.sh --help.
# Everything that opens a socket runs inside a private network namespace that has only
# loopback: the script re-executes itself through scripts/in-netns.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_enter_netns "$@"

bench_need_tools "dcmtk, orthanc, orthanc-dicomweb, curl, python3" storescu Orthanc curl python3
bench_exec_driver dicomweb.py "$@"
